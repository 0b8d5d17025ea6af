"""Epoch playback: keyframed epochs (linear and stepped), what the layers, connections and the
on-screen counter show at integer and fractional frames. The installed extension's API, real bpy,
real geometry nodes; frames are evaluated, not rendered."""

from __future__ import annotations

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

from nnvis_addon.core.export_format import read_export

EPOCH_PATH = '["nnvis_epoch"]'
FPE, HOLD = 6, 3  # frames per epoch (even: a frame lands exactly halfway), hold frames


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    install_extension(tmp_path_factory)
    return SimpleNamespace(**{name: installed_module(f"nnvis_addon.blender.{name}")
                              for name in ("scene", "playback", "connections", "compat")})


@pytest.fixture(scope="module")
def export(example_export):
    return read_export(example_export)


@pytest.fixture(scope="module")
def network(api, example_export):
    """One imported example (sample 1) shared by the tests; each animates it as it needs."""
    bpy.ops.wm.read_homefile(use_empty=True)
    root = api.scene.import_network(example_export, api.scene.ImportOptions(sample=1, fold=False))
    return SimpleNamespace(root=root, scene=bpy.context.scene,
                           layers=api.scene.network_layers(root),
                           links={(o["nnvis_source_layer"], o["nnvis_target_layer"]): o
                                  for o in api.connections.network_connections(root)})


def arrive(k, fpe=FPE, hold=HOLD, start=1):
    return start + k * (fpe + hold)


def show_frame(net, frame):
    net.scene.frame_set(frame)
    return net.root["nnvis_epoch"]


def activations(net, export, epoch, sample=1):
    """Expected activation arrays of every layer at a (fractional) epoch index."""
    lower = int(np.floor(epoch))
    upper = min(lower + 1, len(export.epochs) - 1)
    t = np.float32(epoch - lower)
    result = {}
    for layer in export.layers:
        a = export.activations(layer.name, lower)[sample].reshape(-1).astype(np.float32)
        b = export.activations(layer.name, upper)[sample].reshape(-1).astype(np.float32)
        result[layer.name] = a + (b - a) * t
    return result


def layer(net, name):
    return next(obj for obj in net.layers if obj["nnvis_layer"] == name)


def shown_activations(net):
    return {obj["nnvis_layer"]: evaluated_instances(obj)[1]["activation"] for obj in net.layers}


def test_keys_every_epoch_with_holds_and_sets_the_frame_range(api, network, export):
    epochs = len(export.epochs)
    first, last = api.playback.animate_epochs(network.root, FPE, HOLD, start_frame=1)
    assert (first, last) == (1, arrive(epochs - 1) + HOLD)
    assert (network.scene.frame_start, network.scene.frame_end) == (first, last)
    fcurve = api.compat.find_fcurve(network.root, EPOCH_PATH)
    assert fcurve is not None
    keys = [tuple(point.co) for point in fcurve.keyframe_points]
    expected = [(float(f), float(k)) for k in range(epochs) for f in (arrive(k), arrive(k) + HOLD)]
    assert keys == expected
    assert {point.interpolation for point in fcurve.keyframe_points} == {"LINEAR"}

    action = network.root.animation_data.action
    if bpy.app.version >= (5, 0):  # layered actions: the F-curve lives in the slot's channelbag
        from bpy_extras import anim_utils
        assert not hasattr(action, "fcurves")
        channelbag = anim_utils.action_get_channelbag_for_slot(
            action, network.root.animation_data.action_slot)
        assert [fc.data_path for fc in channelbag.fcurves] == [EPOCH_PATH]

    # Animating again replaces the keys, with no second counter.
    api.playback.animate_epochs(network.root, frames_per_epoch=2, hold_frames=0, start_frame=10)
    fcurve = api.compat.find_fcurve(network.root, EPOCH_PATH)
    assert [tuple(p.co) for p in fcurve.keyframe_points] == \
        [(10.0 + 2 * k, float(k)) for k in range(epochs)]
    assert network.scene.frame_start == 10
    counters = [o for o in bpy.data.objects if o.get("nnvis_counter")]
    assert len(counters) == 1
    with pytest.raises(ValueError):
        api.playback.animate_epochs(network.root, frames_per_epoch=0)


