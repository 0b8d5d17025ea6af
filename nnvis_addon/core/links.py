"""Which layer pairs get connections, and what their edges are at every epoch (numpy only).

Every inbound edge of the layer graph (a DAG: branches, merges, skips) becomes one
:class:`LayerLink`: what one connection object in Blender draws. Its edges run between units of
the source and target layer (see ``connections.py`` for units), are reduced to the ones worth
drawing by their weights at the last recorded epoch, and carry every recorded epoch's weights
for the same edges so playback can interpolate them. In a diverged run an edge whose last weight
is NaN/Inf is chosen (and bundled) by its weight at the latest epoch where it was finite
(:func:`connections.latest_finite_weights`); its NaN/Inf epochs stay in ``epoch_weights`` for
the nodes to draw as invalid.

* weighted layers: Dense (neuron -> neuron; from a big Flatten, channel -> neuron aggregated),
  Conv (channel -> channel by kernel-slice norm), DepthwiseConv2D and SeparableConv2D (channel ->
  channel through the depthwise and pointwise kernels);
* structural links (no weights of their own, drawn neutral): pooling, element-wise layers
  (BatchNormalization, Activation, Dropout, padding, merges such as Add) map channel c to c;
  Concatenate maps each input's channels to its slice of the output; Flatten maps cell to
  neuron for small maps;
* anything else (a shape change nnvis cannot follow, an unknown layer drawn as a block) is one
  edge between the two layers' centres.

Which edges a pair draws: at most its display budget (``connections.display_budget``: tens to a
couple of hundred by the pair's size, never fewer than each target's strongest edge), the
strongest by ``|w|`` (``WiringOptions.ranking`` "weight", the default) or by their contribution
to the shown sample, ``|a * w|`` ("contribution": ``a`` the source unit's activation for that
sample at the last epoch, the mean ``|a|`` over its cells for a channel; see
:func:`unit_activity`).

Endpoints are given as cell spans of the *drawn* grids (downsampled maps, blocks): an edge
starts halfway between the source layer's cells ``source_first`` and ``source_last``. For a cell
or a neuron both are the cell itself; for a channel they are the map's first and last cell, so
the edge starts at the map's centre wherever the layout puts it; for a whole layer they are its
first and last cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .edges import (
    Edges,
    conv_edges,
    dense_edges,
    display_budget,
    latest_finite_weights,
    reduce_edges,
    spatial_to_dense_edges,
)
from .export_format import Layer, NetworkExport, errors_naming_layer, forget_pages
from .layout import CellGrid, NetworkPlan, cell_grid, layer_columns
from .picture import merge_picture_channels

POOLING_TYPES = frozenset({"MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
                           "GlobalAveragePooling1D", "GlobalAveragePooling2D",
                           "GlobalMaxPooling1D", "GlobalMaxPooling2D"})
CONV_TYPES = frozenset({"Conv1D", "Conv2D", "Conv3D"})
MERGE_TYPES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
RANKINGS = ("weight", "contribution")  # what picks the edges a pair draws: |w| or |a * w|


@dataclass(frozen=True)
class WiringOptions:
    display_budget: bool = True   # a pair draws at most connections.display_budget() edges (tens
                                  # to a couple of hundred); False: up to ``cap``
    ranking: str = "weight"       # RANKINGS: the strongest by |w|, or by |a * w| for the sample
    cap: int = 200_000            # most edges one layer pair hands to bundling
    budget: int | None = 400_000  # most edges of the whole network: big networks get a smaller
                                  # cap per pair (never below min_cap); None: no budget
    min_cap: int = 2_000
    top_k: int | None = None      # strongest edges kept per target unit (None: no per-target cut)
    threshold: float | None = None  # drop |w| below this (each target keeps its strongest edge)
    per_cell_limit: int = 4096    # Flatten edges run cell by cell up to this many cells

    def __post_init__(self):
        check_ranking(self.ranking)


def check_ranking(ranking: str) -> None:
    if ranking not in RANKINGS:
        raise ValueError(f"edge ranking must be one of {RANKINGS}, got {ranking!r}")


@dataclass
class LayerLink:
    source: Layer
    target: Layer
    kind: str                     # "dense", "channel_dense", "conv", "depthwise", "separable",
                                  # "pool", "channelwise", "concatenate", "flatten", "layer"
    edges: Edges                  # kept edges with the weights they were chosen and bundled
                                  # by: the last epoch's, or the latest finite one's
    epoch_weights: np.ndarray     # (epochs, E) float32: the same edges' weight at every epoch
    source_first: np.ndarray      # (E,) int32 cell indices spanning each edge's source unit
    source_last: np.ndarray
    target_first: np.ndarray
    target_last: np.ndarray
    structural: bool              # no weights of its own: drawn neutral
    skipped_columns: int          # layer columns between source and target (0: adjacent)

    @property
    def name(self) -> str:
        return f"{self.source.name} -> {self.target.name}"


def unit_span(grid: CellGrid, unit: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last drawn cell index of each unit ``index`` of a layer drawn as ``grid``."""
    index = np.asarray(index, dtype=np.int64)
    if unit in ("cell", "neuron"):
        cells = index.astype(np.int32)
        return cells, cells
    if unit == "layer":
        return np.zeros(index.size, np.int32), np.full(index.size, grid.cells - 1, np.int32)
    last_pixel = grid.height * grid.width - 1
    return index.astype(np.int32), (last_pixel * grid.channels + index).astype(np.int32)


