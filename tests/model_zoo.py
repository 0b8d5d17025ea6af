"""Small Keras models with the building blocks of real architectures, shared by tests.

Every builder fixes Keras's seeds (random weights, no training) and returns a built model on a
small input (16x16x3 images, or 32x2 sequences for the 1-D model). Layer names are explicit so
tests can refer to them. ``ZOO`` maps a short name to each builder; ``samples`` makes inputs.

``keras_inbound`` reads a model's graph from its serialized config (``model.get_config()``),
independently of the exporter's own walk over Keras's node objects.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

L = keras.layers
IMAGE_SHAPE = (16, 16, 3)
SEQUENCE_SHAPE = (32, 2)
CLASSES = 4


def _seed(seed: int) -> None:
    keras.utils.set_random_seed(seed)


def _head(x, name_prefix: str = ""):
    x = L.GlobalAveragePooling2D(name=f"{name_prefix}gap")(x)
    return L.Dense(CLASSES, activation="softmax", name=f"{name_prefix}output")(x)


def _conv_bn(x, filters: int, kernel: int, name: str, strides: int = 1, relu: bool = True):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                 name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


# -- architectures -------------------------------------------------------------------------------


def residual_block(seed: int = 0) -> keras.Model:
    """ResNet-style: a stem, an identity block (Conv-BN-ReLU-Conv-BN + Add skip, ReLU) and a
    projection block whose skip is a strided 1x1 Conv + BN (the spatial size halves)."""
    _seed(seed)
    inputs = keras.Input(IMAGE_SHAPE, name="input")
    x = _conv_bn(inputs, 8, 3, "stem")
    # identity block
    y = _conv_bn(x, 8, 3, "res1a")
    y = _conv_bn(y, 8, 3, "res1b", relu=False)
    x = L.Add(name="res1_add")([x, y])
    x = L.ReLU(name="res1_out")(x)
    # projection block (downsampling)
    y = _conv_bn(x, 16, 3, "res2a", strides=2)
    y = _conv_bn(y, 16, 3, "res2b", relu=False)
    skip = _conv_bn(x, 16, 1, "res2_proj", strides=2, relu=False)
    x = L.Add(name="res2_add")([skip, y])
    x = L.Activation("relu", name="res2_out")(x)
    return keras.Model(inputs, _head(x), name="residual_block")


#: Layers of the inception block's three parallel branches, in branch order.
INCEPTION_BRANCHES = (("branch1x1_conv",),
                      ("branch3x3_reduce", "branch3x3_conv"),
                      ("branch_pool", "branch_pool_proj"))


def inception_block(seed: int = 0) -> keras.Model:
    """Inception-style: 3 parallel branches (1x1 / 1x1->3x3 / 3x3 max-pool->1x1) concatenated."""
    _seed(seed)
    inputs = keras.Input(IMAGE_SHAPE, name="input")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    b1 = L.Conv2D(4, 1, activation="relu", name="branch1x1_conv")(x)
    b2 = L.Conv2D(4, 1, activation="relu", name="branch3x3_reduce")(x)
    b2 = L.Conv2D(6, 3, padding="same", activation="relu", name="branch3x3_conv")(b2)
    b3 = L.MaxPooling2D(3, strides=1, padding="same", name="branch_pool")(x)
    b3 = L.Conv2D(2, 1, activation="relu", name="branch_pool_proj")(b3)
    x = L.Concatenate(name="mixed")([b1, b2, b3])
    return keras.Model(inputs, _head(x), name="inception_block")


def depthwise_separable_block(seed: int = 0) -> keras.Model:
    """MobileNet-style: strided stem, DepthwiseConv2D-BN-ReLU6, pointwise 1x1 Conv-BN-ReLU6, then
    a SeparableConv2D."""
    _seed(seed)
    inputs = keras.Input(IMAGE_SHAPE, name="input")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw_conv")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(6.0, name="dw_relu")(x)
    x = L.Conv2D(16, 1, use_bias=False, name="pw_conv")(x)
    x = L.BatchNormalization(name="pw_bn")(x)
    x = L.ReLU(6.0, name="pw_relu")(x)
    x = L.SeparableConv2D(16, 3, padding="same", activation="relu", name="sep_conv")(x)
    return keras.Model(inputs, _head(x), name="depthwise_separable")


def bn_dropout(seed: int = 0) -> keras.Model:
    """A Sequential CNN with BatchNormalization and Dropout (inference: Dropout is identity)."""
    _seed(seed)
    return keras.Sequential([
        keras.Input(IMAGE_SHAPE, name="input"),
        L.Conv2D(8, 3, padding="same", name="conv1"),
        L.BatchNormalization(name="bn1"),
        L.Activation("relu", name="relu1"),
        L.MaxPooling2D(2, name="pool1"),
        L.Dropout(0.25, name="drop1"),
        L.Flatten(name="flatten"),
        L.Dense(16, activation="relu", name="dense1"),
        L.BatchNormalization(name="bn2"),
        L.Dropout(0.5, name="drop2"),
        L.Dense(CLASSES, activation="softmax", name="output"),
    ], name="bn_dropout")


def conv1d_model(seed: int = 0) -> keras.Model:
    """A 1-D CNN on (32, 2) sequences: Conv1D, pooling, a strided Conv1D, global pooling."""
    _seed(seed)
    inputs = keras.Input(SEQUENCE_SHAPE, name="input")
    x = L.Conv1D(8, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = L.MaxPooling1D(2, name="pool1")(x)
    x = L.Conv1D(12, 3, strides=2, padding="valid", activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    outputs = L.Dense(CLASSES, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="conv1d")


def every_layer(seed: int = 0) -> keras.Model:
    """One model with every layer type the exporter is tested on (see EVERY_LAYER_TYPES)."""
    _seed(seed)
    inputs = keras.Input(IMAGE_SHAPE, name="input")
    x = L.Rescaling(1 / 255.0, offset=-0.5, name="rescale")(inputs)
    x = L.Normalization(axis=-1, mean=[0.1, 0.0, -0.1], variance=[1.0, 2.0, 0.5], name="norm")(x)
    x = L.ZeroPadding2D(((1, 1), (2, 2)), name="pad")(x)                    # 18 x 20
    x = L.Conv2D(8, 3, strides=2, padding="valid", name="conv_s2")(x)      # 8 x 9 x 8
    x = L.BatchNormalization(name="bn")(x)
    x = L.Activation("relu", name="act")(x)
    y = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)   # 8 x 9 x 16
    y = L.ReLU(max_value=6.0, name="relu6")(y)
    z = L.SeparableConv2D(16, 3, padding="same", name="sep")(x)
    x = L.Multiply(name="mul")([y, z])
    s = L.Conv2D(16, 3, padding="same", dilation_rate=2, name="conv_dilated")(x)
    x = L.Add(name="add")([x, s])
    x = L.AveragePooling2D(2, name="avg")(x)                                 # 4 x 4 x 16
    g1 = L.GlobalAveragePooling2D(name="gap")(x)
    g2 = L.GlobalMaxPooling2D(name="gmp")(x)
    x = L.Concatenate(name="cat")([g1, g2])                                  # 32
    x = L.Dropout(0.3, name="drop")(x)
    x = L.Reshape((8, 4), name="reshape")(x)
    x = L.Conv1D(4, 3, padding="same", name="conv1d")(x)
    x = L.Flatten(name="flat")(x)
    outputs = L.Dense(CLASSES, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="every_layer")


#: Layer name -> Keras class name in ``every_layer`` (besides the input and the head).
EVERY_LAYER_TYPES = {
    "rescale": "Rescaling", "norm": "Normalization", "pad": "ZeroPadding2D", "conv_s2": "Conv2D",
    "bn": "BatchNormalization", "act": "Activation", "dw": "DepthwiseConv2D", "relu6": "ReLU",
    "sep": "SeparableConv2D", "mul": "Multiply", "conv_dilated": "Conv2D", "add": "Add",
    "avg": "AveragePooling2D", "gap": "GlobalAveragePooling2D", "gmp": "GlobalMaxPooling2D",
    "cat": "Concatenate", "drop": "Dropout", "reshape": "Reshape", "conv1d": "Conv1D",
    "flat": "Flatten", "output": "Dense",
}


# -- custom layers -------------------------------------------------------------------------------


class ChannelScale(keras.layers.Layer):
    """A user-defined layer with weights: x * scale + shift, per channel."""

    def build(self, input_shape):
        channels = input_shape[-1]
        self.scale = self.add_weight(shape=(channels,), initializer="random_normal", name="scale")
        self.shift = self.add_weight(shape=(channels,), initializer="random_normal", name="shift")

    def call(self, x):
        return x * self.scale + self.shift


class SquaredReLU(keras.layers.Layer):
    """A user-defined layer without weights."""

    def call(self, x):
        return keras.ops.square(keras.ops.relu(x))


def custom_layers(seed: int = 0) -> keras.Model:
    """A CNN with two user-defined layers: ``scale`` (weights) and ``square_relu`` (none)."""
    _seed(seed)
    inputs = keras.Input(IMAGE_SHAPE, name="input")
    x = L.Conv2D(6, 3, padding="same", name="conv")(inputs)
    x = ChannelScale(name="scale")(x)
    x = SquaredReLU(name="square_relu")(x)
    return keras.Model(inputs, _head(x), name="custom_layers")


ZOO = {
    "residual": residual_block,
    "inception": inception_block,
    "depthwise": depthwise_separable_block,
    "bn_dropout": bn_dropout,
    "conv1d": conv1d_model,
    "every_layer": every_layer,
    "custom": custom_layers,
}


# -- inputs and the reference graph --------------------------------------------------------------


def samples(model: keras.Model, count: int = 2, seed: int = 0) -> np.ndarray:
    """``count`` random inputs for ``model`` (values 0..1, or 0..255 when it rescales)."""
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    values = np.random.default_rng(seed).random((count, *shape), dtype=np.float32)
    if any(isinstance(layer, L.Rescaling) for layer in model.layers):
        values *= 255.0
    return values


def _tensor_sources(value) -> list[str]:
    """Layer names of the symbolic tensors in a serialized call argument, in argument order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"][0]]
        found = []
        for item in value.values():
            found.extend(_tensor_sources(item))
        return found
    if isinstance(value, (list, tuple)):
        found = []
        for item in value:
            found.extend(_tensor_sources(item))
        return found
    return []


def keras_inbound(model: keras.Model) -> dict[str, list[str]]:
    """{layer name: names of its inbound layers} from ``model.get_config()``.

    Functional models list each layer's ``inbound_nodes`` with the ``keras_history`` of its
    argument tensors; a Sequential model is a chain from its input.
    """
    config = model.get_config()
    if isinstance(model, keras.Sequential):
        names = [layer["config"]["name"] for layer in config["layers"]]
        if config["layers"][0]["class_name"] != "InputLayer":  # pragma: no cover
            raise ValueError("Sequential model without an Input")
        return {name: ([names[i - 1]] if i else []) for i, name in enumerate(names)}
    inbound = {}
    for layer in config["layers"]:
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(f"layer {layer['name']!r} is called more than once")
        sources = _tensor_sources(nodes[0]) if nodes else []
        inbound[layer["name"]] = list(dict.fromkeys(sources))
    return inbound
