"""The PyTorch exporter with real torch (no torchvision; the modules are in torch_models.py):
the same small CNN built in Keras and in PyTorch exports to the same layer graph, weights and
activations; activations equal the module's own forward hooks (recorded here, independently of
the exporter); kernel conversions run in Keras; functional ops, the torch.export fallback,
custom ops and errors; the training-loop recorder and the Lightning hooks; a saved .pt2 through
the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_models
from conftest import ROOT
from torch import nn

from nnvis_addon.core.export_format import read_export
from nnvis_export import CustomLayerWarning, ExportError, export_torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _nhwc(array) -> np.ndarray:
    array = np.asarray(array)
    return np.moveaxis(array, 1, -1) if array.ndim >= 3 else array


def _close16(actual, expected) -> None:
    """Equal to float16 precision (11 significant bits), relative to the layer's range."""
    expected = np.asarray(expected, np.float32)
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(np.asarray(actual, np.float32), expected, rtol=2e-3,
                               atol=2e-3 * scale)


# -- cross-framework equality --------------------------------------------------------------------


def test_keras_and_pytorch_twins_export_the_same_graph_weights_and_activations(tmp_path):
    module = torch_models.SmallResNet()
    model = torch_models.keras_twin(module)
    samples = torch_models.images(3)
    from nnvis_export import export_model

    from_torch = read_export(export_torch(module, samples, tmp_path / "torch", verbose=False))
    from_keras = read_export(export_model(model, np.moveaxis(samples, 1, -1), tmp_path / "keras",
                                          verbose=False))
    graph = [(layer.name, layer.type, list(layer.inbound)) for layer in from_torch.layers]
    assert graph == torch_models.SMALL_RESNET_GRAPH
    assert graph == [(layer.name, layer.type, list(layer.inbound)) for layer in from_keras.layers]
    assert from_torch.input_shape == from_keras.input_shape == (16, 16, 3)
    for ours, theirs in zip(from_torch.layers, from_keras.layers):
        assert ours.output_shape == theirs.output_shape, ours.name
        assert [(w.name, w.shape) for w in ours.weights] == \
            [(w.name, w.shape) for w in theirs.weights], ours.name
        assert ours.params == theirs.params, ours.name
        for a, b in zip(from_torch.weights(ours.name), from_keras.weights(ours.name)):
            np.testing.assert_array_equal(a, b)
        assert from_torch.activations(ours.name).dtype == (np.float32 if ours.type == "InputLayer"
                                                           else np.float16)
        _close16(from_torch.activations(ours.name), from_keras.activations(ours.name))
    for key in ("filters", "kernel_size", "strides", "padding", "use_bias"):
        assert from_torch.layer("conv1").config[key] == from_keras.layer("conv1").config[key]
    assert from_torch.layer("fc").config["units"] == from_keras.layer("fc").config["units"]
    np.testing.assert_array_equal(from_torch.activations("x"), np.moveaxis(samples, 1, -1))
    assert [s.predicted_class for s in from_torch.samples] == \
        [s.predicted_class for s in from_keras.samples]
    assert from_torch.frameworks["torch"] == torch.__version__


# -- activations against the module's own forward hooks -----------------------------------------


