"""What a chosen cell's value is made of: contributions ``a * w`` ranked by size (numpy only).

**Direct contributions.** A Dense neuron's pre-activation is ``bias + sum_i a_i * w_ij``: the
terms ``a_i * w_ij`` are its inputs' contributions (signed; their sum is the pre-activation
minus the bias). A convolution's cell sums ``a * w`` over its kernel's taps and input channels;
:func:`direct_contributions` gives the terms per input unit, and per input channel of a map
(summed over the positions, as the connections aggregate them: core/edges.py).

**Contribution flow.** To follow the contributions further down, every layer hands its cells'
share of the chosen selection (its *relevance*, 1 at the chosen cells) to its inputs in
proportion to ``|a * w|``: a target cell ``t`` with relevance ``R_t`` gives the source cell ``s``
``R_t * |a_s w_st| / sum_s' |a_s' w_s't|``. So the relevance of a layer's cells adds up to the
share of the selection that flows through the layer (1 for a chain; branches split it), and
:attr:`ContributionFlow.flows` holds, for each weighted layer, how much went from each input unit
to each output unit, aggregated as the connections are drawn (input channel -> output channel of
a convolution, input -> unit of a Dense layer). The bias and anything a layer adds of its own
take no share.

Layers without weights: average pooling and Add/Subtract/Average split by ``|a|``; max pooling,
global max pooling and Maximum/Minimum give everything to the winning cell (ties share); Multiply
splits equally between its factors; Concatenate, padding, cropping, up-sampling, Flatten and
Reshape move relevance with the cells; element-wise layers (normalisation, activations, dropout)
pass it cell by cell. A layer type nnvis does not know spreads it evenly over its inputs' cells
(:attr:`ContributionFlow.approximate` names it).

Everything works on the export's own layers (not folded units): core/trace.py maps the result
onto what Blender draws.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .export_format import Layer, NetworkExport
from .receptive_field import (
    AXIS_MIXING_TYPES,
    CONV_TYPES,
    CROPPING_TYPES,
    DEPTHWISE_TYPES,
    ELEMENTWISE_TYPES,
    GLOBAL_POOL_TYPES,
    MERGE_TYPES,
    PADDING_TYPES,
    POOL_TYPES,
    RESHAPE_TYPES,
    SEPARABLE_TYPES,
    UPSAMPLING_TYPES,
    ReceptiveFieldError,
    Window,
    padding_amounts,
    per_axis,
    windows,
)


class ContributionError(ValueError):
    """A layer whose contributions cannot be computed from the export (missing weights...)."""


# -- sliding windows over maps ------------------------------------------------------------------


def _taps(window_list: Sequence[Window], out_shape: Sequence[int], in_shape: Sequence[int]):
    """For every tap of a multi-axis window: (output index, input index), np.ix_-style tuples
    selecting the output positions whose tap lies inside the input, and the tap's position in
    the kernel."""
    taps_by_axis = [list(w.taps(int(n_out), int(n_in)))
                    for w, n_out, n_in in zip(window_list, out_shape, in_shape)]
    for tap in itertools.product(*(range(w.size) for w in window_list)):
        outs = [taps_by_axis[axis][t][0] for axis, t in enumerate(tap)]
        ins = [taps_by_axis[axis][t][1] for axis, t in enumerate(tap)]
        yield tap, np.ix_(*outs), np.ix_(*ins)


def _gather(x: np.ndarray, out_index, in_index, out_shape, fill: float = 0.0) -> np.ndarray:
    """The input values each output position reads at one tap, (out spatial..., C); ``fill``
    where the tap falls on padding."""
    gathered = np.full((*out_shape, x.shape[-1]), fill, dtype=x.dtype)
    gathered[out_index] = x[in_index]
    return gathered


def _grouped(x: np.ndarray, kernel: np.ndarray, groups: int) -> np.ndarray:
    """(P, Cin) values through a (Cin / groups, Cout) kernel slice of a grouped convolution:
    (P, Cout)."""
    a, cout = kernel.shape
    b = cout // groups
    out = np.einsum("pga,agb->pgb", x.reshape(len(x), groups, a), kernel.reshape(a, groups, b))
    return out.reshape(len(x), cout)


def _grouped_back(q: np.ndarray, kernel: np.ndarray, groups: int) -> np.ndarray:
    """The transpose of :func:`_grouped`: (P, Cout) -> (P, Cin)."""
    a, cout = kernel.shape
    b = cout // groups
    back = np.einsum("pgb,agb->pga", q.reshape(len(q), groups, b), kernel.reshape(a, groups, b))
    return back.reshape(len(q), groups * a)


def _grouped_flow(x: np.ndarray, q: np.ndarray, kernel: np.ndarray, groups: int) -> np.ndarray:
    """sum over positions of x[p, i] * |k[i, o]| * q[p, o], as a (Cin, Cout) matrix (zero
    between different groups)."""
    a, cout = kernel.shape
    b = cout // groups
    per_group = np.einsum("pga,pgb->gab", x.reshape(len(x), groups, a),
                          q.reshape(len(q), groups, b))
    per_group *= kernel.reshape(a, groups, b).transpose(1, 0, 2)
    flow = np.zeros((groups * a, cout))
    group = np.arange(groups)[:, None, None]
    flow[group * a + np.arange(a)[None, :, None], group * b + np.arange(b)[None, None, :]] = \
        per_group
    return flow


@dataclass(frozen=True)
class _Conv:
    """A (grouped) convolution as the flow sees it: windows, |kernel| (k..., Cin/G, Cout)."""

    windows: tuple[Window, ...]
    kernel: np.ndarray
    groups: int


def _conv_flow(conv: _Conv, x: np.ndarray, relevance: np.ndarray):
    """Relevance of the convolution's input cells and the (Cin, Cout) channel flow."""
    out_shape, in_shape = relevance.shape[:-1], x.shape[:-1]
    magnitude = np.abs(x)
    cout = relevance.shape[-1]
    total = np.zeros((*out_shape, cout))
    taps = list(_taps(conv.windows, out_shape, in_shape))
    for tap, out_index, in_index in taps:
        gathered = _gather(magnitude, out_index, in_index, out_shape).reshape(-1, x.shape[-1])
        total += _grouped(gathered, conv.kernel[tap], conv.groups).reshape(total.shape)
    share = np.divide(relevance, total, out=np.zeros_like(total), where=total > 0)
    flat_share = share.reshape(-1, cout)
    found = np.zeros(x.shape)
    flow = np.zeros((x.shape[-1], cout))
    for tap, out_index, in_index in taps:
        gathered = _gather(magnitude, out_index, in_index, out_shape).reshape(-1, x.shape[-1])
        back = (gathered * _grouped_back(flat_share, conv.kernel[tap], conv.groups))
        found[in_index] += back.reshape(*out_shape, -1)[out_index]
        flow += _grouped_flow(gathered, flat_share, conv.kernel[tap], conv.groups)
    return found, flow


