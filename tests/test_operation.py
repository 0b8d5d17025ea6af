"""A close-up of one operation (real bpy, the installed extension, the bundled example).

* what the operation material shows on every quad (its numpy twin) equals core/operation.py's
  steps, which equal the exported values; the shown step follows the keyframes (one step every
  few frames, held), the windows move with it over the cells the step reads and writes;
* a folded Conv + ReLU unit, pooling and a Dense neuron; bad cells give one-line errors;
* the operator from a script (undoable), the panel's buttons, replacing and clearing the
  close-up and removing the network leave ``bpy.data`` as before;
* a saved file renders the same steps in a Blender without nnvis.
"""

from __future__ import annotations

import warnings

import bpy
import numpy as np
import pytest
from blender_utils import (
    close_up_camera,
    compare_images,
    configure_test_render,
    installed_module,
    render_pixels,
)
from mathutils import Vector
from test_farm_safe import fresh_renders

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.operation import activate, operation

DATA = ("objects", "meshes", "materials", "images", "curves", "actions", "node_groups")


@pytest.fixture
def network(Network, example_export):
    bpy.ops.wm.read_homefile(use_empty=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.import_file(example_export, sample=1)


def _objects(network):
    return installed_module("nnvis_addon.blender.operation").operation_objects(network.root)


def _counts():
    return {name: len(getattr(bpy.data, name)) for name in DATA}


@pytest.mark.parametrize("layer, channel, row, col", [
    ("conv2", 7, 3, 2), ("pool1", 5, 6, 1), ("dense1", 9, 0, 0), ("output", 4, 0, 0)])
def test_shown_steps_equal_the_export(network, example_export, layer, channel, row, col):
    export = read_export(example_export)
    network.set(epoch=6.0)
    scene = bpy.context.scene
    scene.frame_set(20)
    op = network.show_operation(layer, channel, row, col, frames_per_step=3)
    assert (op.sample, op.epoch_index) == (1, 6)
    expected = operation(export, layer, channel=channel, row=row, col=col, sample=1,
                         epoch_index=6)
    np.testing.assert_array_equal(op.step_values(), expected.step_values())
    if op.kind != "dense":
        np.testing.assert_allclose(activate(op.activation, op.total), op.output,
                                   atol=2.0 ** -8 * max(1.0, np.abs(op.products).sum(1).max()))
    exported = np.asarray(export.epochs[6].activations[layer][1], np.float64)
    expected_output = exported[row, :, channel] if op.kind != "dense" else exported[channel]
    np.testing.assert_array_equal(op.output, expected_output)
    close = _objects(network)[0]
    shown_operation = installed_module("nnvis_addon.blender.value_atlas").shown_operation
    tolerance = installed_module("nnvis_addon.blender.value_atlas").tolerance(
        close, "nnvis_operation")
    windows = [obj for obj in _objects(network) if obj.get("nnvis_operation") == "window"]
    places = []
    for step in range(op.steps):
        for frame in (20 + 3 * step, 22 + 3 * step):  # the step's key and held after it
            scene.frame_set(frame)
            shown = shown_operation(close)
            np.testing.assert_allclose(shown["value"], op.step_values()[step], rtol=0,
                                       atol=tolerance)
            assert not shown["invalid"].any()
        places.append(tuple(tuple(w.location) for w in windows))
    assert len(windows) == (1 if op.kind == "dense" else 2)
    if op.kind != "dense":
        assert len(set(places)) == op.steps  # the windows move along the row
    scene.frame_set(20 + 3 * op.chosen_step)
    record = close["nnvis_operation"]
    assert (record["layer"], record["channel"], record["row"], record["col"]) == \
        (layer, channel, row, col if op.kind != "dense" else 0)


def test_windows_frame_the_cells_read_and_written(network):
    op = network.show_operation("conv1", 3, row=5, col=0, frames_per_step=2, frame_start=1)
    scene = bpy.context.scene
    output_window, input_window = _objects(network)[-2:]
    positions = installed_module("nnvis_addon.blender.connections").layer_cell_positions
    conv1, picture = network.layer("conv1"), network.layer("input")
    written = positions(conv1) - np.asarray(conv1.location)
    read = positions(picture) - np.asarray(picture.location)
    for step in (0, 7, 15):
        scene.frame_set(1 + 2 * step)
        # conv1's cell (5, step, 3) in Keras flatten order; the input picture's one map
        cell = written[(5 * 16 + step) * 8 + 3]
        np.testing.assert_allclose(np.asarray(output_window.location)[1:], cell[1:], atol=1e-5)
        centre = read[5 * 16 + step]  # "same" 3x3: the window's centre tap is the same cell
        np.testing.assert_allclose(np.asarray(input_window.location)[1:], centre[1:], atol=1e-5)
    assert op.span == (3, 3)
    bpy.context.view_layer.update()
    top = max((conv1.matrix_world @ Vector(c)).z for c in conv1.bound_box)
    close = _objects(network)[0]
    bottom = min((close.matrix_world @ v.co).z for v in close.data.vertices)
    assert bottom > top
    # and above conv1's label (sized for the camera, it may reach higher than the lift)
    label = installed_module("nnvis_addon.blender.labels").label_of(conv1)
    assert label is not None and not label.hide_render
    shown = label.evaluated_get(bpy.context.evaluated_depsgraph_get())
    assert bottom > max((shown.matrix_world @ Vector(c)).z for c in shown.bound_box)
    network.show("conv1", False)
    bpy.context.view_layer.update()
    assert all(obj.hide_render for obj in _objects(network)[:-1])  # not the input's window
    assert not input_window.hide_render


def test_replacing_clearing_and_removing_leave_data_as_before(network, Network,
                                                              example_export):
    before = _counts()
    network.show_operation("conv2", 1, row=2, col=2)
    made = _counts()
    network.show_operation("pool2", 0, row=1)
    network.show_operation("conv2", 1, row=2, col=2)
    assert _counts() == made  # a new close-up replaces the old one
    network.clear_operation()
    assert _counts() == before
    network.show_operation("dense1", 3)
    network.remove()
    bpy.ops.wm.read_homefile(use_empty=True)
    empty = _counts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = Network.import_file(example_export)
    again.show_operation("conv1", 2, row=3)
    again.remove()
    assert _counts() == empty


def test_errors_operator_and_panel(network):
    with pytest.raises(ValueError, match="InputLayer layer 'input' has no operation to show"):
        network.show_operation("input", 0)
    with pytest.raises(KeyError, match="has no layer 'flatten'"):  # folded into dense1
        network.show_operation("flatten", 0)
    with pytest.raises(ValueError, match="row 16 is outside 0..15"):
        network.show_operation("conv1", 0, row=16)
    operators = installed_module("nnvis_addon.operators.explain")
    assert {"REGISTER", "UNDO"} <= operators.NNVIS_OT_show_operation.bl_options
    assert {"REGISTER", "UNDO"} <= operators.NNVIS_OT_clear_operation.bl_options
    assert bpy.ops.nnvis.show_operation(layer="conv2", channel=4, row=1, col=3) == {"FINISHED"}
    assert _objects(network)[0]["nnvis_operation"]["layer"] == "conv2"
    with pytest.raises(RuntimeError, match="No operation shown: channel 99 is outside"):
        bpy.ops.nnvis.show_operation(layer="conv2", channel=99)
    assert bpy.ops.nnvis.clear_operation() == {"FINISHED"}
    assert not _objects(network)
    source = installed_module("nnvis_addon.panels").__file__
    with open(source, encoding="utf-8") as handle:
        text = handle.read()
    assert '"nnvis.show_operation"' in text and '"nnvis.clear_operation"' in text


def test_steps_render_the_same_without_nnvis(network, tmp_path):
    scene = bpy.context.scene
    configure_test_render(scene, 48, 32, 4)
    network.show_operation("conv2", 7, row=3, col=0, frames_per_step=5, frame_start=1)
    close_up_camera(scene, _objects(network)[0])
    frames = [1, 16]
    renders = {}
    for frame in frames:
        scene.frame_set(frame)
        renders[frame] = render_pixels(scene, tmp_path / f"ours_{frame}.png")
    assert not compare_images(renders[1], renders[16])[0]  # the steps differ
    fresh, _ = fresh_renders(tmp_path, frames, "operation")
    for frame in frames:
        assert compare_images(fresh[frame], renders[frame])[0]
