"""ONNX models in (nnvis_export.export_onnx, nnvis-export model.onnx): real onnx graphs made with
onnx.helper and real PyTorch modules exported with torch.onnx.export, run with real onnxruntime.

Node mapping is checked against independent computations: convolutions recomputed with explicit
loops from the exported (Keras-layout) kernels and channels-last inputs, Dense layers from the
exported Flatten values and kernels, activations of a PyTorch module against its own forward
hooks (NCHW turned NHWC by hand).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_models import TORCH_CNN_GRAPH, hooked_outputs, save_onnx, torch_cnn

from nnvis_addon.core.export_format import read_export
from nnvis_export import CustomLayerWarning, ExportError, export_onnx
from nnvis_export.cli import main

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)


# --------------------------------------------------------------------------------------------
# Graphs made with onnx.helper


def _tensor(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, input_shape, weights=None, output="y", inputs=None, elem=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes, "g", inputs or [_tensor("x", input_shape, elem)], [_tensor(output, None)],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in (weights or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _export(tmp_path, model, samples, name="m", **options):
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return read_export(export_onnx(path, samples, tmp_path / f"{name}_out", verbose=False,
                                   activation_dtype="float32", **options))


def _floats(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _conv_nhwc(x, kernel, bias, pad):
    """Explicit stride-1 convolution of channels-last x (S, H, W, C) with an HWIO kernel."""
    kh, kw, cin, cout = kernel.shape
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], out_h, out_w, cout), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("shwc,co->shwo", x[:, i:i + out_h, j:j + out_w, :], kernel[i, j])
    return out + (0 if bias is None else bias)


def test_conv_kernel_is_hwio_and_maps_are_channels_last(tmp_path):
    w, b = _floats(4, 3, 3, 3), _floats(4)
    model = _model([helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1] * 4),
                    helper.make_node("Relu", ["c"], ["y"], name="relu")],
                   [None, 3, 6, 5], {"w": w, "b": b})
    samples = _floats(2, 3, 6, 5)
    export = _export(tmp_path, model, samples)
    assert [(layer.name, layer.type, layer.inbound) for layer in export.layers] == [
        ("x", "InputLayer", ()), ("conv", "Conv2D", ("x",)), ("relu", "ReLU", ("conv",))]
    assert export.input_shape == (6, 5, 3)
    nhwc = samples.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(export.activations("x"), nhwc)
    kernel, bias = export.weights("conv")
    np.testing.assert_array_equal(kernel, w.transpose(2, 3, 1, 0))
    conv = _conv_nhwc(nhwc, kernel, bias, pad=1)
    np.testing.assert_allclose(export.activations("conv"), conv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(export.activations("relu"), np.maximum(conv, 0), atol=1e-4)
    assert export.layer("conv").config == {
        "filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
        "activation": "linear", "use_bias": True, "data_format": "channels_last"}


def test_depthwise_and_grouped_convolutions(tmp_path):
    dw, grouped = _floats(8, 1, 3, 3), _floats(6, 2, 3, 3)
    model = _model([helper.make_node("Conv", ["x", "dw"], ["d"], name="dw", group=4, pads=[1] * 4),
                    helper.make_node("Conv", ["x", "g"], ["y"], name="grouped", group=2,
                                     pads=[1] * 4)],
                   [None, 4, 5, 5], {"dw": dw, "g": grouped}, output="y")
    model.graph.output.append(_tensor("d", None))
    samples = _floats(2, 4, 5, 5)
    export = _export(tmp_path, model, samples)
    nhwc = samples.transpose(0, 2, 3, 1)
    depthwise = export.layer("dw")
    assert depthwise.type == "DepthwiseConv2D" and depthwise.config["depth_multiplier"] == 2
    (kernel,) = export.weights("dw")
    assert kernel.shape == (3, 3, 4, 2)
    expected = np.zeros((2, 5, 5, 8))
    for channel in range(4):  # output channel channel * 2 + j comes from input channel alone
        for j in range(2):
            single = _conv_nhwc(nhwc[..., channel:channel + 1], kernel[:, :, channel:channel + 1,
                                                                        j:j + 1], None, pad=1)
            expected[..., channel * 2 + j] = single[..., 0]
    np.testing.assert_allclose(export.activations("dw"), expected, rtol=1e-4, atol=1e-4)
    assert export.layer("grouped").type == "Conv2D"
    assert export.layer("grouped").config["groups"] == 2
    (kernel,) = export.weights("grouped")
    assert kernel.shape == (3, 3, 2, 6)
    expected = np.concatenate([_conv_nhwc(nhwc[..., 2 * g:2 * g + 2], kernel[..., 3 * g:3 * g + 3],
                                          None, pad=1) for g in range(2)], axis=-1)
    np.testing.assert_allclose(export.activations("grouped"), expected, rtol=1e-4, atol=1e-4)


def test_flatten_and_dense_keep_keras_order(tmp_path):
    """Flatten of (C, H, W) maps is stored in Keras's (H, W, C) order and the Dense kernels'
    rows follow, so stored inputs x kernel + bias give the stored outputs; MatMul + Add is one
    Dense layer with that Add as its bias."""
    gemm_w, gemm_b = _floats(5, 18), _floats(5)
    mat, add = _floats(5, 3), _floats(3)
    model = _model([helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
                    helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], name="fc1", transB=1),
                    helper.make_node("MatMul", ["g", "mw"], ["m"], name="fc2"),
                    helper.make_node("Add", ["m", "mb"], ["y"], name="fc2_bias")],
                   [None, 2, 3, 3], {"gw": gemm_w, "gb": gemm_b, "mw": mat, "mb": add})
    samples = _floats(4, 2, 3, 3)
    export = _export(tmp_path, model, samples)
    assert [layer.name for layer in export.layers] == ["x", "flatten", "fc1", "fc2"]
    flat = export.activations("flatten")
    np.testing.assert_array_equal(flat, samples.transpose(0, 2, 3, 1).reshape(4, -1))
    kernel, bias = export.weights("fc1")
    assert kernel.shape == (18, 5)
    np.testing.assert_allclose(flat @ kernel + bias, export.activations("fc1"), atol=1e-5)
    kernel, bias = export.weights("fc2")
    np.testing.assert_array_equal(kernel, mat)
    np.testing.assert_array_equal(bias, add)
    np.testing.assert_allclose(export.activations("fc1") @ mat + add, export.activations("fc2"),
                               atol=1e-5)
    assert export.layer("fc2").config == {"units": 3, "activation": "linear", "use_bias": True}


def test_activation_ops_and_pooling_map_to_keras_types(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Clip", ["c", "zero", "six"], ["r6"], name="relu6"),
             helper.make_node("LeakyRelu", ["r6"], ["lr"], name="leaky", alpha=0.2),
             helper.make_node("HardSwish", ["lr"], ["hs"], name="hswish"),
             helper.make_node("HardSigmoid", ["hs"], ["hg"], name="hsigmoid"),
             helper.make_node("Identity", ["hg"], ["i"], name="identity"),
             helper.make_node("Dropout", ["i"], ["dr"], name="dropout"),
             helper.make_node("MaxPool", ["dr"], ["mp"], name="max", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("AveragePool", ["mp"], ["ap"], name="avg", kernel_shape=[2, 2]),
             helper.make_node("GlobalAveragePool", ["ap"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "d"], ["logits"], name="dense"),
             helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1)]
    model = _model(nodes, [None, 1, 8, 8], {"w": _floats(3, 1, 3, 3), "d": _floats(3, 4),
                                             "zero": np.float32(0), "six": np.float32(6)})
    export = _export(tmp_path, model, _floats(2, 1, 8, 8), class_names=["a", "b", "c", "d"])
    types = {layer.name: (layer.type, layer.config) for layer in export.layers[1:]}
    assert types["relu6"] == ("ReLU", {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0})
    assert types["leaky"] == ("LeakyReLU", {"negative_slope": pytest.approx(0.2)})
    assert types["hswish"] == ("Activation", {"activation": "hard_swish"})
    assert types["hsigmoid"] == ("Activation", {"activation": "hard_sigmoid"})
    assert types["max"] == ("MaxPooling2D", {"pool_size": [2, 2], "strides": [2, 2],
                                             "padding": "valid", "data_format": "channels_last"})
    assert types["avg"][0] == "AveragePooling2D"
    assert types["gap"] == ("GlobalAveragePooling2D", {"keepdims": True,
                                                       "data_format": "channels_last"})
    assert types["softmax"] == ("Softmax", {"axis": -1})
    assert export.layer("max").inbound == ("hsigmoid",)  # Identity and Dropout fold away
    assert export.layer("gap").output_shape == (1, 1, 3)
    scores = export.activations("softmax")
    assert [s.predicted_class for s in export.samples] == list(np.argmax(scores, axis=1))


def test_merges_concat_and_constant_scaling(tmp_path):
    mean, std = np.array([1.0, 2.0], np.float32).reshape(2, 1, 1), np.float32(4.0)
    nodes = [helper.make_node("Sub", ["x", "mean"], ["s"], name="centre"),
             helper.make_node("Div", ["s", "std"], ["n"], name="scale"),
             helper.make_node("Conv", ["n", "w1"], ["a"], name="a"),
             helper.make_node("Conv", ["n", "w2"], ["b"], name="b"),
             helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
             helper.make_node("GlobalAveragePool", ["sum"], ["pooled"], name="squeeze"),
             helper.make_node("Sigmoid", ["pooled"], ["gate"], name="gate"),
             helper.make_node("Mul", ["sum", "gate"], ["scaled"], name="excite"),
             helper.make_node("Concat", ["scaled", "a"], ["y"], name="cat", axis=1)]
    model = _model(nodes, [None, 2, 4, 4], {"mean": mean, "std": std, "w1": _floats(3, 2, 1, 1),
                                             "w2": _floats(3, 2, 1, 1)})
    samples = _floats(2, 2, 4, 4)
    export = _export(tmp_path, model, samples)
    assert [(layer.name, layer.type, layer.inbound) for layer in export.layers[1:]] == [
        ("centre", "Rescaling", ("x",)), ("scale", "Rescaling", ("centre",)),
        ("a", "Conv2D", ("scale",)), ("b", "Conv2D", ("scale",)), ("add", "Add", ("a", "b")),
        ("squeeze", "GlobalAveragePooling2D", ("add",)), ("gate", "Activation", ("squeeze",)),
        ("excite", "Multiply", ("add", "gate")), ("cat", "Concatenate", ("excite", "a"))]
    assert export.layer("centre").config == {"scale": [1.0, 1.0], "offset": [-1.0, -2.0]}
    assert export.layer("scale").config == {"scale": 0.25, "offset": 0.0}
    assert export.layer("cat").config == {"axis": -1} and export.layer("cat").output_shape == (4, 4, 6)
    add = export.activations("a") + export.activations("b")
    np.testing.assert_allclose(export.activations("add"), add, atol=1e-5)
    gate = 1 / (1 + np.exp(-add.mean(axis=(1, 2), keepdims=True)))
    np.testing.assert_allclose(export.activations("excite"), add * gate, atol=1e-5)
    np.testing.assert_allclose(export.activations("cat")[..., 3:], export.activations("a"))


def test_constant_nodes_give_weights_and_unknown_ops_are_custom_layers(tmp_path):
    w = _floats(2, 1, 1, 1)
    nodes = [helper.make_node("Constant", [], ["w"], name="weights",
                              value=numpy_helper.from_array(w)),
             helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Neg", ["c"], ["y"], name="negate")]
    model = _model(nodes, [None, 1, 3, 3])
    samples = _floats(1, 1, 3, 3)
    with pytest.warns(CustomLayerWarning, match="'negate' \\(Neg\\) has no nnvis drawing"):
        export = _export(tmp_path, model, samples)
    np.testing.assert_array_equal(export.weights("conv")[0], w.transpose(2, 3, 1, 0))
    assert export.layer("negate").type == "Neg"
    np.testing.assert_allclose(export.activations("negate"), -export.activations("conv"))


def test_tf2onnx_style_channels_last_input(tmp_path):
    """A model taking NHWC samples and turning them NCHW itself (as tf2onnx writes Keras
    models): the Transposes draw nothing, the samples stay as given, no kernel row moves."""
    mat = _floats(3 * 3 * 2, 4)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["c"], name="conv"),
             helper.make_node("Transpose", ["c"], ["back"], name="to_nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["back", "shape"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "mat"], ["y"], name="dense")]
    model = _model(nodes, [None, 3, 3, 1], {"w": _floats(2, 1, 1, 1), "mat": mat,
                                             "shape": np.array([-1, 18], np.int64)})
    samples = _floats(2, 3, 3, 1)
    export = _export(tmp_path, model, samples)
    assert [(layer.name, layer.type) for layer in export.layers] == [
        ("x", "InputLayer"), ("conv", "Conv2D"), ("flatten", "Flatten"), ("dense", "Dense")]
    np.testing.assert_array_equal(export.activations("x"), samples)
    np.testing.assert_array_equal(export.weights("dense")[0], mat)
    np.testing.assert_array_equal(export.activations("flatten"),
                                  export.activations("conv").reshape(2, -1))


def _split_model():
    return _model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                   helper.make_node("Split", ["c"], ["p", "q"], name="split", axis=1),
                   helper.make_node("Add", ["p", "q"], ["y"], name="add")],
                  [None, 1, 3, 3], {"w": _floats(2, 1, 1, 1)})


def _two_inputs():
    return _model([helper.make_node("Add", ["x", "z"], ["s"]),
                   helper.make_node("Conv", ["s", "w"], ["y"])], None, {"w": _floats(1, 1, 1, 1)},
                  inputs=[_tensor("x", [None, 1, 3, 3]), _tensor("z", [None, 1, 3, 3])])


def _lstm():
    return _model([helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2)],
                  [4, None, 3], {"w": _floats(1, 8, 3), "r": _floats(1, 8, 2)})


@pytest.mark.parametrize("make, samples, message", [
    (_two_inputs, (2, 1, 3, 3), "has 2 inputs (x, z); nnvis format v1 records models with "
                                "exactly one input"),
    (lambda: _model([helper.make_node("Gather", ["e", "x"], ["y"])], [None, 4],
                    {"e": _floats(10, 3)}, elem=TensorProto.INT64),
     (2, 4), "is not a CNN nnvis can draw: its input 'x' is INT64 (token ids?)"),
    (_lstm, (4, 2, 3), "is not a CNN nnvis can draw: it uses LSTM"),
    (lambda: _model([helper.make_node("Relu", ["x"], ["y"])], [None, 4]), (2, 4),
     "is not a CNN nnvis can draw: no convolution or dense layer among its ops (Relu)"),
    (_split_model, (2, 1, 3, 3), "node 'split' (Split): 2 of its outputs are in use"),
    (lambda: _model([helper.make_node("Conv", ["x", "w"], ["y"])], [2, 1, 3, 3],
                    {"w": _floats(1, 1, 1, 1)}), (3, 1, 3, 3), "takes batches of exactly 2"),
    (lambda: _model([helper.make_node("Conv", ["x", "w"], ["y"])], [None, 1, 3, 3],
                    {"w": _floats(1, 1, 1, 1)}), (3, 3, 3), "the model expects samples of shape"),
])
def test_graphs_nnvis_cannot_draw_are_refused(tmp_path, make, samples, message):
    with pytest.raises(ExportError, match=None) as caught:
        _export(tmp_path, make(), np.zeros(samples, np.float32))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_external_data_must_stay_in_the_model_folder(tmp_path):
    w = _floats(4, 1, 3, 3)
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [None, 1, 5, 5],
                   {"w": w})
    inside = tmp_path / "inside"
    inside.mkdir()
    onnx.save(model, inside / "m.onnx", save_as_external_data=True, location="m.data",
              size_threshold=0)
    samples = _floats(1, 1, 5, 5)
    export = read_export(export_onnx(inside / "m.onnx", samples, tmp_path / "ok", verbose=False))
    np.testing.assert_array_equal(export.weights("conv")[0], w.transpose(2, 3, 1, 0))
    escaping = onnx.load(inside / "m.onnx", load_external_data=False)
    for tensor in escaping.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.data"
    (tmp_path / "secret.data").write_bytes((inside / "m.data").read_bytes())
    onnx.save(escaping, inside / "escaping.onnx")
    with pytest.raises(ExportError, match="keeps its data in '../secret.data', outside the "
                                          "model's folder; refused"):
        export_onnx(inside / "escaping.onnx", samples, tmp_path / "bad", verbose=False)
    assert not (tmp_path / "bad").exists()


def test_unreadable_files_get_one_line_errors(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"\x00not a protobuf\xff" * 8)
    with pytest.raises(ExportError, match="cannot read ONNX model 'broken.onnx'"):
        export_onnx(tmp_path / "broken.onnx", np.zeros((1, 1, 3, 3)), tmp_path / "o")
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(tmp_path / "missing.onnx", np.zeros((1, 1, 3, 3)), tmp_path / "o")


# --------------------------------------------------------------------------------------------
# A PyTorch CNN (BN, residual, depthwise, squeeze-excite) through torch.onnx.export


def _close16(actual, expected):
    """float16 precision: 11 significant bits, relative to the layer's largest value."""
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(np.asarray(actual, np.float32), expected, rtol=2e-3,
                               atol=2e-3 * scale)