def _hooked_outputs(module: nn.Module, samples: np.ndarray, extra: tuple[type, ...] = ()):
    """Every leaf module's output per call (cloned at once: in-place ReLUs overwrite their
    input), and the outputs of modules of the ``extra`` classes; keyed by module path, a
    second call of the same module as ``path_1``."""
    outputs: dict[str, list[np.ndarray]] = {}
    handles = []
    for path, sub in module.named_modules():
        if path and (not list(sub.children()) or isinstance(sub, extra)):
            def hook(_m, _inputs, output, path=path):
                outputs.setdefault(path, []).append(output.detach().clone().numpy())
            handles.append(sub.register_forward_hook(hook))
    with torch.no_grad():
        final = module(torch.from_numpy(samples)).numpy()
    for handle in handles:
        handle.remove()
    named = {}
    for path, values in outputs.items():
        for i, value in enumerate(values):
            named[path if i == 0 else f"{path}_{i}"] = value
    return named, final


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3"])
def test_activations_equal_the_modules_forward_hooks(tmp_path, name):
    module = {"resnet18": lambda: torch_models.ResNet18(width=8),
              "mobilenetv3": torch_models.MobileNetV3}[name]()
    samples = torch_models.images(2, (3, 32, 32))
    extra = (torch_models.BasicBlock, torch_models.SqueezeExcite)
    hooked, final = _hooked_outputs(module, samples, extra)
    export = read_export(export_torch(module, samples, tmp_path, activation_dtype="float32",
                                      verbose=False))
    # blocks' outputs: a function's result (the residual's ReLU, squeeze-excite's torch.mul)
    block_outputs = {"layer1.0": "layer1.0.relu_1", "layer4.1": "layer4.1.relu_1"} \
        if name == "resnet18" else {"blocks.0.se": "blocks.0.se.mul", "blocks.4.se": "blocks.4.se.mul"}
    leaves = {path for path, m in module.named_modules() if path and not list(m.children())}
    checked = 0
    for path, expected in hooked.items():
        if path.split("_")[0] not in leaves and path not in block_outputs:
            continue
        layer = block_outputs.get(path, path)
        np.testing.assert_allclose(export.activations(layer), _nhwc(expected), rtol=1e-5,
                                   atol=1e-5, err_msg=layer)
        checked += 1
    assert checked == len([p for p in hooked if p.split("_")[0] in leaves]) + len(block_outputs)
    assert checked >= 60
    assert export.samples[0].predicted_class == int(np.argmax(final[0]))
    output = export.layers[-1].name
    np.testing.assert_allclose(export.activations(output), final, rtol=1e-5, atol=1e-5)


