"""The input as a picture in Blender (issue 11, item 5): the input layer is one map whose cells
carry the shown sample's pixel colours, the material shows them, and a render shows the photo.
Real bpy, the installed extension, real Cycles."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_utils import (
    configure_test_render,
    evaluated_curves,
    evaluated_instances,
    install_extension,
    installed_module,
)
from export_factory import photo_export, sample_photos
from PIL import Image

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.picture import display_colours

H, W = 24, 36  # the photo export's input


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    install_extension(tmp_path_factory)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return photo_export(tmp_path_factory.mktemp("photo"), height=H, width=W).path


@pytest.fixture
def empty(installed):
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


def import_file(path, **options) -> bpy.types.Object:
    known = {obj.as_pointer() for obj in bpy.data.objects}
    assert bpy.ops.import_scene.nnvis(filepath=str(path), **options) == {"FINISHED"}
    root, = [o for o in bpy.data.objects if o.as_pointer() not in known and o.get("nnvis_network")]
    return root


def layers(root):
    return installed_module("nnvis_addon.blender.scene").network_layers(root)


def set_control(root, key, value):
    installed_module("nnvis_addon.blender.scene").set_control(root, key, value)


def modifier_input(obj, name):
    return installed_module("nnvis_addon.blender.compat").get_modifier_input(
        obj.modifiers["NNVis Layer"], name)


def shown_colours(obj) -> tuple[np.ndarray, np.ndarray]:
    """(cells, 3) ``picture_colour`` and (cells,) ``picture`` of the evaluated cells."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
    cloud = geometry.instances_pointcloud()
    count = len(cloud.points)
    colours = np.zeros(count * 4, np.float32)
    cloud.attributes["picture_colour"].data.foreach_get("color", colours)
    flags = np.zeros(count, np.float32)
    cloud.attributes["picture"].data.foreach_get("value", flags)
    return colours.reshape(count, 4)[:, :3], flags


def to_srgb(linear):
    linear = np.asarray(linear, np.float64)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def test_example_input_is_one_grey_map_of_the_shown_sample(empty, example_export):
    export = read_export(example_export)
    root = import_file(example_export)
    inp, *others = layers(root)
    assert inp["nnvis_layer_type"] == "InputLayer" and modifier_input(inp, "Picture")
    assert modifier_input(inp, "Channels") == 1
    for sample in (0, 2, 3):
        set_control(root, "nnvis_sample", sample)
        colours, flags = shown_colours(inp)
        pixels = np.asarray(export.samples[sample].input)[None]   # (1, 16, 16, 1)
        np.testing.assert_allclose(colours, display_colours(pixels).reshape(-1, 3), atol=1e-6)
        assert np.all(flags == 1.0)
        assert np.array_equal(colours[:, 0], colours[:, 1]), "a 1-channel input is grey"
        assert np.array_equal(colours[:, 1], colours[:, 2])
    for obj in others:
        _, flags = shown_colours(obj)
        assert np.all(flags == 0.0), obj.name


def test_photo_input_carries_the_photos_colours_per_sample(empty, photo):
    root = import_file(photo)
    inp = layers(root)[0]
    assert modifier_input(inp, "Channels") == 1 and len(inp.data.vertices) == H * W
    photos = np.stack(sample_photos(H, W))
    for sample in (0, 1, 0):
        set_control(root, "nnvis_sample", sample)
        colours, flags = shown_colours(inp)
        np.testing.assert_allclose(colours, display_colours(photos[sample:sample + 1])
                                   .reshape(-1, 3), atol=1e-6)
        assert np.all(flags == 1.0)
        # What a viewer sees (sRGB) follows the photo, channel by channel.
        seen = to_srgb(colours)
        for channel in range(3):
            assert np.corrcoef(seen[:, channel],
                               photos[sample, ..., channel].ravel())[0, 1] > 0.97
    # The connections into the first convolution start at the one map's centre.
    link = next(o for o in installed_module("nnvis_addon.blender.connections")
                .network_connections(root) if o.name.endswith("input->conv"))
    installed_module("nnvis_addon.blender.compat").set_modifier_input(
        link.modifiers["NNVis Connections"], "As Tubes", False)  # curves to read, not tubes
    link.update_tag()
    curves = evaluated_curves(link)
    assert curves["count"] == 4  # one per filter, merged over the three colour channels
    positions, _ = evaluated_instances(inp)
    centre = np.array(inp.matrix_world) @ np.append(positions.mean(axis=0), 1.0)
    world = np.array(link.matrix_world)
    starts = curves["first_point"] @ world[:3, :3].T + world[:3, 3]
    np.testing.assert_allclose(starts, np.broadcast_to(centre[:3], starts.shape), atol=1e-4)


def test_input_as_picture_off_draws_one_map_per_channel(empty, photo):
    root = import_file(photo, input_as_picture=False)
    inp = layers(root)[0]
    assert not modifier_input(inp, "Picture") and modifier_input(inp, "Channels") == 3
    assert len(inp.data.vertices) == H * W * 3
    assert not any(a.name.startswith("nnvis_rgb_") for a in inp.data.attributes)
    _, flags = shown_colours(inp)
    assert np.all(flags == 0.0)


def rendered_cells(scene, obj, path) -> np.ndarray:
    """(cells, 3) sRGB pixels of a render at the projected centres of ``obj``'s cells."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector
    bpy.ops.render.render(write_still=True)
    image = np.asarray(Image.open(path).convert("RGB"), np.float64) / 255.0
    positions, _ = evaluated_instances(obj)
    matrix = obj.matrix_world
    view = np.array([world_to_camera_view(scene, scene.camera, matrix @ Vector(p))
                     for p in positions])
    height, width = image.shape[:2]
    cols = np.clip((view[:, 0] * width).astype(int), 0, width - 1)
    rows = np.clip(((1.0 - view[:, 1]) * height).astype(int), 0, height - 1)
    assert np.all((view[:, :2] > 0) & (view[:, :2] < 1)), "the input is out of the frame"
    return image[rows, cols]


def test_render_shows_the_photo_where_the_input_is(empty, photo, tmp_path):
    """Cycles, the network's camera, view transform Standard: at the input's cells the render
    shows each photo (connections hidden: this measures the picture, not what crosses it)."""
    root = import_file(photo)
    for obj in installed_module("nnvis_addon.blender.connections").network_connections(root):
        obj.hide_render = True
    inp = layers(root)[0]
    path = tmp_path / "photo.png"
    configure_test_render(empty, 480, 270, 16, path=path)
    photos = np.stack(sample_photos(H, W)).reshape(2, -1, 3) / 255.0
    expected = [to_srgb(display_colours(photos[s].reshape(1, H, W, 3))).reshape(-1, 3)
                for s in range(2)]
    for sample in (0, 1):
        set_control(root, "nnvis_sample", sample)
        seen = rendered_cells(empty, inp, path)
        other = 1 - sample
        for channel in range(3):
            match = np.corrcoef(seen[:, channel], expected[sample][:, channel])[0, 1]
            assert match > 0.8, (sample, channel, match)
            assert match > np.corrcoef(seen[:, channel], expected[other][:, channel])[0, 1] + 0.3
        # Red against blue regions, and the mean colour, as in the photo.
        assert np.corrcoef(seen[:, 0] - seen[:, 2],
                           expected[sample][:, 0] - expected[sample][:, 2])[0, 1] > 0.8
        np.testing.assert_allclose(seen.mean(axis=0), expected[sample].mean(axis=0), atol=0.08)