def unit_activity(export: NetworkExport, layer: Layer, unit: str, count: int,
                  sample: int) -> np.ndarray:
    """(count,) float32: how active each of ``layer``'s ``count`` units is for ``sample`` at the
    last epoch (where a unit's value there is NaN/Inf, the latest epoch where it is finite; 0
    where it never is): ``|a|`` of a neuron or cell, the mean ``|a|`` over a channel's cells
    (over a picture's channels for its pixel cells), 1 for a whole layer."""
    if unit == "layer":
        return np.ones(count, np.float32)

    def at(epoch: int) -> np.ndarray:
        values = np.asarray(export.epochs[epoch].activations[layer.name][sample])
        if values.size % max(count, 1):
            raise ValueError(f"{values.size} activations do not divide into {count} {unit}s")
        magnitude = np.abs(values.astype(np.float64))
        if unit == "cell":  # Flatten order: a pixel's channels are consecutive
            return magnitude.reshape(count, -1).mean(axis=1)
        return magnitude.reshape(-1, count).mean(axis=0)

    return latest_finite_weights(at, len(export.epochs) - 1)


def _weight(export: NetworkExport, layer: Layer, epoch_index: int, name: str) -> np.ndarray:
    names = [w.name for w in layer.weights]
    return export.weights(layer.name, epoch_index)[names.index(name)]


def depthwise_edges(kernel, pointwise=None) -> Edges:
    """DepthwiseConv2D (kh, kw, C, M): channel c -> channel c*M + m by the slice's L2 norm and
    the sign of its sum. With a SeparableConv2D's pointwise kernel (1, 1, C*M, O): channel c ->
    output o, strength sum over m of |depthwise norm x pointwise|, sign of the signed sum."""
    kernel = np.asarray(kernel, dtype=np.float64)
    channels, multiplier = kernel.shape[-2], kernel.shape[-1]
    flat = kernel.reshape(-1, channels, multiplier)
    strength = np.sqrt((flat ** 2).sum(axis=0))                 # (C, M)
    signed = np.where(flat.sum(axis=0) < 0, -strength, strength)
    if pointwise is None:
        source = np.repeat(np.arange(channels), multiplier)
        target = np.arange(channels * multiplier)
        return Edges(source, target, signed.reshape(-1), channels, channels * multiplier,
                     "channel", "channel")
    mixing = np.asarray(pointwise, dtype=np.float64).reshape(channels, multiplier, -1)
    combined = signed[:, :, None] * mixing                       # (C, M, O)
    magnitude = np.abs(combined).sum(axis=1)
    weight = np.where(combined.sum(axis=1) < 0, -magnitude, magnitude)
    return Edges(np.repeat(np.arange(channels), weight.shape[1]),
                 np.tile(np.arange(weight.shape[1]), channels), weight.reshape(-1),
                 channels, weight.shape[1], "channel", "channel", dense=True)


