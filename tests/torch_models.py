"""PyTorch modules written for the tests (no torchvision): a small CNN that has a Keras twin
(``keras_twin`` builds the same architecture and copies the weights across, for the
cross-framework tests of the PyTorch and ONNX exporters), a ResNet-18-shaped and a
MobileNetV3-shaped module, and samples for them.

Every builder fixes torch's seed and puts the module in eval mode; BatchNorm statistics are
randomised so that normalisation does something.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CLASSES = 10


def _seed(seed: int) -> None:
    torch.manual_seed(seed)


def _randomise_batch_norms(module: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            count = m.num_features
            with torch.no_grad():
                m.weight.copy_(1.0 + 0.2 * torch.randn(count, generator=generator))
                m.bias.copy_(0.1 * torch.randn(count, generator=generator))
                m.running_mean.copy_(0.1 * torch.randn(count, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(count, generator=generator))


def images(count: int, shape=(3, 16, 16), seed: int = 0) -> np.ndarray:
    """``count`` random images (count, C, H, W), float32 in 0..1."""
    return np.random.default_rng(seed).random((count, *shape), dtype=np.float32)


# -- the small CNN with a Keras twin -------------------------------------------------------------


class SmallResNet(nn.Module):
    """Conv-BN-ReLU stem, one residual block (Conv-BN-ReLU-Conv-BN + Add skip, ReLU), max and
    average pooling, Flatten of the 4x4x8 maps, Dense. Input (3, 16, 16). Attribute names are
    the layer names of the Keras twin; the residual ``+`` is fx's node ``add``."""

    def __init__(self, seed: int = 0):
        super().__init__()
        _seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.block_conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.block_bn1 = nn.BatchNorm2d(8)
        self.block_relu1 = nn.ReLU()
        self.block_conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.block_bn2 = nn.BatchNorm2d(8)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 4 * 8, CLASSES)
        _randomise_batch_norms(self, seed)
        self.eval()

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        y = self.block_relu1(self.block_bn1(self.block_conv1(x)))
        y = self.block_bn2(self.block_conv2(y))
        x = self.relu2(x + y)
        x = self.avg(self.pool(x))
        return self.fc(self.flatten(x))


#: The twin's layers in graph order: (name, type, inbound).
SMALL_RESNET_GRAPH = [
    ("x", "InputLayer", []), ("conv1", "Conv2D", ["x"]), ("bn1", "BatchNormalization", ["conv1"]),
    ("relu1", "ReLU", ["bn1"]), ("block_conv1", "Conv2D", ["relu1"]),
    ("block_bn1", "BatchNormalization", ["block_conv1"]), ("block_relu1", "ReLU", ["block_bn1"]),
    ("block_conv2", "Conv2D", ["block_relu1"]),
    ("block_bn2", "BatchNormalization", ["block_conv2"]), ("add", "Add", ["relu1", "block_bn2"]),
    ("relu2", "ReLU", ["add"]), ("pool", "MaxPooling2D", ["relu2"]),
    ("avg", "AveragePooling2D", ["pool"]), ("flatten", "Flatten", ["avg"]),
    ("fc", "Dense", ["flatten"]),
]


def keras_twin(module: SmallResNet):
    """The same architecture in Keras (channels last, the same layer names) with ``module``'s
    weights copied across: kernels OIHW -> HWIO, the Dense kernel transposed and its rows put
    in Keras's (h, w, c) flatten order."""
    import keras

    L = keras.layers
    inputs = keras.Input((16, 16, 3), name="x")

    def conv(name, use_bias):
        return L.Conv2D(8, 3, padding="same", use_bias=use_bias, name=name)

    def bn(name):
        return L.BatchNormalization(epsilon=1e-5, name=name)

    x = L.ReLU(name="relu1")(bn("bn1")(conv("conv1", False)(inputs)))
    y = L.ReLU(name="block_relu1")(bn("block_bn1")(conv("block_conv1", False)(x)))
    y = bn("block_bn2")(conv("block_conv2", True)(y))
    x = L.ReLU(name="relu2")(L.Add(name="add")([x, y]))
    x = L.AveragePooling2D(2, name="avg")(L.MaxPooling2D(2, name="pool")(x))
    outputs = L.Dense(CLASSES, name="fc")(L.Flatten(name="flatten")(x))
    model = keras.Model(inputs, outputs, name="small_resnet")
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    for name in ("conv1", "block_conv1", "block_conv2"):
        weights = [state[f"{name}.weight"].transpose(2, 3, 1, 0)]
        if f"{name}.bias" in state:
            weights.append(state[f"{name}.bias"])
        model.get_layer(name).set_weights(weights)
    for name in ("bn1", "block_bn1", "block_bn2"):
        model.get_layer(name).set_weights([state[f"{name}.{k}"] for k in
                                           ("weight", "bias", "running_mean", "running_var")])
    fc = state["fc.weight"].reshape(CLASSES, 8, 4, 4).transpose(2, 3, 1, 0).reshape(-1, CLASSES)
    model.get_layer("fc").set_weights([fc, state["fc.bias"]])
    return model