def test_resnet18_and_mobilenetv3_layer_types_and_weight_layouts(tmp_path):
    resnet = torch_models.ResNet18(width=8)
    export = read_export(export_torch(resnet, torch_models.images(1, (3, 32, 32)),
                                      tmp_path / "r", verbose=False))
    types = {layer.name: layer.type for layer in export.layers}
    assert types["conv1"] == "Conv2D" and types["layer2.0.downsample.0"] == "Conv2D"
    assert types["layer2.0.add"] == "Add" and types["avgpool"] == "GlobalAveragePooling2D"
    assert types["flatten"] == "Flatten" and types["fc"] == "Dense"
    assert list(export.layer("layer2.0.add").inbound) == ["layer2.0.bn2", "layer2.0.downsample.1"]
    kernel = export.weights("conv1")[0]
    np.testing.assert_array_equal(kernel, resnet.conv1.weight.detach().numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(export.weights("fc")[0], resnet.fc.weight.detach().numpy().T)
    assert [w.name for w in export.layer("bn1").weights] == \
        ["gamma", "beta", "moving_mean", "moving_variance"]
    np.testing.assert_array_equal(export.weights("bn1")[3], resnet.bn1.running_var.numpy())
    assert export.layer("avgpool").output_shape == (1, 1, 64)
    assert len([t for t in types.values() if t == "Add"]) == 8

    mobilenet = torch_models.MobileNetV3()
    export = read_export(export_torch(mobilenet, torch_models.images(1, (3, 32, 32)),
                                      tmp_path / "m", verbose=False))
    layer = export.layer("blocks.1.depthwise.0")
    assert layer.type == "DepthwiseConv2D" and layer.config["depth_multiplier"] == 1
    assert [(w.name, w.shape) for w in layer.weights] == [("depthwise_kernel", (3, 3, 72, 1))]
    assert export.layer("stem.2").config == {"activation": "hard_silu"}
    assert export.layer("blocks.0.se.hardsigmoid").config == {"activation": "hard_sigmoid"}
    se = export.layer("blocks.0.se.mul")
    assert se.type == "Multiply" and list(se.inbound) == ["blocks.0.depthwise.2",
                                                          "blocks.0.se.hardsigmoid"]
    assert export.layer("blocks.2.add").type == "Add"
    assert export.layer("classifier.3").type == "Dropout"
    assert export.layer("classifier.3").config["rate"] == 0.2


# -- kernel conversions, run in Keras -------------------------------------------------------------


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.depthwise = nn.Conv2d(6, 12, 3, stride=2, groups=6)
        self.dilated = nn.Conv2d(12, 4, 3, dilation=2, padding=2, padding_mode="reflect")
        self.conv1d = nn.Conv1d(4, 5, 3)

    def forward(self, x):
        x = self.dilated(self.depthwise(self.grouped(x)))
        return self.conv1d(torch.flatten(x, 2))


def test_grouped_depthwise_and_1d_kernels_compute_the_same_in_keras(tmp_path):
    import keras

    samples = torch_models.images(2, (4, 9, 9))
    export = read_export(export_torch(Grouped(), samples, tmp_path, activation_dtype="float32",
                                      verbose=False))
    grouped, depthwise, dilated = (export.layer(n) for n in ("grouped", "depthwise", "dilated"))
    assert grouped.type == "Conv2D" and grouped.config["groups"] == 2
    assert grouped.weights[0].shape == (3, 3, 2, 6)
    assert depthwise.type == "DepthwiseConv2D" and depthwise.config["depth_multiplier"] == 2
    assert depthwise.weights[0].shape == (3, 3, 6, 2)
    assert dilated.config["dilation_rate"] == [2, 2] and dilated.config["padding_mode"] == "reflect"
    assert export.layer("conv1d").type == "Conv1D" and export.layer("flatten").type == "Reshape"
    x = np.moveaxis(samples, 1, -1)
    keras_grouped = keras.layers.Conv2D(6, 3, padding="same", groups=2)
    keras_grouped.build(x.shape)
    keras_grouped.set_weights(export.weights("grouped"))
    y = keras_grouped(x).numpy()
    np.testing.assert_allclose(export.activations("grouped"), y, rtol=1e-4, atol=1e-5)
    keras_depthwise = keras.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2)
    keras_depthwise.build(y.shape)
    keras_depthwise.set_weights(export.weights("depthwise"))
    np.testing.assert_allclose(export.activations("depthwise"), keras_depthwise(y).numpy(),
                               rtol=1e-4, atol=1e-5)
    flat = export.activations("flatten")  # (S, length, channels): a sequence, channels last
    keras_1d = keras.layers.Conv1D(5, 3)
    keras_1d.build(flat.shape)
    keras_1d.set_weights(export.weights("conv1d"))
    np.testing.assert_allclose(export.activations("conv1d"), keras_1d(flat).numpy(), rtol=1e-4,
                               atol=1e-5)


# -- functional ops, the torch.export fallback, custom ops, errors --------------------------------


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 2 * 4 * 4 + 8, 5)

    def forward(self, x):
        a = F.relu6(self.conv(x))
        b = torch.sigmoid(F.silu(a)) * 2
        c = torch.cat([F.max_pool2d(a, 2), F.avg_pool2d(F.gelu(b), 2)], dim=1)
        pooled = c.mean((2, 3))
        flat = c.view(c.size(0), -1)
        return self.fc(torch.cat([flat, pooled], 1)).softmax(-1)


def test_functional_calls_and_tensor_methods_map_to_keras_layers(tmp_path):
    samples = torch_models.images(2, (3, 8, 8))
    module = Functional()
    export = read_export(export_torch(module, samples, tmp_path, activation_dtype="float32",
                                      verbose=False))
    layers = [(layer.name, layer.type) for layer in export.layers]
    assert layers == [("x", "InputLayer"), ("conv", "Conv2D"), ("relu6", "ReLU"),
                      ("silu", "Activation"), ("sigmoid", "Activation"), ("mul", "Rescaling"),
                      ("max_pool2d", "MaxPooling2D"), ("gelu", "Activation"),
                      ("avg_pool2d", "AveragePooling2D"), ("cat", "Concatenate"),
                      ("mean", "GlobalAveragePooling2D"), ("view", "Flatten"),
                      ("cat_1", "Concatenate"), ("fc", "Dense"), ("softmax", "Softmax")]
    assert export.layer("relu6").config["max_value"] == 6.0
    assert export.layer("mul").config == {"scale": 2.0, "offset": 0.0}
    assert export.layer("cat").config["axis"] == -1 and export.layer("cat").output_shape == (4, 4, 8)
    kernel = export.weights("fc")[0]
    rows = module.fc.weight.detach().numpy().T
    flat_rows = rows[:128].reshape(8, 4, 4, 5).transpose(1, 2, 0, 3).reshape(128, 5)
    np.testing.assert_array_equal(kernel[:128], flat_rows)  # the flattened maps: (h, w, c) order
    np.testing.assert_array_equal(kernel[128:], rows[128:])
    with torch.no_grad():
        expected = module(torch.from_numpy(samples)).numpy()
    np.testing.assert_allclose(export.activations("softmax"), expected, rtol=1e-5, atol=1e-6)
    assert export.samples[0].predicted_class == int(np.argmax(expected[0]))


