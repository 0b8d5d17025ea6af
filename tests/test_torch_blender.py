"""PyTorch exports in Blender (real bpy, the working tree's scene API): a ResNet-18-shaped and a
MobileNetV3-shaped module shown scikit-learn's china.jpg, and a small CNN trained on scikit-learn's
digits in a plain loop with TorchEpochRecorder, import into the same scene structure as Keras
exports: one object per layer (or unit) with its type and cells, connections with weighted
edges through convolutions, depthwise convolutions and Dense layers, the epochs recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_models
from blender_utils import evaluated_cell_centres
from conftest import import_extension_package
from torch import nn

from nnvis_addon.core import names
from nnvis_addon.core.export_format import read_export
from nnvis_export import TorchEpochRecorder, export_torch

bpy = pytest.importorskip("bpy")


def _china(size: int) -> np.ndarray:
    """scikit-learn's china.jpg, centre crop resized to size x size, (1, 3, size, size) 0..1."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    image = Image.fromarray(load_sample_images().images[0][:, 80:507]).resize((size, size))
    return (np.asarray(image, np.float32) / 255.0).transpose(2, 0, 1)[np.newaxis]


@pytest.fixture(scope="module")
def scene_api():
    nnvis = import_extension_package()
    from nnvis.nnvis_addon.blender import scene  # noqa: F401 - the working tree's script API
    return nnvis.nnvis_addon.blender.scene


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_blender")
    return {"resnet18": export_torch(torch_models.ResNet18(width=8), _china(64), root / "resnet",
                                     class_names=[f"class {i}" for i in range(1000)],
                                     verbose=False),
            "mobilenetv3": export_torch(torch_models.MobileNetV3(), _china(64), root / "mobilenet",
                                        verbose=False)}


def _import(scene_api, path, **options):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    root = scene_api.import_network(path, scene_api.ImportOptions(**options))
    bpy.context.view_layer.update()
    return root, {obj["nnvis_layer"]: obj for obj in scene_api.network_layers(root)}


def _connections(root) -> dict[tuple[str, str], str]:
    return {(obj[names.SOURCE_LAYER], obj[names.TARGET_LAYER]): obj[names.LINK_KIND]
            for obj in root.users_collection[0].objects if names.SOURCE_LAYER in obj}


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3"])
def test_every_layer_and_cell_is_drawn_and_linked(exports, scene_api, name):
    export = read_export(exports[name])
    root, layers = _import(scene_api, exports[name], fold=False, input_as_picture=False)
    assert list(layers) == [layer.name for layer in export.layers]
    for layer in export.layers:
        obj = layers[layer.name]
        assert obj[names.LAYER_TYPE] == layer.type
        assert not obj.get(names.BLOCK), f"{layer.name} ({layer.type}) drawn as an unknown block"
        positions = evaluated_cell_centres(obj)  # drawn, or hidden in a collapsed block
        assert 0 < len(positions) <= layer.cells and np.all(np.isfinite(positions)), layer.name
    links = _connections(root)
    assert set(links) >= {(source, layer.name) for layer in export.layers
                          for source in layer.inbound}  # (and a residual block's entry -> exit)
    if name == "resnet18":
        assert links[("layer1.0.relu", "layer1.0.conv2")] == "conv"
        assert links[("flatten", "fc")] == "dense"
        assert ("layer2.0.downsample.1", "layer2.0.add") in links
    else:
        assert links[("blocks.1.expand.2", "blocks.1.depthwise.0")] == "depthwise"
        assert ("blocks.0.se.hardsigmoid", "blocks.0.se.mul") in links


def test_default_import_folds_pytorch_layers_like_keras_ones(exports, scene_api):
    root, units = _import(scene_api, exports["resnet18"])
    folded = {name: obj.get(names.FOLDED, "") for name, obj in units.items()}
    assert "conv1" in units and "bn1" not in units
    assert {n.strip() for n in folded["conv1"].split(",")} >= {"bn1", "relu"}
    assert "fc" in units and "flatten" not in units  # the Flatten folds into the Dense
    assert list(root[names.EPOCH_NUMBERS]) == [0]


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.bn(self.conv(x)))), 1))


def test_training_loop_with_the_recorder_exports_every_epoch(tmp_path, scene_api):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, np.newaxis]  # (N, 1, 8, 8)
    y = digits.target
    module = DigitsCNN()
    recorder = TorchEpochRecorder(module, x[:4], tmp_path, labels=y[:4],
                                  class_names=[str(i) for i in range(10)], verbose=False)
    recorder.record(0)
    optimiser = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    inputs, targets = torch.from_numpy(x[100:]), torch.from_numpy(y[100:])
    for epoch in range(1, 4):
        module.train()
        for start in range(0, len(inputs), 64):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(module(inputs[start:start + 64]),
                                               targets[start:start + 64])
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            accuracy = float((module.eval()(inputs).argmax(1) == targets).float().mean())
        path = recorder.record(epoch, {"loss": loss.item(), "accuracy": accuracy})
        assert module.training is False  # as the loop left it
    export = read_export(path)
    assert [e.epoch for e in export.epochs] == [0, 1, 2, 3]
    assert export.epochs[3].metrics["accuracy"] > 0.9
    assert export.epochs[3].predictions == [int(v) for v in y[:4]]
    assert not np.array_equal(export.weights("conv", 0)[0], export.weights("conv", 3)[0])
    np.testing.assert_array_equal(export.weights("bn", 3)[2], module.bn.running_mean.numpy())
    with torch.no_grad():
        final = module(torch.from_numpy(x[:4])).numpy()
    np.testing.assert_allclose(export.activations("fc", 3), final, rtol=2e-3, atol=2e-3)
    with pytest.raises(Exception, match="epoch numbers must increase"):
        recorder.record(3)
    root, units = _import(scene_api, path)
    assert list(root[names.EPOCH_NUMBERS]) == [0, 1, 2, 3]
    assert set(units) == {"x", "conv", "pool", "fc"}  # BN + ReLU fold into conv, Flatten into fc
