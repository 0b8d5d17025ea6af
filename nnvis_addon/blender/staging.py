"""A network on the user's stage: its place in the scene, its camera, light and world.

* :func:`place_network` moves a new network beside whatever visible objects and networks the
  scene already holds (never moving theirs);
* :func:`stage_network` adds the network's camera (framed on this network only) with the
  colour legend in its frame (blender/legend.py), key light and the dark "NNVis World", and
  makes the camera the scene's camera when asked;
* :func:`take_scene_camera` / :func:`give_back_scene_camera` keep the scene's camera history, so
  removing a network gives the scene back the camera it had;
* :func:`frame_network` re-aims a network's camera on its current layout;
* the camera is framed on the units and their labels together, and the labels are sized, placed
  and turned for it (``blender/labels.py``, ``core/labels.py``): at import, on Frame Network,
  and by :func:`aim_labels` when a layer shows again.
"""

from __future__ import annotations

import math
from typing import cast

import bpy
import numpy as np
from mathutils import Vector

from ..core import names
from ..core.labels import CameraPose, box_corners
from ..core.layout import NetworkPlan, label_height, layer_corners
from ..core.placement import Box, View, camera_lens, place_beside
from . import compat, connections, labels, legend, network

VIEW_DIRECTION = (-0.55, -0.76, 0.36)  # from the network towards the camera: front-left, above
CAMERA_LENS = 50.0
# Objects whose bounds a new network keeps clear of (cameras, lights and empties have none).
SOLID_TYPES = frozenset({"MESH", "CURVE", "CURVES", "SURFACE", "META", "FONT", "VOLUME",
                         "POINTCLOUD", "GPENCIL", "GREASEPENCIL", "LATTICE", "ARMATURE"})


SENSOR_WIDTH = 36.0  # mm: Blender's default sensor, which nnvis cameras keep


def lens_angle(lens: float) -> float:
    """The field of view across the sensor's width of a ``lens`` mm lens."""
    return 2 * math.atan(SENSOR_WIDTH / 2 / lens)


def network_lens(plan: NetworkPlan) -> float:
    """The lens a network's camera gets (longer for long networks), from its plan."""
    return camera_lens(layer_corners(plan, label_height(plan.options.cell_size)))


def camera_view(scene: bpy.types.Scene, fov_wide: float | None = None) -> View:
    """The view of a camera whose wider side spans ``fov_wide`` (sensor fit AUTO; default: a
    ``CAMERA_LENS`` lens on Blender's 36 mm sensor) at the scene's aspect ratio."""
    aspect = scene.render.resolution_x / max(1, scene.render.resolution_y)
    if fov_wide is None:
        fov_wide = lens_angle(CAMERA_LENS)
    if aspect >= 1:
        return View(VIEW_DIRECTION, fov_wide, 2 * math.atan(math.tan(fov_wide / 2) / aspect))
    return View(VIEW_DIRECTION, 2 * math.atan(math.tan(fov_wide / 2) * aspect), fov_wide)


# -- where the network goes ---------------------------------------------------------------------


def _world_box(obj) -> Box:
    """An object's world box from its bounds as last evaluated: no new evaluation of the scene
    (which would build the new network's every node tree just to place it)."""
    matrix = np.array(obj.matrix_world)
    corners = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64)
    points = corners @ matrix[:3, :3].T + matrix[:3, 3]
    return points.min(axis=0), points.max(axis=0)


def unit_boxes(root: bpy.types.Object) -> tuple[list[bpy.types.Object], np.ndarray]:
    """The layer objects of the network's drawn units and their world boxes ((n, 2, 3): lowest
    and highest corner of their cells, grown by half a cell), as laid out now. Instanced cells
    are not in an object's bounding box, so this uses the layout maths (and the transform
    properties, current even before the depsgraph ran: see ``labels.world_matrix``)."""
    matrix = np.array(labels.world_matrix(root))
    layers, boxes = [], []
    for layer in network.network_layers(root):
        if not labels.unit_drawn(layer):
            continue
        modifier = compat.nodes_modifier(layer, names.LAYER_MODIFIER)
        half = 0.5 * compat.get_modifier_input(modifier, "Cell Size") * \
            compat.get_modifier_input(modifier, "Cell Scale")
        cells = connections.layer_cell_positions(layer)
        corners = box_corners([[cells.min(axis=0) - half, cells.max(axis=0) + half]])
        world = corners @ matrix[:3, :3].T + matrix[:3, 3]
        layers.append(layer)
        boxes.append([world.min(axis=0), world.max(axis=0)])
    return layers, np.asarray(boxes, np.float64).reshape(-1, 2, 3)


