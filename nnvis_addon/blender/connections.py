"""Connection objects: one hair-curves object per layer pair, bundled in numpy, drawn by the
"NNVis Connections" geometry-nodes group (see geometry_nodes/connection_nodes.py).

A connection is shown only while both its layers are: drivers on its ``hide_viewport`` and
``hide_render`` read theirs (:func:`follow_layer_visibility`), so hiding a layer never leaves a
bundle ending in mid-air, and a saved .blend does the same without nnvis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import bpy
import numpy as np

from ...geometry_nodes import atlas_nodes, connection_nodes, materials
from ..core import atlas, atlas_images, controls, names
from ..core.bundling import BundlingParams, bundle_edges, straight_curves
from ..core.export_format import NetworkExport, errors_naming_layer
from ..core.layout import CellGrid, NetworkPlan, cell_centres, label_height
from ..core.links import LayerLink, SkipRoute, WiringOptions, plan_links, skip_arc, skip_route
from ..core.rows import turn_bulge, turn_profile
from . import compat, network, value_atlas, writers
from .network import network_connections  # noqa: F401  (part of this module's script API)

MODIFIER_NAME = names.CONNECTION_MODIFIER
CONNECTION_MARKER = names.CONNECTION_MARKER
# More edges, and structural links, draw as hair curves (Cycles renders them round): tubes cost
# a mesh of points x sides vertices, rebuilt every frame an epoch animation changes the weights.
TUBES_UP_TO = 2_000
EDGE_RADIUS = 0.07  # the strongest edge's radius, in cells: thin beside the maps it joins
# Curve attribute: the weights the edges were bundled by (each edge's latest finite weight), so
# Re-bundle bundles by the same ones.
BUNDLED_BY = "nnvis_w_bundled"


# Bundling costs a few milliseconds a link whatever its size: networks with more links than
# this (hundreds of layers) draw them straight, and Rebundle bundles them when asked.
BUNDLE_UP_TO_LINKS = 300


@dataclass
class ConnectionOptions:
    enabled: bool = True
    bundle: bool = True
    bundle_up_to_links: int | None = BUNDLE_UP_TO_LINKS  # None: bundle however many there are
    wiring: WiringOptions = field(default_factory=WiringOptions)
    bundling: BundlingParams = field(default_factory=BundlingParams)


def with_ranking(options: ConnectionOptions, ranking: str) -> ConnectionOptions:
    """``options`` with its edges picked by ``ranking`` (core/links.py ``RANKINGS``)."""
    return replace(options, wiring=replace(options.wiring, ranking=ranking))


FULL_SCALE_PERCENTILE = 99.0  # |w| at this percentile gets the full colour and radius


def _weight_stream(number: int, link: LayerLink) -> atlas_images.StreamGroup:
    """A link's edge weights, a block per recorded epoch (key: the link's number)."""
    epoch_weights = link.epoch_weights  # (epochs, edges)
    stream = atlas.Stream(str(number), len(link.edges), len(epoch_weights))

    def values():
        for epoch_index, weights in enumerate(epoch_weights):
            yield epoch_index, {stream.key: weights}

    return atlas_images.StreamGroup([stream], values)


def full_scale_weight(epoch_weights: np.ndarray) -> float:
    """The |w| drawn at full strength: a high percentile over every epoch, not the maximum, so
    one outlier does not leave every other edge faint."""
    magnitudes = np.abs(epoch_weights[np.isfinite(epoch_weights)])
    if magnitudes.size == 0:
        return 1.0
    value = float(np.percentile(magnitudes, FULL_SCALE_PERCENTILE))
    return value if value > 0 else (float(magnitudes.max()) or 1.0)


def layer_cell_positions(obj: bpy.types.Object) -> np.ndarray:
    """Cell centres of a layer object in its parent's space, from its modifier's current inputs."""
    modifier = obj.modifiers[names.LAYER_MODIFIER]

    def value(name):
        return compat.get_modifier_input(modifier, name)

    grid = CellGrid(value("Map Height"), value("Map Width"), value("Channels"))
    centres = cell_centres(grid, grid_layout=value("Grid Layout"),
                           cell_size=value("Cell Size") * value("Cell Scale"),
                           channel_gap=value("Channel Gap"), requested_columns=value("Grid Columns"),
                           collapse=value("Collapse"), stack_spacing=value("Stack Spacing"),
                           merge=value("Collapse Summary") > 0 and bool(value("Has Summaries")))
    return centres + np.asarray(obj.location, dtype=np.float64)


def link_curves(link_start: np.ndarray, link_end: np.ndarray, weights: np.ndarray, arc: np.ndarray,
                options: ConnectionOptions, bundle: bool = True,
                progress: Callable[[float], None] | None = None, turn: float | None = None):
    """(curves, straight) arrays (E, P, 3) between the given end points; skip links rise by
    ``arc`` (E, P) over the layers they skip; a link from one row of a folded network to the
    next (``turn``: how far its U reaches along X, core/rows.py) is a U-turn, not bundled."""
    params = options.bundling
    straight = straight_curves(link_start, link_end, params.points_per_edge)
    if bundle and turn is None and len(weights) > 1:
        curves = bundle_edges(link_start, link_end, weights, params=params, progress=progress)
    else:
        curves = straight.copy()
    curves[..., 2] += arc
    if turn is not None:
        curves[..., 0] += turn * turn_profile(params.points_per_edge)
    return curves, straight


def link_turn(plan: NetworkPlan, link: LayerLink) -> float | None:
    """The U-turn of a link between two rows of a folded network (None inside a row)."""
    if plan.rows is None:
        return None
    source, target = plan.layer(link.source.name), plan.layer(link.target.name)
    return turn_bulge(source.row, target.row, plan.rows.pitch, source.direction)


def _arc(route: SkipRoute | None, points: int, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    if route is None:
        return np.zeros((len(start), points), np.float32)
    return skip_arc(points, route.rise, route.fall, route.clearance, start[:, 2], end[:, 2])




def follow_layer_visibility(obj: bpy.types.Object, *layers: bpy.types.Object,
                            also_hidden: tuple[str, dict] | None = None) -> None:
    """Hide ``obj`` in the viewport and in renders whenever one of ``layers`` is hidden there:
    a driver ``max(a, b, ...)`` on each of its flags reads the same flag of every layer object
    (a simple expression: Blender evaluates it without Python, so it is farm-safe).
    ``also_hidden`` = (a simple expression, its variables) hides it in more cases (a block's link
    while the block is expanded). Replaces the drivers an earlier call made."""
    if not layers:
        raise ValueError("follow_layer_visibility needs at least one layer object")
    variable_names = [f"layer{i}" for i in range(len(layers))]
    terms = list(variable_names)
    extra: dict = {}
    if also_hidden is not None:
        terms.append(also_hidden[0])
        extra = also_hidden[1]
    expression = terms[0] if len(terms) == 1 else f"max({', '.join(terms)})"
    for flag in names.VISIBILITY_FLAGS:
        variables = {name: ("OBJECT", layer, flag) for name, layer in zip(variable_names, layers)}
        writers.add_driver(obj, flag, expression, {**variables, **extra})


def set_hidden(obj: bpy.types.Object, hidden: bool) -> None:
    """Hide one connection in the viewport and in renders whatever its layers do (``hidden``), or
    let it follow them again. Setting its flags alone does not last: the visibility drivers of
    :func:`follow_layer_visibility` would set them back, so they are muted while it is hidden."""
    drivers = obj.animation_data.drivers if obj.animation_data else ()
    for fcurve in drivers:
        if fcurve.data_path in names.VISIBILITY_FLAGS:
            fcurve.mute = hidden
    for flag in names.VISIBILITY_FLAGS:
        setattr(obj, flag, hidden)
    obj.update_tag()


def span_midpoints(cells: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Where edges attach: halfway between each unit's first and last drawn cell."""
    return (cells[first] + cells[last]) / 2