@pytest.fixture(scope="module")
def torch_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch_onnx")
    module = torch_cnn()
    samples = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    path = save_onnx(module, folder / "torch_cnn.onnx", samples)
    export_path = export_onnx(path, samples, folder / "out", labels=[0, 1, 2], verbose=False,
                              class_names=list("abcde"))
    return module, samples, path, read_export(export_path)


def test_pytorch_cnn_layer_graph(torch_export):
    _, _, _, export = torch_export
    assert [(layer.name, layer.type, layer.inbound) for layer in export.layers] == TORCH_CNN_GRAPH
    assert export.input_shape == (16, 16, 3)
    assert export.layer("block.dw").config["depth_multiplier"] == 1
    assert export.layer("block.se/reshape").config == {"target_shape": [1, 1, 8]}
    assert [w.name for w in export.layer("block.bn").weights] == [
        "gamma", "beta", "moving_mean", "moving_variance"]


def test_pytorch_cnn_activations_equal_forward_hooks(torch_export):
    module, samples, _, export = torch_export
    hooked, logits = hooked_outputs(module, samples)
    names = {layer.name for layer in export.layers}
    compared = sorted(set(hooked) & names)
    assert len(compared) == 16 and {"block.relu_1", "block.se.gate", "fc"} <= set(compared)
    for name in compared:
        _close16(export.activations(name), hooked[name])
    y = hooked["block.dw"] * hooked["block.se.gate"][:, None, None, :]
    _close16(export.activations("block.se/mul"), y)
    _close16(export.activations("block/add"), hooked["act"] + y)
    _close16(export.activations("fc"), logits)
    assert [s.predicted_class for s in export.samples] == list(np.argmax(logits, axis=1))


