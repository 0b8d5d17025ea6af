"""A close-up of one operation (core/operation.py computes it): the input patch, the kernel, the
products and the result of one Conv2D, pooling or Dense cell, stepping along its row.

Above the chosen unit, one static mesh object holds the patch, kernel and products as grids of
quads and the three results (the step's part, the pre-activation, the exported output) as a
column; its "NNVis Operation" material reads each quad's value of the shown step from an atlas
of its own (one block a step, core/atlas.py), so nothing but one number changes with the step:
the object's ``nnvis_shown`` epoch slot, keyframed with CONSTANT interpolation, one key a step.
A yellow window on the input unit frames the cells a step reads and one on the unit the cell it
writes, moved by location keyframes. Captions are static text. Everything is keyframes: a saved
file plays and renders without nnvis. The objects are the network's (``names.PART_OPERATION``):
Remove Network removes them; a new close-up replaces the old one.
"""

from __future__ import annotations

from typing import cast

import bpy
import numpy as np
from mathutils import Matrix

from ...geometry_nodes import atlas_nodes, materials
from ..core import atlas, atlas_images, controls, names
from ..core.export_format import read_export
from ..core.folding import find_folds
from ..core.layout import CellGrid, cell_centres
from ..core.operation import Operation, captions, close_up, operation
from . import compat, labels, lifecycle, network, value_atlas, writers

# The close-up lies in its unit's plane (right is -Y, up +Z) and faces -X, as the maps do.
FACING = Matrix(((0.0, 0.0, -1.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0))).to_euler()
CLOSE_UP_CELLS = 3.0    # a close-up cell is this many of its unit's cells
CLOSE_UP_LIFT = 9.0     # unit cells between the unit's top and the close-up, at least
LABEL_CLEARANCE = 1.5   # unit cells between the unit's label and the close-up
WINDOW_LINE = 0.12      # the window frame's thickness, in cells
WINDOW_OFFSET = 0.05    # how far the window floats in front of the cells, in cells


def _modifier_value(obj: bpy.types.Object, name: str):
    return compat.get_modifier_input(compat.nodes_modifier(obj, names.LAYER_MODIFIER), name)


def _cell_size(obj: bpy.types.Object) -> float:
    return float(_modifier_value(obj, "Cell Size")) * float(_modifier_value(obj, "Cell Scale"))


def _centres(obj: bpy.types.Object) -> np.ndarray:
    """Layer-local centres of a unit's drawn cells (Keras flatten order), maps spread out."""
    grid = CellGrid(int(_modifier_value(obj, "Map Height")), int(_modifier_value(obj, "Map Width")),
                    int(_modifier_value(obj, "Channels")))
    return cell_centres(grid, grid_layout=_modifier_value(obj, "Grid Layout"),
                        cell_size=_cell_size(obj), channel_gap=_modifier_value(obj, "Channel Gap"),
                        requested_columns=_modifier_value(obj, "Grid Columns"))


def _map_origin(obj: bpy.types.Object, channel: int) -> np.ndarray:
    """Layer-local centre of the drawn cell (0, 0) of ``channel``'s map."""
    return _centres(obj)[min(channel, int(_modifier_value(obj, "Channels")) - 1)]


def cell_places(obj: bpy.types.Object, cells: np.ndarray, channel: int) -> np.ndarray:
    """Layer-local positions of (fractional) cells (N, 2: row, col) of a unit's ``channel``,
    where its drawn grid has them (a downsampled map's drawn cell covers stride x stride; a
    picture draws every channel as one)."""
    stride = int(obj.get(names.DISPLAY_STRIDE, 1))
    picture = bool(_modifier_value(obj, "Picture"))
    origin = _map_origin(obj, 0 if picture else channel)
    drawn = (np.asarray(cells, np.float64) - (stride - 1) / 2) / stride
    cell = _cell_size(obj)
    return origin + np.stack([np.full(len(drawn), -WINDOW_OFFSET * cell),
                              -drawn[:, 1] * cell, -drawn[:, 0] * cell], axis=1)


def _unit_objects(root: bpy.types.Object, export) -> tuple[dict, dict]:
    """{unit: layer object} and {export layer: the unit that shows its output}."""
    objects = {str(obj.get(names.LAYER_MARKER)): obj for obj in network.network_layers(root)}
    options = dict(root.get(names.IMPORT_OPTIONS) or {})
    if bool(options.get("fold", True)):
        folds = find_folds(export.layers, frozenset(options.get("unfold") or ()))
        showing = {fold.shown: fold.unit for fold in folds}
    else:
        showing = {layer.name: layer.name for layer in export.layers}
    return objects, showing


def _mesh_object(name: str, vertices, faces, material) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(np.asarray(vertices).tolist(), [], np.asarray(faces).tolist())
    mesh.materials.append(material)
    return bpy.data.objects.new(name, mesh)