def _write_shape(curves_data, curves: np.ndarray, straight: np.ndarray,
                 turn: bool = False) -> None:
    count, points, _ = curves.shape
    curves_data.attributes["position"].data.foreach_set("vector", curves.reshape(-1))
    offset = (curves - straight).astype(np.float32)
    if not turn:
        offset[..., 0] = 0.0  # bundling only moves points across the layer axis
    writers.write_attribute(curves_data, connection_nodes.T_ATTRIBUTE, "FLOAT", "POINT",
                            np.tile(np.linspace(0.0, 1.0, points, dtype=np.float32), count))
    writers.write_attribute(curves_data, connection_nodes.OFFSET_ATTRIBUTE, "FLOAT_VECTOR", "POINT",
                            offset)


def write_curves(curves_data, curves: np.ndarray, straight: np.ndarray, link: LayerLink,
                 turn: bool = False) -> None:
    """Fill an empty hair-curves data-block with a link's curves and attributes (``turn``: a
    U-turn between rows, whose offset along the layer axis is kept)."""
    count, points, _ = curves.shape
    curves_data.add_curves([points] * count)
    _write_shape(curves_data, curves, straight, turn)
    for name in connection_nodes.ENDPOINT_ATTRIBUTES:
        writers.write_attribute(curves_data, name, "INT", "CURVE", getattr(link, name))
    magnitudes = np.abs(link.epoch_weights)
    peak = np.max(np.where(np.isfinite(magnitudes), magnitudes, 0.0), axis=0, initial=0.0)
    writers.write_attribute(curves_data, connection_nodes.PEAK_ATTRIBUTE, "FLOAT", "CURVE", peak)
    writers.write_attribute(curves_data, BUNDLED_BY, "FLOAT", "CURVE", link.edges.weight)
    writers.write_attribute(curves_data, connection_nodes.STRUCTURAL_ATTRIBUTE, "FLOAT", "CURVE",
                            np.full(count, float(link.structural), np.float32))


