"""Unit labels: one camera-facing text object per labelled unit of a network.

Each label is a text (FONT) object of its own, made once at import: Blender's built-in font,
size 1, centred, material "NNVis Label", the text of the unit's plan (``core/layout.py``
``layer_label``: "conv1 + BN + ReLU" and its type and shape). Nothing about it depends on the
epoch or the sample, so playback never rebuilds it; it renders on any Blender without nnvis,
and a user can edit its text (Tab in the viewport). It is parented to its layer object, so it
moves with the layer (layer spacing, collapse, blocks), and a simple-expression driver keeps it
on the layer's top as the layer's layout controls (Grid Layout, Grid Columns, Channel Gap, the
network's Cell Size) change its height.

Its size, rotation (the camera's, so it lies parallel to the image plane), lift above the unit
and whether nnvis found room for it come from ``core/labels.py`` for the network's camera: at
import, on Frame Network (:func:`frame_and_aim`) and when a layer shows again (:func:`aim_at`).
It shows while its layer shows, nnvis has a place for it (``nnvis_label_unplaced`` 0) and the
user wants it (``nnvis_show_label``, the panel's "Show Label"): simple-expression drivers on its
visibility flags, so it hides with its layer (hidden by hand or in a collapsed block) in the
viewport, in renders and on a render farm.
"""

from __future__ import annotations

from typing import cast

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ...geometry_nodes import materials
from ..core import controls, names
from ..core import labels as core_labels
from ..core.layout import NetworkPlan
from ..core.placement import View
from . import compat, network, writers

# Layer inputs the label's height follows (with the network's Cell Size), by driver variable.
TOP_INPUTS = {"grid": "Grid Layout", "columns": "Grid Columns", "gap": "Channel Gap"}
# Capital height of a font at size 1, measured on an "H" once per session.
_cap_heights: dict[str, float] = {}


def build_labels(root: bpy.types.Object, plan: NetworkPlan, layer_objects: dict,
                 collection: bpy.types.Collection) -> list[bpy.types.Object]:
    """A label object for every unit whose plan shows a label, in layer order; they are sized,
    placed and turned later, by :func:`frame_and_aim`."""
    material = materials.ensure_label_material()
    made = []
    for layer_plan in plan.layers:
        if not layer_plan.show_label:
            continue
        layer = layer_objects[layer_plan.layer.name]
        text = _text_curve(f"{layer.name} label", layer_plan.label)
        text.materials.append(material)
        label = bpy.data.objects.new(text.name, text)
        collection.objects.link(label)
        label.parent = layer
        label[names.LABEL_MARKER] = layer_plan.layer.name
        label[names.LABEL_OF] = layer
        label[names.LABEL_SHOWN] = True
        label[names.LABEL_UNPLACED] = 1  # until frame_and_aim places it
        label[names.LABEL_LIFT] = 0.0
        _drive_height(label, layer, root)
        _drive_visibility(label, layer)
        made.append(label)
    return made


def _text_curve(name: str, body: str) -> bpy.types.TextCurve:
    text = cast(bpy.types.TextCurve, bpy.data.curves.new(name, "FONT"))
    text.body = body
    text.size = 1.0
    text.align_x = "CENTER"
    text.align_y = "BOTTOM"
    return text


def labelled_layer(label: bpy.types.Object) -> bpy.types.Object | None:
    layer = label.get(names.LABEL_OF)
    return layer if isinstance(layer, bpy.types.Object) else None


def label_of(layer: bpy.types.Object) -> bpy.types.Object | None:
    """The label object of a layer object, or None (hidden in its plan, or deleted)."""
    root = network.network_of(layer)
    labels = network.network_labels(root) if root is not None else []
    return next((label for label in labels if labelled_layer(label) == layer), None)


# -- measuring ------------------------------------------------------------------------------


def top_over(layer: bpy.types.Object) -> float | None:
    """How high the layer's label reaches in the layer's own space (its text's highest corner,
    as placed, sized and turned), or None when no label of it is shown."""
    label = label_of(layer)
    if label is None or label.hide_render or label.parent != layer:
        return None
    x0, x1, y0, y1 = text_box(label)
    to_layer = label.matrix_parent_inverse @ label.matrix_basis
    return max((to_layer @ Vector((x, y, 0.0))).z for x in (x0, x1) for y in (y0, y1))



