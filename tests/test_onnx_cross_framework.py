"""One format, three sources: the small residual CNN of torch_models.py, exported from PyTorch
(export_torch), from the ONNX file torch.onnx.export makes of it (export_onnx) and from its Keras
twin with the same weights (export_model), gives the same layer graph, weights and activations
(to float16 precision), and the same drawing config as the Keras export."""

from __future__ import annotations

import numpy as np
import pytest
import torch_models
from onnx_models import save_onnx

from nnvis_addon.core.export_format import read_export
from nnvis_export import export_model, export_onnx, export_torch


@pytest.fixture(scope="module")
def three_exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    module = torch_models.SmallResNet()
    samples = torch_models.images(3)
    labels = [1, 2, 3]
    onnx_path = save_onnx(module, folder / "small_resnet.onnx", samples)
    from_onnx = export_onnx(onnx_path, samples, folder / "onnx", labels=labels, verbose=False)
    from_torch = export_torch(module, samples, folder / "torch", labels=labels, verbose=False)
    from_keras = export_model(torch_models.keras_twin(module), samples.transpose(0, 2, 3, 1),
                              folder / "keras", labels=labels, verbose=False)
    return {name: read_export(path) for name, path in
            (("onnx", from_onnx), ("torch", from_torch), ("keras", from_keras))}


def _graph(export):
    return [(layer.name, layer.type, list(layer.inbound)) for layer in export.layers]


@pytest.mark.parametrize("other", ["torch", "keras"])
def test_onnx_export_equals_pytorch_and_keras_exports(three_exports, other):
    onnx_export, reference = three_exports["onnx"], three_exports[other]
    assert _graph(onnx_export) == [tuple(row) for row in torch_models.SMALL_RESNET_GRAPH]
    assert _graph(onnx_export) == _graph(reference)
    assert onnx_export.input_shape == reference.input_shape == (16, 16, 3)
    np.testing.assert_array_equal(onnx_export.activations("x"), reference.activations("x"))
    for layer, twin in zip(onnx_export.layers, reference.layers):
        assert layer.output_shape == twin.output_shape, layer.name
        if other == "keras":  # export_torch writes fewer config keys (no BatchNorm scale)
            assert layer.config == twin.config, layer.name
        assert [w.name for w in layer.weights] == [w.name for w in twin.weights], layer.name
        for ours, theirs in zip(onnx_export.weights(layer.name), reference.weights(twin.name)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6, err_msg=layer.name)
        expected = np.asarray(reference.activations(twin.name), np.float32)
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(np.asarray(onnx_export.activations(layer.name), np.float32),
                                   expected, rtol=2e-3, atol=2e-3 * scale, err_msg=layer.name)
    assert [s.predicted_class for s in onnx_export.samples] == \
        [s.predicted_class for s in reference.samples]
