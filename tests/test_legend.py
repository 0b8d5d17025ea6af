"""The colour legend (issue 11, item 7): an on-screen colour bar in the lower-right corner of the
network's camera, with its value range and normalisation mode, switched by the root's
``nnvis_normalize_globally`` through a driver; owned by the network, removed with it, and
farm-safe. Real bpy, the installed extension."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import bpy
import numpy as np
import pytest
from blender_utils import evaluated_instances, install_extension, installed_module
from test_farm_safe import fresh_environment

from nnvis_addon.core.legend import format_value, legend_texts


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    install_extension(tmp_path_factory)


@pytest.fixture
def startup(installed):
    bpy.ops.wm.read_homefile(use_empty=False)  # Cube, Camera, Light: what a user has
    return bpy.context.scene


def api(name: str):
    return installed_module(f"nnvis_addon.blender.{name}")


def import_file(path, **options) -> bpy.types.Object:
    known = {obj.as_pointer() for obj in bpy.data.objects}
    assert bpy.ops.import_scene.nnvis(filepath=str(path), **options) == {"FINISHED"}
    root, = [o for o in bpy.data.objects if o.as_pointer() not in known and o.get("nnvis_network")]
    return root


def shown_text(legend) -> dict[str, int]:
    """What the evaluated legend shows: the ``nnvis_legend_*`` attributes of its text mesh."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(legend.evaluated_get(depsgraph))
    mesh = geometry.mesh
    assert mesh is not None and len(mesh.vertices), "the legend draws no text"
    shown = {}
    for attribute in mesh.attributes:
        if attribute.name.startswith("nnvis_legend"):
            values = np.zeros(len(mesh.vertices), np.int32)
            attribute.data.foreach_get("value", values)
            assert np.all(values == values[0])
            shown[attribute.name[len("nnvis_legend_"):]] = int(values[0])
    return shown


