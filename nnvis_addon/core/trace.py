"""Trace one cell: what the scene highlights to explain it (numpy only).

A trace starts at a chosen selection of one drawn unit (a cell, a neuron, a class of the output
layer, a whole map) for one sample at one epoch, and gives every unit a value 0..1 per cell and
every drawn connection a value 0..1 per edge, which blender/trace.py writes as the
``nnvis_trace`` attributes the materials highlight by:

* **0**: outside the receptive field (core/receptive_field.py), or in a unit the selection does
  not depend on: dimmed;
* **FIELD_LEVEL**: inside the receptive field;
* up to **1**: the field's cells of the ``top`` units (channels, neurons) of each layer that
  carry most of the selection's contribution flow (core/contributions.py), brighter the more
  they carry (square root of the share, relative to the layer's largest); the selection itself
  is 1.

A connection's edge gets the flow between its two units, relative to the largest of its layer
pair, when both ends are among their layer's top units (0 otherwise): the contributing paths.
Edges are scored as the connections aggregate them (channel to channel for convolutions,
channel to neuron for a folded Flatten, neuron to neuron for Dense); links without weights
(pooling, merges) by the smaller of their two ends' shares.

Everything is computed on the export's own layers and read on the drawn units through the same
folding the import used (core/folding.py), and on the drawn cells of downsampled maps, pictures
and blocks by :func:`drawn_cells` (a drawn cell is traced as its brightest value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contributions import ContributionFlow, contribution_flow
from .export_format import NetworkExport
from .folding import Fold, find_folds
from .layout import cell_grid
from .receptive_field import ReceptiveField, ReceptiveFieldError, receptive_field, selection_mask

FIELD_LEVEL = 0.3
TOP_UNITS = 3
WEIGHTED_KINDS = frozenset({"conv", "depthwise", "separable", "dense", "channel_dense"})


class TraceError(ValueError):
    """A selection that cannot be traced (no such unit, cell out of range...)."""


@dataclass(frozen=True)
class DrawnGrid:
    """How a unit's output is drawn (blender/scene.py writes these facts on its object)."""

    output_shape: tuple[int, ...]
    stride: int = 1
    picture: bool = False
    block: bool = False