class ShapeBranching(nn.Module):
    """Python control flow on a shape: torch.fx cannot trace it, torch.export can."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        if x.shape[-1] > 4:
            x = F.max_pool2d(x, 2)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_module_fx_cannot_trace_falls_back_to_torch_export(tmp_path):
    module = ShapeBranching()
    with pytest.raises(Exception, match="control flow"):
        torch.fx.symbolic_trace(module)
    samples = torch_models.images(3, (3, 8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every op has a drawing
        export = read_export(export_torch(module, samples, tmp_path, activation_dtype="float32",
                                          verbose=False))
    assert export.frameworks["traced_by"] == "torch.export"
    assert export.layer("conv.pad").config == {"padding": [[1, 1], [1, 1]],
                                              "data_format": "channels_last", "mode": "reflect"}
    types = [(layer.name, layer.type) for layer in export.layers]
    # the reflect padding of the conv is an op of its own in a torch.export graph
    assert types == [("x", "InputLayer"), ("conv.pad", "ZeroPadding2D"), ("conv", "Conv2D"),
                     ("bn", "BatchNormalization"), ("relu", "ReLU"), ("max_pool2d", "MaxPooling2D"),
                     ("adaptive_avg_pool2d", "GlobalAveragePooling2D"), ("flatten", "Flatten"),
                     ("fc", "Dense")]
    assert module.training  # exported in eval mode, given back in training mode
    hooked, _ = _hooked_outputs(module.eval(), samples)
    for name in ("conv", "bn", "fc"):
        np.testing.assert_allclose(export.activations(name), _nhwc(hooked[name]), rtol=1e-5,
                                   atol=1e-5)
    np.testing.assert_array_equal(export.weights("conv")[0],
                                  module.conv.weight.detach().numpy().transpose(2, 3, 1, 0))


class WithUpsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        return torch.flatten(self.up(F.relu(self.conv(x))), 1)


def test_ops_without_a_drawing_become_custom_blocks_with_a_warning(tmp_path):
    with pytest.warns(CustomLayerWarning, match="'up' is the PyTorch op Upsample.*generic block"):
        path = export_torch(WithUpsample(), torch_models.images(1, (1, 4, 4)), tmp_path,
                            verbose=False)
    layer = read_export(path).layer("up")
    assert layer.type == "Upsample" and layer.output_shape == (8, 8, 2)


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x + y


class MixesSamples(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        x = self.conv(x)
        return x - x.mean()


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 3, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


def test_bad_modules_get_one_line_errors(tmp_path):
    images = torch_models.images(2, (1, 6, 6))
    with pytest.raises(ExportError, match="takes 2 inputs; nnvis format v1 records models with "
                                          "exactly one input"):
        export_torch(TwoInputs(), images, tmp_path, verbose=False)
    with pytest.raises(ExportError, match="mixes the samples of a batch"):
        export_torch(MixesSamples(), images, tmp_path, verbose=False)
    with pytest.raises(ExportError, match="no layer nnvis can draw \\(only LSTM\\); nnvis draws CNNs"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_torch(Recurrent(), torch_models.images(2, (5, 4)), tmp_path, verbose=False)
    with pytest.raises(ExportError, match="give a batch"):
        export_torch(MixesSamples(), np.zeros(3, np.float32), tmp_path, verbose=False)
    assert not list(tmp_path.glob("*.nnvis.json"))


def test_importing_the_package_imports_no_framework():
    code = ("import sys, nnvis_export; nnvis_export.summarize; "
            "print(sorted(m for m in ('torch', 'keras', 'tensorflow', 'onnx') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == "[]"


# -- recording epochs -----------------------------------------------------------------------------


class _Trainer:
    """What Lightning's Trainer gives a callback: the epoch and the logged metrics."""

    def __init__(self):
        self.current_epoch = 0
        self.callback_metrics = {}