def _part_progress(report: Callable[[float, str], None], base: float, parts: int,
                   message: str) -> Callable[[float], None]:
    """Progress of one of ``parts`` equal parts of a job, the part starting at ``base``: its own
    fractions in [0, 1] reported as fractions of the whole job."""
    return lambda fraction: report(base + fraction / parts, message)


def map_scale(plan: NetworkPlan, link: LayerLink) -> float:
    """How much larger than Cell Size the maps at either end are drawn (a downsampled or
    size-compressed map's cells are bigger): edges between big drawn maps are that much thicker,
    so they stay visible beside them. Neurons do not count; 1 for cell-by-cell maps."""
    scales = [p.cell_scale for p in (plan.layer(link.source.name), plan.layer(link.target.name))
              if not (p.is_vector or p.block)]
    return max([1.0, *scales])


def build_connections(export: NetworkExport, plan: NetworkPlan, root: bpy.types.Object,
                      layers: dict, collection, options: ConnectionOptions,
                      report: Callable[[float, str], None]) -> list[bpy.types.Object]:
    """One connection object per link of ``plan``; the edges ranked by contribution (an option)
    are those of the sample the root shows (its ``nnvis_sample`` control)."""
    group = connection_nodes.ensure_connection_group()
    links = plan_links(export, options.wiring, plan, sample=int(root[controls.SAMPLE]))
    limit = options.bundle_up_to_links
    bundle = options.bundle and (limit is None or len(links) <= limit)
    weights = value_atlas.build_atlases(f"{export.name} weights",
                                        [_weight_stream(number, link)
                                         for number, link in enumerate(links)])
    link_materials = [materials.new_connection_material(
        f"{materials.CONNECTION_MATERIAL} {export.name}", image, height)
        for image, height in zip(weights.images, weights.heights)]
    clearance = label_height(plan.options.cell_size)
    positions = {}  # layer object name -> its cells' positions, computed once per layer
    objects = []
    for number, link in enumerate(links):
        base = number / max(1, len(links))
        report(base, f"bundling {link.name} ({len(link.edges)} edges)")
        source, target = layers[link.source.name], layers[link.target.name]
        for obj in (source, target):
            if obj.name not in positions:
                positions[obj.name] = layer_cell_positions(obj)
        start = span_midpoints(positions[source.name], link.source_first, link.source_last)
        end = span_midpoints(positions[target.name], link.target_first, link.target_last)
        route = skip_route(plan, link, clearance, options.bundling.points_per_edge)
        params = options.bundling if route is None else \
            replace(options.bundling, points_per_edge=route.points)
        arc = _arc(route, params.points_per_edge, start, end)
        turn = link_turn(plan, link)
        # Structural links (channel to same channel) are parallel already: nothing to bundle.
        with errors_naming_layer(export.path, link.target.name, f"the connections {link.name}"):
            curves, straight = link_curves(
                start, end, link.edges.weight, arc, replace(options, bundling=params),
                bundle=bundle and not link.structural,
                progress=_part_progress(report, base, max(1, len(links)), f"bundling {link.name}"),
                turn=turn)
        name = f"{export.name}.{link.source.name}->{link.target.name}"
        data = bpy.data.hair_curves.new(name)
        write_curves(data, curves, straight, link, turn is not None)
        obj = bpy.data.objects.new(name, data)
        collection.objects.link(obj)
        obj.parent = root
        obj[CONNECTION_MARKER] = 1
        obj[names.SOURCE_LAYER] = link.source.name
        obj[names.TARGET_LAYER] = link.target.name
        obj[names.LINK_KIND] = link.kind
        obj[names.EDGE_RANKING] = options.wiring.ranking
        obj[names.SKIPPED_COLUMNS] = link.skipped_columns
        if route is not None:
            obj[names.SKIP_ROUTE] = [route.rise, route.fall, route.clearance, route.points]
        if turn is not None:
            obj[names.TURN_BULGE] = turn
        weights.set_properties(obj, connection_nodes.WEIGHTS_STREAM, str(number))
        obj[atlas_nodes.RECORDED_PROPERTY] = (1.0, float(len(export.epochs)), 0.0)
        modifier = compat.add_nodes_modifier(obj, MODIFIER_NAME, group)
        weight_max = full_scale_weight(link.epoch_weights)
        inputs = {
            "Source": source, "Target": target,
            "Weight Max": weight_max if weight_max > 0 else 1.0,
            "Radius": EDGE_RADIUS * plan.options.cell_size * map_scale(plan, link),
            "As Tubes": not link.structural and len(link.edges) <= TUBES_UP_TO,
            "Material": link_materials[weights.places[str(number)].atlas],
        }
        for key, value in inputs.items():
            compat.set_modifier_input(modifier, key, value)
        follow_layer_visibility(obj, source, target)
        objects.append(obj)
    return objects


