"""Connection objects: one hair-curves object per layer pair, bundled in numpy, drawn by the
"NNVis Connections" geometry-nodes group (see geometry_nodes/connection_nodes.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import bpy
import numpy as np

from ...geometry_nodes import connection_nodes, materials
from ..core.bundling import BundlingParams, bundle_edges, straight_curves
from ..core.export_format import NetworkExport
from ..core.layout import CellGrid, cell_centres
from ..core.wiring import LayerLink, WiringOptions, plan_links
from . import compat

MODIFIER_NAME = "NNVis Connections"
CONNECTION_MARKER = "nnvis_connection"
TUBES_UP_TO = 20_000  # more edges render as hair curves: tubes would cost millions of vertices


@dataclass
class ConnectionOptions:
    enabled: bool = True
    bundle: bool = True
    wiring: WiringOptions = field(default_factory=WiringOptions)
    bundling: BundlingParams = field(default_factory=BundlingParams)


def layer_cell_positions(obj: bpy.types.Object) -> np.ndarray:
    """Cell centres of a layer object in its parent's space, from its modifier's current inputs."""
    modifier = obj.modifiers["NNVis Layer"]

    def value(name):
        return compat.get_modifier_input(modifier, name)

    grid = CellGrid(value("Map Height"), value("Map Width"), value("Channels"))
    centres = cell_centres(grid, grid_layout=value("Grid Layout"),
                           cell_size=value("Cell Size") * value("Cell Scale"),
                           channel_gap=value("Channel Gap"), requested_columns=value("Grid Columns"),
                           collapse=value("Collapse"), stack_spacing=value("Stack Spacing"),
                           merge=value("Collapse Summary") > 0 and bool(value("Has Summaries")))
    return centres + np.asarray(obj.location, dtype=np.float64)


def link_curves(link: LayerLink, source_cells: np.ndarray, target_cells: np.ndarray,
                options: ConnectionOptions, progress: Callable[[float], None] | None = None):
    """(curves, straight) arrays (E, P, 3) for a link, from the layers' cell positions."""
    start = (source_cells[link.source_first] + source_cells[link.source_last]) / 2
    end = (target_cells[link.target_first] + target_cells[link.target_last]) / 2
    params = options.bundling
    straight = straight_curves(start, end, params.points_per_edge)
    if not options.bundle or len(link.edges) < 2:
        return straight, straight
    curves = bundle_edges(start, end, link.edges.weight, params=params, progress=progress)
    return curves, straight


def _store(curves_data, name: str, kind: str, domain: str, values: np.ndarray) -> None:
    """Create or overwrite an attribute from a flat array (foreach_set, no Python loop)."""
    attribute = curves_data.attributes.get(name) or curves_data.attributes.new(name, kind, domain)
    key = "vector" if kind == "FLOAT_VECTOR" else "value"
    attribute.data.foreach_set(key, np.ascontiguousarray(values).reshape(-1))


def _write_shape(curves_data, curves: np.ndarray, straight: np.ndarray) -> None:
    count, points, _ = curves.shape
    curves_data.attributes["position"].data.foreach_set("vector", curves.reshape(-1))
    offset = (curves - straight).astype(np.float32)
    offset[..., 0] = 0.0  # bundling only moves points across the layer axis
    _store(curves_data, "nnvis_t", "FLOAT", "POINT",
           np.tile(np.linspace(0.0, 1.0, points, dtype=np.float32), count))
    _store(curves_data, "nnvis_offset", "FLOAT_VECTOR", "POINT", offset)


def write_curves(curves_data, curves: np.ndarray, straight: np.ndarray, link: LayerLink) -> None:
    """Fill an empty hair-curves data-block with a link's curves and attributes."""
    count, points, _ = curves.shape
    curves_data.add_curves([points] * count)
    _write_shape(curves_data, curves, straight)
    for name in ("source_first", "source_last", "target_first", "target_last"):
        _store(curves_data, name, "INT", "CURVE", getattr(link, name).astype(np.int32))
    for epoch_index, weights in enumerate(link.epoch_weights):
        _store(curves_data, connection_nodes.weight_attribute_name(epoch_index), "FLOAT", "CURVE",
               weights.astype(np.float32))
    _store(curves_data, "structural", "FLOAT", "CURVE",
           np.full(count, float(link.structural), np.float32))


