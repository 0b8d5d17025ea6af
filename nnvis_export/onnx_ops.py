"""What each ONNX op becomes in format v1: one handler per op (:data:`HANDLERS`), giving the
Keras layer type, the drawing config and the weights in the Keras layouts (Conv kernels HWIO,
depthwise kernels (h, w, in, multiplier), Dense kernels (in, out), BatchNormalization's gamma,
beta, moving mean and variance). ``docs/format.md`` has the table; an op without a handler
becomes a custom layer (:func:`custom_layer`).
"""

from __future__ import annotations

import math

import numpy as np

from .onnx_graph import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    CONFIG_MAX_NUMBERS,
    FLAT,
    Handler,
    Mapped,
    NodeView,
    OnnxLayer,
    Tensor,
    perm_to_first,
    perm_to_last,
    warn_custom,
)

LAST = "channels_last"  # the data_format every exported layer has

#: ONNX activations drawn as a Keras ``Activation`` layer: op -> Keras activation name.
ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "HardSigmoid": "hard_sigmoid",
               "HardSwish": "hard_swish", "Softplus": "softplus", "Softsign": "softsign",
               "Gelu": "gelu", "Mish": "mish", "Selu": "selu", "Elu": "elu", "Exp": "exponential"}

#: Element-wise ops of two or more data inputs: op -> Keras merge layer.
MERGES = {"Add": "Add", "Sum": "Add", "Sub": "Subtract", "Mul": "Multiply", "Max": "Maximum",
          "Min": "Minimum", "Mean": "Average"}

#: Weighted layer types a following bias ``Add`` folds into.
BIASED_TYPES = ("Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
                "Conv2DTranspose")


def _maps_rank(view: NodeView) -> int:
    """The number of spatial axes of the node's (first) data input."""
    return len(view.in_shape()) - 2


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _padding(view: NodeView, spatial: int):
    """Keras's ``"valid"`` or ``"same"`` when the node's padding is one of them, else the
    explicit [[begin, end], ...] per spatial axis."""
    auto = _text(view.attrs.get("auto_pad", "NOTSET"))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return "same"
    if auto == "VALID":
        return "valid"
    pads = [int(p) for p in view.attrs.get("pads", [0] * 2 * spatial)]
    if not any(pads):
        return "valid"
    strides = view.attrs.get("strides", [1] * spatial)
    inside, outside = view.in_shape()[2:], view.out_shape[2:]
    if all(o == math.ceil(i / s) for i, o, s in zip(inside, outside, strides)):
        return "same"
    return [[pads[a], pads[a + spatial]] for a in range(spatial)]


def _numbers(values) -> list[int]:
    return [int(v) for v in values]