def test_lightning_hooks_record_before_training_and_after_each_epoch(tmp_path):
    import nnvis_export
    from nnvis_export.torch_recorder import LightningHooks

    try:
        import lightning  # noqa: F401
        has_lightning = True
    except ImportError:
        has_lightning = False
    if not has_lightning:
        with pytest.raises(ImportError, match="needs PyTorch Lightning \\(pip install lightning\\)"):
            nnvis_export.LightningRecorder  # noqa: B018
    module = torch_models.SmallResNet()
    hooks = LightningHooks(torch_models.images(2), tmp_path, labels=[1, 2], verbose=False)
    trainer = _Trainer()
    hooks.on_fit_start(trainer, module)
    for epoch in range(2):
        trainer.current_epoch = epoch
        with torch.no_grad():
            module.fc.bias += 1.0
        trainer.callback_metrics = {"loss": torch.tensor(1.0 / (epoch + 1))}
        hooks.on_train_epoch_end(trainer, module)
    hooks.on_fit_end(trainer, module)
    assert [p.name for p in tmp_path.glob("*.bin")] == ["SmallResNet.bin"]  # joined at the end
    export = read_export(hooks.export_path)
    assert [e.epoch for e in export.epochs] == [0, 1, 2]
    assert export.epochs[2].metrics == {"loss": 0.5}
    np.testing.assert_allclose(export.weights("fc", epoch_index=2)[1],
                               export.weights("fc", epoch_index=0)[1] + 2.0, rtol=1e-6)


def test_the_recorder_writes_each_epoch_once_and_a_failed_record_keeps_the_export(tmp_path):
    """One session for the whole training: a record adds a sidecar segment of its own epoch
    (nothing copied), every record leaves a complete export, and after a failed record the next
    one starts a fresh export from the last complete one (whose extra segments go); finish
    joins the segments."""
    from nnvis_export import TorchEpochRecorder

    module = torch_models.SmallResNet()
    recorder = TorchEpochRecorder(module, torch_models.images(2), tmp_path, labels=[1, 2],
                                  name="net", verbose=False)
    for epoch in range(4):
        with torch.no_grad():
            module.fc.bias += 1.0
        export = read_export(recorder.record(epoch, {"loss": 1.0 / (epoch + 1)}))
        assert [e.epoch for e in export.epochs] == list(range(epoch + 1))
        np.testing.assert_allclose(export.weights("fc", epoch_index=epoch)[1],
                                   module.fc.bias.detach().numpy(), rtol=1e-6)
    sizes = {p.name: p.stat().st_size for p in tmp_path.glob("*.bin")}
    assert sorted(sizes) == ["net.1.bin", "net.2.bin", "net.3.bin", "net.bin"]
    one_epoch = sizes["net.1.bin"]  # later segments hold one epoch each, not all before them
    assert all(abs(sizes[f"net.{k}.bin"] - one_epoch) <= 64 for k in (2, 3))
    assert sizes["net.bin"] < 2 * one_epoch  # the samples and epoch 0

    session = recorder._session
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")
    session.graph.run = broken
    with pytest.raises(RuntimeError, match="out of memory"):
        recorder.record(4)
    assert [e.epoch for e in read_export(tmp_path / "net.nnvis.json").epochs] == [0, 1, 2, 3]
    assert not list(tmp_path.glob("*.partial"))
    export = read_export(recorder.record(4))
    assert [e.epoch for e in export.epochs] == [0, 1, 2, 3, 4]
    assert export.epochs[2].metrics == {"loss": pytest.approx(1.0 / 3)}
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == ["net.bin"]  # all copied once
    recorder.record(5)
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == ["net.1.bin", "net.bin"]
    export = read_export(recorder.finish())  # the segments joined: a tidy export of two files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.bin", "net.nnvis.json"]
    assert [e.epoch for e in export.epochs] == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(export.weights("fc", epoch_index=5)[1],
                               module.fc.bias.detach().numpy(), rtol=1e-6)


