"""Exact receptive fields through a network's layer graph (numpy only).

The receptive field of a chosen set of cells (one cell ``(row, col, channel)`` of a map, one
neuron, a whole channel...) is, in every earlier layer, the set of cells whose values the chosen
ones are computed from. It is computed backwards through the graph from each layer's geometry
as the export records it (``kernel_size``, ``strides``, ``dilation_rate``, ``padding``,
``pool_size``, ``groups``, ``depth_multiplier``, ``cropping``, ``size``):

* convolutions (1-D, 2-D, 3-D; grouped): a cell reads the kernel's taps
  ``o * stride - pad_before + t * dilation`` of every input channel of its group; ``"same"``
  padding is TensorFlow's (the extra row or column of an odd total goes after);
* depthwise convolutions: output channel ``c * depth_multiplier + m`` reads input channel ``c``
  only; separable convolutions: every input channel (the pointwise step mixes them);
* pooling: the window, channel by channel; global pooling: the whole map of the channel;
* Dense: every input (on maps, every channel of the same position: Keras applies it per
  position); Flatten and Reshape keep the element order, so a value reads one input cell;
* element-wise layers (normalisation, activations, dropout, rescaling) and merges (Add,
  Multiply, ...): the same cell of each input; Concatenate: its slice of the one input it came
  from; padding, cropping and up-sampling move cells; Softmax and Layer/Unit normalisation read
  every cell along their axis;
* a layer type nnvis does not know (a custom layer, a resizing) is taken to read everything of
  its inputs: the field is then a superset, and :attr:`ReceptiveField.inexact` names the layer.

Masks are exact boolean arrays of each layer's output shape, not boxes: a dilated convolution
leaves holes, and branches joined by Add are the union of their fields. Each spatial axis is
followed separately (a kernel's taps are a product of per-axis taps), which is exact for the
whole mask. Folded units (core/folding.py) show their last folded layer's output: compute on the
export's own layers and read a unit's mask from :func:`unit_masks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .export_format import Layer
from .folding import find_folds

CONV_TYPES = frozenset({"Conv1D", "Conv2D", "Conv3D"})
DEPTHWISE_TYPES = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
SEPARABLE_TYPES = frozenset({"SeparableConv1D", "SeparableConv2D"})
POOL_TYPES = frozenset({"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
                        "AveragePooling2D", "AveragePooling3D"})
GLOBAL_POOL_TYPES = frozenset({"GlobalAveragePooling1D", "GlobalAveragePooling2D",
                               "GlobalAveragePooling3D", "GlobalMaxPooling1D",
                               "GlobalMaxPooling2D", "GlobalMaxPooling3D"})
MERGE_TYPES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
# Same shape in and out, each value from the same cell of the input (at inference).
ELEMENTWISE_TYPES = frozenset({
    "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
    "GaussianDropout", "GaussianNoise", "ActivityRegularization", "Identity", "Rescaling",
    "Normalization", "Masking",
})
# Same shape in and out, each value from every cell along ``axis`` (default the last).
AXIS_MIXING_TYPES = frozenset({"Softmax", "LayerNormalization", "UnitNormalization"})
RESHAPE_TYPES = frozenset({"Flatten", "Reshape"})
PADDING_TYPES = frozenset({"ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"})
CROPPING_TYPES = frozenset({"Cropping1D", "Cropping2D", "Cropping3D"})
UPSAMPLING_TYPES = frozenset({"UpSampling1D", "UpSampling2D", "UpSampling3D"})


class ReceptiveFieldError(ValueError):
    """A selection or a layer's recorded geometry that the field cannot follow."""


@dataclass(frozen=True)
class Window:
    """One spatial axis of a sliding window: ``o`` reads ``o * stride - pad + t * dilation`` for
    the taps ``t = 0 .. size - 1`` (positions outside the input are padding)."""

    size: int
    stride: int
    dilation: int
    pad: int

    def taps(self, n_out: int, n_in: int):
        """For each tap: (output positions, input positions) that lie inside the input."""
        out = np.arange(n_out)
        for t in range(self.size):
            position = out * self.stride - self.pad + t * self.dilation
            inside = (position >= 0) & (position < n_in)
            yield out[inside], position[inside]