def network_points(root: bpy.types.Object) -> np.ndarray:
    """World-space corners of everything the network renders: units and shown labels."""
    return np.concatenate([box_corners(unit_boxes(root)[1]), labels.label_points(root)])


def occupied_boxes(scene: bpy.types.Scene, new_root: bpy.types.Object | None = None) -> list[Box]:
    """Boxes of what a new network must not overlap: visible solid objects that belong to no
    network, and every network already in the scene except ``new_root``'s."""
    roots = network.iter_networks(scene)
    # What the networks own, found once: asking network_of for every object is quadratic.
    owned = {obj.as_pointer() for root in roots for obj in network.owned_objects(root)}
    boxes = []
    for obj in scene.objects:
        if obj.type not in SOLID_TYPES or obj.as_pointer() in owned:
            continue
        if obj.hide_render and obj.hide_viewport:
            continue
        boxes.append(_world_box(obj))
    for root in roots:
        if root == new_root:
            continue
        points = network_points(root)
        if len(points):
            boxes.append((points.min(axis=0), points.max(axis=0)))
    return boxes


def place_network(root: bpy.types.Object, plan: NetworkPlan, scene: bpy.types.Scene) -> None:
    """Move the new network (its root) beside what the scene already holds."""
    points = layer_corners(plan, label_height(plan.options.cell_size))
    view = camera_view(scene, lens_angle(network_lens(plan)))
    root.location = Vector(place_beside(points, occupied_boxes(scene, root), view).tolist())


# -- camera, light, world -----------------------------------------------------------------------


def _put_camera(camera, location, forward, points: np.ndarray) -> None:
    camera.location = Vector(location)
    camera.rotation_euler = Vector(forward).to_track_quat("-Z", "Y").to_euler()
    camera.data.clip_start = 0.05
    camera.data.clip_end = max(200.0, float(np.linalg.norm(location - points.mean(axis=0))) * 4)


def frame_camera_and_labels(root: bpy.types.Object, scene: bpy.types.Scene,
                            camera: bpy.types.Object | None = None, evaluate: bool = True) -> None:
    """Frame the network's camera on its units and labels together, and size, place and turn
    the labels for it. Without a camera, the labels face the camera staging would make.
    ``evaluate`` False: the layers are where their drivers would put them (a new import, whose
    plan placed them), so the scene is not evaluated (every modifier of a big network) here."""
    if evaluate:
        bpy.context.evaluated_depsgraph_get()  # run the drivers that place the layers
    layers, units = unit_boxes(root)
    if not len(units):
        return
    if camera is not None:
        camera.data.sensor_fit = "AUTO"
    view = camera_view(scene, camera.data.angle if camera is not None else None)
    pose = labels.frame_and_aim(root, layers, units, view)
    if camera is not None:
        _put_camera(camera, pose.location, pose.forward, box_corners(units))


def camera_pose(camera: bpy.types.Object, scene: bpy.types.Scene) -> CameraPose:
    """Where a camera object is and what it sees (sensor fit AUTO at the scene's aspect)."""
    matrix = np.array(camera.matrix_world)
    view = camera_view(scene, camera.data.angle)
    return CameraPose(matrix[:3, 3].copy(), -matrix[:3, 2], matrix[:3, 0], matrix[:3, 1],
                      view.fov_x, view.fov_y)


def aim_labels(root: bpy.types.Object, scene: bpy.types.Scene) -> None:
    """Place the network's labels again for its camera where it is now (after a layer shows
    again); without a camera, for the one staging would make."""
    camera = network.network_camera(root)
    if camera is None:
        frame_camera_and_labels(root, scene)
        return
    bpy.context.evaluated_depsgraph_get()  # run the drivers that place the layers and camera
    labels.aim_at(root, *unit_boxes(root), camera_pose(camera, scene))


