"""Receptive fields (core/receptive_field.py) against two independent computations:

* an explicit reference that follows every cell through Keras's own layer objects (their
  ``get_config()`` and tensor shapes, TensorFlow's "same" padding rule as TensorFlow documents
  it), composed over the graph as Python sets of cells: every layer of every zoo model;
* brute force with Keras: perturbing an input element outside the traced field leaves the chosen
  activation unchanged (zoo models, their real random weights); in a model whose kernels are all
  ones and whose input is zero but for the perturbed element, exactly the elements inside the
  field change it (a dilated conv, a strided depthwise conv, branches joined by Add and
  Concatenate, pooling, padding, a separable conv, global pooling, Dense).
"""

from __future__ import annotations

import itertools
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

import model_zoo  # noqa: E402

from nnvis_addon.core.export_format import read_export  # noqa: E402
from nnvis_addon.core.folding import fold_export  # noqa: E402
from nnvis_addon.core.receptive_field import (  # noqa: E402
    ReceptiveFieldError,
    receptive_field,
    selection_mask,
    unit_masks,
    unit_source_layer,
)
from nnvis_export import CustomLayerWarning, export_model  # noqa: E402

L = keras.layers


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("rf_zoo")
    built = {}
    for name, builder in model_zoo.ZOO.items():
        model = builder()
        samples = model_zoo.samples(model, count=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CustomLayerWarning)
            path = export_model(model, samples, root / name, activation_dtype="float32",
                                verbose=False)
        built[name] = (model, samples, read_export(path))
    return built


# -- the reference: explicit loops over Keras's own layers --------------------------------------


def _tf_same_pad_before(n: int, k: int, s: int, d: int) -> int:
    """TensorFlow's documented rule: pad_along = max(k_eff - s, 0) if n % s == 0 else
    max(k_eff - n % s, 0); the smaller half goes before."""
    k_eff = (k - 1) * d + 1
    along = max(k_eff - s, 0) if n % s == 0 else max(k_eff - n % s, 0)
    return along // 2


def _window_positions(config: dict, pooling: bool, in_shape, out_cell):
    rank = len(in_shape) - 1
    if pooling:
        size = tuple(config["pool_size"])
        strides = tuple(config["strides"] or size)
        dilation = (1,) * rank
    else:
        size, strides = tuple(config["kernel_size"]), tuple(config["strides"])
        dilation = tuple(config.get("dilation_rate", (1,) * rank))
    ranges = []
    for axis in range(rank):
        pad = 0 if config["padding"] == "valid" else \
            _tf_same_pad_before(in_shape[axis], size[axis], strides[axis], dilation[axis])
        positions = []
        for t in range(size[axis]):
            p = out_cell[axis] * strides[axis] - pad + t * dilation[axis]
            if 0 <= p < in_shape[axis]:
                positions.append(p)
        ranges.append(positions)
    return list(itertools.product(*ranges))


