"""Build a network scene from an export: the plain function behind File > Import.

Scene structure (one network):

* a collection ``NNVis <model>`` holding everything below;
* a root empty ``<model>`` whose custom properties are the network controls (``nnvis_sample``,
  ``nnvis_epoch``, ``nnvis_layer_spacing``, ``nnvis_cell_size``, ``nnvis_normalize_globally``,
  ``nnvis_step_epochs``); every layer's modifier inputs are driven by them through single-variable
  drivers, which Blender evaluates without Python, so a saved .blend renders without nnvis;
* one object per layer, parented to the root, with a mesh of one vertex per cell and an
  "NNVis Layer" geometry-nodes modifier (see geometry_nodes/layer_nodes.py);
* one label object per labelled unit, a static text parented to its layer (blender/labels.py);
* a camera, a light and a world so a render right after import is already a picture.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import bpy
import numpy as np

from ...geometry_nodes import atlas_nodes, layer_nodes, materials, picture_nodes
from ..core import atlas, atlas_images, controls, evidence, names
from ..core.export_format import NetworkExport, read_export
from ..core.folding import fold_export
from ..core.layout import COLLAPSED_GAP, LayoutOptions, NetworkPlan, cell_attributes, plan_network
from ..core.links import check_ranking
from . import answer, blocks, compat, connections, labels, network, staging, value_atlas, writers
from .connections import ConnectionOptions
from .network import active_network, iter_networks, network_layers, network_of  # noqa: F401
from .staging import frame_network  # noqa: F401  (part of this module's script API)
from .transaction import DataTransaction

MODIFIER_NAME = names.LAYER_MODIFIER
ROOT_MARKER = names.ROOT_MARKER
LAYER_MARKER = names.LAYER_MARKER
ROOT_LINK = names.ROOT_LINK
NORMALIZE_MODES = ("layer", "global")
VIEWPORT_POINTS_ABOVE = 50_000  # layers with more cells show points in the viewport

Progress = Callable[[float, str], None]

# Which modifier input each network control drives, on layer and on connection objects.
LAYER_DRIVERS = controls.layer_drivers()
CONNECTION_DRIVERS = controls.connection_drivers()
SHOWN_DRIVERS = controls.shown_drivers()


@dataclass
class ImportOptions:
    sample: int = 0
    epoch: int | None = None          # recorded epoch index; None = the last one
    layer_spacing: float = controls.default(controls.LAYER_SPACING)
    map_layout: str = "grid"
    cell_size: float = controls.default(controls.CELL_SIZE)
    normalize: str = "layer"
    stage: bool = True                # camera, light and world
    blocks: str = "auto"              # core/layout.py BLOCK_MODES: collapse deep networks' blocks
    wrap: str = "auto"                # core/layout.py WRAP_MODES: fold a long network into rows
    use_network_camera: bool = True   # make the network's camera the scene's camera
    fold: bool = True                 # fold shape-keeping layers (and Flatten) into units
    unfold: frozenset[str] = frozenset()  # layers never folded into another (unfolded units)
    place_beside: bool = True         # move clear of what the scene already holds
    input_as_picture: bool = True     # an image input as one map in its own colours
    edge_ranking: str = "weight"      # core/links.py RANKINGS: edges drawn by |w| or |a * w|
    connections: ConnectionOptions = field(default_factory=ConnectionOptions)

    def as_record(self) -> dict:
        """The options as plain values, kept on the root so the network can be imported again
        with some of them changed (``api.Network.reimport``)."""
        record: dict[str, Any] = {}
        for option in fields(self):
            value = getattr(self, option.name)
            if isinstance(value, frozenset):
                record[option.name] = sorted(value)
            elif value is None or isinstance(value, (bool, int, float, str)):
                record[option.name] = value
        return record

    @classmethod
    def from_record(cls, record) -> ImportOptions:
        known = {option.name: option for option in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in dict(record).items():
            if name in known and name != "connections":
                values[name] = frozenset(value) if name == "unfold" else value
        return cls(**values)

    def validate(self, export: NetworkExport) -> None:
        if not 0 <= self.sample < export.num_samples:
            raise ValueError(f"sample {self.sample} does not exist: the export has "
                             f"{export.num_samples} samples (0..{export.num_samples - 1})")
        epochs = len(export.epochs)
        if self.epoch is not None and not -epochs <= self.epoch < epochs:
            raise ValueError(f"epoch index {self.epoch} does not exist: the export has {epochs} "
                             f"recorded epochs (0..{epochs - 1})")
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {self.normalize!r}")
        check_ranking(self.edge_ranking)


def import_network(filepath: str | os.PathLike, options: ImportOptions | None = None, *,
                   scene: bpy.types.Scene | None = None,
                   progress: Progress | None = None) -> bpy.types.Object:
    """Read an export and build its scene; return the network's root object.

    Raises ``ExportFormatError`` for a bad file and ``ValueError`` for bad options; either way
    nothing is left behind in ``bpy.data``.
    """
    options = options or ImportOptions()
    scene = scene or bpy.context.scene
    assert scene is not None  # Blender always has a current scene
    report = progress or (lambda fraction, message: None)
    report(0.0, "reading export")
    export = read_export(filepath)
    options.validate(export)
    if options.fold:
        export = fold_export(export, frozenset(options.unfold))
    plan = plan_network(export, LayoutOptions(map_layout=options.map_layout,
                                              layer_spacing=options.layer_spacing,
                                              input_as_picture=options.input_as_picture,
                                              cell_size=options.cell_size, blocks=options.blocks,
                                              wrap=options.wrap))
    with DataTransaction():
        return _build(export, plan, options, scene, report)


def _build(export: NetworkExport, plan: NetworkPlan, options: ImportOptions,
           scene: bpy.types.Scene, report: Progress) -> bpy.types.Object:
    group = layer_nodes.ensure_layer_group()
    report(0.02, "packing the recorded values")
    overlays = {target.unit: target for target in evidence.overlay_targets(export, plan)}
    groups = [_layer_streams(export, layer_plan, overlays.get(layer_plan.layer.name))
              for layer_plan in plan.layers]
    answered = answer.answer_stream(export)
    values = value_atlas.build_atlases(export.name, groups + ([answered[0]] if answered else []))
    cell_materials = _cell_materials(export.name, values)

    collection = bpy.data.collections.new(names.COLLECTION_PREFIX + export.name)
    scene.collection.children.link(collection)
    root = bpy.data.objects.new(export.name, None)
    root.empty_display_type = "ARROWS"
    root.empty_display_size = 0.5
    collection.objects.link(root)
    _init_root(root, export, plan, options)

    total_cells = sum(p.grid.cells for p in plan.layers) or 1
    done = 0
    layer_objects = {}
    for layer_plan in plan.layers:
        report(0.05 + 0.45 * done / total_cells, f"building layer {layer_plan.layer.name}")
        obj = _build_layer(export, layer_plan, plan, group, values, cell_materials)
        collection.objects.link(obj)
        obj.parent = root
        layer_objects[layer_plan.layer.name] = obj
        done += layer_plan.grid.cells
    blocks.init_block_controls(plan, layer_objects, MODIFIER_NAME)
    owners = blocks.block_owners(plan, layer_objects)
    # column -> its first layer object, which the next column follows
    column_heads: dict[int, bpy.types.Object] = {}
    for layer_plan in plan.layers:
        obj = layer_objects[layer_plan.layer.name]
        _drive_layer(obj, root, column_heads.get(layer_plan.column - 1), layer_plan.spacing_factor,
                     owners.get(layer_plan.layer.name), layer_plan.direction)
        drive_shown(obj, root)
        if layer_plan.layer.name in overlays:
            _set_overlay(obj, root, layer_plan.layer.name, values)
        column_heads.setdefault(layer_plan.column, obj)

    connection_objects = []
    if options.connections.enabled:
        connection_objects = connections.build_connections(
            export, plan, root, layer_objects, collection,
            connections.with_ranking(options.connections, options.edge_ranking),
            lambda fraction, message: report(0.5 + 0.4 * fraction, message))
        for obj in connection_objects:
            _drive_inputs(obj, obj.modifiers[connections.MODIFIER_NAME], root, CONNECTION_DRIVERS)
            drive_shown(obj, root)
    blocks.show_block_links(connection_objects, layer_objects)
    label_objects = labels.build_labels(root, plan, layer_objects, collection)
    network.record_parts(root, collection, layer_objects.values(), connection_objects,
                         label_objects)
    if answered is not None:
        made = answer.build_answer(export, plan, layer_objects[plan.layers[-1].layer.name],
                                   collection, values, answered[1])
        drive_shown(made[0], root)
        network.record_list(root, names.PART_ANSWER, made)

    if options.place_beside:
        report(0.91, "finding a free place in the scene")
        staging.place_network(root, plan, scene)
    if options.stage:
        report(0.93, "placing camera and light")
        # The plan put every layer where its drivers will: no evaluation of the scene needed.
        staging.stage_network(root, plan, scene, options.use_network_camera, evaluate=False)
    else:  # the labels face the camera staging would have made
        staging.frame_camera_and_labels(root, scene, evaluate=False)
    report(1.0, "done")
    return root


def _init_root(root, export: NetworkExport, plan: NetworkPlan, options: ImportOptions) -> None:
    epoch = len(export.epochs) - 1 if options.epoch is None else options.epoch % len(export.epochs)
    values = {  # controls the import options set; the others start at their default
        controls.SAMPLE: options.sample,
        controls.EPOCH: float(epoch),
        controls.LAYER_SPACING: options.layer_spacing,
        controls.CELL_SIZE: options.cell_size,
        controls.NORMALIZE_GLOBALLY: options.normalize == "global",
        controls.BUNDLE_STRENGTH: options.connections.bundling.strength,
    }
    limits = {controls.SAMPLE: export.num_samples - 1, controls.EPOCH: float(len(export.epochs) - 1)}
    for control in controls.NETWORK_CONTROLS:
        root[control.key] = values.get(control.key, control.default)
        settings: dict[str, Any] = {"description": control.description}
        if control.min is not None:
            settings["min"] = control.min
        hi = limits.get(control.key, control.max)
        if hi is not None:
            settings["max"] = hi
        root.id_properties_ui(control.key).update(**settings)
    root[ROOT_MARKER] = 1
    record = {key: value for key, value in options.as_record().items() if value is not None}
    root[names.IMPORT_OPTIONS] = record
    root[names.SOURCE_PATH] = str(export.path)
    root[names.MODEL_NAME] = export.name
    root[names.EPOCH_NUMBERS] = [int(e) for e in export.epoch_numbers]
    root[names.GLOBAL_RANGE] = [plan.global_min, plan.global_max]
    root[names.WARNINGS] = list(plan.warnings)


def _cell_materials(name: str, values: value_atlas.Atlases):
    """The network's cell materials, made on first use: one per (atlas, the input as a
    picture, the class evidence maps shown, summaries), so a unit's shader reads only what it
    shows."""
    made: dict[tuple[int, bool, tuple[str, ...], bool], bpy.types.Material] = {}

    def material(atlas_index: int, picture: bool, overlay: tuple[str, ...],
                 summary: bool = False) -> bpy.types.Material:
        key = (atlas_index, bool(picture), tuple(overlay), bool(summary))
        if key not in made:
            made[key] = materials.new_activation_material(
                f"{materials.ACTIVATION_MATERIAL} {name}", values.images[atlas_index],
                values.heights[atlas_index], picture=key[1], overlay=key[2], summary=key[3])
        return made[key]
    return material


def _summaries(layer_plan) -> bool:
    """Whether a layer has max/mean-over-channel maps to collapse into."""
    grid = layer_plan.grid
    return grid.channels > 1 and grid.height * grid.width > 1


def _layer_streams(export: NetworkExport, layer_plan,
                   overlay: evidence.OverlayTarget | None = None) -> atlas_images.StreamGroup:
    """A layer's value streams: its drawn cells and, with more than one map, each pixel's max and
    mean over the channels; on a unit showing the class evidence overlay each of its maps per
    drawn pixel (for the predicted class, and the true label when recorded); a block per
    (sample, epoch)."""
    layer, grid = layer_plan.layer, layer_plan.grid
    blocks = export.num_samples * len(export.epochs)
    pixels = grid.height * grid.width
    cells = atlas.Stream(f"{layer.name}", grid.cells, blocks)
    summaries = [atlas.Stream(f"{layer.name}/{stream}", pixels, blocks)
                 for stream in layer_nodes.SUMMARY_STREAMS.values()] if _summaries(layer_plan) else []
    shown = [(map_name, kind) for map_name in (overlay.maps if overlay is not None else ())
             for kind in evidence.overlay_kinds(export, map_name)]  # (map, kind) pairs
    maps = {pair: atlas.Stream(_overlay_key(layer.name, *pair), pixels, blocks) for pair in shown}

    def values():
        epochs = len(export.epochs)
        for epoch_index, epoch in enumerate(export.epochs):
            per_sample = layer_plan.display_values(epoch.activations[layer.name]).reshape(
                export.num_samples, -1, grid.channels)
            evidence_maps = {pair: evidence.overlay_maps(export, layer_plan, overlay, epoch_index,
                                                         *pair)
                             for pair in maps} if overlay is not None else {}
            for sample in range(export.num_samples):
                block = {cells.key: per_sample[sample]}
                if summaries:  # per pixel over the channels (NaN if one is)
                    block[summaries[0].key] = np.max(per_sample[sample], axis=1)
                    block[summaries[1].key] = np.mean(per_sample[sample], axis=1)
                block.update({stream.key: evidence_maps[pair][sample]
                              for pair, stream in maps.items()})
                yield sample * epochs + epoch_index, block

    return atlas_images.StreamGroup([cells, *summaries, *maps.values()], values)


def _overlay_key(unit: str, map_name: str, kind: str) -> str:
    return f"{unit}/{layer_nodes.OVERLAY_STREAMS[map_name][kind]}"


def _overlay_maps(unit: str, values: value_atlas.Atlases) -> tuple[str, ...]:
    """The class evidence maps a unit shows (core/evidence.py MAPS): those with streams."""
    return tuple(map_name for map_name in evidence.MAPS
                 if any(_overlay_key(unit, map_name, kind) in values.places
                        for kind in evidence.KINDS))


def _set_overlay(obj: bpy.types.Object, root: bpy.types.Object, unit: str,
                 values: value_atlas.Atlases) -> None:
    """Tell a unit's material where its class evidence maps lie (the true label's falls back to
    the predicted class's when none was recorded) and drive its mix and choices from the root."""
    for map_name in _overlay_maps(unit, values):
        kinds = [kind for kind in evidence.KINDS
                 if _overlay_key(unit, map_name, kind) in values.places]
        for kind, prefix in layer_nodes.OVERLAY_STREAMS[map_name].items():
            values.set_properties(obj, prefix, _overlay_key(unit, map_name,
                                                            kind if kind in kinds else kinds[0]))
    for key in (names.GRADCAM_STRENGTH, names.GRADCAM_OF_LABEL, names.EVIDENCE_MAP):
        obj[key] = 0.0
        writers.add_driver(obj, f'["{key}"]', "var", {"var": ("OBJECT", root, f'["{key}"]')})