def build_connections(export: NetworkExport, root: bpy.types.Object, layers: dict, collection,
                      options: ConnectionOptions, cell_size: float,
                      report: Callable[[float, str], None]) -> list[bpy.types.Object]:
    group = connection_nodes.ensure_connection_group()
    material = materials.ensure_connection_material()
    links = plan_links(export, options.wiring)
    objects = []
    for number, link in enumerate(links):
        base = number / max(1, len(links))
        report(base, f"bundling {link.name} ({len(link.edges)} edges)")
        source, target = layers[link.source.name], layers[link.target.name]
        curves, straight = link_curves(
            link, layer_cell_positions(source), layer_cell_positions(target), options,
            progress=lambda f: report(base + f / max(1, len(links)), f"bundling {link.name}"))
        name = f"{export.name}.{link.source.name}->{link.target.name}"
        data = bpy.data.hair_curves.new(name)
        write_curves(data, curves, straight, link)
        obj = bpy.data.objects.new(name, data)
        collection.objects.link(obj)
        obj.parent = root
        obj[CONNECTION_MARKER] = 1
        obj["nnvis_source_layer"] = link.source.name
        obj["nnvis_target_layer"] = link.target.name
        obj["nnvis_link_kind"] = link.kind
        modifier = obj.modifiers.new(MODIFIER_NAME, "NODES")
        modifier.node_group = group
        weight_max = float(np.max(np.abs(link.epoch_weights))) if link.epoch_weights.size else 1.0
        inputs = {
            "Source": source, "Target": target, "Epoch Count": len(export.epochs),
            "Weight Max": weight_max if weight_max > 0 else 1.0,
            "Radius": 0.09 * cell_size, "As Tubes": len(link.edges) <= TUBES_UP_TO,
            "Material": material,
        }
        for key, value in inputs.items():
            compat.set_modifier_input(modifier, key, value)
        objects.append(obj)
    return objects


def rebundle(obj: bpy.types.Object, params: BundlingParams, bundle: bool = True) -> None:
    """Recompute one connection object's curves with new bundling parameters.

    Endpoints come from the layers' current layout, so a re-bundle after a layout change fits the
    new layout. Only the curve shape changes: edges, weights and modifier inputs stay.
    """
    if not obj.get(CONNECTION_MARKER):
        raise ValueError(f"{obj.name!r} is not an nnvis connection object")
    modifier = obj.modifiers[MODIFIER_NAME]
    source = compat.get_modifier_input(modifier, "Source")
    target = compat.get_modifier_input(modifier, "Target")
    data = obj.data
    count = len(data.curves)
    if count == 0:
        return

    def read(name):
        values = np.zeros(count, np.int32)
        data.attributes[name].data.foreach_get("value", values)
        return values

    spans = {name: read(name) for name in ("source_first", "source_last", "target_first",
                                           "target_last")}
    weights = np.zeros(count, np.float32)
    last_epoch = compat.get_modifier_input(modifier, "Epoch Count") - 1
    data.attributes[connection_nodes.weight_attribute_name(last_epoch)].data.foreach_get(
        "value", weights)
    source_cells, target_cells = layer_cell_positions(source), layer_cell_positions(target)
    start = (source_cells[spans["source_first"]] + source_cells[spans["source_last"]]) / 2
    end = (target_cells[spans["target_first"]] + target_cells[spans["target_last"]]) / 2
    straight = straight_curves(start, end, params.points_per_edge)
    curves = bundle_edges(start, end, weights, params=params) if bundle and count > 1 else straight
    if curves.shape[1] != len(data.points) // count:
        data.resize_curves([curves.shape[1]] * count)
    _write_shape(data, curves, straight)
    data.update_tag()
    obj.update_tag()


def network_connections(root: bpy.types.Object) -> list[bpy.types.Object]:
    return sorted((c for c in root.children if c.get(CONNECTION_MARKER)), key=lambda o: o.name)
