"""A diverged training run (NaN/Inf weights and activations in its last epochs) imports: NaN/Inf
cells and edges are flagged by the geometry nodes and drawn in the invalid colour (magenta), value
ranges come from the finite values, edges are chosen and bundled by their latest finite weights,
and a saved .blend shows it all on a Blender without nnvis. Real bpy, real geometry nodes, one
small Cycles render in a fresh process."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from blender_utils import (
    assert_shown,
    configure_test_render,
    evaluated_curves,
    evaluated_instances,
    install_extension,
    installed_module,
)
from export_factory import make_export
from test_farm_safe import fresh_renders

from nnvis_addon.core.bundling import bundle_edges
from nnvis_addon.core.edges import latest_finite_weights
from nnvis_addon.core.export_format import ExportFormatError, errors_naming_layer, read_export
from nnvis_addon.core.layout import activation_range, downsample_maps, plan_network
from nnvis_addon.core.links import RANKINGS, WiringOptions, plan_links

SAMPLES, EPOCHS = 2, 4
DIVERGING, DIVERGED = 2, 3  # epoch indices: huge and Inf values, then NaN everywhere
HUGE = 1.0e38               # finite, near float32's limit, as weights get just before NaN


def diverge(what: str, array: np.ndarray) -> np.ndarray:
    """Epoch 2: the Dense kernel near float32's limit with every third weight +-Inf, three Inf
    cells in conv's activations; epoch 3: every weight and every activation but the input's
    NaN."""
    parts = what.split("/")
    if parts[0] not in ("weights", "activations") or int(parts[1]) < DIVERGING:
        return array
    array = array.astype(np.float32)
    flat = array.reshape(-1)
    if int(parts[1]) == DIVERGED:
        if what != f"activations/{DIVERGED}/input":
            flat[:] = np.nan
    elif what == f"weights/{DIVERGING}/dense/kernel":
        flat[:] = np.clip(flat * HUGE, -3.0e38, 3.0e38)
        flat[::3] = np.inf * np.sign(flat[::3] + 0.5)
    elif what == f"activations/{DIVERGING}/conv":
        flat[[0, 5, 17]] = [np.inf, -np.inf, np.inf]
    return array


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("diverged"), name="diverged", samples=SAMPLES,
                       epochs=EPOCHS, activation_dtype="float32", mutate_values=diverge)


@pytest.fixture(scope="module")
def export(built):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_export(built.path)


# -- numpy core -----------------------------------------------------------------------------


def test_latest_finite_weights_reach_back_only_as_far_as_needed():
    epochs = np.array([[1.0, 2.0, 3.0, 4.0],
                       [5.0, np.nan, 7.0, np.inf],
                       [np.nan, np.nan, 9.0, -np.inf]], np.float32)
    asked = []

    def weights_at(epoch):
        asked.append(epoch)
        return epochs[epoch]

    np.testing.assert_array_equal(latest_finite_weights(weights_at, 2), [5.0, 2.0, 9.0, 4.0])
    assert asked == [2, 1, 0]
    clean = np.array([1.0, -2.0], np.float32)
    assert latest_finite_weights(lambda e: clean, 5) is clean  # a clean epoch is used as it is
    never = latest_finite_weights(lambda e: np.array([np.nan, 1.0], np.float32), 1)
    np.testing.assert_array_equal(never, [0.0, 1.0])


def test_links_choose_edges_by_their_latest_finite_weights(export, built):
    every_edge = WiringOptions(display_budget=False)
    links = {(item.source.name, item.target.name): item for item in plan_links(export, every_edge)}
    dense = links[("flatten", "dense")]
    kernels = [built.weights[e]["dense"][0].reshape(-1) for e in range(EPOCHS)]
    expected = np.where(np.isfinite(kernels[DIVERGING]), kernels[DIVERGING], kernels[1])
    np.testing.assert_array_equal(dense.edges.weight, expected)
    # Every epoch's own weights stay, NaN/Inf included, for the nodes to flag.
    np.testing.assert_array_equal(dense.epoch_weights, np.stack(kernels))
    for link in links.values():
        assert np.isfinite(link.edges.weight).all(), link.name
    # The display budget keeps the strongest by those weights, under either ranking.
    for ranking in RANKINGS:
        shown = next(item for item in plan_links(export, WiringOptions(ranking=ranking))
                     if item.target.name == "dense")
        index = shown.edges.source.astype(np.int64) * shown.edges.n_target + shown.edges.target
        assert 0 < len(index) < expected.size
        np.testing.assert_array_equal(shown.edges.weight, expected[index])
        np.testing.assert_array_equal(shown.epoch_weights, np.stack(kernels)[:, index])
        assert np.isfinite(shown.edges.weight).all()
    by_weight = next(item for item in plan_links(export) if item.target.name == "dense")
    kept = by_weight.edges.source.astype(np.int64) * by_weight.edges.n_target \
        + by_weight.edges.target
    strength = np.abs(expected).reshape(-1, by_weight.edges.n_target)
    strongest = strength.argmax(axis=0) * by_weight.edges.n_target + np.arange(strength.shape[1])
    assert set(strongest) <= set(kept)  # every target keeps its strongest edge
    dropped = np.setdiff1d(np.arange(expected.size), kept)
    assert np.abs(expected[dropped]).max() <= np.abs(expected[np.setdiff1d(kept, strongest)]).min()


def test_bundling_near_float32_limit_gives_the_same_curves_as_small_weights():
    rng = np.random.default_rng(3)
    start = np.c_[np.zeros(200), rng.random(200), rng.random(200)]
    end = np.c_[np.ones(200), rng.random(200), rng.random(200)]
    weights = rng.standard_normal(200).astype(np.float32)
    huge = bundle_edges(start, end, weights * np.float32(2.0 ** 125))
    assert np.isfinite(huge).all()
    np.testing.assert_array_equal(huge, bundle_edges(start, end, weights))


def test_value_ranges_and_downsampled_blocks_use_finite_values_only(export, built):
    plan = plan_network(export)
    for layer in plan.layers:
        values = np.concatenate([built.activations[e][layer.layer.name].reshape(-1)
                                 for e in range(EPOCHS)])
        finite = values[np.isfinite(values)]
        assert (layer.value_min, layer.value_max) == (finite.min(), finite.max()), layer.layer.name
    assert math.isfinite(plan.global_min) and math.isfinite(plan.global_max)
    assert activation_range([np.array([np.nan, np.inf])]) == (0.0, 1.0)

    maps = np.arange(5 * 5, dtype=np.float32).reshape(1, 5, 5, 1)
    maps[0, 0, 1, 0] = np.nan
    maps[0, 4, 4, 0] = np.inf
    small = downsample_maps(maps, 2)[0, :, :, 0]
    assert np.isnan(small[0, 0]) and np.isnan(small[2, 2])  # the blocks holding them
    valid = np.ones((3, 3), bool)
    valid[0, 0] = valid[2, 2] = False
    assert np.isfinite(small[valid]).all()  # partial edge blocks are not invalid
    assert small[0, 2] == maps[0, :2, 4, 0].mean()


def test_an_error_while_drawing_names_the_file_and_the_layer(tmp_path):
    with pytest.raises(ExportFormatError) as info:
        with errors_naming_layer(tmp_path / "run.nnvis.json", "dense", "the connections a -> b"):
            raise ValueError("weights contain non-finite values")
    assert str(info.value) == ("run.nnvis.json: layer 'dense': cannot draw the connections "
                               "a -> b: weights contain non-finite values")
    assert info.value.layer == "dense" and info.value.file.endswith("run.nnvis.json")
    original = ExportFormatError("bad", file="x.nnvis.json", layer="conv")
    with pytest.raises(ExportFormatError) as info:
        with errors_naming_layer("other.nnvis.json", "dense", "its cells"):
            raise original
    assert info.value is original


# -- Blender --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    install_extension(tmp_path_factory)
    return SimpleNamespace(**{name: installed_module(f"nnvis_addon.blender.{name}")
                              for name in ("scene", "connections", "playback", "compat")},
                           materials=installed_module("geometry_nodes.materials"))


@pytest.fixture(scope="module")
def network(api, built):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 36  # the camera's framing
    wiring = installed_module("nnvis_addon.core.links")
    every_edge = api.connections.ConnectionOptions(
        wiring=wiring.WiringOptions(display_budget=False))  # valid and invalid edges side by side
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = api.scene.import_network(built.path, api.scene.ImportOptions(
            sample=1, fold=False, connections=every_edge))
    layers = {obj["nnvis_layer"]: obj for obj in api.scene.network_layers(root)}
    links = {(obj["nnvis_source_layer"], obj["nnvis_target_layer"]): obj
             for obj in api.connections.network_connections(root)}
    for obj in links.values():  # curves, not tubes: the evaluated attributes stay readable
        api.compat.set_modifier_input(obj.modifiers["NNVis Connections"], "As Tubes", False)
    return SimpleNamespace(root=root, layers=layers, links=links, scene=scene,
                           warnings=[str(w.message) for w in caught])


def show(api, net, epoch, step=False):
    api.scene.set_control(net.root, "nnvis_step_epochs", step)
    api.scene.set_control(net.root, "nnvis_epoch", epoch)
    for obj in net.links.values():
        obj.update_tag()


def test_import_warns_about_the_nonfinite_arrays(network):
    assert any("has 80 NaN/Inf values" in w and "epochs[3].weights.dense.kernel" in w
               for w in network.warnings), network.warnings


@pytest.mark.parametrize("epoch", range(EPOCHS))
def test_cells_flag_exactly_the_nonfinite_values(api, network, built, epoch):
    show(api, network, float(epoch))
    for name, obj in network.layers.items():
        recorded = built.activations[epoch][name][1].reshape(-1)
        _, shown = evaluated_instances(obj)
        np.testing.assert_array_equal(shown["activation_invalid"], ~np.isfinite(recorded), name)
        assert_shown(shown["activation"], recorded, obj, name)
        assert np.isfinite(shown["activation_norm"]).all(), name


def test_between_a_finite_and_a_diverged_epoch_cells_are_invalid(api, network, built):
    show(api, network, DIVERGING + 0.5)
    for name, obj in network.layers.items():
        either = np.isfinite(built.activations[DIVERGING][name][1].reshape(-1)) & \
            np.isfinite(built.activations[DIVERGED][name][1].reshape(-1))
        np.testing.assert_array_equal(evaluated_instances(obj)[1]["activation_invalid"], ~either)
    show(api, network, DIVERGING + 0.5, step=True)  # held at the lower, finite epoch
    _, shown = evaluated_instances(network.layers["dense"])
    assert not shown["activation_invalid"].any()
    assert_shown(shown["activation"], built.activations[DIVERGING]["dense"][1].reshape(-1),
                 network.layers["dense"])


def test_layer_ranges_are_the_finite_ones(api, network, built):
    for name, obj in network.layers.items():
        modifier = obj.modifiers["NNVis Layer"]
        values = np.concatenate([built.activations[e][name].reshape(-1) for e in range(EPOCHS)])
        finite = values[np.isfinite(values)]
        assert api.compat.get_modifier_input(modifier, "Value Min") == pytest.approx(finite.min())
        assert api.compat.get_modifier_input(modifier, "Value Max") == pytest.approx(finite.max())
    assert all(math.isfinite(v) for v in network.root["nnvis_global_range"])


def test_edges_flag_nonfinite_weights_and_outlast_the_threshold(api, network, built):
    link = network.links[("flatten", "dense")]
    for epoch in range(EPOCHS):
        show(api, network, float(epoch))
        kernel = built.weights[epoch]["dense"][0].reshape(-1)
        curves = evaluated_curves(link)
        assert curves["count"] == kernel.size
        np.testing.assert_array_equal(curves["weight_invalid"], ~np.isfinite(kernel))
        assert np.isfinite(curves["weight"]).all() and np.isfinite(curves["radius_per_curve"]).all()
    api.scene.set_control(network.root, "nnvis_edge_threshold", 0.9)
    try:
        show(api, network, float(DIVERGED))
        assert evaluated_curves(link)["drawn"].all()  # all invalid: all drawn
        show(api, network, float(DIVERGING))
        invalid = int(np.count_nonzero(~np.isfinite(built.weights[DIVERGING]["dense"][0])))
        curves = evaluated_curves(link)
        assert invalid < int(curves["drawn"].sum()) < len(link.data.curves)  # weak finite hidden
        assert int(curves["weight_invalid"].sum()) == invalid
    finally:
        api.scene.set_control(network.root, "nnvis_edge_threshold", 0.0)


def test_curves_are_bundled_by_finite_weights_and_rebundle(api, network):
    for obj in network.links.values():
        positions = np.zeros(len(obj.data.points) * 3, np.float32)
        obj.data.attributes["position"].data.foreach_get("vector", positions)
        assert np.isfinite(positions).all(), obj.name
    link = network.links[("flatten", "dense")]
    api.connections.rebundle(link, api.connections.BundlingParams(strength=1.5))
    positions = np.zeros(len(link.data.points) * 3, np.float32)
    link.data.attributes["position"].data.foreach_get("vector", positions)
    assert np.isfinite(positions).all()


def test_materials_colour_what_the_atlas_marks_invalid(api, network):
    """Each of the network's materials mixes in the invalid colour by the decoded flag."""
    layer = next(iter(network.layers.values()))
    link = next(iter(network.links.values()))
    for material in (api.compat.get_modifier_input(layer.modifiers["NNVis Layer"], "Cell Material"),
                     api.compat.get_modifier_input(link.modifiers["NNVis Connections"], "Material")):
        tree = material.node_tree
        invalid_mixes = [m for m in tree.nodes if m.bl_idname == "ShaderNodeMix"
                         and m.data_type == "RGBA" and tuple(next(
                             s for s in m.inputs if s.identifier == "B_Color").default_value)
                         == api.materials.INVALID_COLOUR]
        assert len(invalid_mixes) == 1, material.name
        assert invalid_mixes[0].inputs["Factor"].is_linked, material.name


def magenta_fraction(pixels: np.ndarray) -> float:
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return float(np.mean((r > 0.6) & (b > 0.6) & (g < 0.25)))


def test_saved_file_shows_diverged_cells_magenta_without_nnvis(api, network, tmp_path):
    """Rendered by a Blender that never had nnvis: the invalid colour comes from the nodes and
    the material alone. Epoch 0 (finite) has no magenta, the NaN epoch a lot."""
    api.playback.animate_epochs(network.root, frames_per_epoch=1, hold_frames=0)
    assert api.playback.farm_safety_problems() == []
    configure_test_render(network.scene, 64, 36, 4)
    frames = [1, 1 + DIVERGED]
    fresh, _ = fresh_renders(tmp_path, frames, "diverged")
    finite, diverged = (fresh[frame] for frame in frames)
    assert finite[..., :3].max() > 0.3  # the finite epoch is drawn, in viridis
    assert magenta_fraction(finite) == 0.0
    assert magenta_fraction(diverged) > 0.02