def _identity(count: int, offset: int, n_target: int, source_unit: str, target_unit: str,
              n_source: int | None = None) -> Edges:
    units = np.arange(count, dtype=np.int32)
    return Edges(units, units + offset, np.ones(count, np.float32),
                 count if n_source is None else n_source, n_target, source_unit, target_unit)


def _unit_of(grid: CellGrid) -> str:
    return "neuron" if grid.height * grid.width == 1 else "channel"


def _edge_function(export: NetworkExport, source: Layer, layer: Layer, grids: dict,
                   blocks: set, options: WiringOptions) -> tuple[Layer, str, Callable] | None:
    """(source layer, kind, edges-at-epoch function) for the link ``source -> layer``."""
    if source.name in blocks or layer.name in blocks:
        return None
    weights = {w.name for w in layer.weights}
    source_grid, grid = grids[source.name], grids[layer.name]
    true_source = cell_grid(source.output_shape)
    single = len(layer.inbound) == 1
    if layer.type == "Dense" and "kernel" in weights and single and len(layer.output_shape) == 1:
        if len(source.output_shape) >= 2:  # a folded Flatten: the maps feed the Dense directly
            if source_grid != true_source:
                return None  # downsampled maps: the kernel rows no longer match drawn cells
            return source, "channel_dense", lambda e: spatial_to_dense_edges(
                _weight(export, layer, e, "kernel"),
                (source_grid.height, source_grid.width, source_grid.channels))
        feeder = export.layer(source.inbound[0]) if len(source.inbound) == 1 else None
        if (source.type == "Flatten" and feeder is not None and len(feeder.output_shape) >= 2
                and feeder.name not in blocks and source.cells > options.per_cell_limit):
            shape = grids[feeder.name]
            if grids[feeder.name] != cell_grid(feeder.output_shape):
                return None  # downsampled maps: the kernel rows no longer match drawn cells
            return feeder, "channel_dense", lambda e: spatial_to_dense_edges(
                _weight(export, layer, e, "kernel"), (shape.height, shape.width, shape.channels))
        return source, "dense", lambda e: dense_edges(_weight(export, layer, e, "kernel"))
    if layer.type in CONV_TYPES and "kernel" in weights and single and len(source.output_shape) >= 2:
        return source, "conv", lambda e: conv_edges(_weight(export, layer, e, "kernel"))
    if layer.type == "DepthwiseConv2D" and "depthwise_kernel" in weights and single:
        return source, "depthwise", lambda e: depthwise_edges(
            _weight(export, layer, e, "depthwise_kernel"))
    if layer.type == "SeparableConv2D" and {"depthwise_kernel", "pointwise_kernel"} <= weights \
            and single:
        return source, "separable", lambda e: depthwise_edges(
            _weight(export, layer, e, "depthwise_kernel"),
            _weight(export, layer, e, "pointwise_kernel"))
    if layer.type == "Concatenate" and layer.config.get("axis", -1) in (-1, len(layer.output_shape)):
        offset = 0
        for name in layer.inbound:
            if name == source.name:
                break
            offset += export.layer(name).output_shape[-1]
        count = source.output_shape[-1]
        return source, "concatenate", lambda e: _identity(
            count, offset, grid.channels, _unit_of(source_grid), _unit_of(grid))
    if layer.type == "Flatten" and len(source.output_shape) >= 2 \
            and true_source.cells <= options.per_cell_limit and source_grid == true_source:
        return source, "flatten", lambda e: _identity(source_grid.cells, 0, grid.cells, "cell",
                                                      "neuron")
    same_channels = source.output_shape[-1] == layer.output_shape[-1]
    if same_channels and (layer.type in POOLING_TYPES or layer.type in MERGE_TYPES
                          or len(source.output_shape) == len(layer.output_shape)
                          or len(layer.output_shape) == 1):
        channels = layer.output_shape[-1]
        kind = "pool" if layer.type in POOLING_TYPES else "channelwise"
        return source, kind, lambda e: _identity(channels, 0, channels, _unit_of(source_grid),
                                                 _unit_of(grid))
    return None


def _from_picture(edges_at: Callable, channels: int) -> Callable:
    """The edges-at-epoch function of a link that starts at a picture (core/picture.py)."""
    return lambda e: merge_picture_channels(edges_at(e), channels)


