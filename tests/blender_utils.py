"""Helpers for tests that run the real bpy: install the built zip, read evaluated geometry, render
and compare images with a tolerance."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

ROOT = Path(__file__).resolve().parents[1]
EXTENSION_MODULE = "bl_ext.user_default.nnvis"


def build_zip(output_dir: Path) -> Path:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_extension.py"),
                             "--output-dir", str(output_dir)],
                            capture_output=True, text=True, check=True)
    return Path(result.stdout.strip().splitlines()[-1])


def install_zip(zip_path: Path) -> None:
    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}, result
    assert EXTENSION_MODULE in sys.modules


def install_extension(tmp_path_factory) -> Path:
    """Build the zip, install and enable it, and save the preferences so that
    ``read_homefile`` keeps it enabled; returns the zip."""
    zip_path = build_zip(tmp_path_factory.mktemp("dist"))
    install_zip(zip_path)
    bpy.ops.wm.save_userpref()
    return zip_path


def installed_module(name: str):
    """A module of the installed extension (the script API users call)."""
    return importlib.import_module(f"{EXTENSION_MODULE}.{name}")


def installed_scene_module():
    return installed_module("nnvis_addon.blender.scene")


def evaluated_instances(obj) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Instance positions (object space) and float instance attributes of an evaluated object."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
    cloud = geometry.instances_pointcloud()
    if cloud is None:
        return np.zeros((0, 3), np.float32), {}
    count = len(cloud.points)
    # bpy 5.0.1 leaves the instance cloud's "position" uninitialised: read the transforms.
    matrices = np.zeros(count * 16, np.float32)
    cloud.attributes["instance_transform"].data.foreach_get("value", matrices)
    positions = matrices.reshape(count, 4, 4)[:, 3, :3].copy()  # column-major: translation column
    attributes = {}
    for attribute in cloud.attributes:
        if attribute.data_type == "FLOAT" and attribute.domain == "POINT":
            values = np.zeros(count, np.float32)
            attribute.data.foreach_get("value", values)
            attributes[attribute.name] = values
    return positions, {**attributes, **_shown(obj, attributes, "Cell Material", "shown_cells"),
                       **_shown(obj, attributes, "Cell Material", "shown_overlay")}


def evaluated_cell_centres(obj) -> np.ndarray:
    """Every cell's centre (object space) of an evaluated layer, drawn or not: the bare vertices
    the layer group outputs beside its tiles (where connections end)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
    mesh = geometry.mesh
    positions = np.zeros(len(mesh.vertices) * 3, np.float32)
    mesh.attributes["position"].data.foreach_get("vector", positions)
    return positions.reshape(-1, 3)


def _shown(obj, attributes, material_input: str, function: str) -> dict:
    """What the object's material shows (the add-on's numpy twin of its shader): a layer's
    activations, a connection's weights at the shown sample and epoch."""
    modifier = next((m for m in obj.modifiers if m.type == "NODES"), None)
    if modifier is None or modifier.node_group is None:
        return {}
    compat, value_atlas = (_addon_module(f"nnvis_addon.blender.{name}")
                           for name in ("compat", "value_atlas"))
    try:
        material = compat.get_modifier_input(modifier, material_input)
    except KeyError:
        return {}
    return getattr(value_atlas, function)(obj, attributes, material)


def _addon_module(name: str):
    """A module of the add-on that built the scene: the installed extension, else the working
    tree imported as the package ``nnvis`` (tests that call the working tree's script API)."""
    if EXTENSION_MODULE in sys.modules or "nnvis" not in sys.modules:
        return installed_module(name)
    return importlib.import_module(f"nnvis.{name}")


def configure_test_render(scene, width: int, height: int, samples: int,
                          path: Path | None = None) -> None:
    """Deterministic tiny Cycles renders: CPU, fixed seed, no denoising, standard view."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.seed = 0
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.use_compositing = False
    scene.render.use_sequencer = False
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    if path is not None:
        scene.render.filepath = str(path)


def close_up_camera(scene, obj, distance: float = 4.0) -> None:
    """The scene's camera: a new one ``distance`` in front of ``obj`` (along -X, where units
    face), aimed at the middle of its box."""
    bpy.context.view_layer.update()
    centre = sum((obj.matrix_world @ Vector(c) for c in obj.bound_box), Vector()) / 8
    camera = bpy.data.objects.new("close-up", bpy.data.cameras.new("close-up"))
    scene.collection.objects.link(camera)
    camera.location = centre + Vector((-distance, 0.0, 0.0))
    camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Z").to_euler()
    scene.camera = camera


def render_pixels(scene, path: Path) -> np.ndarray:
    """Render the scene's current frame to ``path`` and return its pixels (see load_pixels)."""
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return load_pixels(path)