# -- ResNet-18-shaped ----------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or channels_in != channels:
            self.downsample = nn.Sequential(nn.Conv2d(channels_in, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layout: 7x7/2 stem, 3x3/2 max pool, four stages of two basic
    blocks (the first of stages 2-4 strided, with a 1x1 projection), global average pool,
    Flatten (``torch.flatten``), Linear. ``width`` is the first stage's channels (64 in
    ResNet-18)."""

    def __init__(self, width: int = 64, classes: int = 1000, seed: int = 0):
        super().__init__()
        _seed(seed)
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [width, width * 2, width * 4, width * 8]
        channels_in = width
        for index, channels in enumerate(widths, start=1):
            stride = 1 if index == 1 else 2
            setattr(self, f"layer{index}", nn.Sequential(BasicBlock(channels_in, channels, stride),
                                                         BasicBlock(channels, channels, 1)))
            channels_in = channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], classes)
        _randomise_batch_norms(self, seed)
        self.eval()

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# -- MobileNetV3-shaped --------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(scale))))
        return torch.mul(x, scale)


class InvertedResidual(nn.Module):
    """Expand 1x1, depthwise kxk, optional squeeze-excite, project 1x1; a residual add when the
    shape is kept."""

    def __init__(self, channels_in, expanded, channels, kernel, stride, se, hardswish):
        super().__init__()
        act = nn.Hardswish if hardswish else nn.ReLU
        self.expand = nn.Sequential(nn.Conv2d(channels_in, expanded, 1, bias=False),
                                    nn.BatchNorm2d(expanded), act())
        self.depthwise = nn.Sequential(
            nn.Conv2d(expanded, expanded, kernel, stride, kernel // 2, groups=expanded, bias=False),
            nn.BatchNorm2d(expanded), act())
        self.se = SqueezeExcite(expanded, max(8, expanded // 4)) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(expanded, channels, 1, bias=False),
                                     nn.BatchNorm2d(channels))
        self.residual = stride == 1 and channels_in == channels

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return torch.add(x, y) if self.residual else y


class MobileNetV3(nn.Module):
    """MobileNetV3-Small's layout, shortened: 3x3/2 stem with Hardswish, inverted residual
    blocks (depthwise convolutions, squeeze-excite through ``torch.mul`` and Hardsigmoid,
    Hardswish or ReLU), a 1x1 head conv, global pooling, Linear-Hardswish-Dropout-Linear."""

    BLOCKS = ((16, 16, 16, 3, 2, True, False), (16, 72, 24, 3, 2, False, False),
              (24, 88, 24, 3, 1, False, False), (24, 96, 40, 5, 2, True, True),
              (40, 240, 40, 5, 1, True, True))

    def __init__(self, classes: int = CLASSES, seed: int = 0):
        super().__init__()
        _seed(seed)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())
        self.blocks = nn.Sequential(*(InvertedResidual(*b) for b in self.BLOCKS))
        self.head = nn.Sequential(nn.Conv2d(40, 240, 1, bias=False), nn.BatchNorm2d(240),
                                  nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(240, 128), nn.Hardswish(),
                                        nn.Dropout(0.2), nn.Linear(128, classes))
        _randomise_batch_norms(self, seed)
        self.eval()

    def forward(self, x):
        return self.classifier(self.pool(self.head(self.blocks(self.stem(x)))))
