"""The ``Network`` handle: one import gives a script everything the UI does (issue 15)."""

from __future__ import annotations

import warnings

import bpy
import numpy as np
import pytest
from blender_utils import all_data, evaluated_instances


@pytest.fixture
def network(Network, example_export):
    bpy.ops.wm.read_homefile(use_empty=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.import_file(example_export, sample=1, map_layout="linear")


def activations(obj) -> np.ndarray:
    return evaluated_instances(obj)[1]["activation"]


def test_a_script_needs_one_import(Network, network):
    assert network.name == "digits_cnn"
    assert [obj["nnvis_layer"] for obj in network.layers][:2] == ["input", "conv1"]
    assert network.get("sample") == 1
    assert network.connections and network.camera is not None
    assert bpy.context.scene.camera == network.camera
    assert Network.of(network.layers[3]) == network
    assert Network.of(network.camera) == network
    assert [label["nnvis_label"] for label in network.labels] == \
        [obj["nnvis_layer"] for obj in network.layers]
    assert Network.of(network.labels[2]) == network
    assert Network.all() == [network]
    assert network.problems() == []
    assert "digits_cnn" in repr(network)


def test_controls_and_layer_controls(network):
    conv1 = network.layer("conv1")
    before = activations(conv1)
    network.set(sample=0, epoch=2.5)
    assert network.get("epoch") == 2.5
    assert not np.array_equal(activations(conv1), before)
    with pytest.raises(KeyError, match="no network control 'speed'"):
        network.set(speed=2)
    with pytest.raises(KeyError, match="no layer 'conv9'"):
        network.layer("conv9")

    conv2 = network.layer("conv2")
    def width(positions):
        return np.ptp(positions[:, 1])

    spread = width(evaluated_instances(conv2)[0])
    network.collapse("conv2", summary="max")
    assert width(evaluated_instances(conv2)[0]) < spread / 4, "collapsed onto one map"
    with pytest.raises(ValueError, match="summary must be one of"):
        network.collapse("conv2", summary="median")
    network.set_layer("conv1", grid_layout=1.0, channel_gap=0.5)
    network.show("input", False)
    assert network.layer("input").hide_render


def test_rebundle_animate_frame_remove(Network, network, example_export):
    assert network.rebundle(strength=0.5) == len(network.connections)
    first, last = network.animate_epochs(frames_per_epoch=2, hold_frames=1)
    assert last > first
    camera = network.frame()
    assert camera == network.camera == bpy.context.scene.camera
    bpy.ops.wm.read_homefile(use_empty=True)
    before = all_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = Network.import_file(example_export)
    again.remove()
    assert all_data() == before
    with pytest.raises(TypeError, match="unknown import option"):
        Network.import_file(example_export, colour="red")
    with pytest.raises(ValueError, match="not the root of an nnvis network"):
        Network(bpy.data.objects.new("plain", None))