def _frame_quads(height: float, width: float, line: float) -> tuple[np.ndarray, np.ndarray]:
    """Four bars framing a height x width rectangle centred on the origin, in the YZ plane."""
    h, w, t = height / 2, width / 2, line
    bars = [(-w - t, w + t, h, h + t), (-w - t, w + t, -h - t, -h),
            (-w - t, -w, -h, h), (w, w + t, -h, h)]  # (y0, y1, z0, z1)
    vertices = [(0.0, y, z) for y0, y1, z0, z1 in bars
                for y, z in ((y0, z0), (y1, z0), (y1, z1), (y0, z1))]
    return np.asarray(vertices), np.arange(16).reshape(4, 4)


def _hold(obj: bpy.types.ID, path: str, components: range) -> None:
    """Hold every key of ``path``'s ``components`` until the next (CONSTANT interpolation)."""
    for component in components:
        fcurve = compat.find_fcurve(obj, path, component)
        for point in fcurve.keyframe_points:
            point.interpolation = "CONSTANT"


def _key_locations(obj: bpy.types.Object, frames: list[int], places: np.ndarray) -> None:
    for frame, place in zip(frames, places):
        obj.location = tuple(float(v) for v in place)
        obj.keyframe_insert("location", frame=frame)
    _hold(obj, "location", range(3))


def _key_steps(obj: bpy.types.Object, frames: list[int]) -> None:
    """The close-up shows step k from ``frames[k]`` on: its shown epoch slot is k there."""
    path = f'["{atlas_nodes.SHOWN_PROPERTY}"]'
    for step, frame in enumerate(frames):
        obj[atlas_nodes.SHOWN_PROPERTY][1] = float(step)
        obj.keyframe_insert(path, index=1, frame=frame)
    _hold(obj, path, range(1, 2))


def _window(name: str, unit: bpy.types.Object, places: np.ndarray, span: tuple[float, float],
            frames: list[int]) -> bpy.types.Object:
    """A yellow frame around ``span`` (rows, cols) cells of ``unit``, at ``places`` a step."""
    stride, cell = int(unit.get(names.DISPLAY_STRIDE, 1)), _cell_size(unit)
    height, width = (max(s / stride, 1.0) * cell for s in span)
    vertices, faces = _frame_quads(height, width, WINDOW_LINE * cell)
    frame = _mesh_object(name, vertices, faces, materials.ensure_window_material())
    frame.parent = unit
    _key_locations(frame, frames, places)
    _follow_visibility(frame, unit)
    return frame


def _follow_visibility(obj: bpy.types.Object, unit: bpy.types.Object) -> None:
    for flag in names.VISIBILITY_FLAGS:  # hidden with the unit
        writers.add_driver(obj, flag, "var", {"var": ("OBJECT", unit, flag)})


def _operation_atlas(name: str, op: Operation) -> value_atlas.Atlases:
    values = op.step_values()
    stream = atlas.Stream(materials.OPERATION_STREAM, values.shape[1], op.steps)

    def blocks():
        for step in range(op.steps):
            yield step, {stream.key: values[step]}

    return value_atlas.build_atlases(name, [atlas_images.StreamGroup([stream], blocks)])


def _close_up_object(name: str, op: Operation, unit: bpy.types.Object,
                     values: value_atlas.Atlases) -> bpy.types.Object:
    """The close-up's quads above ``unit``, reading ``values`` at the shown step."""
    cell = _cell_size(unit)
    top = float(_centres(unit)[:, 2].max()) + cell / 2
    bottom = top + CLOSE_UP_LIFT * cell
    label_top = labels.top_over(unit)  # a label sized for the camera may reach higher
    if label_top is not None:
        bottom = max(bottom, label_top + LABEL_CLEARANCE * cell)
    layout = close_up(op, CLOSE_UP_CELLS * cell, bottom)
    place = values.places[materials.OPERATION_STREAM]
    material = materials.new_operation_material(f"{materials.OPERATION_MATERIAL} {name}",
                                                values.images[place.atlas],
                                                values.heights[place.atlas])
    obj = _mesh_object(name, layout.vertices, layout.faces, material)
    writers.write_attribute(obj.data, materials.SLOT_ATTRIBUTE, "FLOAT", "POINT", layout.slot)
    writers.write_attribute(obj.data, materials.VALUE_SCALE_ATTRIBUTE, "FLOAT", "POINT",
                            layout.scale)
    values.set_properties(obj, materials.OPERATION_STREAM, materials.OPERATION_STREAM)
    obj[atlas_nodes.RECORDED_PROPERTY] = (1.0, float(op.steps), 0.0)
    obj[atlas_nodes.SHOWN_PROPERTY] = (0.0, float(op.chosen_step), 1.0)  # steps, not blended
    obj[names.OPERATION_MARKER] = {
        "layer": op.layer, "channel": op.channel, "row": int(op.cells[op.chosen_step][0]),
        "col": int(op.cells[op.chosen_step][1]), "sample": op.sample,
        "epoch_index": op.epoch_index, "input_channel": op.input_channel, "kind": op.kind}
    obj.parent = unit
    obj["nnvis_captions"] = layout.captions.reshape(-1).tolist()
    return obj