def stage_network(root: bpy.types.Object, plan: NetworkPlan, scene: bpy.types.Scene,
                  use_network_camera: bool = True, evaluate: bool = True) -> bpy.types.Object:
    """Add the network's camera (framed on it), key light and world; return the camera.
    ``evaluate``: see :func:`frame_camera_and_labels`."""
    collection = network.network_collection(root)
    name = network.display_name(root)
    camera = bpy.data.objects.new(f"{name} camera", bpy.data.cameras.new(f"{name} camera"))
    camera.data.lens = network_lens(plan)
    collection.objects.link(camera)
    camera[names.CAMERA_MARKER] = 1
    network.record_part(root, names.PART_CAMERA, camera)
    frame_camera_and_labels(root, scene, camera, evaluate)
    if use_network_camera or scene.camera is None:
        take_scene_camera(scene, camera)
    legend.ensure_legend(root, camera, scene)

    light_data = cast(bpy.types.SunLight, bpy.data.lights.new(f"{name} key light", "SUN"))
    light_data.energy = 2.0
    light_data.angle = math.radians(8)
    light = bpy.data.objects.new(f"{name} key light", light_data)
    light.rotation_euler = (math.radians(50), math.radians(10), math.radians(-35))
    collection.objects.link(light)
    network.record_part(root, names.PART_LIGHT, light)
    _use_network_world(scene)
    return camera


def _use_network_world(scene: bpy.types.Scene) -> None:
    if scene.world is not None and scene.world.get(names.WORLD_MARKER):
        return
    world = bpy.data.worlds.new("NNVis World")
    world[names.WORLD_MARKER] = 1
    if scene.world is not None:
        # An ID property holds a user: the scene's own world survives saving, and Remove
        # Network gives it back.
        world[names.REPLACED_WORLD] = scene.world
    compat.enable_nodes(world)
    background = world.node_tree.nodes.get("Background")
    background.inputs["Color"].default_value = (0.008, 0.010, 0.016, 1.0)
    background.inputs["Strength"].default_value = 1.0
    scene.world = world


def give_back_world(scene: bpy.types.Scene) -> None:
    """A scene with no network left gets back the world the NNVis World replaced."""
    world = scene.world
    if world is None or not world.get(names.WORLD_MARKER) or network.iter_networks(scene):
        return
    replaced = world.get(names.REPLACED_WORLD)
    scene.world = replaced if isinstance(replaced, bpy.types.World) else None


# -- the scene's camera -------------------------------------------------------------------------


def _camera_history(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return [obj for obj in (scene.get(names.SCENE_CAMERA_HISTORY) or ()) if obj is not None]


def _set_camera_history(scene: bpy.types.Scene, cameras: list[bpy.types.Object]) -> None:
    if cameras:
        scene[names.SCENE_CAMERA_HISTORY] = cameras
    elif names.SCENE_CAMERA_HISTORY in scene.keys():
        del scene[names.SCENE_CAMERA_HISTORY]


def take_scene_camera(scene: bpy.types.Scene, camera: bpy.types.Object) -> None:
    """Make ``camera`` the scene's camera, remembering the one it replaces."""
    if scene.camera == camera:
        return
    if scene.camera is not None:
        _set_camera_history(scene, [*_camera_history(scene), scene.camera])
    scene.camera = camera


def give_back_scene_camera(scene: bpy.types.Scene, leaving: list[bpy.types.Object]) -> None:
    """Before ``leaving`` objects are removed: if the scene's camera is one of them, go back to
    the latest earlier camera that stays in the scene (else another network's, else none)."""
    gone = {obj.as_pointer() for obj in leaving}
    history = [cam for cam in _camera_history(scene) if cam.as_pointer() not in gone]
    if scene.camera is not None and scene.camera.as_pointer() in gone:
        in_scene = [cam for cam in history
                    if cam.type == "CAMERA" and scene.objects.get(cam.name) == cam]
        others = [network.network_camera(root) for root in network.iter_networks(scene)]
        others = [cam for cam in others if cam is not None and cam.as_pointer() not in gone]
        replacement = in_scene[-1] if in_scene else (others[0] if others else None)
        if replacement is not None and replacement in history:
            history = history[:len(history) - 1 - history[::-1].index(replacement)]
        scene.camera = replacement
    _set_camera_history(scene, history)


def frame_network(root: bpy.types.Object, scene: bpy.types.Scene | None = None) -> bpy.types.Object:
    """Re-frame the network's camera on its current layout (spacing, layouts, collapse) and its
    labels, place the labels again for it, and make it the scene's camera (Remove Network gives
    the earlier one back)."""
    scene = scene or bpy.context.scene
    assert scene is not None  # Blender always has a current scene
    network.require_whole(root)
    camera = network.network_camera(root)
    if camera is None:
        raise network.NetworkError(f"network {network.display_name(root)!r} has no camera of "
                                   "its own (imported without Camera and Lights)")
    frame_camera_and_labels(root, scene, camera)
    take_scene_camera(scene, camera)
    return camera
