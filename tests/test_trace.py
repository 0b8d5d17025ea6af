"""Explain a prediction in Blender: ``Network.trace`` on the bundled example (real bpy, the
installed extension).

* the ``nnvis_trace`` values reach the evaluated cell instances (through the layer group) and
  equal core/trace.py's, the input's traced cells are exactly the receptive field worked out by
  hand (3x3 convs, 2x2 pools), the connection tubes carry the edges' values;
* the trace is non-destructive: strength 0 renders as before the trace; at strength 1 the
  render changes; clearing removes it; the operators are undoable and the panel offers them;
* a saved traced scene renders the same on a Blender that never had nnvis.
"""

from __future__ import annotations

import warnings

import bpy
import numpy as np
import pytest
from blender_utils import (
    compare_images,
    configure_test_render,
    evaluated_instances,
    installed_module,
    render_pixels,
)
from test_farm_safe import fresh_renders

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.trace import DrawnGrid, drawn_cells, trace_cell

WIDTH, HEIGHT, SAMPLES = 64, 36, 4


@pytest.fixture
def network(Network, example_export):
    bpy.ops.wm.read_homefile(use_empty=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.import_file(example_export, sample=1)


def _evaluated_trace(obj) -> np.ndarray:
    return evaluated_instances(obj)[1]["nnvis_trace"]


def test_trace_values_reach_the_cells_and_equal_the_core(network, example_export):
    summary = network.trace("conv2", channel=3, row=2, col=5)
    assert network.get("trace_strength") == 1.0
    expected = trace_cell(read_export(example_export), "conv2", channel=3, row=2, col=5,
                          sample=1, epoch_index=12)
    for obj in network.layers:
        unit = obj["nnvis_layer"]
        grid = DrawnGrid(tuple(obj["nnvis_output_shape"]), int(obj["nnvis_display_stride"]),
                         picture=unit == "input")
        np.testing.assert_allclose(_evaluated_trace(obj),
                                   drawn_cells(expected.unit_values(unit), grid), rtol=1e-6)
    # The input's traced pixels: conv2 (3x3 same) <- pool1 (2x2) <- conv1 (3x3 same).
    picture = _evaluated_trace(network.layer("input")).reshape(16, 16)
    field = np.zeros((16, 16), bool)
    field[1:9, 7:15] = True
    np.testing.assert_array_equal(picture > 0, field)
    conv2 = _evaluated_trace(network.layer("conv2")).reshape(8, 8, 16)
    assert conv2[2, 5, 3] == 1.0 and np.count_nonzero(conv2) == 1
    assert not _evaluated_trace(network.layer("dense1")).any()  # downstream: dimmed
    assert summary.highlighted["input"] == 64 and "pool1" in summary.contributors
    for obj in network.layers + network.connections:
        obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        assert obj.evaluated_get(bpy.context.evaluated_depsgraph_get())["nnvis_trace_strength"] \
            == 1.0


def test_connections_carry_the_contributing_paths(network):
    network.trace(class_index=0)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    found = {}
    for obj in network.connections:
        geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
        if geometry.mesh is None:  # hidden (a collapsed block's link)
            continue
        attribute = geometry.mesh.attributes.get("nnvis_trace")
        assert attribute is not None, obj.name
        values = np.zeros(len(attribute.data), np.float32)
        attribute.data.foreach_get("value", values)
        found[obj["nnvis_target_layer"]] = values
    assert found["output"].max() == pytest.approx(1.0)  # the strongest path into class 0
    assert 0 < np.count_nonzero(found["output"]) < found["output"].size


def test_trace_is_non_destructive_and_renders_without_nnvis(network, tmp_path):
    scene = bpy.context.scene
    configure_test_render(scene, WIDTH, HEIGHT, SAMPLES)
    before = render_pixels(scene, tmp_path / "before.png")
    network.trace("pool2", channel=5, row=1, col=1)
    traced = render_pixels(scene, tmp_path / "traced.png")
    assert not compare_images(traced, before)[0]
    network.set(trace_strength=0.0)
    assert compare_images(render_pixels(scene, tmp_path / "off.png"), before, max_bad_fraction=0.0)[0]
    network.set(trace_strength=1.0)
    fresh, _ = fresh_renders(tmp_path, [1], "traced")
    assert compare_images(fresh[1], render_pixels(scene, tmp_path / "again.png"))[0]
    network.clear_trace()
    assert compare_images(render_pixels(scene, tmp_path / "cleared.png"), before,
                          max_bad_fraction=0.0)[0]
    assert all("nnvis_trace" not in obj.data.attributes for obj in network.layers)


def test_fade_keyframes_and_operators(network):
    scene = bpy.context.scene
    scene.frame_set(10)
    network.trace(class_index=3, fade_frames=20)
    for frame, strength in ((10, 0.0), (20, 0.5), (30, 1.0)):
        scene.frame_set(frame)
        assert network.get("trace_strength") == pytest.approx(strength, abs=0.1)
    operators = installed_module("nnvis_addon.operators.explain")
    assert {"REGISTER", "UNDO"} <= operators.NNVIS_OT_trace.bl_options
    assert {"REGISTER", "UNDO"} <= operators.NNVIS_OT_clear_trace.bl_options
    bpy.context.view_layer.objects.active = network.layer("conv1")
    assert bpy.ops.nnvis.trace(layer="conv1", channel=0, row=4, col=4) == {"FINISHED"}
    assert network.root["nnvis_traced"]["unit"] == "conv1"
    with pytest.raises(RuntimeError, match="Nothing traced: unit 'conv1': channel 9 is outside"):
        bpy.ops.nnvis.trace(layer="conv1", channel=9)
    assert bpy.ops.nnvis.clear_trace() == {"FINISHED"}
    assert "nnvis_traced" not in network.root.keys()
    panels = installed_module("nnvis_addon.panels")
    model = panels.panel_model(bpy.context)
    assert [c.label for c in model.explain_controls][0] == "Trace"