def rebundle(obj: bpy.types.Object, params: BundlingParams, bundle: bool = True) -> None:
    """Recompute one connection object's curves with new bundling parameters.

    Endpoints come from the layers' current layout, so a re-bundle after a layout change fits the
    new layout. Only the curve shape changes: edges, weights and modifier inputs stay.
    """
    root = network.network_of(obj)
    if not obj.get(CONNECTION_MARKER) or root is None:
        raise network.NetworkError(f"{obj.name!r} is not a connection of an nnvis network")
    network.require_whole(root)
    bpy.context.evaluated_depsgraph_get()  # run the drivers that place the layers
    modifier = compat.nodes_modifier(obj, MODIFIER_NAME)
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

    spans = {name: read(name) for name in connection_nodes.ENDPOINT_ATTRIBUTES}
    # Bundled by the same weights as at import.
    weights = np.zeros(count, np.float32)
    data.attributes[BUNDLED_BY].data.foreach_get("value", weights)
    start = span_midpoints(layer_cell_positions(source), spans["source_first"],
                           spans["source_last"])
    end = span_midpoints(layer_cell_positions(target), spans["target_first"], spans["target_last"])
    stored = obj.get(names.SKIP_ROUTE)
    route = SkipRoute(stored[0], stored[1], stored[2], int(stored[3])) if stored is not None else None
    if route is not None:
        params = replace(params, points_per_edge=max(params.points_per_edge, route.points))
    arc = _arc(route, params.points_per_edge, start, end)
    turn = obj.get(names.TURN_BULGE)
    curves, straight = link_curves(start, end, weights, arc,
                                   ConnectionOptions(bundling=params), bundle=bundle, turn=turn)
    if curves.shape[1] != len(data.points) // count:
        data = compat.resize_curves(obj, [curves.shape[1]] * count)
    _write_shape(data, curves, straight, turn is not None)
    data.update_tag()
    obj.update_tag()