def per_axis(value, rank: int, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * rank
    values = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(values) == 1:
        values = values * rank
    if len(values) != rank:
        raise ReceptiveFieldError(f"expected {rank} values per axis, got {value!r}")
    return tuple(values)


def _pad_before(padding: str, n_in: int, n_out: int, size: int, stride: int,
                dilation: int) -> int:
    if padding == "valid":
        return 0
    span = (size - 1) * dilation + 1
    if padding == "causal":
        return span - 1
    total = max((n_out - 1) * stride + span - n_in, 0)  # TensorFlow's "same": extra goes after
    return total // 2


def windows(layer: Layer, input_shape: Sequence[int]) -> tuple[Window, ...]:
    """The sliding window of a convolution or pooling layer along each spatial axis, from its
    recorded config and its input's shape; checked against its recorded output shape."""
    config = layer.config
    rank = len(input_shape) - 1
    pooling = layer.type in POOL_TYPES
    if pooling:
        sizes = per_axis(config.get("pool_size"), rank, 2)
        strides = per_axis(config.get("strides") or sizes, rank, 1)
        dilations = (1,) * rank
    else:
        sizes = per_axis(config.get("kernel_size"), rank, 1)
        strides = per_axis(config.get("strides"), rank, 1)
        dilations = per_axis(config.get("dilation_rate"), rank, 1)
    padding = str(config.get("padding", "valid")).lower()
    result = []
    for axis in range(rank):
        n_in, n_out = int(input_shape[axis]), int(layer.output_shape[axis])
        size, stride, dilation = sizes[axis], strides[axis], dilations[axis]
        if padding == "same":
            expected = math.ceil(n_in / stride)
        else:
            span = (size - 1) * dilation + 1
            expected = (n_in + (span - 1 if padding == "causal" else 0) - span) // stride + 1
        if expected != n_out:
            raise ReceptiveFieldError(
                f"layer {layer.name!r}: a window of {size} (stride {stride}, dilation "
                f"{dilation}, padding {padding!r}) over {n_in} gives {expected}, but the layer "
                f"records {n_out}")
        result.append(Window(size, stride, dilation,
                             _pad_before(padding, n_in, n_out, size, stride, dilation)))
    return tuple(result)


def spread_window(mask: np.ndarray, window: Window, axis: int, n_in: int) -> np.ndarray:
    """Along ``axis``: the input positions any marked output position reads through ``window``
    (other axes unchanged)."""
    moved = np.moveaxis(mask, axis, 0)
    found = np.zeros((n_in, *moved.shape[1:]), dtype=bool)
    for out, position in window.taps(moved.shape[0], n_in):
        found[position] |= moved[out]
    return np.moveaxis(found, 0, axis)


def _spatial_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    """Spread every spatial axis of ``mask`` (spatial..., groups) through the layer's windows."""
    for axis, window in enumerate(windows(layer, input_shape)):
        mask = spread_window(mask, window, axis, int(input_shape[axis]))
    return mask


def _grouped_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int], groups: int,
                   out_per_group: int) -> np.ndarray:
    """A convolution whose output channels ``g * out_per_group ...`` read the input channels of
    group ``g``: the field over (spatial..., input channels)."""
    by_group = mask.reshape(*mask.shape[:-1], groups, out_per_group).any(axis=-1)
    spread = _spatial_field(by_group, layer, input_shape)
    in_per_group = int(input_shape[-1]) // groups
    return np.repeat(spread, in_per_group, axis=-1)


