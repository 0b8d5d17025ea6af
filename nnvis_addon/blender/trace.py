"""Trace a cell in the scene: write what core/trace.py decided as ``nnvis_trace`` attributes.

Every layer mesh gets a point attribute ``nnvis_trace`` (0..1 per drawn cell; the layer nodes
pass point attributes on to the cell instances) and every connection's curves a curve attribute
``nnvis_trace`` (0..1 per edge). The materials mix highlight and dim by it, as strongly as each
object's ``nnvis_trace_strength`` property says; that property is driven by the root's network
control of the same name (a simple driver), so the trace fades in and out with keyframes on one
value and a saved .blend renders it without nnvis. Nothing else of the scene changes: clearing
the trace sets the strength to 0 and removes the attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..core import controls, names
from ..core.export_format import read_export
from ..core.trace import DrawnGrid, Trace, drawn_cells, trace_cell
from . import compat, network, writers

LAYER_MODIFIER = names.LAYER_MODIFIER


@dataclass(frozen=True)
class TraceSummary:
    """What a trace found, for reports: the unit, how many cells each unit highlights, and the
    top contributors of the layers right before it."""

    unit: str
    highlighted: dict[str, int]         # unit -> cells at or above the field level
    contributors: dict[str, list[tuple[int, float]]]
    approximate: tuple[str, ...]        # layers followed only approximately (unknown types)


def _drawn_grid(obj: bpy.types.Object) -> DrawnGrid:
    modifier = compat.nodes_modifier(obj, LAYER_MODIFIER)
    return DrawnGrid(tuple(int(d) for d in obj[names.OUTPUT_SHAPE]),
                     stride=int(obj.get(names.DISPLAY_STRIDE, 1)),
                     picture=bool(compat.get_modifier_input(modifier, "Picture")),
                     block=bool(obj.get(names.BLOCK, False)))


def _curve_ints(data, name: str) -> np.ndarray:
    values = np.zeros(len(data.curves), np.int32)
    data.attributes[name].data.foreach_get("value", values)
    return values


def _drive_strength(obj: bpy.types.Object, root: bpy.types.Object) -> None:
    """The object's trace strength follows the root's control (the materials read it)."""
    if names.TRACE_STRENGTH not in obj.keys():
        obj[names.TRACE_STRENGTH] = 0.0
    writers.add_driver(obj, f'["{names.TRACE_STRENGTH}"]', "var",
                       {"var": ("OBJECT", root, f'["{controls.TRACE_STRENGTH}"]')})


def write_trace(root: bpy.types.Object, trace: Trace) -> TraceSummary:
    """Write ``trace`` onto the network's layer and connection objects."""
    highlighted = {}
    layers = {obj.get(names.LAYER_MARKER): obj for obj in network.network_layers(root)}
    for unit, obj in layers.items():
        grid = _drawn_grid(obj)
        values = drawn_cells(trace.unit_values(unit), grid)
        writers.write_attribute(obj.data, names.TRACE_ATTRIBUTE, "FLOAT", "POINT", values)
        highlighted[unit] = int(np.count_nonzero(values >= 0.3))
        _drive_strength(obj, root)
        obj.data.update_tag()
    for obj in network.network_connections(root):
        source, target = layers.get(obj[names.SOURCE_LAYER]), layers.get(obj[names.TARGET_LAYER])
        data = obj.data
        values = np.zeros(len(data.curves), np.float32)
        if source is not None and target is not None and len(data.curves):
            values = trace.edge_values(str(obj[names.LINK_KIND]), obj[names.SOURCE_LAYER],
                                       obj[names.TARGET_LAYER], _curve_ints(data, "source_first"),
                                       _curve_ints(data, "target_first"),
                                       source_picture=_drawn_grid(source).picture)
        writers.write_attribute(data, names.TRACE_ATTRIBUTE, "FLOAT", "CURVE", values)
        _drive_strength(obj, root)
        data.update_tag()
    inbound = [name for name in trace.folds if name != trace.unit]
    contributors = {unit: trace.ranking(unit) for unit in inbound if trace.ranking(unit)}
    return TraceSummary(trace.unit, highlighted, contributors, trace.flow.approximate)


def trace(root: bpy.types.Object, unit: str, *, channel: int | None = None,
          row: int | None = None, col: int | None = None, neuron: int | None = None,
          sample: int | None = None, epoch_index: int | None = None,
          top: int = 3) -> TraceSummary:
    """Trace a selection of ``unit`` (see ``core/trace.trace_cell``) for the network's shown
    sample and epoch (or the given ones), write it, and turn the trace strength up to 1 when
    it is 0."""
    network.require_editable(network.require_whole(root))
    export = read_export(root[names.SOURCE_PATH], check_finite=False)
    options = dict(root.get(names.IMPORT_OPTIONS) or {})
    if sample is None:
        sample = int(round(float(root[controls.SAMPLE])))
    if epoch_index is None:
        epoch_index = int(round(float(root[controls.EPOCH])))
    epoch_index = min(max(epoch_index, 0), len(export.epochs) - 1)
    sample = min(max(sample, 0), export.num_samples - 1)
    traced = trace_cell(export, unit, channel=channel, row=row, col=col, neuron=neuron,
                        sample=sample, epoch_index=epoch_index, top=top,
                        fold=bool(options.get("fold", True)),
                        unfold=frozenset(options.get("unfold") or ()))
    summary = write_trace(root, traced)
    root[names.TRACE_RECORD] = {"unit": unit, "sample": sample, "epoch_index": epoch_index,
                                "selection": [-1 if v is None else int(v)
                                              for v in (channel, row, col, neuron)]}
    if float(root.get(controls.TRACE_STRENGTH, 0.0)) == 0.0:
        root[controls.TRACE_STRENGTH] = 1.0
    _tag(root)
    return summary


def clear_trace(root: bpy.types.Object) -> None:
    """Remove the trace: strength 0, no ``nnvis_trace`` attributes, no record."""
    network.require_editable(root)
    root[controls.TRACE_STRENGTH] = 0.0
    for obj in (*network.network_layers(root), *network.network_connections(root)):
        attribute = obj.data.attributes.get(names.TRACE_ATTRIBUTE)
        if attribute is not None:
            obj.data.attributes.remove(attribute)
            obj.data.update_tag()
    if names.TRACE_RECORD in root.keys():
        del root[names.TRACE_RECORD]
    _tag(root)


def _tag(root: bpy.types.Object) -> None:
    root.update_tag()
    for obj in network.owned_objects(root):
        obj.update_tag()
