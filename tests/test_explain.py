"""Class evidence maps (nnvis_export/explain.py, format 1.1) against an independent
``tf.GradientTape`` computation: Grad-CAM of the last convolution and input-gradient saliency,
for the predicted class and the true label, per sample and epoch.

The reference takes the logits from a clone of the model whose output layer has no activation
(the exporter computes them from the output layer's kernel instead) and differentiates each
sample on its own (the exporter sums a batch's scores).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import model_zoo  # noqa: E402

from nnvis_addon.core.export_format import read_export  # noqa: E402
from nnvis_export import EpochRecorder, export_model  # noqa: E402
from nnvis_export.explain import last_convolution  # noqa: E402
from nnvis_export.graph import model_graph  # noqa: E402

L = keras.layers


def reference_maps(model, conv_name: str, output_name: str, sample: np.ndarray, target: int):
    """(Grad-CAM, saliency) of one sample for ``target`` from a linear-output clone."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.get_layer(output_name).activation = keras.activations.linear
    probe = keras.Model(clone.inputs, [clone.get_layer(conv_name).output, clone.outputs[0]])

    @tf.function  # compiled: no weight gradients (TF 2.21's eager oneDNN ones crash here)
    def gradients(x):
        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch(x)
            maps, logits = probe(x, training=False)
            score = logits[0, target]
        return maps, tape.gradient(score, maps), tape.gradient(score, x)

    maps, map_gradient, input_gradient = (t.numpy() for t in gradients(
        tf.constant(sample[None])))
    weights = map_gradient[0].mean(axis=tuple(range(maps.ndim - 2)))
    cam = np.maximum(np.tensordot(maps[0], weights, axes=([-1], [0])), 0.0)
    return cam, np.abs(input_gradient[0]).max(axis=-1)


@pytest.mark.parametrize("name", ["residual", "depthwise", "bn_dropout", "conv1d", "inception"])
def test_maps_equal_an_independent_gradient_tape(tmp_path, name):
    model = model_zoo.ZOO[name]()
    samples = model_zoo.samples(model, count=3)
    labels = [2, 0, 3]
    export = read_export(export_model(model, samples, tmp_path, labels=labels, verbose=False))
    assert export.version == "1.1"
    conv = last_convolution(model_graph(model), model.outputs[0]._keras_history[0].name).name
    assert export.explain.gradcam_layer == conv and export.explain.score == "logit"
    epoch = export.epochs[-1]
    assert set(epoch.explanations) == {"gradcam_predicted", "gradcam_label",
                                       "saliency_predicted", "saliency_label"}
    output = model.outputs[0]._keras_history[0].name
    for index in range(3):
        for kind, target in (("predicted", epoch.predictions[index]), ("label", labels[index])):
            cam, sal = reference_maps(model, conv, output, samples[index], target)
            got_cam = epoch.explanations[f"gradcam_{kind}"][index]
            got_sal = epoch.explanations[f"saliency_{kind}"][index]
            scale = max(float(np.abs(cam).max()), 1e-12)
            np.testing.assert_allclose(got_cam, cam, rtol=1e-4, atol=1e-5 * scale)
            np.testing.assert_allclose(got_sal, sal, rtol=1e-4,
                                       atol=1e-5 * float(np.abs(sal).max()))
    assert any(epoch.explanations["gradcam_predicted"][i].max() > 0 for i in range(3))


def test_switches_and_what_gets_maps(tmp_path):
    model = model_zoo.bn_dropout()
    samples = model_zoo.samples(model, count=2)
    plain = read_export(export_model(model, samples, tmp_path / "off", labels=[1, 0],
                                     explain=False, verbose=False))
    assert plain.version == "1.0" and plain.explain is None
    assert plain.epochs[0].explanations == {}
    unlabelled = read_export(export_model(model, samples, tmp_path / "nolabels", verbose=False))
    assert set(unlabelled.epochs[0].explanations) == {"gradcam_predicted", "saliency_predicted"}
    keras.utils.set_random_seed(2)
    dense = keras.Sequential([L.Input((5,), name="x"), L.Dense(3, activation="softmax",
                                                                 name="out")], name="dense")
    x = np.random.default_rng(0).random((2, 5), dtype=np.float32)
    assert read_export(export_model(dense, x, tmp_path / "dense", verbose=False)).explain is None
    forced = read_export(export_model(dense, x, tmp_path / "forced", explain=True,
                                      verbose=False))
    assert forced.explain.gradcam_layer is None
    assert set(forced.epochs[0].explanations) == {"saliency_predicted"}
    assert forced.epochs[0].explanations["saliency_predicted"].shape == (2, 5)


def test_recorder_writes_maps_every_epoch_and_they_change(tmp_path):
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        L.Input((8, 8, 1), name="input"), L.Conv2D(4, 3, activation="relu", name="conv"),
        L.GlobalAveragePooling2D(name="gap"), L.Dense(2, activation="softmax", name="out"),
    ], name="tiny")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int64")
    recorder = EpochRecorder(x[:2], tmp_path, labels=y[:2], verbose=False)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[recorder])
    export = read_export(recorder.export_path)
    assert export.epoch_numbers == [0, 1, 2, 3]
    maps = [e.explanations["gradcam_label"] for e in export.epochs]
    assert all(m.shape == (2, 6, 6) for m in maps)
    assert not np.allclose(maps[0], maps[-1])
    cam, _ = reference_maps(model, "conv", "out", x[1], int(y[1]))
    np.testing.assert_allclose(maps[-1][1], cam, rtol=1e-4, atol=1e-6)
