"""A network of 1,000 layers in Blender (real bpy): it imports folded into rows, its drivers keep
the serpentine, the links between rows turn outwards, its camera frames all of it, and Remove
Network takes exactly what it made. Structure, not timing (scripts/bench_layers.py times it)."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_utils import all_data, difference, installed_module, installed_scene_module
from bpy_extras.object_utils import world_to_camera_view
from export_factory import dense_layers, make_export
from mathutils import Vector

LAYERS = 1000


@pytest.fixture(scope="module")
def chain_export(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("chain"), name="chain",
                       layers=dense_layers(4, [4] * (LAYERS - 1)), samples=1, epochs=2).path


@pytest.fixture(scope="module")
def imported(installed, chain_export):
    bpy.ops.wm.read_homefile(use_empty=True)
    for group in list(bpy.data.node_groups):
        bpy.data.node_groups.remove(group)
    before = all_data()
    scene_api = installed_scene_module()
    root = scene_api.import_network(chain_export)
    placed = {obj.name: tuple(obj.location) for obj in scene_api.network_layers(root)}
    bpy.context.evaluated_depsgraph_get()  # the drivers run
    return {"root": root, "before": before, "placed": placed, "scene": scene_api}


def test_the_layers_fold_into_rows_that_their_drivers_keep(imported):
    layers = imported["scene"].network_layers(imported["root"])
    assert len(layers) == LAYERS
    heights = sorted({round(obj.location.z, 4) for obj in layers}, reverse=True)
    assert len(heights) >= 10, "a long chain is folded into rows"
    for obj in layers:  # the location drivers give what the plan placed
        assert tuple(obj.location) == pytest.approx(imported["placed"][obj.name], abs=1e-4)
    xs = np.array([obj.location.x for obj in layers])
    assert np.ptp(xs) < 0.1 * 3.0 * LAYERS, "rows, not a line of a thousand spacings"
    rows = np.array([heights.index(round(obj.location.z, 4)) for obj in layers])
    assert np.all(np.diff(rows) >= 0)
    steps = np.diff(xs)[np.diff(rows) == 0]
    turns = np.flatnonzero(np.diff(rows))
    assert np.all(steps != 0) and len(turns) == len(heights) - 1
    for turn in turns:  # the next row starts under the row's end, running back
        assert xs[turn + 1] == pytest.approx(xs[turn])
        before, after = xs[turn] - xs[turn - 1], xs[turn + 2] - xs[turn + 1]
        assert np.sign(before) == -np.sign(after)


def test_links_between_rows_turn_outwards(imported):
    connections = installed_module("nnvis_addon.blender.connections")
    compat = installed_module("nnvis_addon.blender.compat")
    objects = connections.network_connections(imported["root"])
    turns = [obj for obj in objects if obj.get("nnvis_turn_bulge") is not None]
    rows = len({round(obj.location.z, 4) for obj in imported["scene"].network_layers(
        imported["root"])})
    assert len(objects) == LAYERS - 1 and len(turns) == rows - 1
    for obj in turns:
        source = compat.get_modifier_input(obj.modifiers[connections.MODIFIER_NAME], "Source")
        points = np.zeros(len(obj.data.points) * 3, np.float32)
        obj.data.attributes["position"].data.foreach_get("vector", points)
        reach = (points.reshape(-1, 3)[:, 0] - source.location.x) * np.sign(obj["nnvis_turn_bulge"])
        assert reach.max() > 0.5 * abs(obj["nnvis_turn_bulge"]), obj.name


def test_the_camera_frames_the_folded_network(imported):
    network = installed_module("nnvis_addon.blender.network")
    root, scene = imported["root"], bpy.context.scene
    camera = network.network_camera(root)
    assert scene.camera == camera
    for obj in imported["scene"].network_layers(root):
        view = world_to_camera_view(scene, camera, obj.matrix_world @ Vector((0, 0, 0)))
        assert 0 < view.x < 1 and 0 < view.y < 1 and view.z > 0, obj.name
    shown = [label for label in network.network_labels(root) if not label.hide_render]
    assert shown, "some labels are placed"


def test_remove_takes_exactly_what_the_import_made(imported):
    lifecycle = installed_module("nnvis_addon.blender.lifecycle")
    lifecycle.remove_network(imported["root"])
    assert difference(imported["before"], all_data()) == {}