def test_pytorch_cnn_weights_in_keras_layouts(torch_export):
    module, _, _, export = torch_export
    kernel, bias = export.weights("stem")
    np.testing.assert_array_equal(kernel, module.stem.weight.detach().numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(bias, module.stem.bias.detach().numpy())
    depthwise, _ = export.weights("block.dw")
    np.testing.assert_array_equal(depthwise[..., 0],
                                  module.block.dw.weight.detach().numpy()[:, 0].transpose(1, 2, 0))
    bn = module.block.bn
    for array, expected in zip(export.weights("block.bn"), (bn.weight, bn.bias, bn.running_mean,
                                                            bn.running_var)):
        np.testing.assert_array_equal(array, expected.detach().numpy())
    np.testing.assert_array_equal(export.weights("block.se.fc1")[0],
                                  module.block.se.fc1.weight.detach().numpy().T)
    # fc's rows follow the stored Flatten, (H, W, C): stored values x kernel + bias = logits
    kernel, bias = export.weights("fc")
    flat = np.asarray(export.activations("flatten"), np.float32)
    np.testing.assert_allclose(flat @ kernel + bias, np.asarray(export.activations("fc")),
                               rtol=1e-2, atol=1e-2)


def test_fixed_batch_of_one_runs_per_sample(tmp_path, torch_export):
    module, samples, _, export = torch_export
    path = save_onnx(module, tmp_path / "batch1.onnx", samples[:1], dynamic_batch=False)
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    fixed = read_export(export_onnx(path, samples, tmp_path / "out", verbose=False))
    assert [layer.name for layer in fixed.layers] == [layer.name for layer in export.layers]
    for layer in export.layers:
        np.testing.assert_array_equal(fixed.activations(layer.name), export.activations(layer.name))


# --------------------------------------------------------------------------------------------
# The command line


def test_cli_exports_onnx_with_npy_and_image_samples(tmp_path, torch_export, capsys):
    from PIL import Image
    from sklearn.datasets import load_sample_images

    _, samples, path, export = torch_export
    np.save(tmp_path / "x.npy", samples)
    np.save(tmp_path / "labels.npy", np.array([4, 3, 2]))
    assert main([str(path), "--samples", str(tmp_path / "x.npy"), "--out", str(tmp_path / "a"),
                 "--labels", str(tmp_path / "labels.npy"), "--indices", "2,0", "--epoch", "7",
                 "--dtype", "float32", "--quiet"]) == 0
    picked = read_export(tmp_path / "a")
    assert [e.epoch for e in picked.epochs] == [7] and [s.label for s in picked.samples] == [2, 4]
    np.testing.assert_allclose(picked.activations("fc"),
                               np.asarray(export.activations("fc"), np.float32)[[2, 0]],
                               rtol=2e-3, atol=2e-3)
    images = []
    for i, image in enumerate(load_sample_images().images):
        Image.fromarray(image).save(tmp_path / f"photo{i}.png")
        images.append(np.asarray(Image.fromarray(image).resize((16, 16), Image.BILINEAR),
                                 np.float32) / 255)
    assert main([str(path), "--samples", str(tmp_path / "photo0.png"), str(tmp_path / "photo1.png"),
                 "--out", str(tmp_path / "b"), "--rescale", "1/255", "--quiet"]) == 0
    pictures = read_export(tmp_path / "b")
    np.testing.assert_allclose(pictures.activations("x"), np.stack(images), rtol=1e-6)
    assert [s.name for s in pictures.samples] == ["photo0.png", "photo1.png"]


_NO_FRAMEWORKS = textwrap.dedent("""
    import contextlib, io, json, sys
    import nnvis_export
    imported_by_package = sorted({"onnx", "onnxruntime", "torch", "tensorflow", "keras"}
                                 & set(sys.modules))
    from nnvis_export.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(sys.argv[1:])
    print(json.dumps({"package": imported_by_package, "code": code,
                      "error": err.getvalue().strip().splitlines()[-1],
                      "cli": sorted({"onnx", "onnxruntime", "torch", "tensorflow", "keras"}
                                    & set(sys.modules))}))
""")


@pytest.mark.parametrize("extra, message", [
    (["--checkpoints", "ckpts"], "--checkpoints is for Keras models; an ONNX file holds one set"),
    (["--unsafe-load-code"], "--unsafe-load-code is for Keras models"),
    (["--rescale", "2"], "--rescale scales image pixels"),
])
def test_cli_onnx_errors_come_before_any_framework(tmp_path, extra, message):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")  # never read: every case fails on something checked earlier
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 4, 4), np.float32))
    (tmp_path / "ckpts").mkdir()
    argv = [str(model), "--samples", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o"), *extra]
    result = subprocess.run([sys.executable, "-c", _NO_FRAMEWORKS, *argv], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["package"] == [] and report["cli"] == []
    assert report["code"] == 2 and message in report["error"]
