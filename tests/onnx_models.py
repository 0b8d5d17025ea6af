"""A PyTorch CNN for the ONNX tests: a strided stem with BatchNorm and ReLU6, a residual block
with a depthwise convolution and squeeze-excite, Hardswish, max pooling, Flatten and Linear;
saved with torch.onnx.export, and its forward hooks as the independent reference."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch


class SqueezeExcite(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc1 = torch.nn.Linear(channels, 4)
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(4, channels)
        self.gate = torch.nn.Sigmoid()

    def forward(self, x):
        y = self.gate(self.fc2(self.relu(self.fc1(torch.flatten(self.pool(x), 1)))))
        return x * y.view(x.shape[0], x.shape[1], 1, 1)


class Block(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(channels)
        self.relu = torch.nn.ReLU()
        self.dw = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.se = SqueezeExcite(channels)

    def forward(self, x):
        y = self.se(self.dw(self.relu(self.bn(self.conv(x)))))
        return self.relu(x + y)


class TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.stem_bn = torch.nn.BatchNorm2d(8)
        self.act = torch.nn.ReLU6()
        self.block = Block(8)
        self.hswish = torch.nn.Hardswish()
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = self.block(self.act(self.stem_bn(self.stem(x))))
        return self.fc(torch.flatten(self.pool(self.hswish(x)), 1))


#: The export's layer graph of TorchCNN: (name, type, inbound).
TORCH_CNN_GRAPH = [
    ("x", "InputLayer", ()), ("stem", "Conv2D", ("x",)),
    ("stem_bn", "BatchNormalization", ("stem",)), ("act", "ReLU", ("stem_bn",)),
    ("block.conv", "Conv2D", ("act",)), ("block.bn", "BatchNormalization", ("block.conv",)),
    ("block.relu", "ReLU", ("block.bn",)), ("block.dw", "DepthwiseConv2D", ("block.relu",)),
    ("block.se.pool", "GlobalAveragePooling2D", ("block.dw",)),
    ("block.se/flatten", "Flatten", ("block.se.pool",)),
    ("block.se.fc1", "Dense", ("block.se/flatten",)), ("block.se.relu", "ReLU", ("block.se.fc1",)),
    ("block.se.fc2", "Dense", ("block.se.relu",)),
    ("block.se.gate", "Activation", ("block.se.fc2",)),
    ("block.se/reshape", "Reshape", ("block.se.gate",)),
    ("block.se/mul", "Multiply", ("block.dw", "block.se/reshape")),
    ("block/add", "Add", ("act", "block.se/mul")), ("block.relu_1", "ReLU", ("block/add",)),
    ("hswish", "Activation", ("block.relu_1",)), ("pool", "MaxPooling2D", ("hswish",)),
    ("flatten", "Flatten", ("pool",)), ("fc", "Dense", ("flatten",)),
]


def torch_cnn() -> TorchCNN:
    torch.manual_seed(0)
    module = TorchCNN()
    for norm in (module.stem_bn, module.block.bn):  # running statistics that are not 0 and 1
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    return module.eval()


def save_onnx(module, path: Path, samples: np.ndarray, dynamic_batch: bool = True) -> Path:
    """torch.onnx.export with the TorchScript exporter (dynamo=False: the dynamo exporter needs
    onnxscript), BatchNorm kept as its own node (TrainingMode.PRESERVE of a module in eval mode;
    the default folds it into the convolution before it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(samples),), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"],
                          training=torch.onnx.TrainingMode.PRESERVE,
                          dynamic_axes={"x": {0: "batch"}} if dynamic_batch else None)
    return path


def hooked_outputs(module, samples: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every submodule's output from a forward hook (a module called twice: ``name_1``), NCHW
    maps turned NHWC, and the module's own output."""
    outputs: dict[str, np.ndarray] = {}
    hooks = []
    for name, sub in module.named_modules():
        if not name or list(sub.children()):
            continue

        def hook(_, __, output, name=name):
            key, count = name, 0
            while key in outputs:
                count += 1
                key = f"{name}_{count}"
            array = output.detach().numpy()
            outputs[key] = array.transpose(0, 2, 3, 1) if array.ndim == 4 else array
        hooks.append(sub.register_forward_hook(hook))
    with torch.no_grad():
        result = module(torch.from_numpy(samples)).numpy()
    for handle in hooks:
        handle.remove()
    return outputs, result