def _reference_inputs(layer, in_shapes, out_shape, cell) -> list[set]:
    """The input cells (per input) one output ``cell`` of the Keras ``layer`` reads."""
    kind = type(layer).__name__
    config = layer.get_config()
    if kind in ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D") or "Pooling" in kind \
            and not kind.startswith("Global"):
        in_shape = in_shapes[0]
        channels = in_shape[-1]
        if kind == "DepthwiseConv2D":
            sources = [cell[-1] // config["depth_multiplier"]]
        elif "Pooling" in kind:
            sources = [cell[-1]]
        elif kind.startswith("Conv") and config.get("groups", 1) > 1:
            per_in, per_out = channels // config["groups"], out_shape[-1] // config["groups"]
            group = cell[-1] // per_out
            sources = list(range(group * per_in, (group + 1) * per_in))
        else:
            sources = list(range(channels))
        spots = _window_positions(config, "Pooling" in kind, in_shape, cell)
        return [{(*spot, c) for spot in spots for c in sources}]
    if kind.startswith("Global"):
        in_shape = in_shapes[0]
        spots = itertools.product(*(range(n) for n in in_shape[:-1]))
        return [{(*spot, cell[-1]) for spot in spots}]
    if kind == "Dense":
        in_shape = in_shapes[0]
        return [{(*cell[:-1], c) for c in range(in_shape[-1])}]
    if kind in ("Flatten", "Reshape"):
        flat = np.ravel_multi_index(cell, out_shape)
        return [{tuple(int(i) for i in np.unravel_index(flat, in_shapes[0]))}]
    if kind == "Concatenate":
        offset, found = cell[-1], []
        for shape in in_shapes:
            inside = 0 <= offset < shape[-1]
            found.append({(*cell[:-1], offset)} if inside else set())
            offset -= shape[-1]
        return found
    if kind == "ZeroPadding2D":
        (top, _), (left, _) = config["padding"]
        h, w = cell[0] - top, cell[1] - left
        inside = 0 <= h < in_shapes[0][0] and 0 <= w < in_shapes[0][1]
        return [{(h, w, cell[2])} if inside else set()]
    if isinstance(layer, (model_zoo.ChannelScale, model_zoo.SquaredReLU)):
        return [set(itertools.product(*(range(n) for n in shape))) for shape in in_shapes]
    assert all(tuple(shape) == tuple(out_shape) for shape in in_shapes), kind  # element-wise
    return [{tuple(cell)} for _ in in_shapes]


def _shapes(layer):
    inputs = layer.input if isinstance(layer.input, list) else [layer.input]
    return [tuple(int(d) for d in t.shape[1:]) for t in inputs], \
        tuple(int(d) for d in layer.output.shape[1:])


def reference_field(model, export, layer_name: str, cell: tuple) -> dict[str, set]:
    """{layer: set of cells} the ``cell`` of ``layer_name`` is computed from, by explicit loops."""
    found = {layer.name: set() for layer in export.layers}
    found[layer_name] = {tuple(cell)}
    order = [layer.name for layer in export.layers]
    for name in reversed(order[: order.index(layer_name) + 1]):
        spec = export.layer(name)
        if not spec.inbound or not found[name]:
            continue
        keras_layer = model.get_layer(name)
        in_shapes, out_shape = _shapes(keras_layer)
        for out_cell in found[name]:
            for source, cells in zip(spec.inbound, _reference_inputs(keras_layer, in_shapes,
                                                                     out_shape, out_cell)):
                found[source] |= cells
    return found


def _targets(shape):
    middle = tuple(n // 2 for n in shape)
    return {tuple(0 for _ in shape), middle, tuple(n - 1 for n in shape)}


@pytest.mark.parametrize("name", list(model_zoo.ZOO))
def test_fields_equal_the_explicit_reference_for_every_layer(zoo, name):
    model, _, export = zoo[name]
    checked = set()
    for layer in export.layers[1:]:
        for cell in _targets(layer.output_shape):
            selected = np.zeros(layer.output_shape, bool)
            selected[cell] = True
            field = receptive_field(export.layers, layer.name, selected)
            expected = reference_field(model, export, layer.name, cell)
            for other in export.layers:
                got = {tuple(int(i) for i in c) for c in np.argwhere(field.mask(other.name))}
                assert got == expected[other.name], (layer.name, cell, other.name)
        checked.add(layer.type)
    assert checked >= {layer.type for layer in export.layers[1:]}
    custom = {layer.name for layer in export.layers if layer.type in ("ChannelScale",
                                                                      "SquaredReLU")}
    last = export.layers[-1]
    full = receptive_field(export.layers, last.name, np.ones(last.output_shape, bool))
    assert set(full.inexact) == custom


def test_zoo_covers_the_hard_cases(zoo):
    """The reference above sees a dilated conv, a strided depthwise conv (the ones model below
    too) and a branch + Add block."""
    every = zoo["every_layer"][2]
    assert every.layer("conv_dilated").config["dilation_rate"] == [2, 2]
    assert every.layer("add").type == "Add"
    assert zoo["depthwise"][2].layer("stem_conv").config["strides"] == [2, 2]


# -- brute force with Keras ---------------------------------------------------------------------


def _perturbed_outputs(model, layer_name: str, sample: np.ndarray, delta: float):
    """The layer's output for the sample (row 0) and for the sample with each input element in
    turn raised by ``delta`` (row 1 + flat index), in one batch."""
    probe = keras.Model(model.inputs, model.get_layer(layer_name).output)
    flat = sample.reshape(-1)
    batch = np.repeat(flat[None, :], flat.size + 1, axis=0)
    batch[np.arange(1, flat.size + 1), np.arange(flat.size)] += delta
    return probe.predict(batch.reshape(-1, *sample.shape), verbose=0, batch_size=1024)


BRUTE_FORCE_TARGETS = {
    "every_layer": ["conv_dilated", "dw", "add", "avg", "conv1d"],
    "residual": ["res1_add", "res2_add"],
    "inception": ["mixed"],
    "depthwise": ["dw_conv", "sep_conv"],
    "conv1d": ["conv2"],
}


@pytest.mark.parametrize("name", list(BRUTE_FORCE_TARGETS))
def test_inputs_outside_the_field_do_not_change_the_activation(zoo, name):
    model, samples, export = zoo[name]
    sample = samples[0]
    delta = 50.0 if name == "every_layer" else 0.75  # every_layer rescales by 1/255
    changed_inside = []
    for layer_name in BRUTE_FORCE_TARGETS[name]:
        outputs = _perturbed_outputs(model, layer_name, sample, delta)
        shape = export.layer(layer_name).output_shape
        for cell in _targets(shape):
            selected = np.zeros(shape, bool)
            selected[cell] = True
            inside = receptive_field(export.layers, layer_name, selected).mask(
                export.layers[0].name).reshape(-1)
            values = outputs[(slice(None), *cell)]
            change = np.abs(values[1:] - values[0])
            assert np.all(change[~inside] <= 1e-5 * max(1.0, abs(float(values[0])))), \
                (layer_name, cell, np.flatnonzero(change[~inside] > 0)[:5])
            changed_inside.append(bool(change[inside].max() > 0))
    assert any(changed_inside)  # real weights: a dead ReLU may hide a cell's field; not all


def ones_model() -> keras.Model:
    """Every kernel all ones, no bias, ReLU: an input of zeros with one element at 1 makes a
    cell positive exactly when the element is in its receptive field."""
    ones = {"kernel_initializer": "ones", "use_bias": False}
    inputs = keras.Input((13, 12, 2), name="input")
    x = L.Conv2D(3, 3, activation="relu", name="conv_valid", **ones)(inputs)             # 11x10
    x = L.Conv2D(3, 3, dilation_rate=2, padding="same", activation="relu", name="dilated",
                 **ones)(x)
    x = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same", name="dw_s2",
                          depthwise_initializer="ones", use_bias=False)(x)            # 6x5x6
    a = L.Conv2D(4, 1, name="branch_1x1", **ones)(x)
    b = L.Conv2D(4, 3, padding="same", dilation_rate=(1, 2), name="branch_3x3", **ones)(x)
    x = L.Add(name="add")([a, b])
    x = L.MaxPooling2D(2, strides=1, padding="same", name="maxpool")(x)
    x = L.ZeroPadding2D(((1, 0), (0, 2)), name="pad")(x)                               # 7x7
    s = L.SeparableConv2D(3, 3, strides=2, name="sep", depthwise_initializer="ones",
                          pointwise_initializer="ones", use_bias=False)(x)            # 3x3
    p = L.AveragePooling2D(3, strides=2, name="avg")(x)                                # 3x3
    x = L.Concatenate(name="cat")([s, p])
    g = L.GlobalMaxPooling2D(name="gmp")(x)
    outputs = L.Dense(2, name="dense", **ones)(g)
    return keras.Model(inputs, outputs, name="ones_model")


def test_ones_model_changes_exactly_inside_the_field(tmp_path):
    model = ones_model()
    zero = np.zeros((1, 13, 12, 2), np.float32)
    export = read_export(export_model(model, zero, tmp_path, activation_dtype="float32",
                                      verbose=False))
    for layer in export.layers[1:]:
        outputs = _perturbed_outputs(model, layer.name, zero[0], 1.0)
        for cell in _targets(layer.output_shape):
            selected = np.zeros(layer.output_shape, bool)
            selected[cell] = True
            inside = receptive_field(export.layers, layer.name, selected).mask("input")
            changed = outputs[(slice(1, None), *cell)] > 0
            np.testing.assert_array_equal(changed.reshape(inside.shape), inside,
                                          err_msg=f"{layer.name} {cell}")
    dw = receptive_field(export.layers, "dw_s2", selection_mask((6, 5, 6), row=3, col=2,
                                                                 channel=5))
    assert dw.mask("dilated")[..., 2].any() and not dw.mask("dilated")[..., :2].any()


# -- selections and folded units ---------------------------------------------------------------


def test_selection_masks_and_errors():
    mask = selection_mask((4, 5, 3), row=1, col=2, channel=0)
    assert mask.sum() == 1 and mask[1, 2, 0]
    assert selection_mask((4, 5, 3), channel=2).sum() == 20
    assert selection_mask((4, 5, 3), row=3, col=4).sum() == 3
    assert selection_mask((10,), neuron=7).sum() == 1
    assert selection_mask((8, 4), row=2, channel=1)[2, 1]
    with pytest.raises(ReceptiveFieldError, match="neuron"):
        selection_mask((10,), row=1)
    with pytest.raises(ReceptiveFieldError, match="outside"):
        selection_mask((4, 5, 3), row=4, col=0, channel=0)
    with pytest.raises(ReceptiveFieldError, match="not a neuron"):
        selection_mask((4, 5, 3), neuron=0)


def test_unit_masks_follow_folding(zoo):
    _, _, export = zoo["residual"]
    units = fold_export(export)
    assert unit_source_layer(export.layers, "res1a_conv") == "res1a_relu"
    shape = export.layer("res1a_relu").output_shape
    field = receptive_field(export.layers, "res1a_relu", selection_mask(shape, row=4, col=4,
                                                                        channel=0))
    masks = unit_masks(field, export.layers)
    assert set(masks) == {layer.name for layer in units.layers}
    np.testing.assert_array_equal(masks["stem_conv"], field.mask("stem_relu"))
    assert masks["stem_conv"].sum() == 9 * 8 and masks["input"].sum() == 25 * 3