def drawn_cells(values: np.ndarray, grid: DrawnGrid) -> np.ndarray:
    """(drawn cells,) float32 of a unit's (output_shape) values in the mesh's cell order (Keras
    flatten order of the drawn grid): a block's one cell, a picture's one map and a downsampled
    map's stride x stride blocks take their largest value."""
    values = np.asarray(values, dtype=np.float32)
    if grid.block:
        return np.array([values.max(initial=0.0)], np.float32)
    true = cell_grid(tuple(grid.output_shape))
    maps = values.reshape(true.height, true.width, true.channels)
    if grid.picture:
        maps = maps.max(axis=2, keepdims=True)
    stride = int(grid.stride)
    if stride > 1:
        rows, cols = -(-true.height // stride), -(-true.width // stride)
        padded = np.zeros((rows * stride, cols * stride, maps.shape[2]), np.float32)
        padded[:true.height, :true.width] = maps
        maps = padded.reshape(rows, stride, cols, stride, -1).max(axis=(1, 3))
    return np.ascontiguousarray(maps.reshape(-1))


@dataclass(frozen=True)
class Trace:
    """A traced selection: its receptive field and contribution flow, read on drawn units."""

    unit: str                          # the chosen unit
    selection: np.ndarray              # bool, the chosen cells of the unit's shown layer
    sample: int
    epoch_index: int
    field: ReceptiveField
    flow: ContributionFlow
    folds: dict[str, Fold]             # unit -> its fold (which layer it shows)
    top: int = TOP_UNITS

    def shown(self, unit: str) -> str:
        return self.folds[unit].shown

    def unit_shares(self, unit: str) -> np.ndarray:
        """Each channel's (or neuron's) share of the flow in ``unit``, summed over positions."""
        relevance = self.flow.relevance[self.shown(unit)]
        return relevance.reshape(-1, relevance.shape[-1]).sum(axis=0)

    def top_units(self, unit: str) -> np.ndarray:
        """The unit's ``top`` channels or neurons by share (those with a share at all)."""
        shares = self.unit_shares(unit)
        order = np.argsort(-shares, kind="stable")[: self.top]
        return order[shares[order] > 0]

    def unit_values(self, unit: str) -> np.ndarray:
        """0..1 per cell of the unit's output (see the module docstring)."""
        shown = self.shown(unit)
        mask = self.field.mask(shown)
        relevance = self.flow.relevance[shown]
        values = np.where(mask, FIELD_LEVEL, 0.0).astype(np.float32)
        largest = float(relevance.max(initial=0.0))
        if largest > 0:
            channel = np.broadcast_to(np.arange(mask.shape[-1]), mask.shape)
            bright = mask & np.isin(channel, self.top_units(unit)) & (relevance > 0)
            level = FIELD_LEVEL + (1.0 - FIELD_LEVEL) * np.sqrt(relevance / largest)
            values = np.where(bright, level, values).astype(np.float32)
        if unit == self.unit:
            values[self.selection] = 1.0
        return values

    def edge_values(self, kind: str, source: str, target: str, source_units: np.ndarray,
                    target_units: np.ndarray, source_picture: bool = False) -> np.ndarray:
        """0..1 per drawn edge of the link ``source -> target`` (units; ``kind`` as
        core/links.py names it), from the edges' unit indices."""
        source_units = np.asarray(source_units, np.int64)
        target_units = np.asarray(target_units, np.int64)
        scores = self._edge_scores(kind, source, target, source_picture)
        if scores is None:
            return np.zeros(source_units.size, np.float32)
        rows = np.clip(source_units, 0, scores.shape[0] - 1)
        cols = np.clip(target_units, 0, scores.shape[1] - 1)
        values = scores[rows, cols]
        source_top = [0] if source_picture else self.top_units(source)
        on_path = np.isin(source_units, source_top) & np.isin(target_units, self.top_units(target))
        values = np.where(on_path, values, 0.0)
        largest = float(values.max(initial=0.0))
        if largest <= 0:
            return np.zeros(source_units.size, np.float32)
        return np.sqrt(values / largest).astype(np.float32)

    def _edge_scores(self, kind: str, source: str, target: str,
                     source_picture: bool) -> np.ndarray | None:
        """(source units, target units) flow between the link's units."""
        if kind in WEIGHTED_KINDS and target in self.flow.flows:
            flow = self.flow.flows[target]
            if kind == "channel_dense":
                channels = self.flow.relevance[self.shown(source)].shape[-1]
                flow = flow.reshape(-1, channels, flow.shape[-1]).sum(axis=0)
            return flow.sum(axis=0, keepdims=True) if source_picture else flow
        if kind in ("layer", "block"):
            total = min(self.unit_shares(source).sum(), self.unit_shares(target).sum())
            return np.array([[total]])
        if kind == "flatten":
            ends = self.flow.relevance[self.shown(source)].reshape(-1)
        else:
            ends = self.unit_shares(source)
        if source_picture:
            ends = np.array([ends.sum()])
        return np.minimum(ends[:, None], self.unit_shares(target)[None, :])

    def ranking(self, unit: str, count: int = 5) -> list[tuple[int, float]]:
        """The unit's ``count`` largest channels or neurons and their share of the flow."""
        shares = self.unit_shares(unit)
        order = np.argsort(-shares, kind="stable")[:count]
        return [(int(i), float(shares[i])) for i in order if shares[i] > 0]


def trace_cell(export: NetworkExport, unit: str, *, channel: int | None = None,
               row: int | None = None, col: int | None = None, neuron: int | None = None,
               sample: int = 0, epoch_index: int = -1, top: int = TOP_UNITS, fold: bool = True,
               unfold: frozenset[str] = frozenset()) -> Trace:
    """Trace a selection of the drawn unit ``unit`` of ``export`` (the export as read, not
    folded; ``fold`` and ``unfold`` as the import's) for ``sample`` at ``epoch_index``."""
    keep = frozenset(layer.name for layer in export.layers) if not fold else unfold
    folds = {f.unit: f for f in find_folds(export.layers, keep)}
    if unit not in folds:
        raise TraceError(f"no unit {unit!r} (units: {', '.join(folds)})")
    if not 0 <= sample < export.num_samples:
        raise TraceError(f"sample {sample} is outside 0..{export.num_samples - 1}")
    shown = folds[unit].shown
    try:
        selected = selection_mask(export.layer(shown).output_shape, channel=channel, row=row,
                                  col=col, neuron=neuron)
        field = receptive_field(export.layers, shown, selected)
    except ReceptiveFieldError as exc:
        raise TraceError(f"unit {unit!r}: {exc}") from None
    flow = contribution_flow(export, shown, selected, sample, epoch_index)
    return Trace(unit, selected, sample, flow.epoch_index, field, flow, folds, max(1, int(top)))
