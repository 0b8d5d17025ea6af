"""One operation step by step (core/operation.py) against the export's own numbers.

* every step's result, through the layer's activation, equals the exported activation of its
  cell: Conv2D (strided, dilated, grouped, "same"/"valid"), a strided DepthwiseConv2D with a
  depth multiplier, max and average pooling with "same" padding, Dense (softmax and linear),
  in a Keras model exported at float32, and on the bundled example;
* a step's patch, kernel and products equal an explicit loop over the kernel's taps, and the
  parts of every input channel add up to the cell's pre-activation minus its bias;
* bad cells and layers give one-line errors.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from nnvis_addon.core.export_format import read_export  # noqa: E402
from nnvis_addon.core.operation import OperationError, activate, operation  # noqa: E402
from nnvis_export import export_model  # noqa: E402

L = keras.layers
LAYERS = ("strided", "depthwise", "dilated", "grouped", "avg", "max", "dense", "output")


def operations_model() -> keras.Model:
    keras.utils.set_random_seed(11)
    inputs = keras.Input((11, 10, 3), name="input")
    x = L.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="strided",
                 bias_initializer="random_normal")(inputs)                      # 6 x 5 x 6
    y = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same", name="depthwise",
                          bias_initializer="random_normal")(inputs)             # 6 x 5 x 6
    z = L.Conv2D(4, 3, dilation_rate=2, padding="valid", activation="tanh", name="dilated",
                 bias_initializer="random_normal")(inputs)                      # 7 x 6 x 4
    g = L.Conv2D(4, 2, groups=2, padding="valid", name="grouped")(z)           # 6 x 5 x 4
    a = L.AveragePooling2D(3, strides=2, padding="same", name="avg")(x)       # 3 x 3 x 6
    m = L.MaxPooling2D(2, padding="same", name="max")(y)                      # 3 x 3 x 6
    flat = L.Concatenate(name="cat")([L.Flatten(name="fa")(a), L.Flatten(name="fm")(m),
                                      L.Flatten(name="fg")(g)])
    d = L.Dense(20, name="dense", bias_initializer="random_normal")(flat)
    outputs = L.Dense(5, activation="softmax", name="output")(d)
    return keras.Model(inputs, outputs, name="operations")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    samples = np.random.default_rng(2).normal(size=(2, 11, 10, 3)).astype(np.float32)
    path = export_model(operations_model(), samples, tmp_path_factory.mktemp("operations"),
                        activation_dtype="float32", verbose=False)
    return read_export(path)


def _all_neurons(export, op):
    """Every neuron's pre-activation at the op's Dense position (softmax needs them)."""
    kernel, bias = export.weights(op.layer, op.epoch_index)
    x = np.asarray(export.activations(op.source, op.epoch_index)[op.sample], np.float64)
    return x.reshape(-1) @ kernel + bias


def _check_results(export, op, tolerance):
    if op.kind == "dense":
        others = _all_neurons(export, op) if op.activation == "softmax" else None
        assert op.total[-1] == pytest.approx(_all_neurons(export, op)[op.channel], abs=tolerance)
        expected = activate(op.activation, op.total[-1:], others)
        np.testing.assert_allclose(expected, op.output[-1:], atol=tolerance)
        return
    np.testing.assert_allclose(activate(op.activation, op.total), op.output, atol=tolerance)


@pytest.mark.parametrize("name", LAYERS)
def test_every_step_gives_the_exported_cell(export, name):
    shape = export.layer(name).output_shape
    for sample in range(2):
        for channel in range(shape[-1]):
            rows = range(shape[0]) if len(shape) == 3 else [0]
            for row in rows:
                op = operation(export, name, channel=channel, row=row, col=0, sample=sample)
                _check_results(export, op, 2e-5)
                inputs = export.layer(op.source).output_shape[-1]
                assert op.steps == (shape[1] if len(shape) == 3 else -(-inputs // 16))
                assert op.step_values().shape == (op.steps, 3 * op.taps_per_step + 3)


def _loop_step(export, op, step):
    """Patch and kernel of one conv/depthwise step by an explicit loop over the taps."""
    item = export.layer(op.layer)
    x = np.asarray(export.activations(op.source)[op.sample], np.float64)
    weights = dict(zip((w.name for w in item.weights), export.weights(op.layer)))
    stride = item.config["strides"][0]
    dilation = (item.config.get("dilation_rate") or [1])[0]
    size = item.config["kernel_size"][0]
    pad = [0, 0]
    if item.config["padding"] == "same":  # TensorFlow's: the extra one of an odd total after
        pad = [max((item.output_shape[a] - 1) * stride + (size - 1) * dilation + 1
                   - x.shape[a], 0) // 2 for a in (0, 1)]
    patch, kernel = [], []
    row, col = op.cells[step]
    for i in range(size):
        for j in range(size):
            r, c = row * stride - pad[0] + i * dilation, col * stride - pad[1] + j * dilation
            inside = 0 <= r < x.shape[0] and 0 <= c < x.shape[1]
            patch.append(x[r, c, op.input_channel] if inside else 0.0)
            if item.type == "DepthwiseConv2D":
                multiplier = item.config["depth_multiplier"]
                kernel.append(weights["depthwise_kernel"][i, j, op.input_channel,
                                                          op.channel % multiplier])
            else:
                per_group = weights["kernel"].shape[2]
                kernel.append(weights["kernel"][i, j, op.input_channel % per_group, op.channel])
    return np.array(patch), np.array(kernel)


@pytest.mark.parametrize("name", ["strided", "depthwise", "dilated", "grouped"])
def test_steps_equal_an_explicit_loop_and_parts_add_up(export, name):
    item = export.layer(name)
    weights = dict(zip((w.name for w in item.weights), export.weights(name)))
    channels = export.layer(item.inbound[0]).output_shape[-1]
    for channel in range(item.output_shape[-1]):
        chosen = operation(export, name, channel=channel, row=2, col=1, sample=1)
        parts = np.zeros(chosen.steps)
        readable = [c for c in range(channels) if _reads(item, channel, c, channels)]
        for input_channel in readable:
            op = operation(export, name, channel=channel, row=2, col=1, sample=1,
                           input_channel=input_channel)
            for step in range(op.steps):
                patch, kernel = _loop_step(export, op, step)
                np.testing.assert_allclose(op.patch[step], patch)
                np.testing.assert_allclose(op.kernel[step], kernel)
                np.testing.assert_allclose(op.products[step], patch * kernel)
            parts += op.part
        np.testing.assert_allclose(parts + weights.get("bias", np.zeros(99))[channel],
                                   chosen.total, atol=1e-9)
        assert chosen.input_channel in readable and chosen.chosen_step == 1


def _reads(item, channel, input_channel, channels):
    if item.type == "DepthwiseConv2D":
        return input_channel == channel // item.config["depth_multiplier"]
    groups = item.config.get("groups", 1)
    per_out, per_in = item.output_shape[-1] // groups, channels // groups
    return input_channel // per_in == channel // per_out


def test_pooling_kernels_say_what_the_pool_does(export):
    op = operation(export, "max", channel=3, row=2, col=0, sample=0)
    assert op.padding[:, :].any()  # "same" padding past the odd map's edge
    assert np.all(op.kernel.sum(axis=1) == 1.0)
    np.testing.assert_allclose(op.part, np.where(op.padding, -np.inf, op.patch).max(axis=1))
    avg = operation(export, "avg", channel=1, row=0, col=2, sample=1)
    inside = (~avg.padding).sum(axis=1)
    np.testing.assert_allclose(avg.kernel.sum(axis=1), 1.0)
    np.testing.assert_allclose(avg.part, np.where(avg.padding, 0, avg.patch).sum(axis=1) / inside)


def test_dense_chunks_add_up_to_the_neuron(export):
    op = operation(export, "dense", channel=4, sample=1, chunk=16)
    inputs = export.layer("cat").output_shape[0]
    assert op.grid == (4, 4) and op.steps == -(-inputs // 16)
    assert int((~op.padding).sum()) == inputs
    kernel, bias = export.weights("dense")
    x = np.asarray(export.activations("cat")[1], np.float64)
    np.testing.assert_allclose(op.total, np.cumsum(op.part) + bias[4])
    np.testing.assert_allclose(op.kernel[~op.padding], kernel[:, 4])
    np.testing.assert_allclose(op.patch[~op.padding], x)
    assert op.chosen_step == op.steps - 1


def test_the_bundled_example(example_export):
    export = read_export(example_export)
    for name, channel in (("conv1", 3), ("pool1", 5), ("conv2", 7), ("pool2", 2),
                          ("dense1", 9), ("output", 5)):
        for epoch_index in (0, -1):
            op = operation(export, name, channel=channel, row=1, col=1, sample=2,
                           epoch_index=epoch_index)
            # float16 activations: the inputs and the stored output keep 11 significant bits
            tolerance = 2.0 ** -9 * (abs(op.output).max() + np.abs(op.products).sum(axis=1).max())
            _check_results(export, op, tolerance)


@pytest.mark.parametrize("kwargs, message", [
    (dict(layer="cat", channel=0), "Concatenate layer 'cat' has no operation to show"),
    (dict(layer="nope", channel=0), "no layer 'nope'"),
    (dict(layer="strided", channel=6), "channel 6 is outside 0..5"),
    (dict(layer="strided", channel=0, row=6), "row 6 is outside 0..5"),
    (dict(layer="grouped", channel=0, input_channel=3), "reads input channels 0..1, not 3"),
    (dict(layer="strided", channel=0, sample=5), "sample 5 is outside 0..1"),
])
def test_errors(export, kwargs, message):
    with pytest.raises(OperationError, match=message.replace(".", r"\.")):
        operation(export, **kwargs)
