"""An ONNX export imported into Blender (real bpy, the working tree's scene API): the PyTorch CNN
of onnx_models.py saved with torch.onnx.export and exported with nnvis_export.export_onnx builds
the same kind of scene as a Keras export: one object per layer with every cell, weighted
connections through convolutions, the depthwise convolution and the Dense after the Flatten,
and the default import folds BatchNorm and activations into their convolutions."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_utils import evaluated_instances
from conftest import import_extension_package
from onnx_models import TORCH_CNN_GRAPH, save_onnx, torch_cnn

from nnvis_addon.core.export_format import read_export
from nnvis_export import export_onnx


@pytest.fixture(scope="module")
def api():
    nnvis = import_extension_package()
    from nnvis.nnvis_addon.blender import connections, scene  # noqa: F401 - the working tree's
    return nnvis.nnvis_addon.blender.scene, nnvis.nnvis_addon.blender.connections


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx_blender")
    samples = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    path = save_onnx(torch_cnn(), folder / "torch_cnn.onnx", samples)
    return export_onnx(path, samples, folder / "out", class_names=list("abcde"), verbose=False)


def _import(api, path, **options):
    scene_api, connections = api
    bpy.ops.wm.read_factory_settings(use_empty=True)
    root = scene_api.import_network(path, scene_api.ImportOptions(**options))
    bpy.context.view_layer.update()
    layers = {obj["nnvis_layer"]: obj for obj in scene_api.network_layers(root)}
    links = {(obj["nnvis_source_layer"], obj["nnvis_target_layer"]): obj
             for obj in connections.network_connections(root)}
    return root, layers, links


def test_every_layer_and_cell_in_blender(api, onnx_export):
    export = read_export(onnx_export)
    root, layers, links = _import(api, onnx_export, fold=False, input_as_picture=False)
    assert root["nnvis_network"] and root.name == "torch_cnn"
    assert list(layers) == [name for name, _, _ in TORCH_CNN_GRAPH]
    for layer in export.layers:
        obj = layers[layer.name]
        assert obj["nnvis_layer_type"] == layer.type
        assert not obj.get("nnvis_block"), layer.name  # every ONNX op here has a drawing
        positions, _ = evaluated_instances(obj)
        assert len(positions) == layer.cells, layer.name
        assert np.all(np.isfinite(positions)), layer.name
    expected = {(source, name) for name, _, inbound in TORCH_CNN_GRAPH for source in inbound}
    assert set(links) == expected
    for pair in [("act", "block.conv"), ("block.relu", "block.dw"), ("flatten", "fc"),
                 ("block.se/flatten", "block.se.fc1")]:
        assert len(links[pair].data.curves) > 0, pair  # weighted edges from the exported kernels


def test_default_import_folds_batchnorm_and_activations(api, onnx_export):
    _, layers, _ = _import(api, onnx_export)
    units = {obj["nnvis_layer"]: obj for obj in layers.values()}
    assert "stem_bn" not in units and "act" not in units
    assert units["stem"]["nnvis_folded"] == "stem_bn, act"
    assert units["fc"]["nnvis_folded"] == "flatten"
    assert units["block.conv"]["nnvis_folded"] == "block.bn, block.relu"