def test_integer_epoch_frames_show_the_exported_activations(api, network, export):
    api.playback.animate_epochs(network.root, FPE, HOLD)
    for k in range(len(export.epochs)):
        assert show_frame(network, arrive(k)) == k
        shown = shown_activations(network)
        for name, values in activations(network, export, k).items():
            assert_shown(shown[name], values, layer(network, name), err_msg=f"{name} epoch {k}")
    # Still held at the end of the hold.
    assert show_frame(network, arrive(4) + HOLD) == 4
    assert_shown(shown_activations(network)["conv1"], activations(network, export, 4)["conv1"],
                 layer(network, "conv1"))


def test_halfway_frame_interpolates_linearly(api, network, export):
    api.playback.animate_epochs(network.root, FPE, HOLD)
    for k in (0, 6, 11):
        epoch = show_frame(network, arrive(k) + HOLD + FPE // 2)
        assert epoch == pytest.approx(k + 0.5, abs=1e-6)
        shown = shown_activations(network)
        for name, values in activations(network, export, epoch).items():
            assert_shown(shown[name], values, layer(network, name), err_msg=name, rtol=1e-5)
        assert not np.allclose(shown["dense1"], activations(network, export, k)["dense1"])


def test_step_keys_hold_each_epoch(api, network, export):
    api.playback.animate_epochs(network.root, FPE, HOLD, step=True)
    fcurve = api.compat.find_fcurve(network.root, EPOCH_PATH)
    assert {point.interpolation for point in fcurve.keyframe_points} == {"CONSTANT"}
    for k in (0, 7):
        for frame in (arrive(k) + HOLD + 1, arrive(k) + HOLD + FPE // 2, arrive(k + 1) - 1):
            assert show_frame(network, frame) == k
            shown = shown_activations(network)
            for name, values in activations(network, export, k).items():
                assert_shown(shown[name], values, layer(network, name),
                             err_msg=f"{name} frame {frame}")
        assert show_frame(network, arrive(k + 1)) == k + 1


def test_edge_weights_interpolate_at_a_fractional_frame(api, network, export):
    api.playback.animate_epochs(network.root, FPE, HOLD)
    obj = network.links[("dense1", "output")]
    modifier = obj.modifiers["NNVis Connections"]
    api.compat.set_modifier_input(modifier, "As Tubes", False)
    obj.update_tag()
    try:
        epoch = show_frame(network, arrive(2) + HOLD + 2)  # a third of the way from 2 to 3
        assert epoch == pytest.approx(2 + 2 / FPE, abs=1e-6)
        # the drawn edges (the pair's display budget) in the source-major kernel
        ends = [np.zeros(len(obj.data.curves), np.int32) for _ in range(2)]
        for values, name in zip(ends, ("source_first", "target_first")):
            obj.data.attributes[name].data.foreach_get("value", values)
        index = ends[0].astype(np.int64) * 10 + ends[1]  # dense1 (32) -> output (10)
        a = export.weights("output", 2)[0].reshape(-1)[index].astype(np.float32)
        b = export.weights("output", 3)[0].reshape(-1)[index].astype(np.float32)
        expected = a + (b - a) * np.float32(epoch - 2)
        assert_shown(evaluated_curves(obj)["weight"], expected, obj, rtol=1e-5)
        show_frame(network, arrive(3))
        assert_shown(evaluated_curves(obj)["weight"], b, obj)
    finally:
        api.compat.set_modifier_input(modifier, "As Tubes", True)
        obj.update_tag()


def counter_attributes(counter) -> tuple[dict, np.ndarray]:
    """What the evaluated counter shows (its point attributes) and its world-space vertices."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = counter.evaluated_get(depsgraph)
    geometry = bpy.types.GeometrySet.from_evaluated_object(evaluated)
    mesh = geometry.mesh
    count = len(mesh.vertices)
    assert count > 0, "the counter draws no text"
    shown = {}
    for attribute in mesh.attributes:
        if attribute.name.startswith("nnvis_counter"):
            values = np.zeros(count, np.float32 if attribute.data_type == "FLOAT" else np.int32)
            attribute.data.foreach_get("value", values)
            shown[attribute.name] = values[0]
    local = np.zeros(count * 3, np.float32)
    mesh.attributes["position"].data.foreach_get("vector", local)
    matrix = np.array(evaluated.matrix_world)
    world = local.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    return shown, world


def expected_counter(export, epoch_index):
    """The two lines the counter should show, from the export's own metrics."""
    epoch = export.epochs[epoch_index]
    parts = []
    if epoch.metrics.get("accuracy") is not None:
        parts.append(f"accuracy {np.float32(epoch.metrics['accuracy']) * np.float32(100):.1f}%")
    if epoch.metrics.get("loss") is not None:
        parts.append(f"loss {epoch.metrics['loss']:.3f}")
    return f"Epoch {epoch.epoch}", "   ".join(parts)


def test_counter_shows_the_epoch_number_and_its_metrics(api, network, export):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    api.playback.animate_epochs(network.root, FPE, HOLD)
    counter = api.playback.find_counter(network.root)
    camera = counter.parent
    assert camera is not None and camera.get("nnvis_camera") and "camera" in camera.name
    assert counter.name in network.root.users_collection[0].objects
    assert not export.epochs[0].metrics and export.epochs[1].metrics  # the case of the example
    last = len(export.epochs) - 1
    cases = [(arrive(0), 0), (arrive(0) + HOLD + 2, 0),  # epoch 0.33: still "Epoch 0"
             (arrive(0) + HOLD + 4, 1),                  # epoch 0.67: rounds to 1
             (arrive(1), 1), (arrive(7) + 1, 7), (arrive(last), last)]
    for frame, index in cases:
        show_frame(network, frame)
        shown, vertices = counter_attributes(counter)
        epoch_line, metric_line = expected_counter(export, index)
        assert shown["nnvis_counter_epoch"] == export.epochs[index].epoch, frame
        assert shown["nnvis_counter_epoch_chars"] == len(epoch_line), (frame, epoch_line)
        assert shown["nnvis_counter_metric_chars"] == len(metric_line), (frame, metric_line)
        metrics = export.epochs[index].metrics
        if metrics:
            accuracy, loss = metrics["accuracy"] * 100, metrics["loss"]
            assert shown["nnvis_counter_metric_1"] == pytest.approx(accuracy, rel=1e-5)
            assert shown["nnvis_counter_metric_2"] == pytest.approx(loss, rel=1e-5)
        # Inside the camera's frame, in its lower-left quarter, in front of the lens.
        view = np.array([world_to_camera_view(network.scene, camera, Vector(v))
                         for v in vertices[::7]])
        assert np.all(view[:, :2] > 0.0) and np.all(view[:, :2] < 0.6), view[:, :2].max(axis=0)
        assert np.all(view[:, 2] > camera.data.clip_start)


def test_operator_animates_the_active_network(api, network, export):
    layer = network.layers[2]
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    layer.select_set(True)
    bpy.context.view_layer.objects.active = layer
    result = bpy.ops.nnvis.animate_epochs(frames_per_epoch=2, hold_frames=0, step=True)
    assert result == {"FINISHED"}
    fcurve = api.compat.find_fcurve(network.root, EPOCH_PATH)
    start = network.scene.frame_start
    assert [tuple(p.co) for p in fcurve.keyframe_points] == \
        [(float(start + 2 * k), float(k)) for k in range(len(export.epochs))]
    assert {p.interpolation for p in fcurve.keyframe_points} == {"CONSTANT"}
    bpy.context.view_layer.objects.active = None
    assert not bpy.ops.nnvis.animate_epochs.poll()


def test_playback_needs_no_python(api, network):
    handlers = {name: len(getattr(bpy.app.handlers, name)) for name in
                ("frame_change_pre", "frame_change_post", "depsgraph_update_post", "load_post")}
    api.playback.animate_epochs(network.root, FPE, HOLD)
    assert {name: len(getattr(bpy.app.handlers, name)) for name in handlers} == handlers
    assert api.playback.farm_safety_problems() == []
    counter = api.playback.find_counter(network.root)
    drivers = list(counter.animation_data.drivers)
    assert len(drivers) == 6  # epoch input, location x/y, scale x/y/z
    assert all(d.driver.is_simple_expression and d.driver.is_valid for d in drivers)


def test_network_without_a_camera_still_animates(api, example_export):
    """(Last in the file: it replaces the shared network's scene.)"""
    bpy.ops.wm.read_homefile(use_empty=True)
    options = api.scene.ImportOptions(stage=False)
    options.connections.enabled = False
    root = api.scene.import_network(example_export, options)
    assert bpy.context.scene.camera is None
    first, last = api.playback.animate_epochs(root, frames_per_epoch=1, hold_frames=0)
    assert (first, last) == (1, len(root["nnvis_epoch_numbers"]))
    counter = api.playback.find_counter(root)
    assert counter.parent is None
    bpy.context.scene.frame_set(last)
    shown, _ = counter_attributes(counter)
    assert shown["nnvis_counter_epoch"] == root["nnvis_epoch_numbers"][-1]
