"""Helpers for tests that run the real bpy: install the built zip, read evaluated geometry, render
and compare images with a tolerance."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np

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
    return positions, attributes


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
