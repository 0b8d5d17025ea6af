"""Connections that explain (issue 11, item 8), in Blender: the default import draws each layer
pair's display budget of edges, structural links faint, so that connections cover at most 35 %
of the network's pixels in a small Cycles render; a connection hides with either of its layers
(drivers, farm-safe) and its ends follow a collapsing layer. Real bpy, real Cycles."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_utils import (
    all_data,
    configure_test_render,
    evaluated_cell_centres,
    evaluated_curves,
    install_extension,
    installed_module,
    render_pixels,
)
from export_factory import LayerDef, make_export

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.folding import fold_export
from nnvis_addon.core.links import WiringOptions, plan_links

MAX_COVER = 0.35
WIDTH, HEIGHT, SAMPLES = 160, 90, 4


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    install_extension(tmp_path_factory)
    return {name: installed_module(f"nnvis_addon.blender.{name}")
            for name in ("scene", "connections", "playback", "compat")}


def deep_layers() -> list[LayerDef]:
    """A deeper CNN than the example: three convolutions (8, 16, 32 maps), pooling, a folded
    Flatten and two Dense layers."""
    return [
        LayerDef("input", "InputLayer", (16, 16, 1), inbound=[]),
        LayerDef("conv1", "Conv2D", (14, 14, 8), weights=[("kernel", (3, 3, 1, 8)), ("bias", (8,))]),
        LayerDef("pool1", "MaxPooling2D", (7, 7, 8), config={"pool_size": [2, 2]}),
        LayerDef("conv2", "Conv2D", (5, 5, 16),
                 weights=[("kernel", (3, 3, 8, 16)), ("bias", (16,))]),
        LayerDef("conv3", "Conv2D", (3, 3, 32),
                 weights=[("kernel", (3, 3, 16, 32)), ("bias", (32,))]),
        LayerDef("flatten", "Flatten", (288,)),
        LayerDef("dense", "Dense", (64,), weights=[("kernel", (288, 64)), ("bias", (64,))]),
        LayerDef("output", "Dense", (10,), weights=[("kernel", (64, 10)), ("bias", (10,))]),
    ]


@pytest.fixture(scope="module")
def deep_export(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("deep"), name="deep", layers=deep_layers(),
                       samples=2, epochs=2).path


def import_default(api, path, **options):
    bpy.ops.wm.read_homefile(use_empty=True)
    return api["scene"].import_network(path, api["scene"].ImportOptions(**options))


def links_by_layers(api, root):
    return {(obj["nnvis_source_layer"], obj["nnvis_target_layer"]): obj
            for obj in api["connections"].network_connections(root)}


def render(scene, path) -> np.ndarray:
    return render_pixels(scene, path)[..., :3]


def changed_pixels(with_them: np.ndarray, without: np.ndarray) -> np.ndarray:
    return np.abs(with_them - without).max(axis=2) > 0.08


def set_drawn(api, obj, drawn: bool) -> None:
    api["connections"].set_hidden(obj, not drawn)


def connection_cover(api, root, tmp_path) -> float:
    """Share of the network's lit pixels that change when its connections are hidden (as
    ../shared/tools/slide_check.py measures it)."""
    scene = bpy.context.scene
    view = scene.view_settings.view_transform  # what F12 shows (AgX), not the tests' Standard
    configure_test_render(scene, WIDTH, HEIGHT, SAMPLES)
    scene.view_settings.view_transform = view
    full = render(scene, tmp_path / "full.png")
    links = api["connections"].network_connections(root)
    for obj in links:
        set_drawn(api, obj, False)
    bare = render(scene, tmp_path / "bare.png")
    for obj in links:
        set_drawn(api, obj, True)
    lit = full.max(axis=2) > 0.12
    assert lit.mean() > 0.05, "the network is (nearly) not in the picture"
    changed = changed_pixels(full, bare)
    assert changed.any(), "no connection is drawn"
    return float((changed & lit).sum() / lit.sum())


@pytest.mark.parametrize("which", ["example", "deep"])
def test_connections_cover_at_most_35_percent_of_the_network(api, example_export, deep_export,
                                                             which, tmp_path):
    root = import_default(api, example_export if which == "example" else deep_export)
    assert bpy.context.scene.view_settings.view_transform == "AgX"  # Blender's default
    cover = connection_cover(api, root, tmp_path)
    print(f"{which}: connection cover {cover:.3f}")
    assert cover <= MAX_COVER


def test_the_default_draws_each_pairs_budget_and_the_operator_ranks_by_contribution(
        api, example_export):
    export = fold_export(read_export(example_export))
    root = import_default(api, example_export)
    for obj in api["connections"].network_connections(root):
        assert obj["nnvis_edge_ranking"] == "weight"
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_scene.nnvis(filepath=str(example_export), sample=2,
                                      edge_ranking="contribution") == {"FINISHED"}
    root = next(o for o in bpy.context.scene.objects if o.get("nnvis_network"))
    links = links_by_layers(api, root)
    for ranking, sample in (("contribution", 2), ("weight", 0)):
        expected = {(item.source.name, item.target.name): item
                    for item in plan_links(export, WiringOptions(ranking=ranking), sample=sample)}
        for pair in (("pool1", "conv2"), ("pool2", "dense1"), ("dense1", "output")):
            obj = links[pair]
            weights = np.zeros(len(obj.data.curves), np.float32)
            obj.data.attributes["nnvis_w_bundled"].data.foreach_get("value", weights)
            same = np.array_equal(weights, expected[pair].epoch_weights[-1])
            assert same == (ranking == "contribution"), (pair, ranking)
            assert obj["nnvis_edge_ranking"] == "contribution"


def test_an_unknown_ranking_is_refused_and_leaves_nothing(api, example_export):
    bpy.ops.wm.read_homefile(use_empty=True)
    before = all_data()
    with pytest.raises(ValueError, match="edge ranking must be one of"):
        api["scene"].import_network(example_export,
                                    api["scene"].ImportOptions(edge_ranking="activation"))
    assert all_data() == before


def test_structural_links_draw_thinner_and_fainter(api, example_export, tmp_path):
    """The same curves (conv2 -> pool2, channel to channel) drawn as a structural link and as if
    weighted: as structural they are thinner and change far fewer pixels, far less."""
    root = import_default(api, example_export)
    links = links_by_layers(api, root)
    pool = links[("conv2", "pool2")]
    assert pool.data.attributes["structural"].data[0].value == 1.0
    modifier = pool.modifiers["NNVis Connections"]
    get = lambda name: api["compat"].get_modifier_input(modifier, name)  # noqa: E731
    api["compat"].set_modifier_input(modifier, "As Tubes", False)
    pool.update_tag()
    radius = evaluated_curves(pool)["radius_per_curve"]
    np.testing.assert_allclose(radius, get("Radius") * get("Structural Radius"), rtol=1e-5)
    assert get("Structural Radius") <= 0.5
    api["compat"].set_modifier_input(modifier, "As Tubes", True)
    for obj in links.values():
        set_drawn(api, obj, obj is pool)
    scene = bpy.context.scene
    configure_test_render(scene, WIDTH, HEIGHT, SAMPLES)
    faint = render(scene, tmp_path / "structural.png")
    count = len(pool.data.curves)
    pool.data.attributes["structural"].data.foreach_set("value", np.zeros(count, np.float32))
    pool.data.update_tag()
    pool.update_tag()
    weighted = render(scene, tmp_path / "weighted.png")
    set_drawn(api, pool, False)
    bare = render(scene, tmp_path / "bare.png")
    faint_change = np.abs(faint - bare).sum()
    weighted_change = np.abs(weighted - bare).sum()
    assert changed_pixels(weighted, bare).sum() > 20  # the link is in the picture
    assert faint_change < 0.25 * weighted_change


def evaluated_visible(objects) -> set[str]:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    shown = {instance.object.original.name for instance in depsgraph.object_instances}
    return {obj.name for obj in objects if obj.name in shown}


def test_hiding_a_layer_hides_exactly_its_connections(api, example_export):
    root = import_default(api, example_export)
    scene = api["scene"]
    links = links_by_layers(api, root)
    everything = set(obj.name for obj in links.values())
    assert evaluated_visible(links.values()) == everything
    for layer in scene.network_layers(root):
        name = layer["nnvis_layer"]
        touching = {obj.name for pair, obj in links.items() if name in pair}
        assert touching, name
        scene.set_layer_visible(layer, False)
        assert evaluated_visible(links.values()) == everything - touching, name
        depsgraph = bpy.context.evaluated_depsgraph_get()
        for obj in links.values():
            assert obj.evaluated_get(depsgraph).hide_render == (obj.name in touching), obj.name
        scene.set_layer_visible(layer, True)
        assert evaluated_visible(links.values()) == everything, name


def test_a_connection_hidden_on_its_own_stays_hidden_then_follows_its_layers_again(
        api, example_export):
    """Its flags alone would not last (the drivers set them back): set_hidden mutes them."""
    root = import_default(api, example_export)
    links = links_by_layers(api, root)
    everything = set(obj.name for obj in links.values())
    dense = links[("dense1", "output")]
    dense.hide_render = dense.hide_viewport = True
    assert evaluated_visible(links.values()) == everything
    api["connections"].set_hidden(dense, True)
    assert evaluated_visible(links.values()) == everything - {dense.name}
    depsgraph = bpy.context.evaluated_depsgraph_get()
    assert dense.evaluated_get(depsgraph).hide_render
    api["connections"].set_hidden(dense, False)
    assert evaluated_visible(links.values()) == everything
    output = next(o for o in api["scene"].network_layers(root) if o["nnvis_layer"] == "output")
    api["scene"].set_layer_visible(output, False)
    assert dense.name not in evaluated_visible(links.values())


def test_a_collapsing_layer_moves_its_connection_ends(api, example_export):
    """Collapsed into its max map, conv2's channels share one map: the ends of every curve into
    and out of conv2 move onto the collapsed cells (read from the evaluated layer)."""
    root = import_default(api, example_export)
    scene, compat = api["scene"], api["compat"]
    layers = {obj["nnvis_layer"]: obj for obj in scene.network_layers(root)}
    links = links_by_layers(api, root)
    for obj in links.values():
        compat.set_modifier_input(obj.modifiers["NNVis Connections"], "As Tubes", False)
        obj.update_tag()

    def ends(obj):
        curves = evaluated_curves(obj)
        return curves["first_point"], curves["last_point"]

    def attached(layer, obj, which):
        cells = evaluated_cell_centres(layer) + np.asarray(layer.matrix_world.translation)
        spans = [np.zeros(len(obj.data.curves), np.int32) for _ in range(2)]
        for values, name in zip(spans, (f"{which}_first", f"{which}_last")):
            obj.data.attributes[name].data.foreach_get("value", values)
        return (cells[spans[0]] + cells[spans[1]]) / 2

    into, out_of = links[("pool1", "conv2")], links[("conv2", "pool2")]
    before = ends(into)[1], ends(out_of)[0]
    scene.set_layer_control(layers["conv2"], "Collapse Summary", 1)
    scene.set_layer_control(layers["conv2"], "Collapse", 1.0)
    bpy.context.view_layer.update()
    after = ends(into)[1], ends(out_of)[0]
    np.testing.assert_allclose(after[0], attached(layers["conv2"], into, "target"), atol=1e-4)
    np.testing.assert_allclose(after[1], attached(layers["conv2"], out_of, "source"), atol=1e-4)
    assert np.abs(after[0] - before[0]).max() > 0.1 and np.abs(after[1] - before[1]).max() > 0.1
    # every other curve still starts and ends on its layers' evaluated cells
    for (source, target), obj in links.items():
        first, last = ends(obj)
        np.testing.assert_allclose(first, attached(layers[source], obj, "source"), atol=1e-4)
        np.testing.assert_allclose(last, attached(layers[target], obj, "target"), atol=1e-4)


def test_saved_file_is_farm_safe_and_still_hides_connections(api, example_export, tmp_path):
    root = import_default(api, example_export)
    blend = tmp_path / "hidden.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert api["playback"].farm_safety_problems() == []
    root = next(o for o in bpy.context.scene.objects if o.get("nnvis_network"))
    links = links_by_layers(api, root)
    for obj in links.values():
        for flag in ("hide_viewport", "hide_render"):
            driver = obj.animation_data.drivers.find(flag).driver
            assert driver.is_simple_expression and driver.expression == "max(layer0, layer1)"
    dense1 = next(o for o in api["scene"].network_layers(root) if o["nnvis_layer"] == "dense1")
    api["scene"].set_layer_visible(dense1, False)
    hidden = {obj.name for pair, obj in links.items() if "dense1" in pair}
    assert evaluated_visible(links.values()) == {o.name for o in links.values()} - hidden
