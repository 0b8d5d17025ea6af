"""The NNVis panel's controls, checked on evaluated geometry: layout, collapse, following layers,
sample, keyframes; and the panel model for zero, one and two networks. Real bpy."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_utils import (
    assert_shown,
    evaluated_cell_centres,
    evaluated_instances,
    install_extension,
    installed_module,
)

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.layout import CellGrid, cell_centres


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    install_extension(tmp_path_factory)
    return installed_module("nnvis_addon.blender.scene"), installed_module("nnvis_addon.panels")


@pytest.fixture
def network(api, example_export):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene, _ = api
    root = scene.import_network(example_export, scene.ImportOptions(fold=False))
    return root, {o["nnvis_layer"]: o for o in scene.network_layers(root)}


def layer_input(scene, layer, name):
    from_module = installed_module("nnvis_addon.blender.compat")
    return from_module.get_modifier_input(layer.modifiers[scene.MODIFIER_NAME], name)


def expected_centres(scene, layer, **overrides):
    value = {name: layer_input(scene, layer, name) for name in
             ("Map Height", "Map Width", "Channels", "Grid Layout", "Cell Size", "Cell Scale",
              "Channel Gap", "Grid Columns", "Collapse", "Stack Spacing")}
    value.update(overrides)
    return cell_centres(CellGrid(value["Map Height"], value["Map Width"], value["Channels"]),
                        grid_layout=value["Grid Layout"],
                        cell_size=value["Cell Size"] * value["Cell Scale"],
                        channel_gap=value["Channel Gap"], requested_columns=value["Grid Columns"],
                        collapse=value["Collapse"], stack_spacing=value["Stack Spacing"],
                        merge=overrides.get("merge", False))


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0])
def test_collapse_stacks_the_maps(api, network, factor):
    scene, _ = api
    _, layers = network
    conv = layers["conv1"]
    scene.set_layer_control(conv, "Collapse", factor)
    positions, _ = evaluated_instances(conv)
    assert len(positions) == 16 * 16 * 8
    np.testing.assert_allclose(positions, expected_centres(scene, conv, Collapse=factor), atol=1e-5)
    width = np.ptp(positions[:, 1])
    expanded_width = np.ptp(expected_centres(scene, conv, Collapse=0.0)[:, 1])
    assert width == pytest.approx(expanded_width * (1 - factor) + 15 * 0.1 * factor, rel=1e-3)


def test_collapse_into_max_map_shows_the_max_over_channels(api, network, example_export):
    scene, _ = api
    root, layers = network
    conv = layers["conv1"]
    scene.set_layer_control(conv, "Collapse Summary", 1)
    scene.set_layer_control(conv, "Collapse", 1.0)
    _, attributes = evaluated_instances(conv)  # only the merged map's cells are drawn
    export = read_export(example_export)
    values = export.activations("conv1", -1)[0].astype(np.float32).reshape(-1, 8)
    value_atlas = installed_module("nnvis_addon.blender.value_atlas")
    np.testing.assert_allclose(attributes["activation"], values.max(axis=1),
                               atol=value_atlas.tolerance(conv, "nnvis_max"))
    np.testing.assert_allclose(evaluated_cell_centres(conv),
                               expected_centres(scene, conv, merge=True), atol=1e-5)
    # While merging, the cells wear the variant of the material that reads the summaries.
    compat = installed_module("nnvis_addon.blender.compat")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(conv.evaluated_get(depsgraph))
    worn = {material.name for reference in geometry.instance_references()
            for material in reference.mesh.materials if material is not None}
    summary = compat.get_modifier_input(conv.modifiers["NNVis Layer"], "Summary Material")
    cell = compat.get_modifier_input(conv.modifiers["NNVis Layer"], "Cell Material")
    assert summary.name in worn and cell.name not in worn, worn
    scene.set_layer_control(conv, "Collapse Summary", 2)
    _, attributes = evaluated_instances(conv)
    np.testing.assert_allclose(attributes["activation"], values.mean(axis=1),
                               atol=value_atlas.tolerance(conv, "nnvis_mean") + 1e-6)


def test_following_layers_move_closer_when_a_layer_collapses(api, network):
    scene, _ = api
    root, layers = network
    spacing = root["nnvis_layer_spacing"]
    bpy.context.view_layer.update()
    before = {name: layer.matrix_world.translation.x for name, layer in layers.items()}
    scene.set_layer_control(layers["conv1"], "Collapse", 1.0)
    bpy.context.view_layer.update()
    after = {name: layer.matrix_world.translation.x for name, layer in layers.items()}
    assert after["input"] == before["input"] and after["conv1"] == before["conv1"]
    # The gap after conv1 (at least one spacing, more beside wide units) halves.
    gap = before["pool1"] - before["conv1"]
    assert gap >= spacing
    for name in ("pool1", "conv2", "output"):
        assert after[name] == pytest.approx(before[name] - 0.5 * gap)


def test_sample_switch_changes_the_activations(api, network, example_export):
    scene, _ = api
    root, layers = network
    export = read_export(example_export)
    for sample in (3, 1):
        scene.set_control(root, "nnvis_sample", sample)
        _, attributes = evaluated_instances(layers["conv2"])
        expected = export.activations("conv2", -1)[sample].astype(np.float32).reshape(-1)
        assert_shown(attributes["activation"], expected, layers["conv2"])


def test_keyframed_control_interpolates_between_frames(api, network):
    scene, _ = api
    root, layers = network
    compat = installed_module("nnvis_addon.blender.compat")
    conv = layers["conv2"]
    path = scene.layer_control_path(conv, "Collapse")
    for frame, value in ((1, 0.0), (21, 1.0)):
        scene.set_layer_control(conv, "Collapse", value)
        conv.keyframe_insert(data_path=path, frame=frame)
    fcurve = compat.find_fcurve(conv, path)
    assert fcurve is not None and len(fcurve.keyframe_points) == 2
    for point in fcurve.keyframe_points:
        point.interpolation = "LINEAR"
    bpy.context.scene.frame_set(1)
    gap = layers["pool2"].matrix_world.translation.x - layers["conv2"].matrix_world.translation.x
    bpy.context.scene.frame_set(6)
    positions, _ = evaluated_instances(conv)
    np.testing.assert_allclose(positions, expected_centres(scene, conv, Collapse=0.25), atol=1e-5)
    # The following layer moved by a quarter of the collapse's shift too.
    assert layers["pool2"].matrix_world.translation.x == pytest.approx(
        layers["conv2"].matrix_world.translation.x + gap * (1 - 0.5 * 0.25))


def test_panel_model_for_zero_one_and_two_networks(api, example_export):
    scene, panels = api
    bpy.ops.wm.read_homefile(use_empty=True)
    context = bpy.context
    empty = panels.panel_model(context)
    assert empty.root is None and empty.networks == []
    assert not panels.NNVIS_PT_layers.poll(context)

    first = scene.import_network(example_export)
    model = panels.panel_model(context)
    assert model.root == first  # the only network, even with nothing active
    assert [c.label for c in model.network_controls][:2] == ["Sample", "Epoch"]
    assert len(model.layers) == 7 and model.edge_controls  # flatten folded into dense1

    second = scene.import_network(example_export)
    context.view_layer.objects.active = None
    assert panels.panel_model(context).root is None  # two networks, none picked
    context.scene.nnvis_network = second
    assert panels.panel_model(context).root == second
    layer = scene.network_layers(first)[2]
    context.view_layer.objects.active = layer
    model = panels.panel_model(context)
    assert model.root == first and model.active_layer == layer
    for control in model.network_controls + model.edge_controls + model.layer_controls:
        control.owner.path_resolve(control.path)  # every control is a real property
    assert any(c.label == "Collapse" for c in model.layer_controls)


def test_layer_list_filters_and_orders_the_network_layers(api, example_export):
    scene, panels = api
    bpy.ops.wm.read_homefile(use_empty=True)
    root = scene.import_network(example_export)
    bpy.context.view_layer.objects.active = root
    objects = bpy.context.scene.objects
    flags, order = panels.NNVIS_UL_layers.filter_items(
        panels.NNVIS_UL_layers, bpy.context, bpy.context.scene, "objects")
    shown = [objects[i] for i in range(len(objects)) if flags[i]]
    assert sorted(shown, key=lambda o: order[list(objects).index(o)]) == scene.network_layers(root)


def test_frame_network_keeps_every_layer_in_view(api, network):
    scene, _ = api
    root, layers = network
    scene.set_control(root, "nnvis_layer_spacing", 6.0)
    camera = scene.frame_network(root)
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector
    bpy.context.view_layer.update()
    for layer in layers.values():
        cells, _ = evaluated_instances(layer)
        matrix = np.array(layer.matrix_world)
        world = cells @ matrix[:3, :3].T + matrix[:3, 3]
        for point in (world.min(axis=0), world.max(axis=0)):
            x, y, depth = world_to_camera_view(bpy.context.scene, camera, Vector(point))
            assert -0.01 <= x <= 1.01 and -0.01 <= y <= 1.01 and depth > 0, layer.name


def test_panel_operators_run(api, network):
    root, _ = network
    bpy.context.view_layer.objects.active = root
    assert bpy.ops.nnvis.frame_network() == {"FINISHED"}
    root["nnvis_bundle_strength"] = 0.0
    assert bpy.ops.nnvis.rebundle_network() == {"FINISHED"}
    before = len(bpy.data.objects)
    assert bpy.ops.nnvis.load_example() == {"FINISHED"}
    assert len(bpy.data.objects) > before