def legend_points(legend) -> np.ndarray:
    """World-space corners of the legend's evaluated bounding box (its text) and of every
    colour-bar tile (instances are not in an object's bounding box)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = legend.evaluated_get(depsgraph)
    matrix = np.array(evaluated.matrix_world)
    box = np.array([tuple(corner) for corner in evaluated.bound_box])
    tiles, _ = evaluated_instances(legend)
    modifier = legend.modifiers["NNVis Colour Legend"]
    compat = installed_module("nnvis_addon.blender.compat")
    half_w = compat.get_modifier_input(modifier, "Width") / compat.get_modifier_input(
        modifier, "Steps") / 2
    half_h = compat.get_modifier_input(modifier, "Bar Height") / 2
    corners = np.concatenate([tiles + (dx, dy, 0.0) for dx in (-half_w, half_w)
                              for dy in (-half_h, half_h)])
    local = np.concatenate([box, corners])
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def in_view(scene, camera, points) -> np.ndarray:
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector
    return np.array([tuple(world_to_camera_view(scene, camera, Vector(p))) for p in points])


def test_format_value_writes_three_significant_digits():
    cases = {0.0: "0", 26.375: "26.4", -0.53214: "-0.532", 1234.5: "1230", 1.0: "1",
             0.000123456: "0.000123", -7.0: "-7", 1e-30: "0." + "0" * 29 + "1"}
    for value, text in cases.items():
        assert format_value(value) == text, value
    texts = legend_texts(-0.5, 26.375)
    assert texts["global"].title == "activation, global: -0.5..26.4"
    assert (texts["global"].low, texts["global"].high) == ("-0.5", "26.4")
    assert texts["layer"].title == "activation, per layer: each layer's own range"


def test_legend_is_owned_and_in_the_lower_right_of_the_frame(startup, example_export):
    root = import_file(example_export)
    legend = api("legend").find_legend(root)
    camera = api("network").network_camera(root)
    assert legend is not None and legend.get("nnvis_legend")
    assert any(obj == legend for obj in api("network").owned_objects(root))
    assert api("network").network_of(legend) == root
    assert legend.parent == camera and startup.camera == camera
    assert legend.name in root.users_collection[0].objects
    for width, height in ((1920, 1080), (960, 540), (540, 960), (800, 800)):
        startup.render.resolution_x, startup.render.resolution_y = width, height
        legend.update_tag()
        view = in_view(startup, camera, legend_points(legend))
        assert np.all(view[:, :2] > 0.0) and np.all(view[:, :2] < 1.0), (width, height)
        assert np.all(view[:, 2] > camera.data.clip_start)
        # lower right: its right edge near the frame's right, its top below the middle
        assert view[:, 0].max() > 0.9 and view[:, 1].max() < 0.5, (width, height)
        if width > height:  # and in a landscape frame it keeps clear of the lower left,
            assert view[:, 0].min() > 0.5, (width, height)  # where the epoch counter goes
    # The colour bar runs from the map's start (left) to its end (right).
    tiles, attributes = evaluated_instances(legend)
    order = np.argsort(in_view(startup, camera, tiles @ np.array(legend.matrix_world)[:3, :3].T
                               + np.array(legend.matrix_world)[:3, 3])[:, 0])
    norm = attributes["nnvis_legend_norm"][order]
    assert norm[0] == 0.0 and norm[-1] == 1.0 and np.all(np.diff(norm) > 0)
    modifier = legend.modifiers["NNVis Colour Legend"]
    compat = installed_module("nnvis_addon.blender.compat")
    bar = compat.get_modifier_input(modifier, "Bar Material")
    cells = compat.get_modifier_input(
        installed_module("nnvis_addon.blender.network").network_layers(root)[1].modifiers[
            "NNVis Layer"], "Cell Material")
    # The bar shows the cells' own colours: the same viridis ramp and glow, node for node.
    ramps = [[(e.position, tuple(e.color)) for n in m.node_tree.nodes
              if n.bl_idname == "ShaderNodeValToRGB" and len(n.color_ramp.elements) == 9
              for e in n.color_ramp.elements] for m in (bar, cells)]
    assert bar.name == "NNVis Legend" and ramps[0] == ramps[1] and len(ramps[0]) == 9


def test_legend_shows_the_range_and_follows_the_normalisation_control(startup, example_export):
    root = import_file(example_export)
    legend = api("legend").find_legend(root)
    low, high = root["nnvis_global_range"]
    texts = legend_texts(low, high)
    compat = installed_module("nnvis_addon.blender.compat")
    modifier = legend.modifiers["NNVis Colour Legend"]
    assert compat.get_modifier_input(modifier, "Global Title") == \
        f"activation, global: {format_value(low)}..{format_value(high)}"
    assert compat.get_modifier_input(modifier, "Global High") == format_value(high)
    # The example's range: 0 .. the largest activation of any layer but the input picture.
    assert format_value(low) == "0" and float(format_value(high)) > 1.0

    shown = shown_text(legend)
    assert shown["global"] == 0
    assert shown["title_chars"] == len(texts["layer"].title)
    assert (shown["low_chars"], shown["high_chars"]) == (len("layer min"), len("layer max"))
    api("scene").set_control(root, "nnvis_normalize_globally", True)
    shown = shown_text(legend)
    assert shown["global"] == 1
    assert shown["title_chars"] == len(texts["global"].title)
    assert (shown["low_chars"], shown["high_chars"]) == (len(format_value(low)),
                                                         len(format_value(high)))
    api("scene").set_control(root, "nnvis_normalize_globally", False)
    assert shown_text(legend)["global"] == 0
    drivers = legend.animation_data.drivers
    assert all(f.driver.is_valid and f.driver.is_simple_expression for f in drivers)


def test_remove_network_removes_the_legend(startup, example_export):
    root = import_file(example_export)
    legend_name = api("legend").find_legend(root).name
    bpy.context.view_layer.objects.active = bpy.data.objects[legend_name]
    assert bpy.ops.nnvis.remove_network() == {"FINISHED"}  # picking the legend picks its network
    assert legend_name not in bpy.data.objects
    assert legend_name not in bpy.data.meshes
    assert "NNVis Colour Legend" not in bpy.data.node_groups
    assert {o.name for o in startup.objects} == {"Cube", "Camera", "Light"}


def test_no_legend_without_staging(startup, example_export):
    root = import_file(example_export, stage=False)
    assert api("legend").find_legend(root) is None


# Opens the saved file with no nnvis anywhere and flips the root's control.
FRESH_TOGGLE = textwrap.dedent("""
    import json, sys
    import bpy, numpy as np
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False
    bpy.ops.wm.open_mainfile(filepath=sys.argv[1], load_ui=False)
    assert not [n for n in sys.modules if {"nnvis", "nnvis_addon"} & set(n.split("."))]
    root = next(o for o in bpy.data.objects if o.get("nnvis_network"))
    legend = next(o for o in bpy.data.objects if o.get("nnvis_legend"))
    shown = []
    for value in (False, True):
        root["nnvis_normalize_globally"] = value
        root.update_tag()
        legend.update_tag()
        depsgraph = bpy.context.evaluated_depsgraph_get()
        geometry = bpy.types.GeometrySet.from_evaluated_object(legend.evaluated_get(depsgraph))
        mesh = geometry.mesh  # valid while ``geometry`` lives
        values = np.zeros(len(mesh.vertices), np.int32)
        mesh.attributes["nnvis_legend_title_chars"].data.foreach_get("value", values)
        shown.append(int(values[0]))
    print("RESULT " + json.dumps(shown))
""")


def test_saved_legend_is_farm_safe(startup, example_export, tmp_path):
    root = import_file(example_export)
    assert api("playback").farm_safety_problems() == []
    blend = tmp_path / "legend.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    result = subprocess.run([sys.executable, "-c", FRESH_TOGGLE, str(blend)],
                            env=fresh_environment(tmp_path), cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = json.loads(next(line for line in result.stdout.splitlines()
                            if line.startswith("RESULT "))[len("RESULT "):])
    texts = legend_texts(*root["nnvis_global_range"])
    assert shown == [len(texts["layer"].title), len(texts["global"].title)]
