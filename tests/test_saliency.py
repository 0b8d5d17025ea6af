"""Explain a prediction: the exported input-gradient saliency maps in Blender (real bpy, the
installed extension), on the example model re-exported with class evidence maps
(``explained_example``) and on a Dense-only Keras model exported with ``explain=True`` (which has
no Grad-CAM layer, so its export holds saliency only).

* what the input picture's cell material shows equals the exported saliency map of each pixel,
  scaled to its own 99th percentile (computed here by an explicit sort) and capped at 1, at whole
  and fractional epochs, for the predicted class and the true label, when the root's Evidence Map
  picks saliency; halfway it blends the two maps; conv2's own Grad-CAM fades out meanwhile;
* renders: the Evidence Map changes what the input shows, and conv2 with saliency picked renders
  exactly as without any overlay; a saved file with the Evidence Map keyframed renders the same
  without nnvis;
* a Dense-only model's input shows its saliency whatever the Evidence Map says;
* an export without explanations (the bundled format 1.0 example) gets no overlay at all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import bpy
import numpy as np
import pytest
from blender_utils import (
    ROOT,
    compare_images,
    configure_test_render,
    evaluated_instances,
    installed_module,
    render_pixels,
)
from test_farm_safe import fresh_renders
from test_gradcam import _resize_loop

from nnvis_addon.core.export_format import read_export

WIDTH, HEIGHT, SAMPLES = 96, 54, 4
OVERLAY_PREFIXES = ("nnvis_cam_predicted", "nnvis_cam_label", "nnvis_saliency_predicted",
                    "nnvis_saliency_label")


def _import(Network, path, **options):
    bpy.ops.wm.read_homefile(use_empty=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.import_file(path, **options)


@pytest.fixture
def network(Network, explained_example):
    return _import(Network, explained_example, sample=1)


def _scaled(image: np.ndarray, percentile: float) -> np.ndarray:
    """``image`` divided by its percentile (linear between the sorted values), capped at 1."""
    ordered = np.sort(image.reshape(-1).astype(np.float64))
    position = percentile / 100 * (len(ordered) - 1)
    low = int(np.floor(position))
    high = min(low + 1, len(ordered) - 1)
    peak = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return np.minimum(image / peak, 1.0)


def _at_epoch(export, key: str, percentile: float, epoch: float, sample: int) -> np.ndarray:
    """The scaled map ``key`` of one sample at a (fractional) epoch, mixed between two epochs."""
    lower = int(np.floor(epoch))
    upper = min(lower + 1, len(export.epochs) - 1)
    maps = [_scaled(np.asarray(export.epochs[index].explanations[key][sample]), percentile)
            for index in (lower, upper)]
    return (1 - (epoch - lower)) * maps[0] + (epoch - lower) * maps[1]


def _check_overlay(obj, expected: np.ndarray, strength: float, label: str) -> None:
    atlas = installed_module("nnvis_addon.blender.value_atlas")
    shown = evaluated_instances(obj)[1]
    np.testing.assert_allclose(shown["overlay"], expected, rtol=0,
                               atol=atlas.tolerance(obj, "nnvis_saliency_predicted") + 1e-6,
                               err_msg=label)
    np.testing.assert_allclose(shown["overlay_mix"], strength * (0.2 + 0.45 * expected),
                               atol=1e-4, err_msg=label)


def test_input_shows_the_exported_saliency_and_conv2_fades(network, explained_example):
    export = read_export(explained_example)
    network.set(gradcam=0.8, evidence_map=1.0)
    for kind, epoch in (("predicted", 12.0), ("predicted", 0.0), ("label", 6.5), ("label", 3.0)):
        network.set(epoch=epoch, gradcam_of_label=kind == "label")
        saliency = _at_epoch(export, f"saliency_{kind}", 99.0, epoch, sample=1)
        _check_overlay(network.layer("input"), saliency.reshape(-1), 0.8, f"{kind} {epoch}")
        conv2 = evaluated_instances(network.layer("conv2"))[1]
        np.testing.assert_array_equal(conv2["overlay_mix"], 0.0)  # saliency means nothing there
        assert np.mean(saliency >= 1.0) < 0.02  # only the top percent of the pixels saturates
    network.set(evidence_map=0.5, epoch=12.0, gradcam_of_label=False)
    cam = _at_epoch(export, "gradcam_predicted", 100.0, 12.0, 1)
    cam_16 = _resize_loop(cam, 16, 16)
    saliency = _at_epoch(export, "saliency_predicted", 99.0, 12.0, 1)
    _check_overlay(network.layer("input"), (0.5 * cam_16 + 0.5 * saliency).reshape(-1), 0.8,
                   "halfway")
    conv2 = evaluated_instances(network.layer("conv2"))[1]
    np.testing.assert_allclose(conv2["overlay_mix"],
                               0.5 * 0.8 * (0.2 + 0.45 * np.repeat(cam.reshape(-1), 16)),
                               atol=1e-4)
    assert np.abs(cam_16 - saliency).max() > 0.3  # two different maps


def _only(network, unit: str) -> None:
    for obj in network.layers:
        network.show(obj, obj["nnvis_layer"] == unit)


def test_evidence_map_switches_renders_and_plays_without_nnvis(network, tmp_path):
    scene = bpy.context.scene
    configure_test_render(scene, WIDTH, HEIGHT, SAMPLES)
    _only(network, "conv2")
    plain = render_pixels(scene, tmp_path / "conv2_plain.png")
    network.set(gradcam=1.0)
    assert not compare_images(render_pixels(scene, tmp_path / "conv2_cam.png"), plain)[0]
    network.set(evidence_map=1.0)
    assert compare_images(render_pixels(scene, tmp_path / "conv2_saliency.png"), plain,
                          max_bad_fraction=0.0)[0]
    _only(network, "input")
    saliency = render_pixels(scene, tmp_path / "input_saliency.png")
    network.set(evidence_map=0.0)
    cam = render_pixels(scene, tmp_path / "input_cam.png")
    assert compare_images(saliency, cam)[1] > 0.003  # the small input's pixels (33 of 5184)
    for obj in network.layers:
        network.show(obj, True)
    for frame, value in ((1, 0.0), (11, 1.0)):
        network.root["nnvis_evidence_map"] = value
        network.root.keyframe_insert('["nnvis_evidence_map"]', frame=frame)
    frames = [1, 6, 11]
    with_nnvis = {}
    for frame in frames:
        scene.frame_set(frame)
        with_nnvis[frame] = render_pixels(scene, tmp_path / f"nnvis_{frame}.png")
    assert not compare_images(with_nnvis[1], with_nnvis[11])[0]
    fresh, _ = fresh_renders(tmp_path, frames, "saliency")
    for frame in frames:
        assert compare_images(fresh[frame], with_nnvis[frame])[0]


def test_panel_names_the_map_shown(network):
    panels = installed_module("nnvis_addon.panels")
    labels = [c.label for c in panels.panel_model(bpy.context).explain_controls]
    assert labels == ["Trace", "Class Evidence", "Evidence Map: Grad-CAM",
                      "Evidence of True Label"]
    network.set(evidence_map=1.0)
    assert panels.panel_model(bpy.context).explain_controls[2].label == "Evidence Map: Saliency"


# Runs in its own process (TensorFlow): a Dense-only classifier of the 8x8 digits, two epochs
# recorded with class evidence asked for (no convolution: saliency only).
DENSE_ONLY = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import keras, numpy as np
    from sklearn.datasets import load_digits
    import nnvis_export
    keras.utils.set_random_seed(3)
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    model = keras.Sequential([keras.Input((8, 8, 1), name="input"),
                              keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(10, activation="softmax", name="output")],
                             name="dense_digits")
    model.compile("adam", "sparse_categorical_crossentropy")
    recorder = nnvis_export.EpochRecorder(x[:3], sys.argv[1], labels=digits.target[:3],
                                          explain=True, verbose=False)
    model.fit(x[3:600], digits.target[3:600], epochs=2, batch_size=64, verbose=0,
              callbacks=[recorder])
    print(recorder.export_path)
""")