def evidence_maps(units: list[bpy.types.Object]) -> list[str]:
    """The class evidence maps (``gradcam``, ``saliency``) some of a network's ``units`` show."""
    return [name for name, prefixes in layer_nodes.OVERLAY_STREAMS.items()
            if any(f"{prefixes['predicted']}_place" in unit.keys() for unit in units)]


def _build_layer(export: NetworkExport, layer_plan, plan: NetworkPlan, group,
                 values: value_atlas.Atlases, cell_materials) -> bpy.types.Object:
    layer = layer_plan.layer
    grid = layer_plan.grid
    mesh = bpy.data.meshes.new(f"{export.name}.{layer.name}")
    mesh.vertices.add(grid.cells)
    for name, attribute in zip(("channel", "row", "col"), cell_attributes(grid)):
        writers.write_attribute(mesh, name, "INT", "POINT", attribute)
    summaries = _summaries(layer_plan)
    if layer_plan.picture:
        _write_picture_colours(mesh, export, layer_plan)

    obj = bpy.data.objects.new(f"{export.name}.{layer.name}", mesh)
    obj.location = (layer_plan.x, layer_plan.y, layer_plan.z)
    obj[LAYER_MARKER] = layer.name
    obj[names.LAYER_TYPE] = layer.type
    obj[names.FOLDED] = ", ".join(layer.folded)
    obj[names.LAYER_INDEX] = layer.index
    obj[names.OUTPUT_SHAPE] = list(layer.output_shape)
    obj[names.DISPLAY_STRIDE] = layer_plan.stride
    obj[names.BLOCK] = layer_plan.block
    values.set_properties(obj, layer_nodes.CELLS_STREAM, layer.name)
    if summaries:
        for prefix in layer_nodes.SUMMARY_STREAMS.values():
            values.set_properties(obj, prefix, f"{layer.name}/{prefix}")
    obj[atlas_nodes.RECORDED_PROPERTY] = (float(export.num_samples), float(len(export.epochs)), 0.0)
    modifier = compat.add_nodes_modifier(obj, MODIFIER_NAME, group)
    shading = (values.places[layer.name].atlas, layer_plan.picture,
               _overlay_maps(layer.name, values))
    inputs = {
        "Map Height": grid.height, "Map Width": grid.width, "Channels": grid.channels,
        "Grid Layout": layer_plan.grid_layout, "Channel Gap": layer_plan.channel_gap,
        "Tile Depth": layer_plan.tile_depth, "Cell Scale": layer_plan.cell_scale,
        "Cell Size": plan.options.cell_size,
        "Sample Count": export.num_samples,
        "Value Min": layer_plan.value_min, "Value Max": layer_plan.value_max,
        "Global Min": plan.global_min, "Global Max": plan.global_max,
        "Cell Material": cell_materials(*shading),
        # while its maps merge into their max or mean map (none without summaries)
        "Summary Material": cell_materials(*shading, summary=True) if summaries else None,
        "Has Summaries": summaries,
        "Viewport Points": grid.cells > VIEWPORT_POINTS_ABOVE,
        "Grid Columns": layer_plan.grid_columns,
        # Many maps open summarised into their max map (core/layout.py _shape_units).
        "Collapse": 1.0 if layer_plan.summarised else 0.0,
        "Collapse Summary": 1 if layer_plan.summarised else 0,
    }
    for name, value in inputs.items():
        if value is not None:
            compat.set_modifier_input(modifier, name, value)
    compat.set_modifier_input(modifier, "Picture", layer_plan.picture)
    obj[names.LAYER_COLLAPSE] = inputs["Collapse"]
    obj.id_properties_ui(names.LAYER_COLLAPSE).update(
        min=0.0, max=1.0, description="0: every map shown; 1: maps stacked or merged")
    writers.add_driver(obj, compat.modifier_input_path(modifier, "Collapse"), "collapse",
                       {"collapse": ("OBJECT", obj, COLLAPSE_PATH)})
    return obj


