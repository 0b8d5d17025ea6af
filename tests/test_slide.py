"""The slide test (issue 11): real architectures imported into Blender's default startup scene,
measured as a viewer of the F12 picture would see them. ResNet50, MobileNetV2 (keras.applications,
weights=None: no downloads) and a Conv-BN-ReLU student CNN, each shown a real photograph
(sklearn's china.jpg), exported by scripts/make_zoo.py.

Measured, not eyeballed: the scene camera, overlap with the startup Cube, the number of drawn
units, the input's colours against the photo, labels' heights and overlaps through the camera at
1920x1080, units left visible in an object-ID render (Cycles, each object's pass index as its
colour), and the share of the network's pixels the connections cover.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_utils import (
    ROOT,
    configure_test_render,
    evaluated_instances,
    id_map,
    install_extension,
    installed_module,
    load_pixels,
)
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

pytestmark = pytest.mark.slow

MODELS = ("resnet50", "mobilenetv2", "conv_bn_relu")
MAX_UNITS = {"resnet50": 40, "mobilenetv2": 40, "conv_bn_relu": 40}
FULL_HD = (1920, 1080)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zoo")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_zoo.py"), "--out",
                             str(out), "--only", *MODELS], capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    install_extension(tmp_path_factory)


@pytest.fixture(params=MODELS)
def slide(request, zoo, installed):
    """The model imported as a user does: File > Import into the untouched startup scene."""
    name = request.param
    bpy.ops.wm.read_homefile(use_empty=False)
    scene = bpy.context.scene
    startup = {obj.name for obj in scene.objects}
    assert startup == {"Cube", "Camera", "Light"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bpy.ops.import_scene.nnvis(filepath=str(zoo / name / f"{name}.nnvis.json")) == \
            {"FINISHED"}
    network = installed_module("nnvis_addon.blender.api").Network.all(scene)[0]
    scene.render.resolution_x, scene.render.resolution_y = FULL_HD
    scene.render.resolution_percentage = 100
    bpy.context.view_layer.update()
    return name, scene, network, np.load(zoo / name / "photo.npy")


def drawn_units(network) -> list:
    return [obj for obj in network.layers if not obj.hide_render]


def world_cells(obj) -> np.ndarray:
    positions, _ = evaluated_instances(obj)
    matrix = np.array(obj.matrix_world)
    return positions @ matrix[:3, :3].T + matrix[:3, 3]


def test_staged_in_the_startup_scene(slide):
    name, scene, network, _ = slide
    assert scene.camera == network.camera, "F12 renders through the network's camera"
    cube = bpy.data.objects["Cube"]
    corners = np.array([cube.matrix_world @ Vector(c) for c in cube.bound_box])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    for obj in drawn_units(network):
        cells = world_cells(obj)
        inside = np.all((cells > lo) & (cells < hi), axis=1)
        assert not inside.any(), f"{obj.name} has cells inside the startup Cube"
    # The Cube is out of the picture, or at least in no unit's way (checked below by the ID map).
    assert tuple(cube.location) == (0.0, 0.0, 0.0)


def test_deep_networks_show_at_most_40_units(slide):
    name, _, network, _ = slide
    units = drawn_units(network)
    assert len(units) <= MAX_UNITS[name], [obj.name for obj in units]
    if name != "conv_bn_relu":
        assert len(network.blocks) >= 16 and len(network.layers) > len(units)


def test_the_input_shows_the_photo(slide):
    """The input's per-cell colours follow the photo's pixels (block means where the picture is
    drawn downsampled), channel by channel: rank correlation, since the display maps values."""
    _, _, network, photo = slide
    picture = network.layers[0]
    attribute = picture.data.attributes.get("nnvis_rgb_s0")
    assert attribute is not None, "the input carries its pixel colours"
    colours = np.zeros(len(attribute.data) * 4, np.float32)
    attribute.data.foreach_get("color", colours)
    colours = colours.reshape(-1, 4)[:, :3]
    cells = {}
    for name in ("row", "col"):
        values = np.zeros(len(picture.data.vertices), np.int64)
        picture.data.attributes[name].data.foreach_get("value", values)
        cells[name] = values
    rows, cols = cells["row"].max() + 1, cells["col"].max() + 1
    stride = -(-photo.shape[0] // rows)
    padded = np.full((rows * stride, cols * stride, 3), np.nan, np.float32)
    padded[:photo.shape[0], :photo.shape[1]] = photo
    blocks = np.nanmean(padded.reshape(rows, stride, cols, stride, 3), axis=(1, 3))
    expected = blocks[cells["row"], cells["col"]]
    for channel in range(3):
        ranks = [np.argsort(np.argsort(v[:, channel])) for v in (colours, expected)]
        r = np.corrcoef(*ranks)[0, 1]
        assert r > 0.95, f"channel {channel}: rank correlation {r:.3f} with the photo"


def test_labels_read_at_full_hd(slide):
    _, scene, network, _ = slide
    boxes = []
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for label in network.labels:
        if label.hide_render:
            continue
        mesh = label.evaluated_get(depsgraph).to_mesh()
        try:
            points = np.array([label.matrix_world @ v.co for v in mesh.vertices])
        finally:
            label.evaluated_get(depsgraph).to_mesh_clear()
        if not len(points):
            continue
        projected = np.array([tuple(world_to_camera_view(scene, scene.camera, Vector(p)))
                              for p in points])
        x, y = projected[:, 0] * FULL_HD[0], projected[:, 1] * FULL_HD[1]
        boxes.append((label.name, x.min(), x.max(), y.min(), y.max()))
    assert boxes, "no label shown"
    for name, _, _, y0, y1 in boxes:
        assert y1 - y0 >= 12, f"{name}: {y1 - y0:.1f} px tall"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a[2] <= b[1] or b[2] <= a[1] or a[4] <= b[3] or b[4] <= a[3]
            assert apart, f"labels {a[0]} and {b[0]} overlap"


def test_no_unit_hides_another(slide, tmp_path):
    """Object-ID render: each drawn unit keeps most of its pixels with everything else there."""
    _, scene, network, _ = slide
    units = drawn_units(network)
    everything = units + [obj for obj in scene.objects if obj.name in ("Cube",)]
    width, height = 960, 540
    ids = id_map(scene, everything, width, height, tmp_path / "ids.png")
    for index, obj in enumerate(units, start=1):
        alone = id_map(scene, [obj], width, height, tmp_path / "alone.png")
        own = int((alone == 1).sum())
        if own < 40:
            continue  # too small to judge: a few pixels of a 1-sample render
        visible = int((ids == index).sum())
        assert visible >= 0.6 * own, f"{obj.name}: {visible} of {own} pixels visible"


def test_connections_cover_little_of_the_network(slide, tmp_path):
    _, scene, network, _ = slide
    configure_test_render(scene, 240, 135, samples=4, path=tmp_path / "full.png")
    scene.view_settings.view_transform = "AgX"  # what F12 gives: the default view
    bpy.ops.render.render(write_still=True)
    full = load_pixels(tmp_path / "full.png")[..., :3]
    connections = installed_module("nnvis_addon.blender.connections")
    shown = [obj for obj in network.connections if not obj.hide_render]
    for obj in shown:
        connections.set_hidden(obj, True)  # its visibility drivers would show it again
    try:
        scene.render.filepath = str(tmp_path / "bare.png")
        bpy.ops.render.render(write_still=True)
    finally:
        for obj in shown:
            connections.set_hidden(obj, False)
    bare = load_pixels(tmp_path / "bare.png")[..., :3]
    lit = full.max(axis=2) > 0.12
    changed = np.abs(full - bare).max(axis=2) > 0.08
    cover = float((changed & lit).sum() / max(1, lit.sum()))
    assert cover <= 0.35, f"connections cover {cover:.0%} of the network's pixels"