def plan_links(export: NetworkExport, options: WiringOptions | None = None,
               plan: NetworkPlan | None = None, sample: int = 0) -> list[LayerLink]:
    """Every link of the layer graph, in graph order. ``plan`` gives the drawn grids (downsampled
    maps, blocks); without it every layer is drawn cell by cell. ``sample``: the input sample
    shown, whose activations rank the edges when ``options.ranking`` is "contribution"."""
    options = options or WiringOptions()
    if plan is not None:
        grids = {p.layer.name: p.grid for p in plan.layers}
        blocks = {p.layer.name for p in plan.layers if p.block}
        pictures = {p.layer.name for p in plan.layers if p.picture}  # one map for C channels
    else:
        grids = {layer.name: cell_grid(layer.output_shape) for layer in export.layers}
        blocks = set()
        pictures = set()
    column = dict(zip((layer.name for layer in export.layers), layer_columns(export.layers)))
    pairs = sum(len(layer.inbound) for layer in export.layers)
    if options.budget is not None and pairs:
        cap = min(options.cap, max(options.min_cap, options.budget // pairs))
        options = replace(options, cap=cap)
    links = []
    last = len(export.epochs) - 1
    for layer in export.layers:
        for inbound in layer.inbound:
            source = export.layer(inbound)
            found = _edge_function(export, source, layer, grids, blocks, options)
            if found is None:
                found = source, "layer", _whole_layer
            drawn_from, kind, edges_at = found
            if drawn_from.name in pictures:
                edges_at = _from_picture(edges_at, drawn_from.output_shape[-1])
            activity = None
            if options.ranking == "contribution":
                def activity(unit, count, drawn_from=drawn_from):
                    return unit_activity(export, drawn_from, unit, count, sample)
            with errors_naming_layer(export.path, layer.name,
                                     f"the connections {drawn_from.name} -> {layer.name}"):
                links.append(_link(drawn_from, layer, kind, _forgetting(export, layer, edges_at),
                                   last, grids, options,
                                   column[layer.name] - column[drawn_from.name] - 1, activity))
    if plan is not None:
        links += block_links(export, plan, grids, options)
    return links


def _forgetting(export: NetworkExport, layer: Layer, edges_at):
    """``edges_at`` that lets the process forget the weights of ``layer`` it read once their
    edges are made (a big Dense kernel's pages are hundreds of MB an epoch; export_format.
    forget_pages), so an import holds the edges, not every epoch's kernels."""
    def edges(epoch_index: int) -> Edges:
        found = edges_at(epoch_index)
        for array in export.epochs[epoch_index].weights.get(layer.name, ()):
            forget_pages(array)
        return found
    return edges


def _whole_layer(epoch_index: int) -> Edges:
    return Edges(np.zeros(1, np.int32), np.zeros(1, np.int32), np.ones(1, np.float32), 1, 1,
                 "layer", "layer")


def block_links(export: NetworkExport, plan: NetworkPlan, grids: dict,
                options: WiringOptions) -> list[LayerLink]:
    """One faint link from each block's entry to its output (kind "block"), shown while the
    block is collapsed (blender/blocks.py), so a network of collapsed blocks still reads as a
    chain; expanded, the block's own connections show instead."""
    last = len(export.epochs) - 1
    return [_link(export.layer(block.entry), export.layer(block.output), "block", _whole_layer,
                  last, grids, options, 0)
            for block in plan.blocks if block.entry is not None]


def _link(source: Layer, target: Layer, kind: str, edges_at, last: int, grids: dict,
          options: WiringOptions, skipped: int,
          activity: Callable[[str, int], np.ndarray] | None = None) -> LayerLink:
    """``activity(unit, count)``: the source units' activity that, times ``|w|``, ranks the
    edges (None: ``|w|`` alone)."""
    final = edges_at(last)
    chosen_by = latest_finite_weights(lambda e: final.weight if e == last else edges_at(e).weight,
                                      last)
    selection = replace(final, weight=chosen_by)
    if final.dense:
        cap = options.cap
        if options.display_budget:
            cap = min(cap, display_budget(final.n_source, final.n_target))
        score = None
        if activity is not None:
            with np.errstate(over="ignore"):  # near float32's limit: +Inf still ranks first
                score = activity(final.source_unit, final.n_source)[final.source] \
                    * np.abs(chosen_by)
        kept = reduce_edges(selection, cap=cap, top_k=options.top_k,
                            threshold=options.threshold, score=score)
        index = kept.source.astype(np.int64) * final.n_target + kept.target
    else:
        kept, index = selection, slice(None)
    per_epoch = [edges_at(e).weight[index] for e in range(last)] + [final.weight[index]]
    source_first, source_last = unit_span(grids[source.name], kept.source_unit, kept.source)
    target_first, target_last = unit_span(grids[target.name], kept.target_unit, kept.target)
    weighted = kind in ("dense", "channel_dense", "conv", "depthwise", "separable")
    return LayerLink(
        source=source, target=target, kind=kind, edges=kept,
        epoch_weights=np.ascontiguousarray(np.stack(per_epoch), dtype=np.float32),
        source_first=source_first, source_last=source_last,
        target_first=target_first, target_last=target_last, structural=not weighted,
        skipped_columns=max(0, skipped))


def skip_profile(points_per_edge: int, rise: float, fall: float) -> np.ndarray:
    """(P,) 0..1 lift profile of a skip link: 0 at both ends, 1 from ``rise`` to ``fall`` (the
    fractions of the way where the skipped layers begin and end), quarter sines in between.
    The top starts one sample early and ends one late, so no straight segment between two
    samples cuts the corner of a skipped layer."""
    t = np.linspace(0.0, 1.0, points_per_edge)
    step = 1.0 / max(1, points_per_edge - 1)
    rise = min(max(rise - step, step), 0.5)
    fall = max(min(fall + step, 1.0 - step), 0.5)
    profile = np.ones(points_per_edge)
    before, after = t < rise, t > fall
    profile[before] = np.sin(0.5 * np.pi * t[before] / rise)
    profile[after] = np.sin(0.5 * np.pi * (1.0 - t[after]) / (1.0 - fall))
    profile[[0, -1]] = 0.0  # end points stay exactly on their cells
    return profile


def skip_arc(points_per_edge: int, rise: float, fall: float, clearance: float,
             start_z: np.ndarray, end_z: np.ndarray) -> np.ndarray:
    """(E, P) lift along +Z that takes every edge of a skip link over ``clearance`` (an absolute
    height) between ``rise`` and ``fall``, whatever height its ends are at."""
    start_z = np.asarray(start_z, dtype=np.float64)
    lift = np.maximum(0.0, clearance - np.minimum(start_z, np.asarray(end_z, np.float64)))
    profile = skip_profile(points_per_edge, rise, fall)
    return (lift[:, None] * profile[None, :]).astype(np.float32)


@dataclass(frozen=True)
class SkipRoute:
    rise: float        # fraction of the way where the first skipped layer begins
    fall: float        # fraction of the way where the last skipped layer ends
    clearance: float   # absolute height above every skipped layer and its label
    points: int        # curve samples: enough for the arc to clear every skipped layer


def skip_route(plan: NetworkPlan, link: LayerLink, label_height: float,
               points_per_edge: int) -> SkipRoute | None:
    """How a link that skips columns of layers arcs over them (None for adjacent layers)."""
    if link.skipped_columns <= 0:
        return None
    source, target = plan.layer(link.source.name), plan.layer(link.target.name)
    skipped = [p for p in plan.layers if source.column < p.column < target.column]
    # Along the link's row (core/rows.py: a row never ends under a skip link), which runs
    # towards -X in the returning rows of a folded network; the arc clears the row's height.
    length = max(abs(target.x - source.x), 1e-9)
    along = [(p.x - source.x) * source.direction for p in skipped]
    depth = max(p.tile_depth * p.cell_scale for p in skipped) * plan.options.cell_size
    clearance = max(p.extent(plan.options.cell_size)[1] / 2 for p in skipped) + label_height
    return SkipRoute(rise=(min(along) - depth) / length,
                     fall=(max(along) + depth) / length,
                     clearance=source.z + clearance + 2 * plan.options.cell_size,
                     points=max(points_per_edge, 6 * (link.skipped_columns + 2)))
