"""Explain a prediction: the Grad-CAM overlay in Blender (real bpy, the installed extension), on
the example model re-exported with class evidence maps (format 1.1, ``explained_example``).

* what the cell material shows of the overlay equals the exported maps, each scaled to its own
  maximum: on conv2 (the exporter's Grad-CAM layer) per pixel of every map, on the input picture
  resized to 16x16 (bilinear, computed here by an explicit loop), at whole and fractional epochs,
  for the predicted class and the true label; no other unit shows it;
* the overlay is non-destructive (mix 0 renders as without it), changes the render at 1, and a
  saved file with the mix keyframed renders the same without nnvis; the panel offers it.
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

WIDTH, HEIGHT, SAMPLES = 64, 36, 4


@pytest.fixture
def network(Network, explained_example):
    bpy.ops.wm.read_homefile(use_empty=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.import_file(explained_example, sample=1)


def _scaled(maps: np.ndarray) -> np.ndarray:
    return maps / maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)


def _resize_loop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize between pixel centres, one output pixel at a time."""
    h, w = image.shape
    out = np.zeros((height, width))
    for i in range(height):
        y = min(max((i + 0.5) * h / height - 0.5, 0.0), h - 1)
        for j in range(width):
            x = min(max((j + 0.5) * w / width - 0.5, 0.0), w - 1)
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, x - x0
            out[i, j] = (image[y0, x0] * (1 - fy) * (1 - fx) + image[y0, x1] * (1 - fy) * fx
                         + image[y1, x0] * fy * (1 - fx) + image[y1, x1] * fy * fx)
    return out


def _expected(export, kind: str, epoch: float, sample: int) -> tuple[np.ndarray, np.ndarray]:
    """(conv2's 8x8 map, the input's 16x16 map) shown at a (fractional) epoch."""
    lower = int(np.floor(epoch))
    upper = min(lower + 1, len(export.epochs) - 1)
    weight = epoch - lower
    maps = []
    for index in (lower, upper):
        scaled = _scaled(np.asarray(export.epochs[index].explanations[f"gradcam_{kind}"],
                                    np.float64))[sample]
        maps.append((scaled, _resize_loop(scaled, 16, 16)))
    return tuple((1 - weight) * a + weight * b for a, b in zip(*maps))  # type: ignore[return-value]


def test_overlay_values_equal_the_exported_maps(network, explained_example):
    export = read_export(explained_example)
    assert export.explain.gradcam_layer == "conv2"
    atlas = installed_module("nnvis_addon.blender.value_atlas")
    network.set(gradcam=0.75)
    for kind, epoch in (("predicted", 12.0), ("predicted", 0.0), ("label", 5.5), ("label", 0.0)):
        network.set(epoch=epoch, gradcam_of_label=kind == "label")
        conv2, picture = _expected(export, kind, epoch, sample=1)
        for unit, expected in (("conv2", np.repeat(conv2.reshape(-1), 16)),
                               ("input", picture.reshape(-1))):
            obj = network.layer(unit)
            shown = evaluated_instances(obj)[1]
            prefix = f"nnvis_cam_{kind}"
            np.testing.assert_allclose(shown["overlay"], expected, rtol=0,
                                       atol=atlas.tolerance(obj, prefix) + 1e-6,
                                       err_msg=f"{unit} {kind} epoch {epoch}")
            np.testing.assert_allclose(shown["overlay_mix"], 0.75 * (0.2 + 0.45 * expected),
                                       atol=1e-4)
    first, last = (_expected(export, "predicted", epoch, 1)[0] for epoch in (0.0, 12.0))
    assert np.abs(first - last).max() > 0.2  # the evidence forms with training
    for obj in network.layers:
        if obj["nnvis_layer"] not in ("conv2", "input"):
            assert "overlay" not in evaluated_instances(obj)[1], obj.name
            assert "nnvis_gradcam" not in obj.keys()


def test_overlay_is_non_destructive_and_renders_without_nnvis(network, tmp_path):
    scene = bpy.context.scene
    configure_test_render(scene, WIDTH, HEIGHT, SAMPLES)
    before = render_pixels(scene, tmp_path / "before.png")
    network.set(gradcam=1.0)
    overlaid = render_pixels(scene, tmp_path / "overlaid.png")
    assert not compare_images(overlaid, before)[0]
    network.set(gradcam_of_label=True)
    network.set(gradcam=0.0)
    assert compare_images(render_pixels(scene, tmp_path / "off.png"), before, max_bad_fraction=0.0)[0]
    network.animate_epochs(frames_per_epoch=2, hold_frames=0)
    for frame, value in ((1, 0.0), (9, 1.0)):
        network.root["nnvis_gradcam"] = value
        network.root.keyframe_insert('["nnvis_gradcam"]', frame=frame)
    frames = [1, 13, 25]
    with_nnvis = {}
    for frame in frames:
        scene.frame_set(frame)
        with_nnvis[frame] = render_pixels(scene, tmp_path / f"nnvis_{frame}.png")
    assert not compare_images(with_nnvis[13], with_nnvis[25])[0]  # the map plays with the epochs
    fresh, _ = fresh_renders(tmp_path, frames, "gradcam")
    for frame in frames:
        assert compare_images(fresh[frame], with_nnvis[frame])[0], frame


def test_panel_offers_the_overlay(network):
    panels = installed_module("nnvis_addon.panels")
    model = panels.panel_model(bpy.context)
    assert [c.label for c in model.explain_controls] == [
        "Trace", "Class Evidence", "Evidence Map: Grad-CAM", "Evidence of True Label"]
    network.root["nnvis_gradcam"] = 0.5
    network.root.keyframe_insert('["nnvis_gradcam"]', frame=1)
    assert network.root.animation_data.action is not None