def load_pixels(path: Path) -> np.ndarray:
    """(H, W, 4) float pixels of an image file, decoded by Blender."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        pixels = np.zeros(width * height * 4, np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(height, width, 4)
    finally:
        bpy.data.images.remove(image)


def save_pixels(pixels: np.ndarray, path: Path) -> None:
    height, width, _ = pixels.shape
    image = bpy.data.images.new(path.stem, width, height, alpha=True)
    try:
        image.pixels.foreach_set(np.ascontiguousarray(pixels, np.float32).reshape(-1))
        image.filepath_raw = str(path)
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)


def compare_images(received: np.ndarray, reference: np.ndarray, *, pixel_threshold: float = 8 / 255,
                   max_bad_fraction: float = 0.01) -> tuple[bool, float, np.ndarray]:
    """(ok, fraction of pixels off by more than the threshold, diff image)."""
    if received.shape != reference.shape:
        return False, 1.0, np.zeros_like(reference)
    difference = np.abs(received[..., :3] - reference[..., :3]).max(axis=2)
    bad = float(np.mean(difference > pixel_threshold))
    diff_image = np.zeros_like(reference)
    diff_image[..., 0] = np.clip(difference * 8, 0, 1)
    diff_image[..., 3] = 1.0
    return bad <= max_bad_fraction, bad, diff_image


def evaluated_curves(obj) -> dict:
    """Evaluated hair curves of an object: points (count, P, 3), per-curve float attributes,
    first/last points and the radius at each curve's first point."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
    curves = geometry.curves  # valid while ``geometry`` lives
    count = len(curves.curves) if curves is not None else 0
    result = {"count": count}
    if not count:
        return result
    total = len(curves.points)
    positions = np.zeros(total * 3, np.float32)
    curves.attributes["position"].data.foreach_get("vector", positions)
    points = positions.reshape(count, total // count, 3)
    result.update(points=points, first_point=points[:, 0], last_point=points[:, -1])
    for attribute in curves.attributes:
        if attribute.data_type == "FLOAT" and attribute.domain == "CURVE":
            values = np.zeros(count, np.float32)
            attribute.data.foreach_get("value", values)
            result[attribute.name] = values
    radius = np.zeros(total, np.float32)
    curves.attributes["radius"].data.foreach_get("value", radius)
    result["radius_per_curve"] = radius.reshape(count, -1)[:, 0]
    result.update(_shown(obj, result, "Material", "shown_edges"))
    return result


def all_data() -> dict[str, frozenset]:
    """Every data-block in the file by collection (names and pointers): stricter than counts."""
    result = {}
    for attr in dir(bpy.data):
        value = getattr(bpy.data, attr, None)
        if isinstance(value, bpy.types.bpy_prop_collection) and attr not in (
                "window_managers", "workspaces", "screens"):
            result[attr] = frozenset((block.name, block.as_pointer()) for block in value)
    return result


def difference(before: dict, after: dict) -> dict:
    return {key: {"new": sorted(n for n, _ in after[key] - before[key]),
                  "gone": sorted(n for n, _ in before[key] - after[key])}
            for key in before if before[key] != after[key]}


ID_LEVELS = 16  # object index -> colour: three base-16 digits, one per channel (4095 objects)


def id_map(scene, objects, width: int, height: int, path: Path) -> np.ndarray:
    """(H, W) int array: which of ``objects`` (1-based, 0 = none) each pixel's camera ray hits
    first, from a 1-sample Cycles render where every object emits its index as a colour (a
    material override on the view layer, world black, raw view). Only ``objects`` render; the
    scene's settings are restored afterwards; visibility drivers (labels and connections follow
their layers) are muted meanwhile, so the other objects really stay out."""
    hidden = {obj.name: obj.hide_render for obj in scene.objects}
    muted = [fcurve for obj in scene.objects if obj.animation_data
             for fcurve in obj.animation_data.drivers
             if fcurve.data_path == "hide_render" and not fcurve.mute]
    saved = (scene.world, scene.view_layers[0].material_override, scene.view_settings.view_transform,
             scene.cycles.samples, scene.cycles.filter_width)
    material = bpy.data.materials.new("nnvis test id")
    if material.node_tree is None:  # 4.2-4.5: node trees are made on request; 5.0: always
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    info = tree.nodes.new("ShaderNodeObjectInfo")
    combine = tree.nodes.new("ShaderNodeCombineColor")
    for channel, divisor in enumerate((1, ID_LEVELS, ID_LEVELS * ID_LEVELS)):
        divide = tree.nodes.new("ShaderNodeMath")
        divide.operation = "DIVIDE"
        divide.inputs[1].default_value = divisor
        tree.links.new(info.outputs["Object Index"], divide.inputs[0])
        floor = tree.nodes.new("ShaderNodeMath")
        floor.operation = "FLOOR"
        tree.links.new(divide.outputs[0], floor.inputs[0])
        digit = tree.nodes.new("ShaderNodeMath")
        digit.operation = "MODULO"
        digit.inputs[1].default_value = ID_LEVELS
        tree.links.new(floor.outputs[0], digit.inputs[0])
        scale = tree.nodes.new("ShaderNodeMath")
        scale.operation = "DIVIDE"
        scale.inputs[1].default_value = ID_LEVELS - 1
        tree.links.new(digit.outputs[0], scale.inputs[0])
        tree.links.new(scale.outputs[0], combine.inputs[channel])
    emission = tree.nodes.new("ShaderNodeEmission")
    tree.links.new(combine.outputs[0], emission.inputs["Color"])
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(emission.outputs[0], output.inputs["Surface"])
    world = bpy.data.worlds.new("nnvis test black")
    world.color = (0.0, 0.0, 0.0)  # a new world has no nodes: its colour is the background
    try:
        keep = {obj.name for obj in objects}
        for fcurve in muted:
            fcurve.mute = True
        for obj in scene.objects:
            obj.hide_render = hidden[obj.name] or obj.name not in keep
        for index, obj in enumerate(objects, start=1):
            obj.pass_index = index
        scene.view_layers[0].material_override = material
        scene.world = world
        configure_test_render(scene, width, height, samples=1, path=path)
        scene.cycles.filter_width = 0.01
        scene.view_settings.view_transform = "Raw"
        bpy.ops.render.render(write_still=True)
        pixels = load_pixels(path)[::-1, :, :3]  # top row first
        digits = np.rint(pixels * (ID_LEVELS - 1)).astype(np.int64)
        return digits[..., 0] + ID_LEVELS * digits[..., 1] + ID_LEVELS * ID_LEVELS * digits[..., 2]
    finally:
        for fcurve in muted:
            fcurve.mute = False
        for obj in scene.objects:
            obj.hide_render = hidden[obj.name]
        (scene.world, scene.view_layers[0].material_override, scene.view_settings.view_transform,
         scene.cycles.samples, scene.cycles.filter_width) = saved
        bpy.data.materials.remove(material)
        bpy.data.worlds.remove(world)


STARTUP_OBJECTS = ("Cube", "Camera", "Light")


def read_startup_scene():
    """Blender's default startup scene (Cube, Camera, Light), as a user has it when they press
    File > Import; ``read_factory_settings`` would unregister the installed extension."""
    bpy.ops.wm.read_homefile(use_empty=False)
    scene = bpy.context.scene
    assert {obj.name for obj in scene.objects} == set(STARTUP_OBJECTS), "not the startup scene"
    return scene


def import_file(path, **options) -> bpy.types.Object:
    """File > Import (the operator, with ``options``); the new network's root."""
    import warnings

    known = {obj.as_pointer() for obj in bpy.data.objects}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bpy.ops.import_scene.nnvis(filepath=str(path), **options) == {"FINISHED"}
    roots = [obj for obj in bpy.data.objects
             if obj.as_pointer() not in known and obj.get("nnvis_network")]
    assert len(roots) == 1
    return roots[0]


def assert_shown(actual, expected, obj, err_msg: str = "", rtol: float = 1e-6) -> None:
    """``actual`` (what a layer's or connection's material shows) equals ``expected`` (the
    recorded values) to within the 16-bit quantisation of the value atlas (core/atlas.py):
    half a step of the object's stream, NaN/Inf shown as 0."""
    value_atlas = installed_module("nnvis_addon.blender.value_atlas")
    prefix = "nnvis_cells" if "nnvis_cells_place" in obj else "nnvis_edges"
    expected = np.where(np.isfinite(expected), expected, 0.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=value_atlas.tolerance(obj, prefix), err_msg=err_msg)
