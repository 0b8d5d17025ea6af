"""Blocks and folding in Blender (issue 11, items 2 and 3): a deep network opens with its
blocks collapsed; a block collapses and expands through its control (animatable, farm-safe
drivers); a folded unit unfolds in place. Real bpy, the installed extension."""

from __future__ import annotations

import warnings

import bpy
import numpy as np
import pytest
from blender_utils import installed_module
from export_factory import make_export
from test_blocks import deep_resnet_layers
from test_folding import student_cnn


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("deep"), name="deep", layers=deep_resnet_layers(),
                       samples=1, epochs=2).path


def imported(Network, path, **options):
    bpy.ops.wm.read_homefile(use_empty=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.import_file(path, **options)


def instance_scales(obj) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
    cloud = geometry.instances_pointcloud()
    if cloud is None:
        return np.zeros(0)
    matrices = np.zeros(len(cloud.points) * 16, np.float32)
    cloud.attributes["instance_transform"].data.foreach_get("value", matrices)
    return np.linalg.norm(matrices.reshape(-1, 4, 4)[:, 0, :3], axis=1)


def drawn(obj) -> bool:
    scales = instance_scales(obj)
    return bool(len(scales)) and float(scales.max()) > 1e-6


def test_deep_network_opens_with_blocks_collapsed(Network, deep):
    network = imported(Network, deep)
    assert len(network.blocks) == 14 and network.blocks[0] == "stage_block1"
    shown = [obj for obj in network.layers if drawn(obj)]
    assert len(network.layers) == 46 and len(shown) <= 40
    names = [obj["nnvis_layer"] for obj in shown]
    assert names[:3] == ["input", "stem", "stage_block1_add"] and names[-1] == "out"
    xs = [obj.matrix_world.translation.x for obj in shown]
    assert xs == sorted(xs) and min(np.diff(xs)) > 0.5, "shown units one after another"
    farm = installed_module("nnvis_addon.blender.playback").farm_safety_problems()
    assert farm == [], farm


def test_a_block_expands_and_collapses_in_place(Network, deep):
    network = imported(Network, deep)
    members = [network.layer(f"stage_block3_{n}_conv") for n in (1, 2)]
    output = network.layer("stage_block3_add")
    after = network.layer("stage_block4_add")
    assert not any(drawn(obj) for obj in members)
    member_names = {obj["nnvis_layer"] for obj in members}
    inner = [c for c in network.connections
             if {c["nnvis_source_layer"], c["nnvis_target_layer"]} & member_names]
    assert inner and all(c.hide_render and c.hide_viewport for c in inner), \
        "connections into a collapsed block's hidden units hide with them"
    bypass, = [c for c in network.connections if c.get("nnvis_link_kind") == "block"
               and c["nnvis_target_layer"] == "stage_block3_add"]
    assert bypass["nnvis_source_layer"] == "stage_block2_add"
    assert not bypass.hide_render, "a collapsed block is linked from its entry to its output"
    collapsed_gap = after.matrix_world.translation.x - output.matrix_world.translation.x
    before_output = output.matrix_world.translation.x

    network.expand_block("stage_block3")
    bpy.context.view_layer.update()
    assert all(drawn(obj) for obj in members)
    assert not any(c.hide_render or c.hide_viewport for c in inner)
    assert bypass.hide_render and bypass.hide_viewport, "expanded: its own connections instead"
    xs = [obj.matrix_world.translation.x for obj in (*members, output)]
    entry = network.layer("stage_block2_add").matrix_world.translation.x
    assert xs == sorted(xs) and xs[0] > entry, "the block's units in order after its entry"
    assert output.matrix_world.translation.x > before_output + 1.0, "the block makes room"
    assert after.matrix_world.translation.x - output.matrix_world.translation.x == \
        pytest.approx(collapsed_gap), "the units after it move along"

    network.collapse_block("stage_block3", 0.5)  # halfway: animatable
    bpy.context.view_layer.update()
    half = instance_scales(members[0])
    assert 0.2 < half.max() / instance_scales(network.layer("stage_block5_add")).max() < 0.8
    network.collapse_block("stage_block3")
    bpy.context.view_layer.update()
    assert not any(drawn(obj) for obj in members)
    assert output.matrix_world.translation.x == pytest.approx(before_output)
    with pytest.raises(KeyError, match="no block 'stage_block99'"):
        network.collapse_block("stage_block99")


def test_expanded_import_and_panel_block_control(Network, deep):
    network = imported(Network, deep, blocks="expanded")
    assert all(drawn(obj) for obj in network.layers)
    panels = installed_module("nnvis_addon.panels")
    bpy.context.view_layer.objects.active = network.layer("stage_block2_1_conv")
    model = panels.panel_model(bpy.context)
    assert model.block_control is not None
    assert model.block_control.owner == network.layer("stage_block2_add")
    assert model.block_control.label == "Collapse Block stage_block2"


def test_unfold_a_unit_in_place(Network, tmp_path):
    path = make_export(tmp_path, name="student", layers=student_cnn()).path
    network = imported(Network, path)
    assert [obj["nnvis_layer"] for obj in network.layers] == ["input", "conv1", "pool1", "fc"]
    network.set(epoch=0.5, sample=1)
    network.root.keyframe_insert('["nnvis_epoch"]', frame=1)
    location = network.root.matrix_world.translation.copy()
    bpy.context.view_layer.objects.active = network.layer("conv1")
    assert bpy.ops.nnvis.unfold_unit() == {"FINISHED"}
    unfolded = Network.all()
    assert len(unfolded) == 1
    unfolded = unfolded[0]
    assert [obj["nnvis_layer"] for obj in unfolded.layers] == [
        "input", "conv1", "bn1", "relu1", "drop1", "pool1", "fc"]
    assert unfolded.get("sample") == 1
    assert (unfolded.root.matrix_world.translation - location).length < 1e-6
    assert installed_module("nnvis_addon.blender.compat").find_fcurve(
        unfolded.root, '["nnvis_epoch"]') is not None, "the epoch animation came along"
    assert bpy.context.scene.camera == unfolded.camera
    with pytest.raises(ValueError, match="nothing folded into it"):
        unfolded.unfold("pool1")
