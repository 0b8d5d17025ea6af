"""core/evidence.py without Blender: Grad-CAM maps scaled and resized as the overlay shows them,
the answer's probabilities, listed classes, geometry and stream, against explicit computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnvis_addon.core import evidence


def test_maps_are_scaled_to_their_own_maximum():
    maps = np.array([[[0.0, 2.0], [1.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]],
                     [[np.nan, 1.0], [0.5, 0.25]]], np.float32)
    scaled = evidence.normalised(maps)
    np.testing.assert_array_equal(scaled[0], [[0.0, 0.5], [0.25, 1.0]])
    np.testing.assert_array_equal(scaled[1], np.zeros((2, 2)))  # no evidence: nothing shown
    assert np.isnan(scaled[2, 0, 0]) and scaled[2, 0, 1] == 1.0 and scaled[2, 1, 1] == 0.25


def _resize_loop(image, height, width):
    h, w = image.shape
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            y = min(max((i + 0.5) * h / height - 0.5, 0.0), h - 1)
            x = min(max((j + 0.5) * w / width - 0.5, 0.0), w - 1)
            y0, x0 = math.floor(y), math.floor(x)
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * (x - x0)
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * (x - x0)
            out[i, j] = top + (bottom - top) * (y - y0)
    return out


@pytest.mark.parametrize("shape", [(8, 8, 16, 16), (7, 5, 24, 36), (4, 4, 4, 4), (6, 9, 3, 5)])
def test_resize_is_bilinear_between_pixel_centres(shape):
    h, w, height, width = shape
    maps = np.random.default_rng(3).random((2, h, w)).astype(np.float32)
    resized = evidence.resize_bilinear(maps, height, width)
    for sample in range(2):
        np.testing.assert_allclose(resized[sample], _resize_loop(maps[sample], height, width),
                                   rtol=0, atol=1e-6)


def test_probabilities_of_softmax_logit_and_sigmoid_outputs():
    softmax = np.array([[0.1, 0.7, 0.2], [0.3, 0.3, 0.4]], np.float32)
    np.testing.assert_array_equal(evidence.class_probabilities(softmax), softmax)
    logits = np.array([[2.0, -1.0, 0.5]])
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(evidence.class_probabilities(logits), expected, rtol=1e-6)
    np.testing.assert_allclose(evidence.class_probabilities(np.array([[0.8], [0.1]])),
                               [[0.2, 0.8], [0.9, 0.1]], rtol=1e-6)
    np.testing.assert_allclose(evidence.class_probabilities(np.array([[0.0], [2.0]])),
                               [[0.5, 0.5], [1 - 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-2))]],
                               rtol=1e-6)


def test_listed_classes_are_all_or_the_labels_and_the_likeliest():
    few = [np.full((2, 5), 0.2, np.float32)]
    assert evidence.answer_classes(few, [1, None]) == [0, 1, 2, 3, 4]
    probabilities = np.zeros((2, 2, 100), np.float32)
    likeliest = [90, 3, 55, 7, 12, 61, 80, 33, 21, 44, 18, 70, 99]
    for rank, index in enumerate(likeliest):
        probabilities[rank % 2, rank % 2, index] = 1.0 - rank * 0.01
    listed = evidence.answer_classes(list(probabilities), [42, None], limit=12)
    assert listed == sorted([42, *likeliest[:11]])


def test_answer_geometry_and_names():
    panel = evidence.answer_panel(3, 0.1, 2.0)
    assert panel.faces.shape == (6, 4) and panel.vertices.shape == (24, 3)
    bars = panel.part == 0
    bar_y = panel.vertices[bars, 1]
    assert bar_y.max() - bar_y.min() == pytest.approx(evidence.ANSWER_BAR * 0.1)
    # u runs along the reading direction (-Y), 0 at the bar's start.
    assert panel.vertices[bars & (panel.u == 0), 1].min() > panel.vertices[bars & (panel.u == 1), 1].max()
    rows = [panel.vertices[panel.slot == s, 2].mean() for s in range(3)]
    assert rows[0] < -1.0 and rows[0] > rows[1] > rows[2]  # under the unit, top to bottom
    np.testing.assert_allclose(panel.text_ends[:, 2], rows, atol=1e-6)
    assert (panel.text_ends[:, 1] > panel.vertices[:, 1].max()).all()  # names before the marks
    assert evidence.class_name(["cat", "dog"], 1) == "dog" and evidence.class_name(None, 4) == "4"


def _percentile_loop(values, percentile):
    """numpy's default (linear) percentile of a list, written out."""
    ordered = sorted(values)
    position = percentile / 100 * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def test_saliency_is_scaled_to_its_99th_percentile_and_saturates():
    rng = np.random.default_rng(5)
    maps = rng.exponential(size=(3, 12, 10)).astype(np.float32) ** 3  # peaky, like saliency
    maps[1, 0, 0] = np.nan
    maps[2] = 0.0
    scaled = evidence.normalised(maps, 99.0)
    for sample in range(2):
        finite = [float(v) for v in maps[sample].reshape(-1) if np.isfinite(v)]
        peak = _percentile_loop(finite, 99.0)
        for index, value in np.ndenumerate(maps[sample]):
            if np.isfinite(value):
                assert scaled[sample][index] == pytest.approx(min(value / peak, 1.0), rel=1e-5)
        saturated = np.mean(np.nan_to_num(scaled[sample], nan=0.0) == 1.0)
        assert 0.005 < saturated < 0.03  # about the top 1 % of the pixels
    assert np.isnan(scaled[1, 0, 0])
    np.testing.assert_array_equal(scaled[2], 0.0)
    assert evidence.SCALE_PERCENTILE == {"gradcam": 100.0, "saliency": 99.0}