def _write_picture_colours(mesh, export: NetworkExport, layer_plan) -> None:
    """The input as a picture: one linear RGBA colour attribute per sample
    (core/picture.py's display mapping), which the layer nodes pick by ``Sample``."""
    colours = layer_plan.picture_colours(export.epochs[-1].activations[layer_plan.layer.name])
    rgba = np.ones((*colours.shape[:2], 4), np.float32)
    rgba[..., :3] = colours
    for sample in range(export.num_samples):
        writers.write_attribute(mesh, picture_nodes.picture_colour_attribute_name(sample),
                                "FLOAT_COLOR", "POINT", rgba[sample])


def _drive_inputs(obj, modifier, root, drivers: dict[str, str]) -> None:
    for key, input_name in drivers.items():
        writers.add_driver(obj, compat.modifier_input_path(modifier, input_name), "var",
                        {"var": ("OBJECT", root, f'["{key}"]')})


def drive_shown(obj: bpy.types.Object, root: bpy.types.Object) -> None:
    """The (sample, epoch, step) a layer's or connection's material shows follow the root's
    controls (simple drivers on the object's ``nnvis_shown``: no geometry is re-evaluated)."""
    obj[atlas_nodes.SHOWN_PROPERTY] = (0.0, 0.0, 0.0)
    for key, index in SHOWN_DRIVERS.items():
        writers.add_driver(obj, f'["{atlas_nodes.SHOWN_PROPERTY}"]', "var",
                           {"var": ("OBJECT", root, f'["{key}"]')}, index=index)