def _captions(name: str, op: Operation, close: bpy.types.Object, cell: float) -> list:
    made = []
    places = np.asarray(close["nnvis_captions"], np.float64).reshape(-1, 3)
    for index, (body, place) in enumerate(zip(captions(op), places)):
        text = cast(bpy.types.TextCurve, bpy.data.curves.new(f"{name} caption {index}", "FONT"))
        text.body = body
        text.size, text.align_x, text.align_y = 1.2 * cell, "CENTER", "BOTTOM"
        text.materials.append(materials.ensure_label_material())
        label = bpy.data.objects.new(text.name, text)
        label.location = tuple(float(v) for v in place)
        label.rotation_euler = FACING
        label.parent = close.parent
        label[names.OPERATION_MARKER] = f"caption {index}"
        made.append(label)
    del close["nnvis_captions"]
    return made


def clear_operation(root: bpy.types.Object) -> None:
    """Remove the network's close-up (its objects, atlas and material)."""
    network.require_editable(root)
    objects = network.listed_parts(root, names.PART_OPERATION)
    network.record_list(root, names.PART_OPERATION, [])
    lifecycle.remove_objects(objects)


def show_operation(root: bpy.types.Object, unit: str, *, channel: int, row: int = 0,
                   col: int = 0, sample: int | None = None, epoch_index: int | None = None,
                   input_channel: int | None = None, frame_start: int | None = None,
                   frames_per_step: int = 6) -> Operation:
    """Show output cell (``row``, ``col``, ``channel``) of ``unit`` (a Conv2D, pooling or Dense
    layer's unit; a neuron ``channel`` of a Dense one) computed step by step for the shown
    sample and epoch (or the given ones): one step every ``frames_per_step`` frames from
    ``frame_start`` (the current frame). Replaces an earlier close-up."""
    network.require_editable(network.require_whole(root))
    if frames_per_step < 1:
        raise ValueError(f"frames_per_step must be at least 1, got {frames_per_step}")
    export = read_export(root[names.SOURCE_PATH], check_finite=False)
    if sample is None:
        sample = int(round(float(root[controls.SAMPLE])))
    if epoch_index is None:
        epoch_index = int(round(float(root[controls.EPOCH])))
    epoch_index = min(max(epoch_index, 0), len(export.epochs) - 1)
    objects, showing = _unit_objects(root, export)
    if unit not in objects:
        raise ValueError(f"the network draws no unit {unit!r}")
    op = operation(export, unit, channel=channel, row=row, col=col, sample=sample,
                   epoch_index=epoch_index, input_channel=input_channel)
    clear_operation(root)
    scene = bpy.context.scene
    start = scene.frame_current if frame_start is None else int(frame_start)
    frames = [start + step * int(frames_per_step) for step in range(op.steps)]
    made = _build(root, export.name, op, objects[unit], objects.get(showing.get(op.source, "")),
                  frames)
    network.record_list(root, names.PART_OPERATION, made)
    collection = network.network_collection(root) or scene.collection
    for obj in made:
        collection.objects.link(obj)
    scene.frame_set(scene.frame_current)
    return op


def _build(root, name: str, op: Operation, unit: bpy.types.Object,
           source: bpy.types.Object | None, frames: list[int]) -> list[bpy.types.Object]:
    values = _operation_atlas(f"{name} operation", op)
    close = _close_up_object(f"{name} operation", op, unit, values)
    _key_steps(close, frames)
    _follow_visibility(close, unit)
    made = [close, *_captions(f"{name} operation", op, close, _cell_size(unit))]
    for label in made[1:]:
        _follow_visibility(label, unit)
    made.append(_window(f"{name} operation output", unit,
                        cell_places(unit, op.cells.astype(np.float64), op.channel), (1, 1),
                        frames))
    if source is not None and op.reads is not None:
        made.append(_window(f"{name} operation input", source,
                            cell_places(source, op.reads, op.input_channel), op.span, frames))
    for obj in made:
        obj[names.OPERATION_MARKER] = obj.get(names.OPERATION_MARKER, "window")
    return made


def operation_objects(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The network's close-up objects (the close-up first), if it has one."""
    return network.listed_parts(root, names.PART_OPERATION)
