"""Format 1.1's class evidence maps in the reader (no TensorFlow): ``explain`` and
``epochs[].explanations`` read with their shapes checked; what a 1.0 reader would do with them
(skip them), and every way they can be wrong, each with its own message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from export_factory import make_export

from nnvis_addon.core import export_format
from nnvis_addon.core.export_format import ExportFormatError, read_export


def _with_maps(tmp_path, mutate=None):
    """The factory's tiny CNN (conv 4x4x4, input 6x6x1, 2 samples labelled) with inline maps."""
    built = make_export(tmp_path)
    document = built.document()
    arrays = document["arrays"]

    def add(shape, value=0.5):
        arrays.append({"dtype": "float32", "shape": list(shape),
                       "data": [value] * int(np.prod(shape))})
        return len(arrays) - 1

    document["version"] = "1.1"
    document["explain"] = {"gradcam_layer": "conv", "score": "logit"}
    for index, epoch in enumerate(document["epochs"]):
        epoch["explanations"] = {"gradcam_predicted": add((2, 4, 4), index + 1.0),
                                 "saliency_label": add((2, 6, 6), 0.25)}
    if mutate is not None:
        mutate(document, add)
    built.path.write_text(json.dumps(document))
    return built.path


def test_maps_are_read(tmp_path):
    export = read_export(_with_maps(tmp_path))
    assert export.version == "1.1" == export_format.FORMAT_VERSION
    assert export.explain == export_format.Explain(gradcam_layer="conv", score="logit")
    for index, epoch in enumerate(export.epochs):
        assert set(epoch.explanations) == {"gradcam_predicted", "saliency_label"}
        np.testing.assert_array_equal(epoch.explanations["gradcam_predicted"],
                                      np.full((2, 4, 4), index + 1.0, np.float32))
    plain = read_export(make_export(tmp_path / "plain").path)
    assert plain.version == "1.0" and plain.explain is None
    assert all(epoch.explanations == {} for epoch in plain.epochs)


def test_a_1_0_reader_skips_them(tmp_path, monkeypatch):
    path = _with_maps(tmp_path)
    monkeypatch.setattr(export_format, "FORMAT_VERSION", "1.0")
    schema = json.loads(export_format.SCHEMA_PATH.read_text())
    del schema["properties"]["explain"]
    del schema["properties"]["epochs"]["items"]["properties"]["explanations"]
    monkeypatch.setattr(export_format, "load_schema", lambda: schema)
    export = read_export(path)
    assert len(export.epochs) == 2 and export.layer("conv").output_shape == (4, 4, 4)


def _set(path, value):
    def mutate(document, add):
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(add) if callable(value) else value
    return mutate


@pytest.mark.parametrize("mutate, message", [
    (_set(["version"], "1.0"), "explanations need format version 1.1"),
    (lambda d, add: d.pop("explain"), "explanations without the 'explain' field"),
    (_set(["explain", "gradcam_layer"], "pool2"), "gradcam_layer 'pool2' is not a layer of maps"),
    (_set(["explain", "gradcam_layer"], "dense"), "gradcam_layer 'dense' is not a layer of maps"),
    (_set(["explain", "score"], "probability"), "must be one of"),
    (_set(["epochs", 0, "explanations", "gradcam_label"], lambda add: add((2, 3, 4))),
     r"map of shape \[2, 3, 4\] \(float32\), expected float \[2, 4, 4\]"),
    (_set(["epochs", 1, "explanations", "saliency_predicted"], lambda add: add((2, 6, 6, 1))),
     r"expected float \[2, 6, 6\]"),
    (_set(["epochs", 1, "explanations", "heatmap"], 0), "unknown field 'heatmap'"),
    (_set(["samples", 1, "label"], None), "not every sample has a label"),
    (lambda d, add: d["explain"].pop("gradcam_layer"), "a Grad-CAM map without"),
])
def test_broken_maps_are_refused(tmp_path, mutate, message):
    with pytest.raises(ExportFormatError, match=message):
        read_export(_with_maps(tmp_path, mutate))