def _drive_layer(obj, root, previous, spacing_factor: float, block_owner=None,
                 direction: float = 1.0) -> None:
    """Layer controls follow the root; the layer sits one spacing after the previous column
    (represented by its first layer) towards its row's ``direction`` (+X, or -X in the
    returning rows of a folded network: core/rows.py), less when that layer is collapsed, and
    none at all while the layer is hidden in its collapsed block (``block_owner`` holds the
    block's control) or starts a row (``spacing_factor`` 0: right under the row above's end)."""
    _drive_inputs(obj, obj.modifiers[MODIFIER_NAME], root, LAYER_DRIVERS)
    if previous is None:
        return
    collapse_path = COLLAPSE_PATH
    variables = {"previous": ("OBJECT", previous, "location[0]"),
                 "spacing": ("OBJECT", root, f'["{controls.LAYER_SPACING}"]'),
                 "collapse": ("OBJECT", previous, collapse_path)}
    sign = "-" if direction < 0 else "+"
    expression = f"previous {sign} spacing * {spacing_factor:g} * (1 - {COLLAPSED_GAP:g} * collapse)"
    if block_owner is not None:
        variables["block"] = ("OBJECT", block_owner, blocks.CONTROL_PATH)
        expression += " * (1 - block)"
    writers.add_driver(obj, "location", expression, variables, index=0)