def _weight(view: NodeView, position: int, what: str) -> np.ndarray:
    value = view.const(position)
    if value is None:
        raise view.refuse(f"its {what} is computed from the input, not a constant; nnvis draws "
                          f"layers with fixed weights")
    return np.asarray(value, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Convolutions, normalisation, dense layers


def conv(view: NodeView) -> Mapped:
    """``Conv`` -> ``Conv1D/2D/3D`` (kernel (*k, in / groups, out)), or ``DepthwiseConv1D/2D``
    (kernel (*k, in, multiplier)) when every input channel is its own group."""
    w = _weight(view, 1, "kernel")
    spatial = w.ndim - 2
    if view.first().layout != CHANNELS_FIRST or not 1 <= spatial <= 3:
        return custom_layer(view)
    group = int(view.attrs.get("group", 1))
    out, per_group = w.shape[:2]
    channels = per_group * group
    kernel_axes = tuple(range(2, 2 + spatial))
    config = {"kernel_size": list(w.shape[2:]), "strides": _numbers(view.attrs.get(
        "strides", [1] * spatial)), "padding": _padding(view, spatial)}
    dilations = _numbers(view.attrs.get("dilations", [1] * spatial))
    if group == channels and channels > 1 and spatial <= 2:
        multiplier = out // channels
        kind, weights = f"DepthwiseConv{spatial}D", [("depthwise_kernel", w.reshape(
            channels, multiplier, *w.shape[2:]).transpose(*kernel_axes, 0, 1))]
        config["depth_multiplier"] = multiplier
    else:
        kind, weights = f"Conv{spatial}D", [("kernel", w.transpose(*kernel_axes, 1, 0))]
        config = {"filters": int(out), **config}
        if group != 1:
            config["groups"] = group
    if any(d != 1 for d in dilations):
        config["dilation_rate"] = dilations
    bias = view.const(2)
    if bias is not None:
        weights.append(("bias", np.asarray(bias, np.float32)))
    config.update(activation="linear", use_bias=bias is not None, data_format=LAST)
    return Mapped(kind, config, [(n, np.ascontiguousarray(a)) for n, a in weights])


def conv_transpose(view: NodeView) -> Mapped:
    """``ConvTranspose`` (2-D, one group) -> ``Conv2DTranspose``, kernel (h, w, out, in)."""
    w = _weight(view, 1, "kernel")
    if w.ndim != 4 or int(view.attrs.get("group", 1)) != 1:
        return custom_layer(view)
    weights = [("kernel", np.ascontiguousarray(w.transpose(2, 3, 1, 0)))]
    bias = view.const(2)
    if bias is not None:
        weights.append(("bias", np.asarray(bias, np.float32)))
    config = {"filters": int(w.shape[1]), "kernel_size": list(w.shape[2:]),
              "strides": _numbers(view.attrs.get("strides", [1, 1])),
              "padding": _padding(view, 2) if "output_shape" not in view.attrs else "same",
              "activation": "linear", "use_bias": bias is not None, "data_format": LAST}
    return Mapped("Conv2DTranspose", config, weights)


def batch_norm(view: NodeView) -> Mapped:
    """``BatchNormalization`` -> ``BatchNormalization`` (gamma, beta, moving_mean,
    moving_variance), on the channel axis (-1 channels-last), with a scale (Keras's
    ``scale=True``)."""
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    weights = [(name, _weight(view, i + 1, name)) for i, name in enumerate(names)]
    return Mapped("BatchNormalization", {"axis": -1, "scale": True}, weights)


def gemm(view: NodeView) -> Mapped:
    """``Gemm`` (A x B + C, B constant) -> ``Dense``: kernel (in, out) = alpha B (transposed
    when transB), bias = beta C."""
    b = view.const(1)
    if b is None or int(view.attrs.get("transA", 0)) or len(view.in_shape()) != 2:
        return custom_layer(view)
    kernel = np.asarray(b, np.float32)
    kernel = kernel.T if int(view.attrs.get("transB", 0)) else kernel
    kernel = kernel * np.float32(view.attrs.get("alpha", 1.0))
    c = view.const(2)
    bias = None if c is None else np.broadcast_to(
        np.asarray(c, np.float32) * np.float32(view.attrs.get("beta", 1.0)),
        (1, kernel.shape[1])).reshape(-1)
    return _dense(view, kernel, bias)


def matmul(view: NodeView) -> Mapped:
    """``MatMul`` of a data vector and a constant matrix -> ``Dense`` without bias (a following
    ``Add`` of a constant folds in as its bias)."""
    b = view.const(1)
    if b is None or len(view.data) != 1 or view.data[0][0] != 0 or len(view.in_shape()) != 2 \
            or np.ndim(b) != 2:
        return custom_layer(view)
    return _dense(view, np.asarray(b, np.float32), None)


def _dense(view: NodeView, kernel: np.ndarray, bias: np.ndarray | None) -> Mapped:
    order = view.first().order
    if order is not None:  # a flattened map: its values are stored in (H, W, C) order
        kernel = kernel[order]
    weights = [("kernel", np.ascontiguousarray(kernel))]
    if bias is not None:
        weights.append(("bias", np.ascontiguousarray(bias)))
    config = {"units": int(kernel.shape[1]), "activation": "linear", "use_bias": bias is not None}
    return Mapped("Dense", config, weights, layout=FLAT)


def fold_bias(view: NodeView, by_name: dict[str, OnnxLayer], consumers: dict[str, int]
              ) -> Tensor | None:
    """An ``Add`` of a constant bias right after a weighted layer without one (``MatMul`` +
    ``Add``, a bias-free ``Conv`` + ``Add``) becomes that layer's bias; the Add's output is then
    the layer's output. None when the node is not such an Add."""
    if view.node.op_type != "Add" or len(view.data) != 1 or len(view.consts) != 1:
        return None
    name = view.data[0][1]
    layer = by_name[view.tensors[name].layer]
    if layer.tensor != name or consumers.get(name) != 1 or layer.type not in BIASED_TYPES \
            or any(n == "bias" for n, _ in layer.weights):
        return None
    c = np.asarray(next(iter(view.consts.values())), np.float32)
    units = view.out_shape[1]
    spatial = len(view.out_shape) - 2
    if c.size != units or c.ndim > len(view.out_shape):
        return None
    if spatial and (c.ndim < spatial + 1 or any(d != 1 for d in c.shape[-spatial:])):
        return None  # per channel means (C, 1, 1): a (C,) constant broadcasts along W
    layer.weights.append(("bias", c.reshape(units)))
    layer.config["use_bias"] = True
    layer.tensor = view.node.output[0]
    return Tensor(layer.name, layer.layout, layer.order)


# --------------------------------------------------------------------------------------------
# Activations


def relu(view: NodeView) -> Mapped:
    return Mapped("ReLU", {"negative_slope": 0.0, "threshold": 0.0})


def clip(view: NodeView) -> Mapped:
    """``Clip`` from 0 (ReLU) or from 0 to a bound (ReLU6: ``max_value`` 6)."""
    low = view.const(1, view.attrs.get("min"))
    high = view.const(2, view.attrs.get("max"))
    if low is None or float(low) != 0.0:
        return custom_layer(view)
    config = {"negative_slope": 0.0, "threshold": 0.0}
    if high is not None and math.isfinite(float(high)):
        config = {"max_value": float(high), **config}
    return Mapped("ReLU", config)


def leaky_relu(view: NodeView) -> Mapped:
    return Mapped("LeakyReLU", {"negative_slope": float(view.attrs.get("alpha", 0.01))})


def activation(view: NodeView) -> Mapped:
    return Mapped("Activation", {"activation": ACTIVATIONS[view.node.op_type]})


def softmax(view: NodeView) -> Mapped:
    """``Softmax`` over the channels (the last axis of the export)."""
    rank = len(view.in_shape())
    axis = int(view.attrs.get("axis", -1))
    axis = axis + rank if axis < 0 else axis
    channel = 1 if view.first().layout == CHANNELS_FIRST else rank - 1
    if axis != channel:
        return custom_layer(view)
    return Mapped("Softmax", {"axis": -1})


# --------------------------------------------------------------------------------------------
# Pooling


def pool(view: NodeView) -> Mapped:
    """``MaxPool``/``AveragePool`` -> ``MaxPooling1D/2D/3D``/``AveragePooling...``."""
    spatial = _maps_rank(view)
    if view.first().layout != CHANNELS_FIRST or not 1 <= spatial <= 3:
        return custom_layer(view)
    kind = "MaxPooling" if view.node.op_type == "MaxPool" else "AveragePooling"
    size = _numbers(view.attrs["kernel_shape"])
    config = {"pool_size": size, "strides": _numbers(view.attrs.get("strides", [1] * spatial)),
              "padding": _padding(view, spatial), "data_format": LAST}
    return Mapped(f"{kind}{spatial}D", config)


def global_pool(view: NodeView) -> Mapped:
    """``GlobalAveragePool``/``GlobalMaxPool`` -> ``GlobalAveragePooling2D``... with keepdims
    (the output keeps its 1 x 1 map, as ONNX's does)."""
    kind = "GlobalMaxPooling" if view.node.op_type == "GlobalMaxPool" else "GlobalAveragePooling"
    return _global(view, kind, keepdims=True)


def reduce_pool(view: NodeView) -> Mapped:
    """``ReduceMean``/``ReduceMax`` over every spatial axis of maps: global pooling."""
    rank = len(view.in_shape())
    axes = view.const(1, view.attrs.get("axes"))
    if view.first().layout != CHANNELS_FIRST or rank < 3 or axes is None:
        return custom_layer(view)
    if sorted(int(a) % rank for a in np.ravel(axes)) != list(range(2, rank)):
        return custom_layer(view)
    kind = "GlobalMaxPooling" if view.node.op_type == "ReduceMax" else "GlobalAveragePooling"
    return _global(view, kind, keepdims=bool(view.attrs.get("keepdims", 1)))


def _global(view: NodeView, kind: str, keepdims: bool) -> Mapped:
    spatial = _maps_rank(view)
    if view.first().layout != CHANNELS_FIRST or not 1 <= spatial <= 3:
        return custom_layer(view)
    return Mapped(f"{kind}{spatial}D", {"keepdims": keepdims, "data_format": LAST},
                  layout=CHANNELS_FIRST if keepdims else FLAT)


# --------------------------------------------------------------------------------------------
# Shapes: flatten, reshape, transpose, padding, resizing


def flatten_order(shape: tuple[int, ...]) -> np.ndarray | None:
    """For maps of ``shape`` (C, *spatial), the ONNX (C, H, W) index of each value of the
    (H, W, C) flattening; None when both orders agree (1 x 1 maps)."""
    if len(shape) < 2 or math.prod(shape[1:]) == 1:
        return None
    index = np.arange(math.prod(shape)).reshape(shape)
    return np.ascontiguousarray(index.transpose(*range(1, len(shape)), 0).reshape(-1))


def flatten(view: NodeView) -> Mapped:
    """``Flatten`` (axis 1), or a ``Reshape``/``Squeeze`` of maps to vectors, -> ``Flatten``,
    its values stored in Keras's (H, W, C) order."""
    if int(view.attrs.get("axis", 1)) != 1:
        return custom_layer(view)
    source = view.first()
    order = flatten_order(view.in_shape()[1:]) if source.layout == CHANNELS_FIRST else None
    return Mapped("Flatten", {"data_format": LAST}, layout=FLAT, order=order)


def reshape(view: NodeView) -> Mapped:
    """``Reshape``/``Squeeze``/``Unsqueeze``: nothing when the shape stays, ``Flatten`` from maps
    to vectors, else ``Reshape`` with the channels-last target shape."""
    inside, outside = view.in_shape(), view.out_shape
    if inside == outside:
        return Mapped(alias=True)
    if len(outside) == 2 and len(inside) > 2:
        return flatten(view)
    if len(outside) == 2:
        return Mapped("Reshape", {"target_shape": list(outside[1:])}, layout=FLAT)
    target = [*outside[2:], outside[1]]
    return Mapped("Reshape", {"target_shape": target}, layout=CHANNELS_FIRST)


def transpose(view: NodeView) -> Mapped:
    """A ``Transpose`` between channels-first and channels-last (a tf2onnx model's layout
    changes) only moves the layout: it draws nothing. Other permutations are custom layers."""
    rank = len(view.in_shape())
    perm = tuple(int(p) for p in view.attrs.get("perm", range(rank - 1, -1, -1)))
    layout = view.first().layout
    if perm == tuple(range(rank)):
        return Mapped(alias=True)
    if rank >= 3 and layout == CHANNELS_FIRST and perm == perm_to_last(rank):
        return Mapped(alias=True, layout=CHANNELS_LAST)
    if rank >= 3 and layout == CHANNELS_LAST and perm == perm_to_first(rank):
        return Mapped(alias=True, layout=CHANNELS_FIRST)
    return custom_layer(view)


def pad(view: NodeView) -> Mapped:
    """``Pad`` with zeros around the maps -> ``ZeroPadding1D/2D``."""
    rank = len(view.in_shape())
    pads = view.const(1, view.attrs.get("pads"))
    value = view.const(2, view.attrs.get("value", 0.0))
    mode = _text(view.attrs.get("mode", "constant"))
    if pads is None or mode != "constant" or float(np.ravel(value)[0] if np.size(value) else 0):
        return custom_layer(view)
    pads = [int(p) for p in np.ravel(pads)]
    spatial = rank - 2
    if len(pads) != 2 * rank or view.first().layout != CHANNELS_FIRST or spatial not in (1, 2) \
            or any(pads[a] or pads[a + rank] for a in (0, 1)):
        return custom_layer(view)
    amounts = [[pads[a], pads[a + rank]] for a in range(2, rank)]
    return Mapped(f"ZeroPadding{spatial}D", {"padding": amounts[0] if spatial == 1 else amounts,
                                              "data_format": LAST})


def resize(view: NodeView) -> Mapped:
    """``Resize``/``Upsample`` of maps by whole factors -> ``UpSampling2D``."""
    inside, outside = view.in_shape(), view.out_shape
    if len(inside) != 4 or view.first().layout != CHANNELS_FIRST or inside[:2] != outside[:2] \
            or any(o % i for i, o in zip(inside[2:], outside[2:])):
        return custom_layer(view)
    mode = _text(view.attrs.get("mode", "nearest"))
    size = [o // i for i, o in zip(inside[2:], outside[2:])]
    return Mapped("UpSampling2D", {"size": size, "interpolation": "nearest" if mode == "nearest"
                                   else "bilinear", "data_format": LAST})


# --------------------------------------------------------------------------------------------
# Element-wise ops and merges


def elementwise(view: NodeView) -> Mapped:
    """Two or more data inputs: a Keras merge (``Add``, ``Multiply``: a squeeze-excite's scale,
    ...); one data input and a small constant: ``Rescaling`` (scale and offset per channel)."""
    if len(view.data) >= 2 and not view.consts and view.node.op_type in MERGES:
        return _merge(view)
    if len(view.data) == 1 and len(view.consts) == 1:
        return _rescaling(view)
    return custom_layer(view)


def _merge(view: NodeView) -> Mapped:
    sources = [view.tensors[name] for _, name in view.data]
    ranks = [len(view.values[name].shape) for _, name in view.data]
    widest = sources[ranks.index(max(ranks))]
    orders = {None if s.order is None else s.order.tobytes() for s in sources}
    if len({s.layout for s, r in zip(sources, ranks) if r == max(ranks)}) > 1 or len(orders) > 1:
        raise view.refuse("its inputs are laid out differently (channels-first and -last, or "
                          "vectors flattened in different orders); nnvis cannot draw it")
    return Mapped(MERGES[view.node.op_type], layout=widest.layout, order=widest.order)


def _rescaling(view: NodeView) -> Mapped:
    position, value = next(iter(view.consts.items()))
    numbers = _channel_numbers(view, np.asarray(value, np.float64))
    op = view.node.op_type
    if numbers is None or op not in ("Add", "Sub", "Mul", "Div"):
        return custom_layer(view)
    zero, one = numbers * 0, numbers * 0 + 1
    scale, offset = {"Add": (one, numbers), "Mul": (numbers, zero),
                     "Div": (1 / numbers, zero)}.get(op, (one, -numbers))
    if op == "Sub" and position == 0:  # constant - x
        scale, offset = -one, numbers
    if op == "Div" and position == 0:  # constant / x is no rescaling
        return custom_layer(view)
    return Mapped("Rescaling", {"scale": _config_number(scale), "offset": _config_number(offset)})


def _channel_numbers(view: NodeView, value: np.ndarray) -> np.ndarray | None:
    """A constant operand as one number or one per channel (channels-last order); None when it
    varies along other axes or is too big for the config."""
    if value.size == 1:
        return value.reshape(())
    source, shape = view.first(), view.in_shape()
    if value.ndim > len(shape) or value.size > CONFIG_MAX_NUMBERS:
        return None
    aligned = value.reshape((1,) * (len(shape) - value.ndim) + value.shape)
    channel_axis = 1 if source.layout == CHANNELS_FIRST else len(shape) - 1
    if aligned.shape[channel_axis] != value.size:
        return None
    numbers = value.reshape(-1)
    return numbers[source.order] if source.order is not None else numbers


def _config_number(value: np.ndarray):
    return float(value) if value.ndim == 0 else [float(v) for v in value]


def concat(view: NodeView) -> Mapped:
    """``Concat`` of data tensors -> ``Concatenate`` on the same axis, counted channels-last."""
    if view.consts or len(view.data) < 2:
        return custom_layer(view)
    rank = len(view.out_shape)
    axis = int(view.attrs.get("axis", 1)) % rank
    layout = view.first().layout
    if axis == 0:
        raise view.refuse("it concatenates along the batch axis; nnvis draws per-sample outputs")
    sources = [view.tensors[name] for _, name in view.data]
    if any(s.layout != layout for s in sources):
        raise view.refuse("its inputs are laid out differently; nnvis cannot draw it")
    order = None
    if layout == CHANNELS_FIRST:
        axis = -1 if axis == 1 else axis - 1
    elif axis == rank - 1:
        axis = -1
    if layout == FLAT and any(s.order is not None for s in sources):
        sizes = [view.values[name].shape[1] for _, name in view.data]
        starts = np.cumsum([0, *sizes[:-1]])
        order = np.concatenate([(s.order if s.order is not None else np.arange(n)) + start
                                for s, n, start in zip(sources, sizes, starts)])
    return Mapped("Concatenate", {"axis": axis}, layout=layout, order=order)


# --------------------------------------------------------------------------------------------
# Everything else


def alias(view: NodeView) -> Mapped:
    return Mapped(alias=True)


def custom_layer(view: NodeView) -> Mapped:
    """An op nnvis has no drawing for: a layer of the op's own type with its output and its
    floating-point constant inputs as weights, drawn as a generic block (with a warning)."""
    weights: list[tuple[str, np.ndarray]] = []
    taken: set[str] = set()
    for position, value in sorted(view.consts.items()):
        array = np.asarray(value)
        if array.dtype.kind != "f" or array.size == 0:
            continue
        base = view.node.input[position].rsplit(".", 1)[-1] or f"input_{position}"
        name, count = base, 0
        while name in taken:
            count += 1
            name = f"{base}_{count}"
        taken.add(name)
        weights.append((name, np.asarray(array, np.float32).reshape(array.shape or (1,))))
    warn_custom(view, len(weights))
    layout = view.first().layout
    if len(view.out_shape) >= 3 and layout == FLAT:
        layout = CHANNELS_FIRST
    elif len(view.out_shape) == 2:
        layout = FLAT
    return Mapped(view.node.op_type, weights=weights, layout=layout)


HANDLERS: dict[str, Handler] = {
    "Conv": conv, "ConvTranspose": conv_transpose, "BatchNormalization": batch_norm,
    "Gemm": gemm, "MatMul": matmul,
    "Relu": relu, "Clip": clip, "LeakyRelu": leaky_relu, "Softmax": softmax,
    **{op: activation for op in ACTIVATIONS},
    "MaxPool": pool, "AveragePool": pool, "GlobalAveragePool": global_pool,
    "GlobalMaxPool": global_pool, "ReduceMean": reduce_pool, "ReduceMax": reduce_pool,
    "Flatten": flatten, "Reshape": reshape, "Squeeze": reshape, "Unsqueeze": reshape,
    "Transpose": transpose, "Pad": pad, "Resize": resize, "Upsample": resize,
    **{op: elementwise for op in ("Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean")},
    "Concat": concat, "Identity": alias, "Dropout": alias, "Cast": alias, "CastLike": alias,
}
