"""Which layer pairs get connections, and what their edges are at every epoch (numpy only).

A :class:`LayerLink` is what one connection object in Blender draws: edges between the units of a
source and a target layer (see ``connections.py`` for units), reduced to the ones worth drawing
by their weights at the last recorded epoch, with every recorded epoch's weights for the same
edges so playback can interpolate them.

Endpoints are given as cell spans: an edge starts halfway between the source layer's cells
``source_first`` and ``source_last``. For a cell or a neuron both are the cell itself; for a
channel they are the map's first and last cell, so the edge starts at the map's centre wherever
the layout puts it (linear, grid, collapsed): Blender reads the cells' evaluated positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .connections import (Edges, conv_edges, dense_edges, pool_edges, reduce_edges,
                          spatial_to_dense_edges)
from .export_format import Layer, NetworkExport
from .layout import cell_grid

POOLING_TYPES = frozenset({"MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"})
CONV_TYPES = frozenset({"Conv1D", "Conv2D"})


@dataclass(frozen=True)
class WiringOptions:
    cap: int = 200_000            # most edges one layer pair hands to bundling
    top_k: int | None = None      # strongest edges kept per target unit (None: no per-target cut)
    threshold: float | None = None  # drop |w| below this (each target keeps its strongest edge)
    per_cell_limit: int = 4096    # Flatten -> Dense edges start at cells up to this many cells


@dataclass
class LayerLink:
    source: Layer
    target: Layer
    kind: str                     # "dense", "channel_dense", "conv", "pool", "flatten"
    edges: Edges                  # kept edges with their last-epoch weights
    epoch_weights: np.ndarray     # (epochs, E) float32: the same edges' weight at every epoch
    source_first: np.ndarray      # (E,) int32 cell indices spanning each edge's source unit
    source_last: np.ndarray
    target_first: np.ndarray
    target_last: np.ndarray
    structural: bool              # no weights of its own (pooling, flatten): drawn neutral

    @property
    def name(self) -> str:
        return f"{self.source.name} -> {self.target.name}"


def unit_span(layer: Layer, unit: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last cell index of each unit ``index`` of ``layer``."""
    index = np.asarray(index, dtype=np.int64)
    if unit in ("cell", "neuron"):
        cells = index.astype(np.int32)
        return cells, cells
    grid = cell_grid(layer.output_shape)
    last_pixel = grid.height * grid.width - 1
    return index.astype(np.int32), (last_pixel * grid.channels + index).astype(np.int32)


def _kernel(export: NetworkExport, layer: Layer, epoch_index: int) -> np.ndarray:
    names = [w.name for w in layer.weights]
    return export.weights(layer.name, epoch_index)[names.index("kernel")]


def _edge_function(export: NetworkExport, layer: Layer, options: WiringOptions):
    """(source layer, kind, edges-at-epoch function) for ``layer``'s incoming link, or None."""
    if len(layer.inbound) != 1:
        return None
    source = export.layer(layer.inbound[0])
    has_kernel = any(w.name == "kernel" for w in layer.weights)
    if layer.type == "Dense" and has_kernel and len(layer.output_shape) == 1:
        if len(source.output_shape) != 1:
            return None
        feeder = export.layer(source.inbound[0]) if len(source.inbound) == 1 else None
        if (source.type == "Flatten" and feeder is not None and len(feeder.output_shape) >= 2
                and source.cells > options.per_cell_limit):
            shape = feeder.output_shape
            return feeder, "channel_dense", \
                lambda e: spatial_to_dense_edges(_kernel(export, layer, e), shape)
        return source, "dense", lambda e: dense_edges(_kernel(export, layer, e))
    if layer.type in CONV_TYPES and has_kernel and len(source.output_shape) >= 2:
        return source, "conv", lambda e: conv_edges(_kernel(export, layer, e))
    if layer.type in POOLING_TYPES and source.output_shape[-1] == layer.output_shape[-1]:
        channels = layer.output_shape[-1]
        return source, "pool", lambda e: pool_edges(channels)
    if layer.type == "Flatten" and len(source.output_shape) >= 2 \
            and source.cells <= options.per_cell_limit:
        cells = np.arange(source.cells, dtype=np.int32)
        return source, "flatten", lambda e: Edges(cells, cells, np.ones(cells.size, np.float32),
                                                  source.cells, layer.cells, "cell", "neuron")
    return None


def plan_links(export: NetworkExport, options: WiringOptions | None = None) -> list[LayerLink]:
    options = options or WiringOptions()
    links = []
    last = len(export.epochs) - 1
    for layer in export.layers:
        found = _edge_function(export, layer, options)
        if found is None:
            continue
        source, kind, edges_at = found
        final = edges_at(last)
        structural = kind in ("pool", "flatten")
        if final.dense:
            kept = reduce_edges(final, cap=options.cap, top_k=options.top_k,
                                threshold=options.threshold)
            index = kept.source.astype(np.int64) * final.n_target + kept.target
            per_epoch = [edges_at(e).weight[index] for e in range(last)] + [kept.weight]
        else:
            kept = final
            per_epoch = [kept.weight] * (last + 1)
        source_first, source_last = unit_span(source, kept.source_unit, kept.source)
        target_first, target_last = unit_span(layer, kept.target_unit, kept.target)
        links.append(LayerLink(
            source=source, target=layer, kind=kind, edges=kept,
            epoch_weights=np.ascontiguousarray(np.stack(per_epoch), dtype=np.float32),
            source_first=source_first, source_last=source_last,
            target_first=target_first, target_last=target_last, structural=structural))
    return links