def _conv_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    channels = int(input_shape[-1])
    if layer.type in DEPTHWISE_TYPES:
        return _grouped_field(mask, layer, input_shape, channels, mask.shape[-1] // channels)
    groups = 1 if layer.type in SEPARABLE_TYPES else int(layer.config.get("groups", 1) or 1)
    if channels % groups or mask.shape[-1] % groups:
        raise ReceptiveFieldError(f"layer {layer.name!r}: {groups} groups do not divide "
                                  f"{channels} input and {mask.shape[-1]} output channels")
    return _grouped_field(mask, layer, input_shape, groups, mask.shape[-1] // groups)


def _pool_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    return _spatial_field(mask, layer, input_shape)


def _global_pool_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    per_channel = mask.reshape(-1, mask.shape[-1]).any(axis=0)
    return np.broadcast_to(per_channel, tuple(input_shape)).copy()


def _dense_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    if mask.ndim == 1:
        return np.full(tuple(input_shape), bool(mask.any()))
    return np.broadcast_to(mask.any(axis=-1, keepdims=True), tuple(input_shape)).copy()


def _axis_mixing_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    axes = layer.config.get("axis", -1)
    axes = tuple(a % mask.ndim if a < 0 else a - 1 for a in (axes if isinstance(axes, list)
                                                              else [axes]))
    return np.broadcast_to(mask.any(axis=axes, keepdims=True), mask.shape).copy()


def padding_amounts(value, rank: int) -> list[tuple[int, int]]:
    if isinstance(value, (int, float)):
        return [(int(value), int(value))] * rank
    items = list(value)
    if items and all(isinstance(v, (int, float)) for v in items):
        if rank == 1 and len(items) == 2:
            return [(int(items[0]), int(items[1]))]
        return [(int(v), int(v)) for v in items]
    return [(int(a), int(b)) for a, b in items]


def _padding_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    amounts = padding_amounts(layer.config.get("padding", 1), mask.ndim - 1)
    index = tuple(slice(before, before + int(n)) for (before, _), n in
                  zip(amounts, input_shape[:-1]))
    return mask[index].copy()


def _cropping_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    amounts = padding_amounts(layer.config.get("cropping", 1), mask.ndim - 1)
    return np.pad(mask, [*amounts, (0, 0)])


def _upsampling_field(mask: np.ndarray, layer: Layer, input_shape: Sequence[int]) -> np.ndarray:
    sizes = per_axis(layer.config.get("size"), mask.ndim - 1, 2)
    for axis, size in enumerate(sizes):
        n_in = int(input_shape[axis])
        moved = np.moveaxis(mask, axis, 0)[: n_in * size]
        mask = np.moveaxis(moved.reshape(n_in, size, *moved.shape[1:]).any(axis=1), 0, axis)
    return mask


_FIELD_OF_ONE_INPUT = {
    **{t: _conv_field for t in CONV_TYPES | DEPTHWISE_TYPES | SEPARABLE_TYPES},
    **{t: _pool_field for t in POOL_TYPES},
    **{t: _global_pool_field for t in GLOBAL_POOL_TYPES},
    **{t: _axis_mixing_field for t in AXIS_MIXING_TYPES},
    **{t: _padding_field for t in PADDING_TYPES},
    **{t: _cropping_field for t in CROPPING_TYPES},
    **{t: _upsampling_field for t in UPSAMPLING_TYPES},
    "Dense": _dense_field,
}


def input_fields(layer: Layer, mask: np.ndarray,
                 inputs: Sequence[Layer]) -> tuple[list[np.ndarray], bool]:
    """The cells of each input of ``layer`` that its cells marked in ``mask`` read; and whether
    that is exact (False: an unknown layer type, taken to read everything)."""
    shapes = [tuple(source.output_shape) for source in inputs]
    if layer.type == "Activation" and layer.config.get("activation") == "softmax":
        return [_axis_mixing_field(mask, layer, shapes[0])], True
    if len(inputs) == 1 and layer.type in _FIELD_OF_ONE_INPUT:
        return [_FIELD_OF_ONE_INPUT[layer.type](mask, layer, shapes[0])], True
    if len(inputs) == 1 and layer.type in RESHAPE_TYPES:
        return [mask.reshape(shapes[0]).copy()], True
    if layer.type in ELEMENTWISE_TYPES | MERGE_TYPES and \
            all(shape == mask.shape for shape in shapes):
        return [mask.copy() for _ in inputs], True
    if layer.type == "Concatenate":
        axis = int(layer.config.get("axis", -1))
        axis = axis % mask.ndim if axis < 0 else axis - 1  # Keras counts the batch axis
        edges = np.cumsum([shape[axis] for shape in shapes])[:-1]
        return [part.copy() for part in np.split(mask, edges, axis=axis)], True
    anything = bool(mask.any())
    return [np.full(shape, anything) for shape in shapes], False


@dataclass(frozen=True)
class ReceptiveField:
    """The cells of every layer that a selection of one layer's cells is computed from."""

    layer: str                          # the layer whose cells were chosen
    masks: dict[str, np.ndarray]        # layer name -> bool (output_shape): the field there
    inexact: tuple[str, ...] = ()       # layers of unknown type on the way (read everything)

    def mask(self, name: str) -> np.ndarray:
        return self.masks[name]

    def extent(self, name: str) -> list[tuple[int, int]]:
        """Per axis of ``name``'s output, the first and last index the field touches (the box
        around it; (0, -1) on every axis when it touches nothing)."""
        mask = self.masks[name]
        result = []
        for axis in range(mask.ndim):
            touched = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
            result.append((int(touched[0]), int(touched[-1])) if touched.size else (0, -1))
        return result


def selection_mask(shape: Sequence[int], *, channel: int | None = None, row: int | None = None,
                   col: int | None = None, neuron: int | None = None) -> np.ndarray:
    """Boolean mask over a layer's output ``shape`` of the chosen cells: one neuron of a vector;
    the cell (``row``, ``col``, ``channel``) of a map ((``row``, ``channel``) of a sequence);
    an axis left None is taken whole (``channel`` alone: the whole map; ``row``/``col`` alone:
    every channel at that place)."""
    shape = tuple(int(s) for s in shape)
    mask = np.zeros(shape, dtype=bool)
    if len(shape) == 1:
        unit = neuron if neuron is not None else channel
        if unit is None or row is not None or col is not None:
            raise ReceptiveFieldError(f"a layer of {shape[0]} neurons takes a neuron index")
        _check_index(unit, shape[0], "neuron")
        mask[unit] = True
        return mask
    if neuron is not None:
        raise ReceptiveFieldError(f"a layer of maps {list(shape)} takes channel, row and col, "
                                  f"not a neuron")
    spatial = (row, col, None)[: len(shape) - 1]
    if len(shape) == 2 and col is not None:
        raise ReceptiveFieldError(f"a sequence {list(shape)} takes row (the position) and channel")
    index: list = []
    for axis, (value, name) in enumerate(zip(spatial, ("row", "col", "axis 3"))):
        if value is not None:
            _check_index(value, shape[axis], name)
        index.append(slice(None) if value is None else value)
    if channel is not None:
        _check_index(channel, shape[-1], "channel")
    index.append(slice(None) if channel is None else channel)
    mask[tuple(index)] = True
    return mask


def _check_index(value: int, size: int, what: str) -> None:
    if not 0 <= int(value) < size:
        raise ReceptiveFieldError(f"{what} {value} is outside 0..{size - 1}")


def receptive_field(layers: Sequence[Layer], layer: str, selected: np.ndarray) -> ReceptiveField:
    """The receptive field of the cells ``selected`` (a bool mask of ``layer``'s output shape)
    in every layer of ``layers`` (topological order); layers the selection does not depend on
    (later ones, other branches) get an all-False mask."""
    by_name = {item.name: item for item in layers}
    if layer not in by_name:
        raise ReceptiveFieldError(f"no layer {layer!r}")
    selected = np.asarray(selected, dtype=bool)
    if selected.shape != tuple(by_name[layer].output_shape):
        raise ReceptiveFieldError(f"selection of shape {list(selected.shape)} for layer {layer!r} "
                                  f"of output shape {list(by_name[layer].output_shape)}")
    masks = {item.name: np.zeros(item.output_shape, dtype=bool) for item in layers}
    masks[layer] = selected.copy()
    inexact = []
    position = {item.name: i for i, item in enumerate(layers)}
    for item in reversed(list(layers)[: position[layer] + 1]):
        mask = masks[item.name]
        if not item.inbound or not mask.any():
            continue
        sources = [by_name[name] for name in item.inbound]
        found, exact = input_fields(item, mask, sources)
        if not exact:
            inexact.append(item.name)
        for source, field in zip(sources, found):
            masks[source.name] |= field
    return ReceptiveField(layer, masks, tuple(reversed(inexact)))


def unit_masks(field: ReceptiveField, layers: Sequence[Layer],
               unfold: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """The field on the drawn units of ``layers`` folded as ``core/folding.py`` folds them
    (``unfold`` as the import's): each unit shows its last folded layer's output."""
    return {fold.unit: field.masks[fold.shown] for fold in find_folds(list(layers), unfold)}


def unit_source_layer(layers: Sequence[Layer], unit: str,
                      unfold: frozenset[str] = frozenset()) -> str:
    """The layer whose output the unit ``unit`` shows (where a selection on the unit starts)."""
    for fold in find_folds(list(layers), unfold):
        if fold.unit == unit:
            return fold.shown
    raise ReceptiveFieldError(f"no unit {unit!r}")