def text_box(obj: bpy.types.Object) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of a text object's text at its own size (Blender's own tessellation of
    it; no depsgraph needed, so hidden labels measure too and the user's scene is not
    evaluated)."""
    mesh = obj.to_mesh()
    try:
        points = np.zeros(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", points)
    finally:
        obj.to_mesh_clear()
    points = points.reshape(-1, 3)
    if not len(points):
        return (0.0, 0.0, 0.0, 0.0)
    lo, hi = points.min(axis=0), points.max(axis=0)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def cap_height(font: bpy.types.VectorFont | None) -> float:
    """Height of a capital "H" of ``font`` at size 1, measured once per session on a
    temporary text object."""
    key = font.name if font is not None else ""
    if key not in _cap_heights:
        text = _text_curve("nnvis cap height", "H")
        if font is not None:
            text.font = font
        probe = bpy.data.objects.new(text.name, text)
        try:
            box = text_box(probe)
            _cap_heights[key] = box[3] - box[2]
        finally:
            bpy.data.objects.remove(probe)
            bpy.data.curves.remove(text)
    return _cap_heights[key]


# -- where each label goes ------------------------------------------------------------------


def world_matrix(obj: bpy.types.Object) -> Matrix:
    """The object's world matrix from its parents' and its own transform properties (current
    even before the depsgraph has run the drivers of a move just made)."""
    own = obj.matrix_basis.copy()
    if obj.parent is None:
        return own
    return world_matrix(obj.parent) @ obj.matrix_parent_inverse @ own


def unit_drawn(layer: bpy.types.Object) -> bool:
    """Whether a layer object's unit is drawn: not hidden in renders, not shrunk away in its
    collapsed block."""
    if layer.hide_render:
        return False
    try:
        modifier = compat.nodes_modifier(layer, names.LAYER_MODIFIER)
        return float(compat.get_modifier_input(modifier, "Hidden")) <= 0.5
    except (KeyError, AttributeError):  # no modifier or no such input: a unit of no block
        return True


def _layer_top(layer: bpy.types.Object) -> float:
    """The layer's top above its origin, in its own space, as its geometry nodes draw it."""
    modifier = layer.modifiers[names.LAYER_MODIFIER]

    def value(name):
        return compat.get_modifier_input(modifier, name)

    return core_labels.layer_top(
        value("Map Height"), value("Channels"), value("Cell Scale"), cell_size=value("Cell Size"),
        grid_layout=value("Grid Layout"), requested_columns=value("Grid Columns"),
        channel_gap=value("Channel Gap"))


def _drive_height(label, layer, root) -> None:
    """The label's height over its layer: the layer's top, whatever its layout, plus its own
    lift (``nnvis_label_lift``, which placing it sets: the driver itself never changes)."""
    modifier = layer.modifiers[names.LAYER_MODIFIER]
    variables = {"cell_size": ("OBJECT", root, f'["{controls.CELL_SIZE}"]'),
                 "lift": ("OBJECT", label, f'["{names.LABEL_LIFT}"]')}
    variables.update({variable: ("OBJECT", layer, compat.modifier_input_path(modifier, name))
                      for variable, name in TOP_INPUTS.items()})
    expression = core_labels.layer_top_expression(
        *(compat.get_modifier_input(modifier, name)
          for name in ("Map Height", "Channels", "Cell Scale")))
    writers.add_driver(label, "location", expression, variables, index=2)


def _drive_visibility(label, layer) -> None:
    """Hidden in the viewport and in renders while its layer is, while nnvis has no place for
    it, or while the user switched it off."""
    variables = {"placeless": ("OBJECT", label, f'["{names.LABEL_UNPLACED}"]'),
                 "wanted": ("OBJECT", label, f'["{names.LABEL_SHOWN}"]')}
    for flag in names.VISIBILITY_FLAGS:
        writers.add_driver(label, flag, "max(layer, placeless, 1 - wanted)",
                           {"layer": ("OBJECT", layer, flag), **variables})