# -- a saved torch.export program through the command line ----------------------------------------


def test_saved_program_exports_through_the_command_line(tmp_path, capsys):
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from nnvis_export.cli import main

    module = torch_models.ResNet18(width=8)
    samples = torch_models.images(3, (3, 32, 32))
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (torch.from_numpy(samples),),
                                  dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "resnet.pt2")
    np.save(tmp_path / "samples.npy", samples)
    np.save(tmp_path / "labels.npy", np.array([3, 1, 4]))
    assert main([str(tmp_path / "resnet.pt2"), "--samples", str(tmp_path / "samples.npy"),
                 "--labels", str(tmp_path / "labels.npy"), "--out", str(tmp_path / "cli"),
                 "--dtype", "float32", "--epoch", "7", "--quiet"]) == 0
    export = read_export(tmp_path / "cli")
    direct = read_export(export_torch(module, samples, tmp_path / "direct",
                                      activation_dtype="float32", verbose=False))
    assert export.name == "resnet" and [e.epoch for e in export.epochs] == [7]
    assert export.frameworks["traced_by"] == "torch.export"
    assert [s.label for s in export.samples] == [3, 1, 4]
    assert [layer.type for layer in export.layers] == [layer.type for layer in direct.layers]
    for name in ("conv1", "layer2.0.downsample.0", "fc"):  # module paths name the layers
        np.testing.assert_allclose(export.activations(name), direct.activations(name), rtol=1e-5,
                                   atol=1e-5)
        for a, b in zip(export.weights(name), direct.weights(name)):
            np.testing.assert_array_equal(a, b)

    # an image, converted to the program's (C, H, W) layout; a program of a fixed batch size
    china = load_sample_images().images[0]
    Image.fromarray(china[100:300, 200:400]).save(tmp_path / "china.png")
    fixed = torch.export.export(torch_models.MobileNetV3(), (torch.zeros(1, 3, 32, 32),))
    torch.export.save(fixed, tmp_path / "mobilenet.pt2")
    assert main([str(tmp_path / "mobilenet.pt2"), "--samples", str(tmp_path / "china.png"),
                 str(tmp_path / "china.png"), "--rescale", "1/255", "--out",
                 str(tmp_path / "image"), "--quiet"]) == 0
    export = read_export(tmp_path / "image")
    assert export.input_shape == (32, 32, 3) and export.num_samples == 2
    picture = np.asarray(Image.open(tmp_path / "china.png").resize((32, 32), Image.BILINEAR))
    np.testing.assert_allclose(export.activations(export.layers[0].name)[0], picture / 255.0,
                               atol=1e-6)
    assert export.layer("blocks.0.depthwise.0").type == "DepthwiseConv2D"


def test_command_line_refuses_weights_files_with_what_to_do(tmp_path, capsys):
    from nnvis_export.cli import main

    np.save(tmp_path / "samples.npy", torch_models.images(1))
    torch.save(torch_models.SmallResNet().state_dict(), tmp_path / "model.pth")
    assert main([str(tmp_path / "model.pth"), "--samples", str(tmp_path / "samples.npy"),
                 "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("nnvis-export: error: 'model.pth' is a "
                                                       "PyTorch weights file")
    assert "torch.export.save" in error and "export_torch" in error
    (tmp_path / "broken.pt2").write_bytes(b"not a zip")
    assert main([str(tmp_path / "broken.pt2"), "--samples", str(tmp_path / "samples.npy"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "cannot load program 'broken.pt2' with torch.export.load" in capsys.readouterr().err
    assert main([str(tmp_path / "broken.pt2"), "--samples", str(tmp_path / "samples.npy"),
                 "--checkpoints", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "--checkpoints is for Keras models" in capsys.readouterr().err
