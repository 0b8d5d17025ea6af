"""The answer itself (real bpy, the installed extension, the bundled example): the output's
class probabilities as bars under the output unit, with the class names; the true class marked.

* what the answer material shows per class (its numpy twin) equals the exported output at whole
  and fractional epochs for every sample, the true label and the prediction of each epoch;
* the class names are the export's, one text each, beside their bar; the objects belong to the
  network (hidden with the output unit, removed with the network);
* a render shows the bars changing with the epoch.
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

from nnvis_addon.core.export_format import read_export


@pytest.fixture
def network(Network, example_export):
    bpy.ops.wm.read_homefile(use_empty=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.import_file(example_export)


def _answer(network):
    return installed_module("nnvis_addon.blender.answer").answer_objects(network.root)


def test_bars_show_the_exported_probabilities(network, example_export):
    export = read_export(example_export)
    shown_answer = installed_module("nnvis_addon.blender.value_atlas").shown_answer
    tolerance = installed_module("nnvis_addon.blender.value_atlas").tolerance
    bars = _answer(network)[0]
    for sample in range(4):
        for epoch in (0.0, 5.5, 12.0):
            network.set(sample=sample, epoch=epoch)
            lower, upper = int(np.floor(epoch)), int(np.ceil(epoch))
            outputs = [np.asarray(export.epochs[i].activations["output"][sample], np.float64)
                       for i in (lower, upper)]
            expected = outputs[0] + (outputs[1] - outputs[0]) * (epoch - lower)
            shown = shown_answer(bars)
            np.testing.assert_allclose(shown["probability"], expected, rtol=0,
                                       atol=tolerance(bars, "nnvis_answer") + 1e-6)
            np.testing.assert_array_equal(shown["true"],
                                          np.arange(10) == export.samples[sample].label)
            if epoch == lower:
                predicted = export.epochs[lower].predictions[sample]
                np.testing.assert_array_equal(shown["predicted"], np.arange(10) == predicted)
                assert int(np.argmax(shown["probability"])) == predicted


def test_class_names_belong_to_the_network(network):
    made = _answer(network)
    bars, texts = made[0], made[1:]
    assert bars.parent == network.layer("output")
    assert [t.data.body for t in texts] == [str(i) for i in range(10)]
    bpy.context.view_layer.update()
    rows = [(bars.matrix_world @ Vector(v.co)).z for v in bars.data.vertices]
    bar_rows = sorted(set(round(z, 4) for z in rows), reverse=True)
    assert len(texts) == 10 and len(bar_rows) >= 10
    heights = [t.matrix_world.translation.z for t in texts]
    assert heights == sorted(heights, reverse=True)  # class 0 on top
    output_cells_bottom = min((network.layer("output").matrix_world @ Vector(c)).z
                              for c in network.layer("output").bound_box)
    assert max(rows) < output_cells_bottom  # under the output unit
    network.show("output", False)
    bpy.context.view_layer.update()
    assert all(obj.hide_render for obj in made)
    network.show("output", True)
    names = {obj.name for obj in made}
    materials = {m.name for m in bars.data.materials}
    network.remove()
    assert not names & {obj.name for obj in bpy.data.objects}
    assert not materials & {m.name for m in bpy.data.materials}


def test_render_shows_the_bars_change(network, tmp_path):
    scene = bpy.context.scene
    configure_test_render(scene, 48, 48, 4)
    close_up_camera(scene, _answer(network)[0])
    renders = {}
    for epoch in (0.0, 12.0):
        network.set(epoch=epoch, sample=2)
        renders[epoch] = render_pixels(scene, tmp_path / f"answer_{epoch}.png")
    assert not compare_images(renders[0.0], renders[12.0])[0]
    green = renders[12.0][..., 1] - renders[12.0][..., 0]
    assert green.max() > 0.3  # the true class's marker
