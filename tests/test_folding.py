"""Folding shape-keeping layers and Flatten into units (issue 11, item 2): plain numpy, the
real reader, no Blender."""

from __future__ import annotations

import numpy as np
import pytest
from export_factory import LayerDef, make_export

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.folding import find_folds, fold_export
from nnvis_addon.core.layout import plan_network
from nnvis_addon.core.links import plan_links


def student_cnn() -> list[LayerDef]:
    """Conv-BN-ReLU-Dropout, pooling, Flatten-Dropout-Dense-softmax: the student CNN."""
    return [
        LayerDef("input", "InputLayer", (8, 8, 3), inbound=[]),
        LayerDef("conv1", "Conv2D", (8, 8, 4), weights=[("kernel", (3, 3, 3, 4)), ("bias", (4,))]),
        LayerDef("bn1", "BatchNormalization", (8, 8, 4),
                 weights=[("gamma", (4,)), ("beta", (4,)), ("moving_mean", (4,)),
                          ("moving_variance", (4,))]),
        LayerDef("relu1", "Activation", (8, 8, 4), config={"activation": "relu"}),
        LayerDef("drop1", "Dropout", (8, 8, 4)),
        LayerDef("pool1", "MaxPooling2D", (4, 4, 4)),
        LayerDef("flatten", "Flatten", (64,)),
        LayerDef("drop2", "Dropout", (64,)),
        LayerDef("fc", "Dense", (5,), weights=[("kernel", (64, 5)), ("bias", (5,))]),
        LayerDef("softmax", "Softmax", (5,)),
    ]


@pytest.fixture
def student(tmp_path):
    return read_export(make_export(tmp_path, name="student", layers=student_cnn()).path)


def test_student_cnn_folds_into_four_units(student):
    folded = fold_export(student)
    assert [layer.name for layer in folded.layers] == ["input", "conv1", "pool1", "fc"]
    labels = [layer.unit_label for layer in folded.layers]
    assert labels == [None, "conv1 + BN + relu + Dropout", None, "Flatten + Dropout + fc + softmax"]
    units = {layer.name: layer for layer in folded.layers}
    assert units["pool1"].inbound == ("conv1",)
    assert units["fc"].inbound == ("pool1",), "the Dense takes the maps the Flatten was given"
    assert units["conv1"].folded == ("bn1", "relu1", "drop1")
    for original, epoch in zip(student.epochs, folded.epochs):
        # Each unit shows its last folded layer's output, the very same array (no copy).
        assert epoch.activations["conv1"] is original.activations["drop1"]
        assert epoch.activations["fc"] is original.activations["softmax"]
        assert set(epoch.activations) == {"input", "conv1", "pool1", "fc"}
    assert student.layers[1].unit_label is None, "the original export is left as it was"


def test_folded_units_wire_and_plan(student):
    folded = fold_export(student)
    links = {(link.source.name, link.target.name): link for link in plan_links(folded)}
    assert set(links) == {("input", "conv1"), ("conv1", "pool1"), ("pool1", "fc")}
    assert links[("input", "conv1")].kind == "conv"
    dense = links[("pool1", "fc")]
    assert dense.kind == "channel_dense" and len(dense.edges) == 4 * 5  # channels x neurons
    kernel = np.abs(student.epochs[-1].weights["fc"][0]).reshape(4, 4, 4, 5)
    strength = kernel.sum(axis=(0, 1))  # per (channel, neuron), over the positions
    np.testing.assert_allclose(np.sort(np.abs(dense.epoch_weights[-1])),
                               np.sort(strength.reshape(-1)), rtol=1e-5)
    plan = plan_network(folded)
    assert plan.layer("conv1").label.startswith("conv1 + BN + relu + Dropout\nConv2D 8x8x4")


def test_a_layer_feeding_two_others_keeps_its_output(tmp_path):
    """A residual split: the conv's own output feeds the skip, so its BN cannot fold into it."""
    layers = [
        LayerDef("input", "InputLayer", (4, 4, 2), inbound=[]),
        LayerDef("conv", "Conv2D", (4, 4, 2), weights=[("kernel", (1, 1, 2, 2))]),
        LayerDef("bn", "BatchNormalization", (4, 4, 2)),
        LayerDef("add", "Add", (4, 4, 2), inbound=["bn", "conv"]),
        LayerDef("relu", "ReLU", (4, 4, 2)),
    ]
    export = read_export(make_export(tmp_path, name="split", layers=layers).path)
    folds = find_folds(export.layers)
    assert [(f.unit, f.after) for f in folds] == [
        ("input", ()), ("conv", ()), ("bn", ()), ("add", ("relu",))]
    folded = fold_export(export)
    assert folded.layer("add").inbound == ("bn", "conv")


def test_unfolded_units_and_nothing_to_fold(student, tmp_path):
    kept = fold_export(student, keep=frozenset({"conv1", "fc"}))
    assert [layer.name for layer in kept.layers] == [
        "input", "conv1", "bn1", "relu1", "drop1", "pool1", "flatten", "fc", "softmax"]
    assert kept.layer("relu1").inbound == ("bn1",)
    assert kept.layer("flatten").unit_label == "flatten + Dropout"
    assert kept.layer("fc").inbound == ("flatten",)
    plain = read_export(make_export(tmp_path / "plain", name="plain").path)
    assert [layer.name for layer in fold_export(plain).layers] == [
        "input", "conv", "pool", "dense"]
    layers = [LayerDef("input", "InputLayer", (3,), inbound=[]),
              LayerDef("dense", "Dense", (2,), weights=[("kernel", (3, 2))])]
    dense_only = read_export(make_export(tmp_path / "dense", name="d", layers=layers).path)
    assert fold_export(dense_only) is dense_only
