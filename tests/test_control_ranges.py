"""Sample and epoch controls outside the recorded range: the layer, connection and counter nodes
clamp them (checked on evaluated geometry), and the panel says what is shown instead (its
message function, since panels cannot be drawn headless). Real bpy, the installed extension."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

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
from export_factory import make_export

from nnvis_addon.core.edges import spatial_to_dense_edges

SAMPLES, EPOCHS = 3, 4


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    install_extension(tmp_path_factory)
    modules = {name: installed_module(f"nnvis_addon.blender.{name}")
               for name in ("scene", "connections", "playback", "compat")}
    return SimpleNamespace(panels=installed_module("nnvis_addon.panels"), **modules)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("ranges"), samples=SAMPLES, epochs=EPOCHS,
                       activation_dtype="float32")


@pytest.fixture(scope="module")
def network(api, built):
    bpy.ops.wm.read_homefile(use_empty=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = api.scene.import_network(built.path, api.scene.ImportOptions(sample=1, epoch=1))
    api.playback.animate_epochs(root, frames_per_epoch=1, hold_frames=0)
    root.animation_data_clear()  # keep the counter, drop the keys: the tests set the epoch
    layers = {obj["nnvis_layer"]: obj for obj in api.scene.network_layers(root)}
    links = {(obj["nnvis_source_layer"], obj["nnvis_target_layer"]): obj
             for obj in api.connections.network_connections(root)}
    for obj in links.values():  # curves, not tubes: the evaluated weights stay readable
        api.compat.set_modifier_input(obj.modifiers["NNVis Connections"], "As Tubes", False)
    return SimpleNamespace(root=root, layers=layers, links=links)


def show(api, net, sample, epoch):
    api.scene.set_control(net.root, "nnvis_sample", sample)
    api.scene.set_control(net.root, "nnvis_epoch", epoch)
    for obj in net.links.values():
        obj.update_tag()


def shown_activations(obj) -> np.ndarray:
    return evaluated_instances(obj)[1]["activation"]


def recorded(built, layer, sample, epoch_index) -> np.ndarray:
    return built.activations[epoch_index][layer][sample].reshape(-1).astype(np.float32)


@pytest.mark.parametrize("sample, epoch, shown_sample, shown_epoch", [
    (1, 7.0, 1, EPOCHS - 1),          # past the last epoch: the last
    (1, -2.5, 1, 0),                  # before the first: the first
    (9, 2.0, SAMPLES - 1, 2),         # past the last sample: the last
    (-3, 2.0, 0, 2),                  # a negative sample: the first
    (99, 99.0, SAMPLES - 1, EPOCHS - 1),
])
def test_layers_clamp_sample_and_epoch(api, network, built, sample, epoch, shown_sample,
                                       shown_epoch):
    show(api, network, sample, epoch)
    for name, obj in network.layers.items():
        assert_shown(shown_activations(obj), recorded(built, name, shown_sample, shown_epoch),
                     obj, name)


@pytest.mark.parametrize("epoch, shown_epoch", [(7.0, EPOCHS - 1), (-2.5, 0), (1.0, 1)])
def test_connections_clamp_the_epoch(api, network, built, epoch, shown_epoch):
    show(api, network, 0, epoch)
    link = network.links[("pool", "dense")]  # the Flatten folds into the Dense
    # one edge per (pooled map, neuron): 4 x 5, the whole pair (under its display budget)
    edges = spatial_to_dense_edges(built.weights[shown_epoch]["dense"][0], (2, 2, 4))
    curves = evaluated_curves(link)
    assert curves["count"] == len(edges) == 20
    assert_shown(curves["weight"], edges.weight, link)


def counter_epoch(counter) -> float:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = bpy.types.GeometrySet.from_evaluated_object(counter.evaluated_get(depsgraph))
    values = np.zeros(len(geometry.mesh.vertices), np.float32)
    geometry.mesh.attributes["nnvis_counter_epoch"].data.foreach_get("value", values)
    return float(values[0])


@pytest.mark.parametrize("epoch, shown_epoch", [(7.0, EPOCHS - 1), (-2.5, 0), (2.0, 2)])
def test_counter_clamps_the_epoch(api, network, built, epoch, shown_epoch):
    counter = api.playback.find_counter(network.root)
    show(api, network, 0, epoch)
    counter.update_tag()
    assert counter_epoch(counter) == built.epoch_numbers[shown_epoch]


@pytest.mark.parametrize("sample, epoch, expected", [
    (1, 2.0, []),
    (2, 3.0, []),                                  # the last of each is still recorded
    (0, 0.0, []),
    (1, 7.0, ["Epoch 7.0 is past the last recorded epoch (3): showing 3"]),
    (1, 3.5, ["Epoch 3.5 is past the last recorded epoch (3): showing 3"]),
    (1, -0.5, ["Epoch -0.5 is before the first recorded epoch (0): showing 0"]),
    (5, 1.0, ["Sample 5 is past the last recorded sample (2): showing 2"]),
    (-1, 1.0, ["Sample -1 is before the first recorded sample (0): showing 0"]),
    (3, 4.0, ["Sample 3 is past the last recorded sample (2): showing 2",
              "Epoch 4.0 is past the last recorded epoch (3): showing 3"]),
])
def test_panel_says_what_is_shown_instead(api, network, sample, epoch, expected):
    show(api, network, sample, epoch)
    assert api.panels.control_range_warnings(network.root) == expected
    bpy.context.view_layer.objects.active = network.root
    assert api.panels.panel_model(bpy.context).range_warnings == expected