def _set_placed(label: bpy.types.Object, placed: bool) -> None:
    label[names.LABEL_UNPLACED] = int(not placed)
    layer = labelled_layer(label)
    for flag in names.VISIBILITY_FLAGS:  # what the driver computes, at once
        hidden = bool(getattr(layer, flag) or not placed or not label.get(names.LABEL_SHOWN, True))
        if getattr(label, flag) != hidden:  # a change of visibility rebuilds the depsgraph
            setattr(label, flag, hidden)
    label.update_tag(refresh={"OBJECT"})  # its flags and transform, not its text


def _candidates(root: bpy.types.Object, drawn: dict) -> list[bpy.types.Object]:
    """Labels nnvis may place: switched on by the user, of a unit that is ``drawn`` (layer
    object -> its index among the units); the others of hidden units are left unplaced (they
    show again once placed)."""
    chosen = []
    for label in network.network_labels(root):
        if not label.get(names.LABEL_SHOWN, True):
            continue  # the user's choice
        if labelled_layer(label) not in drawn:
            _set_placed(label, False)
            continue
        chosen.append(label)
    return chosen


def _candidate_layer(label: bpy.types.Object) -> bpy.types.Object:
    """The layer of a label :func:`_candidates` chose (a drawn unit's, so never None)."""
    layer = labelled_layer(label)
    assert layer is not None
    return layer


def _apply(label, placement: core_labels.LabelPlacement, camera: core_labels.CameraPose) -> None:
    _set_placed(label, placement.shown)
    if not placement.shown:
        return
    layer = _candidate_layer(label)
    parent = world_matrix(layer) @ label.matrix_parent_inverse
    local = parent.inverted() @ Vector(placement.origin.tolist())
    label.location.x, label.location.y = local.x, local.y
    label[names.LABEL_LIFT] = local.z - _layer_top(layer)
    label.location.z = local.z
    turn = parent.to_quaternion().inverted() @ Matrix(camera.rotation().tolist()).to_quaternion()
    label.rotation_mode = "XYZ"
    label.rotation_euler = turn.to_euler()
    label.scale = [placement.size / max(s, 1e-12) for s in parent.to_scale()]


def _specs(root: bpy.types.Object, layers: list[bpy.types.Object]):
    """(labels, their specs, the font's capital height) of the labels nnvis may show, for the
    drawn units of ``layers`` (in the order of their boxes)."""
    drawn = {layer: index for index, layer in enumerate(layers)}
    labels, specs = [], []
    for label in _candidates(root, drawn):
        box = text_box(label)  # measured each time: the user may have edited the text
        if box[1] > box[0]:
            labels.append(label)
            specs.append(core_labels.LabelSpec(drawn[_candidate_layer(label)], box))
    font = labels[0].data.font if labels else None
    height = cap_height(font) if labels else 1.0
    return labels, specs, height


def frame_and_aim(root: bpy.types.Object, layers: list[bpy.types.Object], units: np.ndarray,
                  view: View) -> core_labels.CameraPose:
    """The camera pose that frames the network's drawn units (``layers`` and their world boxes
    ``units``, (n, 2, 3)) and its labels seen along ``view``; the labels sized, placed, turned
    and shown or hidden for it."""
    labels, specs, height = _specs(root, layers)
    camera, placements = core_labels.frame_with_labels(
        units, specs, view.direction, view.fov_x, view.fov_y, height)
    for label, placement in zip(labels, placements):
        _apply(label, placement, camera)
    return camera


def aim_at(root: bpy.types.Object, layers: list[bpy.types.Object], units: np.ndarray,
           camera: core_labels.CameraPose) -> None:
    """Size, place, turn and show or hide the network's labels for a camera that stays put."""
    labels, specs, height = _specs(root, layers)
    for label, placement in zip(labels, core_labels.place_labels(specs, units, camera, height)):
        _apply(label, placement, camera)


def label_points(root: bpy.types.Object) -> np.ndarray:
    """World corners of the network's shown labels' text boxes, where the scene was last
    evaluated (no new evaluation: placing a new network beside this one must stay cheap)."""
    points = []
    for label in network.network_labels(root):
        if label.hide_render:
            continue
        x0, x1, y0, y1 = text_box(label)
        corners = np.array([(x, y, 0.0) for x in (x0, x1) for y in (y0, y1)])
        matrix = np.array(label.matrix_world)
        points.append(corners @ matrix[:3, :3].T + matrix[:3, 3])
    return np.concatenate(points) if points else np.zeros((0, 3))