@pytest.fixture(scope="module")
def dense_only(tmp_path_factory):
    out = tmp_path_factory.mktemp("dense_only")
    result = subprocess.run([sys.executable, "-c", DENSE_ONLY, str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_dense_only_model_shows_saliency_on_its_input(Network, dense_only, tmp_path):
    export = read_export(dense_only)
    assert export.explain.gradcam_layer is None
    assert set(export.epochs[0].explanations) == {"saliency_predicted", "saliency_label"}
    network = _import(Network, dense_only, sample=2)
    network.set(gradcam=1.0)
    for pick, epoch in ((0.0, 2.0), (1.0, 2.0), (0.0, 0.5)):  # whatever the Evidence Map says
        network.set(evidence_map=pick, epoch=epoch)
        expected = _at_epoch(export, "saliency_predicted", 99.0, epoch, sample=2)
        _check_overlay(network.layer("input"), expected.reshape(-1), 1.0, f"{pick} {epoch}")
    scene = bpy.context.scene
    configure_test_render(scene, WIDTH, HEIGHT, SAMPLES)
    renders = {}
    for name, strength, pick in (("off", 0.0, 0.0), ("pick0", 1.0, 0.0), ("pick1", 1.0, 1.0)):
        network.set(gradcam=strength, evidence_map=pick)
        renders[name] = render_pixels(scene, tmp_path / f"{name}.png")
    assert compare_images(renders["pick0"], renders["off"])[1] > 0.003
    assert compare_images(renders["pick1"], renders["pick0"], max_bad_fraction=0.0)[0]
    output = network.layer("output")
    assert "overlay" not in evaluated_instances(output)[1]
    assert not set(output.keys()) & {f"{p}_place" for p in OVERLAY_PREFIXES}
    model = installed_module("nnvis_addon.panels").panel_model(bpy.context)
    assert model.root == network.root and not model.no_evidence
    assert [c.label for c in model.explain_controls] == [  # one map: no choice to offer
        "Trace", "Class Evidence", "Evidence of True Label"]


def test_export_without_explanations_gets_no_overlay(Network, example_export):
    network = _import(Network, example_export)
    network.set(gradcam=1.0, evidence_map=1.0)
    for obj in network.layers:
        assert not set(obj.keys()) & {"nnvis_gradcam", "nnvis_evidence_map",
                                      *(f"{p}_place" for p in OVERLAY_PREFIXES)}, obj.name
        assert "overlay" not in evaluated_instances(obj)[1], obj.name
    read = {node.attribute_name for material in bpy.data.materials
            if material.name.startswith("NNVis Activation") and material.node_tree
            for node in material.node_tree.nodes if node.bl_idname == "ShaderNodeAttribute"}
    assert read and not {name for name in read if "gradcam" in name or "evidence" in name
                         or "saliency" in name or "cam_" in name}, sorted(read)
    model = installed_module("nnvis_addon.panels").panel_model(bpy.context)
    assert model.root == network.root and model.no_evidence  # the panel says so instead
    assert [c.label for c in model.explain_controls] == ["Trace"]