def set_control(root: bpy.types.Object, key: str, value) -> None:
    """Set a network control (``nnvis_epoch``, ``nnvis_sample``, ...) from a script.

    Assigning the custom property alone does not tag the drivers that read it; this does.
    """
    if key not in controls.CONTROLS_BY_KEY or key not in root.keys():
        raise KeyError(f"{root.name!r} has no network control {key!r} "
                       f"({sorted(controls.CONTROLS_BY_KEY)})")
    network.require_editable(root)
    root[key] = value
    root.update_tag()
    for obj in network.owned_objects(root):
        obj.update_tag()


# Per-layer controls: modifier inputs of the layer objects (keyframable where they are), but
# Collapse: a custom property of the layer that drives its input. The next layer's place reads
# it, and a driver that read a modifier input would run on every frame (it depends on the whole
# object, whose shown epoch changes every frame), moving the layers and re-evaluating every
# connection that ends at them.
LAYER_CONTROLS = ("Collapse", "Collapse Summary", "Grid Layout", "Grid Columns", "Channel Gap",
                  "Cell Gap")
COLLAPSE_PATH = f'["{names.LAYER_COLLAPSE}"]'


def layer_control_path(layer: bpy.types.Object, name: str) -> str:
    """The data path of a layer control on the layer object (to keyframe or draw it)."""
    if name not in LAYER_CONTROLS:
        raise KeyError(f"no layer control {name!r} ({LAYER_CONTROLS})")
    if name == "Collapse":
        return COLLAPSE_PATH
    return compat.modifier_input_path(compat.nodes_modifier(layer, MODIFIER_NAME), name)


def set_layer_control(layer: bpy.types.Object, name: str, value) -> None:
    """Set a layer's control (see LAYER_CONTROLS) and update what follows it."""
    layer_control_path(layer, name)  # a known control
    if name == "Collapse":
        layer[names.LAYER_COLLAPSE] = float(value)
        modifier = compat.nodes_modifier(layer, MODIFIER_NAME)
        compat.set_modifier_input(modifier, name, float(value))  # until its driver runs
    else:
        compat.set_modifier_input(compat.nodes_modifier(layer, MODIFIER_NAME), name, value)
    layer.update_tag()
    root = network_of(layer)
    for obj in (network.owned_objects(root) if root is not None else ()):
        obj.update_tag()  # following layers (collapse) and connections read this layer


def set_layer_visible(layer: bpy.types.Object, visible: bool) -> None:
    """Show or hide a layer in the viewport and in renders; its label and connections follow
    (the labels are placed again for the network's camera when a layer shows)."""
    layer.hide_viewport = not visible
    layer.hide_render = not visible
    root = network_of(layer)
    if visible and root is not None:
        scene = bpy.context.scene
        assert scene is not None  # Blender always has a current scene
        staging.aim_labels(root, scene)