def _explained(tmp_path, layers, maps: dict[str, tuple[int, ...]], gradcam_layer=None):
    """A factory export read back, with random class evidence ``maps`` (key -> per-sample
    shape) in every epoch, folded and planned as an import does."""
    from export_factory import make_export

    from nnvis_addon.core.export_format import Explain, read_export
    from nnvis_addon.core.folding import fold_export
    from nnvis_addon.core.layout import plan_network

    export = read_export(make_export(tmp_path, layers=layers, samples=2, epochs=2).path)
    rng = np.random.default_rng(7)
    export.explain = Explain(gradcam_layer=gradcam_layer, score="logit") if maps else None
    for epoch in export.epochs:
        epoch.explanations = {key: rng.random((2, *shape)).astype(np.float32) ** 4
                              for key, shape in maps.items()}
    folded = fold_export(export)
    return folded, plan_network(folded)


def test_overlay_targets_follow_the_recorded_maps(tmp_path):
    from export_factory import LayerDef, cnn_layers

    both = {"gradcam_predicted": (4, 4), "gradcam_label": (4, 4), "saliency_predicted": (6, 6),
            "saliency_label": (6, 6)}
    export, plan = _explained(tmp_path / "cnn", cnn_layers(), both, gradcam_layer="conv")
    assert evidence.overlay_targets(export, plan) == [
        evidence.OverlayTarget("conv", picture=False, maps=("gradcam",)),
        evidence.OverlayTarget("input", picture=True, maps=("gradcam", "saliency"))]
    assert evidence.overlay_kinds(export, "saliency") == ["predicted", "label"]
    dense_only = [LayerDef("input", "InputLayer", (6, 6, 1), inbound=[]),
                  LayerDef("flatten", "Flatten", (36,)),
                  LayerDef("dense", "Dense", (5,), weights=[("kernel", (36, 5)), ("bias", (5,))],
                           config={"units": 5, "activation": "softmax"})]
    export, plan = _explained(tmp_path / "dense", dense_only, {"saliency_predicted": (6, 6)})
    assert evidence.overlay_targets(export, plan) == [
        evidence.OverlayTarget("input", picture=True, maps=("saliency",))]
    assert evidence.overlay_kinds(export, "saliency") == ["predicted"]
    layer_plan = plan.layers[0]
    for epoch_index, epoch in enumerate(export.epochs):  # no resize: already the input's size
        shown = evidence.overlay_maps(export, layer_plan, evidence.overlay_targets(export, plan)[0],
                                      epoch_index, "saliency", "predicted")
        raw = epoch.explanations["saliency_predicted"]
        for sample in range(2):
            peak = _percentile_loop([float(v) for v in raw[sample].reshape(-1)], 99.0)
            np.testing.assert_allclose(shown[sample], np.minimum(raw[sample] / peak, 1).reshape(-1),
                                       rtol=1e-5)
    export, plan = _explained(tmp_path / "plain", cnn_layers(), {})
    assert evidence.overlay_targets(export, plan) == []