def _dense_flow(kernel: np.ndarray, x: np.ndarray, relevance: np.ndarray):
    """Dense (per position on maps): input relevance and the (inputs, units) flow."""
    magnitude = np.abs(x).reshape(-1, kernel.shape[0])
    weights = np.abs(kernel)
    rel = relevance.reshape(-1, kernel.shape[1])
    total = magnitude @ weights
    share = np.divide(rel, total, out=np.zeros_like(total), where=total > 0)
    found = magnitude * (share @ weights.T)
    flow = (magnitude.T @ share) * weights
    return found.reshape(x.shape), flow


def _max_pool_flow(window_list, x: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """Everything to each window's largest input (ties share)."""
    out_shape, in_shape = relevance.shape[:-1], x.shape[:-1]
    taps = list(_taps(window_list, out_shape, in_shape))
    best = np.full(relevance.shape, -np.inf)
    for _, out_index, in_index in taps:
        best = np.maximum(best, _gather(x, out_index, in_index, out_shape, -np.inf))
    winners = np.zeros(relevance.shape)
    for _, out_index, in_index in taps:
        winners += _gather(x, out_index, in_index, out_shape, -np.inf) == best
    share = np.divide(relevance, winners, out=np.zeros_like(relevance), where=winners > 0)
    found = np.zeros(x.shape)
    for _, out_index, in_index in taps:
        won = _gather(x, out_index, in_index, out_shape, -np.inf) == best
        found[in_index] += (won * share)[out_index]
    return found


def _split(parts: Sequence[np.ndarray], relevance: np.ndarray, mode: str) -> list[np.ndarray]:
    """Relevance of a cell shared between aligned values: by |a| ("magnitude"), to the largest
    or smallest ("max", "min"; ties share) or evenly ("even"); evenly where all are 0."""
    stacked = np.stack([np.asarray(p, np.float64) for p in parts])
    if mode == "magnitude":
        weight = np.abs(stacked)
    elif mode in ("max", "min"):
        extreme = stacked.max(axis=0) if mode == "max" else stacked.min(axis=0)
        weight = (stacked == extreme).astype(np.float64)
    else:
        weight = np.ones_like(stacked)
    total = weight.sum(axis=0)
    even = np.full_like(weight, 1.0 / len(parts))
    fraction = np.where(total > 0, weight / np.where(total > 0, total, 1.0), even)
    return list(fraction * relevance)


# -- one layer ----------------------------------------------------------------------------------


@dataclass
class _Step:
    """What one layer hands its inputs: relevance per input, the unit flow of a weighted
    layer, and whether that followed the layer exactly."""

    found: list[np.ndarray]
    flow: np.ndarray | None = None
    exact: bool = True


def _weights(export: NetworkExport, layer: Layer, epoch_index: int) -> dict[str, np.ndarray]:
    arrays = export.weights(layer.name, epoch_index)
    named = {spec.name: np.asarray(a, np.float64) for spec, a in zip(layer.weights, arrays)}
    return named


def _conv_step(layer: Layer, kernels: dict, x: np.ndarray, relevance: np.ndarray) -> _Step:
    window_list = windows(layer, x.shape)
    if layer.type in DEPTHWISE_TYPES:
        depthwise = kernels["depthwise_kernel"]
        grouped = depthwise.reshape(*depthwise.shape[:-2], 1, -1)
        found, flow = _conv_flow(_Conv(window_list, np.abs(grouped), x.shape[-1]), x, relevance)
        return _Step([found], flow)
    if layer.type in SEPARABLE_TYPES:
        return _separable_step(window_list, kernels, x, relevance)
    groups = int(layer.config.get("groups", 1) or 1)
    found, flow = _conv_flow(_Conv(window_list, np.abs(kernels["kernel"]), groups), x, relevance)
    return _Step([found], flow)


def _depthwise_values(window_list, depthwise: np.ndarray, x: np.ndarray,
                      out_shape) -> np.ndarray:
    """The signed output of a depthwise convolution (no bias): what a separable convolution's
    pointwise step reads."""
    grouped = depthwise.reshape(*depthwise.shape[:-2], 1, -1)
    values = np.zeros((*out_shape, grouped.shape[-1]))
    for tap, out_index, in_index in _taps(window_list, out_shape, x.shape[:-1]):
        gathered = _gather(x, out_index, in_index, out_shape).reshape(-1, x.shape[-1])
        values += _grouped(gathered, grouped[tap], x.shape[-1]).reshape(values.shape)
    return values


def _separable_step(window_list, kernels: dict, x: np.ndarray, relevance: np.ndarray) -> _Step:
    """Depthwise then pointwise: the flow goes through the depthwise outputs; channel c's flow
    to an output is what its depthwise outputs ``c * M + m`` pass on to it."""
    depthwise, pointwise = kernels["depthwise_kernel"], kernels["pointwise_kernel"]
    middle = _depthwise_values(window_list, depthwise, x, relevance.shape[:-1])
    pointwise = pointwise.reshape(pointwise.shape[-2], pointwise.shape[-1])
    middle_relevance, pointwise_flow = _dense_flow(pointwise, middle, relevance)
    grouped = np.abs(depthwise.reshape(*depthwise.shape[:-2], 1, -1))
    found, _ = _conv_flow(_Conv(window_list, grouped, x.shape[-1]), x, middle_relevance)
    channels, multiplier = depthwise.shape[-2], depthwise.shape[-1]
    flow = pointwise_flow.reshape(channels, multiplier, -1).sum(axis=1)
    return _Step([found], flow)


def _pool_step(layer: Layer, x: np.ndarray, relevance: np.ndarray) -> _Step:
    window_list = windows(layer, x.shape)
    if layer.type.startswith("Max"):
        return _Step([_max_pool_flow(window_list, x, relevance)])
    ones = np.ones((*(w.size for w in window_list), 1, x.shape[-1]))
    found, _ = _conv_flow(_Conv(window_list, ones, x.shape[-1]), x, relevance)
    return _Step([found])


def _global_pool_step(layer: Layer, x: np.ndarray, relevance: np.ndarray) -> _Step:
    per_channel = relevance.reshape(-1)
    cells = x.reshape(-1, x.shape[-1])
    if layer.type.startswith("GlobalMax"):
        weight = (cells == cells.max(axis=0, keepdims=True)).astype(np.float64)
    else:
        weight = np.abs(cells)
    total = weight.sum(axis=0, keepdims=True)
    weight = np.where(total > 0, weight / np.where(total > 0, total, 1.0), 1.0 / len(cells))
    return _Step([(weight * per_channel).reshape(x.shape)])


def _moving_step(layer: Layer, inputs: list[np.ndarray], relevance: np.ndarray) -> _Step | None:
    """Layers that only move cells (or pass them on): relevance moves with them."""
    shape = inputs[0].shape
    kind = layer.type
    if kind in RESHAPE_TYPES:
        return _Step([relevance.reshape(shape)])
    if kind in ELEMENTWISE_TYPES | AXIS_MIXING_TYPES and relevance.shape == shape:
        return _Step([relevance.copy()])
    if kind in PADDING_TYPES:
        amounts = padding_amounts(layer.config.get("padding", 1), relevance.ndim - 1)
        index = tuple(slice(b, b + int(n)) for (b, _), n in zip(amounts, shape[:-1]))
        return _Step([relevance[index].copy()])
    if kind in CROPPING_TYPES:
        amounts = padding_amounts(layer.config.get("cropping", 1), relevance.ndim - 1)
        return _Step([np.pad(relevance, [*amounts, (0, 0)])])
    if kind in UPSAMPLING_TYPES:
        found = relevance
        for axis, size in enumerate(per_axis(layer.config.get("size"), relevance.ndim - 1, 2)):
            n_in = shape[axis]
            moved = np.moveaxis(found, axis, 0)[: n_in * size]
            found = np.moveaxis(moved.reshape(n_in, size, *moved.shape[1:]).sum(axis=1), 0, axis)
        return _Step([found])
    if kind == "Concatenate":
        axis = int(layer.config.get("axis", -1))
        axis = axis % relevance.ndim if axis < 0 else axis - 1
        edges = np.cumsum([x.shape[axis] for x in inputs])[:-1]
        return _Step([p.copy() for p in np.split(relevance, edges, axis=axis)])
    return None


MERGE_SPLIT = {"Add": "magnitude", "Subtract": "magnitude", "Average": "magnitude",
               "Maximum": "max", "Minimum": "min", "Multiply": "even"}


def layer_step(export: NetworkExport, layer: Layer, inputs: list[np.ndarray],
               relevance: np.ndarray, epoch_index: int) -> _Step:
    """How ``layer`` hands ``relevance`` (its output's shape) to its ``inputs`` (their values
    for the sample)."""
    kind = layer.type
    single = len(inputs) == 1
    if single and kind in CONV_TYPES | DEPTHWISE_TYPES | SEPARABLE_TYPES:
        return _conv_step(layer, _weights(export, layer, epoch_index), inputs[0], relevance)
    if single and kind == "Dense":
        kernel = _weights(export, layer, epoch_index).get("kernel")
        if kernel is None:
            raise ContributionError(f"Dense layer {layer.name!r} has no kernel")
        found, flow = _dense_flow(kernel, inputs[0], relevance)
        return _Step([found], flow)
    if single and kind in POOL_TYPES:
        return _pool_step(layer, inputs[0], relevance)
    if single and kind in GLOBAL_POOL_TYPES:
        return _global_pool_step(layer, inputs[0], relevance)
    if kind in MERGE_TYPES and all(x.shape == relevance.shape for x in inputs):
        return _Step(_split(inputs, relevance, MERGE_SPLIT[kind]))
    moved = _moving_step(layer, inputs, relevance)
    if moved is not None:
        return moved
    share = float(relevance.sum()) / len(inputs)
    return _Step([np.full(x.shape, share / max(x.size, 1)) for x in inputs], exact=False)


# -- the whole graph ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContributionFlow:
    """How a selection's value flows back through the network for one sample and epoch."""

    layer: str
    sample: int
    epoch_index: int
    relevance: dict[str, np.ndarray]       # layer -> (output_shape) share of the selection
    flows: dict[str, np.ndarray]           # weighted layer -> (input units, output units)
    passed: dict[tuple[str, str], np.ndarray]  # (layer, inbound) -> relevance sent there
    approximate: tuple[str, ...] = ()      # layers of unknown type (spread evenly)

    def channel_relevance(self, name: str) -> np.ndarray:
        """A layer's relevance summed over each channel's positions (or per neuron)."""
        values = self.relevance[name]
        return values.reshape(-1, values.shape[-1]).sum(axis=0)


def sample_values(export: NetworkExport, name: str, sample: int, epoch_index: int) -> np.ndarray:
    """One sample's activations of a layer as float64, NaN/Inf as 0 (they carry no share)."""
    values = np.asarray(export.epochs[epoch_index].activations[name][sample], dtype=np.float64)
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def contribution_flow(export: NetworkExport, layer: str, selected: np.ndarray, sample: int,
                      epoch_index: int = -1) -> ContributionFlow:
    """The flow of the cells ``selected`` (bool mask of ``layer``'s output) of ``export`` (its
    own layers, not folded) back to the input, for ``sample`` at ``epoch_index``."""
    by_name = {item.name: item for item in export.layers}
    if layer not in by_name:
        raise ContributionError(f"no layer {layer!r}")
    if not 0 <= sample < export.num_samples:
        raise ContributionError(f"sample {sample} is outside 0..{export.num_samples - 1}")
    epoch_index = range(len(export.epochs))[epoch_index]
    relevance = {item.name: np.zeros(item.output_shape) for item in export.layers}
    relevance[layer] = np.asarray(selected, dtype=np.float64).copy()
    flows, passed, approximate = {}, {}, []
    order = [item.name for item in export.layers]
    for name in reversed(order[: order.index(layer) + 1]):
        item = by_name[name]
        if not item.inbound or not relevance[name].any():
            continue
        inputs = [sample_values(export, source, sample, epoch_index) for source in item.inbound]
        try:
            step = layer_step(export, item, inputs, relevance[name], epoch_index)
        except ReceptiveFieldError as exc:
            raise ContributionError(str(exc)) from exc
        if not step.exact:
            approximate.append(name)
        if step.flow is not None:
            flows[name] = step.flow
        for source, found in zip(item.inbound, step.found):
            passed[(name, source)] = found
            relevance[source] += found
    return ContributionFlow(layer, sample, epoch_index, relevance, flows, passed,
                            tuple(reversed(approximate)))


# -- one cell's direct contributions ------------------------------------------------------------


def direct_contributions(export: NetworkExport, layer: str, index: tuple[int, ...], sample: int,
                         epoch_index: int = -1) -> np.ndarray:
    """The signed terms ``a * w`` of one output cell ``index`` (a tuple into ``layer``'s output
    shape) of a Dense or convolution layer, per input unit: (inputs,) for a Dense neuron, per
    input channel (summed over the kernel's taps) for a convolution. Their sum is the cell's
    value before bias and activation."""
    item = export.layer(layer)
    if len(item.inbound) != 1:
        raise ContributionError(f"layer {layer!r} has {len(item.inbound)} inputs")
    x = sample_values(export, item.inbound[0], sample, range(len(export.epochs))[epoch_index])
    kernels = _weights(export, item, epoch_index)
    index = tuple(int(i) for i in index)
    if item.type == "Dense":
        row = x.reshape(-1, kernels["kernel"].shape[0])
        position = int(np.ravel_multi_index(index[:-1], item.output_shape[:-1])) \
            if len(index) > 1 else 0
        return row[position] * kernels["kernel"][:, index[-1]]
    if item.type not in CONV_TYPES | DEPTHWISE_TYPES:
        raise ContributionError(f"{item.type} layer {layer!r} has no kernel of a = w terms")
    return _cell_terms(item, kernels, x, index)


def _cell_terms(item: Layer, kernels: dict, x: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    if item.type in DEPTHWISE_TYPES:
        depthwise = kernels["depthwise_kernel"]
        kernel, groups = depthwise.reshape(*depthwise.shape[:-2], 1, -1), x.shape[-1]
    else:
        kernel, groups = kernels["kernel"], int(item.config.get("groups", 1) or 1)
    out_channel = index[-1]
    a, cout = kernel.shape[-2:]
    group = out_channel // (cout // groups)
    terms = np.zeros(x.shape[-1])
    window_list = windows(item, x.shape)
    for tap in itertools.product(*(range(w.size) for w in window_list)):
        position = [o * w.stride - w.pad + t * w.dilation
                    for o, w, t in zip(index[:-1], window_list, tap)]
        if all(0 <= p < n for p, n in zip(position, x.shape[:-1])):
            values = x[tuple(position)][group * a:(group + 1) * a]
            terms[group * a:(group + 1) * a] += values * kernel[tap][:, out_channel]
    return terms


def per_channel(terms: np.ndarray, map_shape: Sequence[int]) -> np.ndarray:
    """Terms over a flattened map (Keras's Flatten order) summed per channel, as a Flatten ->
    Dense pair's connections aggregate them."""
    channels = int(map_shape[-1])
    return np.asarray(terms).reshape(-1, channels).sum(axis=0)


def ranked(terms: np.ndarray, keep: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The units of ``terms`` by ``|term|``, largest first (ties: lower index first), and their
    terms; ``keep`` cuts after that many (None: nothing is cut)."""
    terms = np.asarray(terms)
    order = np.argsort(-np.abs(terms), kind="stable")
    if keep is not None:
        order = order[: max(0, int(keep))]
    return order, terms[order]
