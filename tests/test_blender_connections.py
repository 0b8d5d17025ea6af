"""Connections in Blender: curves per kept edge, radius/colour from the weights, threshold,
epoch interpolation of weights, re-bundling. Real bpy, real geometry nodes."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_utils import (
    assert_shown,
    evaluated_curves,
    evaluated_instances,
    install_extension,
    installed_module,
)

from nnvis_addon.core.edges import display_budget
from nnvis_addon.core.export_format import read_export


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    install_extension(tmp_path_factory)
    return installed_module("nnvis_addon.blender.scene"), installed_module("nnvis_addon.blender.connections")


@pytest.fixture
def network(api, example_export):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene, connections = api
    root = scene.import_network(example_export, scene.ImportOptions(fold=False))
    return root, {(o["nnvis_source_layer"], o["nnvis_target_layer"]): o
                  for o in connections.network_connections(root)}


def identifier(obj, name):
    for item in obj.modifiers["NNVis Connections"].node_group.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name == name:
            return item.identifier
    raise KeyError(name)


def get_input(obj, name):
    return obj.modifiers["NNVis Connections"][identifier(obj, name)]


def set_input(obj, name, value):
    obj.modifiers["NNVis Connections"][identifier(obj, name)] = value
    obj.update_tag()


def curve_ints(obj, name):
    values = np.zeros(len(obj.data.curves), np.int32)
    obj.data.attributes[name].data.foreach_get("value", values)
    return values


def kept_edges(obj, n_target):
    """(source neuron, target neuron, index into the source-major kernel) of every drawn edge
    of a Dense pair (a neuron's drawn cell is its index)."""
    source, target = curve_ints(obj, "source_first"), curve_ints(obj, "target_first")
    return source, target, source.astype(np.int64) * n_target + target


def test_expected_layer_pairs(network):
    _, links = network
    assert set(links) == {("input", "conv1"), ("conv1", "pool1"), ("pool1", "conv2"),
                          ("conv2", "pool2"), ("pool2", "flatten"), ("flatten", "dense1"),
                          ("dense1", "output")}


def test_curve_count_radius_and_weights_follow_the_export(network, example_export):
    export = read_export(example_export)
    _, links = network
    obj = links[("dense1", "output")]
    set_input(obj, "As Tubes", False)
    curves = evaluated_curves(obj)
    kernel = export.weights("output", -1)[0]  # (32, 10)
    # The pair's display budget of its 320 edges, the strongest by |w|, source-major.
    _, _, index = kept_edges(obj, 10)
    assert curves["count"] == display_budget(32, 10) == len(obj.data.curves)
    assert np.all(np.diff(index) > 0)
    weights = kernel.reshape(-1)[index]
    assert_shown(curves["weight"], weights, obj)
    assert np.abs(np.delete(kernel.reshape(-1), index)).max() <= np.abs(weights).min()
    every_epoch = np.stack([export.weights("output", e)[0].reshape(-1)[index]
                            for e in range(len(export.epochs))])
    weight_max = float(np.percentile(np.abs(every_epoch), 99))
    assert get_input(obj, "Weight Max") == pytest.approx(weight_max, rel=1e-6)
    np.testing.assert_allclose(curves["weight_norm"], np.clip(weights / weight_max, -1, 1),
                               rtol=1e-5, atol=2 * installed_module(
                                   "nnvis_addon.blender.value_atlas").tolerance(
                                   obj, "nnvis_edges") / weight_max)
    # The radius follows the edge's strongest |w| over the epochs (static during playback).
    strength = np.minimum(np.abs(every_epoch).max(axis=0) / weight_max, 1.0)
    radius, min_radius = get_input(obj, "Radius"), get_input(obj, "Min Radius")
    expected_radius = radius * (min_radius + (1 - min_radius) * strength)
    np.testing.assert_allclose(curves["radius_per_curve"], expected_radius, rtol=1e-5)


def test_tubes_have_one_ring_per_point(network):
    _, links = network
    obj = links[("dense1", "output")]
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
    mesh = geometry.mesh
    points = len(obj.data.points) // len(obj.data.curves)
    assert len(mesh.vertices) == len(obj.data.curves) * points * 5


def test_threshold_hides_weak_edges_without_rebundling(network, api, example_export):
    scene, _ = api
    root, links = network
    obj = links[("flatten", "dense1")]
    set_input(obj, "As Tubes", False)
    full = evaluated_curves(obj)
    strength = np.abs(full["weight_norm"])
    positions_before = np.array([p.position[:] for p in obj.data.points[:50]])
    ordered = np.unique(strength)
    threshold = float(ordered[len(ordered) // 2] + ordered[len(ordered) // 2 - 1]) / 2
    scene.set_control(root, "nnvis_edge_threshold", threshold)
    kept = evaluated_curves(obj)
    # The material no longer draws the weaker edges (the curves stay, nothing is re-bundled).
    assert kept["count"] == full["count"]
    assert 0 < int(kept["drawn"].sum()) == int(np.count_nonzero(strength >= threshold)) < full["count"]
    assert np.array_equal(positions_before, np.array([p.position[:] for p in obj.data.points[:50]]))


def test_fractional_epoch_interpolates_edge_weights(network, api, example_export):
    scene, _ = api
    export = read_export(example_export)
    root, links = network
    obj = links[("dense1", "output")]
    set_input(obj, "As Tubes", False)
    scene.set_control(root, "nnvis_epoch", 2.5)
    _, _, index = kept_edges(obj, 10)
    a = export.weights("output", 2)[0].reshape(-1)[index]
    b = export.weights("output", 3)[0].reshape(-1)[index]
    assert_shown(evaluated_curves(obj)["weight"], (a + b) / 2, obj, rtol=1e-5)


def test_connections_end_at_their_cells_and_follow_the_layout(network, api):
    scene, _ = api
    root, links = network
    obj = links[("dense1", "output")]
    set_input(obj, "As Tubes", False)
    curves = evaluated_curves(obj)
    layers = {o["nnvis_layer"]: o for o in scene.network_layers(root)}
    source_cells, _ = evaluated_instances(layers["dense1"])
    target_cells, _ = evaluated_instances(layers["output"])
    source_cells += np.asarray(layers["dense1"].location)
    target_cells += np.asarray(layers["output"].location)
    source, target, _ = kept_edges(obj, len(target_cells))
    np.testing.assert_allclose(curves["first_point"], source_cells[source], atol=1e-5)
    np.testing.assert_allclose(curves["last_point"], target_cells[target], atol=1e-5)
    # Monotone along the layer axis.
    assert np.all(np.diff(curves["points"][..., 0], axis=1) >= -1e-6)
    # Spacing change: the layers move (drivers) and the connection follows without a rebuild.
    before = {name: layers[name].matrix_world.translation.x for name in ("dense1", "output")}
    scene.set_control(root, "nnvis_layer_spacing", root["nnvis_layer_spacing"] * 1.5)
    moved = evaluated_curves(obj)
    shift = {name: layers[name].matrix_world.translation.x - x for name, x in before.items()}
    assert shift["output"] > shift["dense1"] > 0.5
    np.testing.assert_allclose(moved["first_point"][:, 0] - curves["first_point"][:, 0],
                               shift["dense1"], atol=1e-4)
    np.testing.assert_allclose(moved["last_point"][:, 0] - curves["last_point"][:, 0],
                               shift["output"], atol=1e-4)


def test_rebundle_operator_straightens_and_rebundles(network):
    _, links = network
    obj = links[("flatten", "dense1")]
    set_input(obj, "As Tubes", False)
    bundled = evaluated_curves(obj)["points"]
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    obj.select_set(True)
    assert bpy.ops.object.nnvis_rebundle(bundle=False) == {"FINISHED"}
    straight = evaluated_curves(obj)["points"]
    np.testing.assert_allclose(straight[:, 0], bundled[:, 0], atol=1e-5)
    np.testing.assert_allclose(straight[:, -1], bundled[:, -1], atol=1e-5)
    t = np.linspace(0, 1, straight.shape[1])[None, :, None]
    expected = straight[:, :1] + (straight[:, -1:] - straight[:, :1]) * t
    np.testing.assert_allclose(straight, expected, atol=1e-4)
    assert not np.allclose(bundled, straight, atol=1e-3)
    assert bpy.ops.object.nnvis_rebundle(bundle=True, strength=1.0) == {"FINISHED"}
    np.testing.assert_allclose(evaluated_curves(obj)["points"], bundled, atol=1e-4)
