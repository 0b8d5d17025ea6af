"""Real architectures through the whole pipeline: ResNet/Inception/MobileNet-style blocks and every
common Keras layer, exported with the real exporter (TensorFlow, no mocks), read back, and
imported headless with the working tree's scene API (real bpy).

The models come from ``model_zoo.py`` (small inputs, random weights, fixed seeds). The exports
are written once per module; each Blender import starts from an empty factory scene.

``test_dag_placement_*`` check where the importer puts a DAG's layers and skip connections
(branches side by side, skip curves clear of the layers they skip); they depend on the DAG layout
in ``nnvis_addon/core/layout.py`` / ``blender/scene.py``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")
bpy = pytest.importorskip("bpy")

import model_zoo  # noqa: E402
from blender_utils import evaluated_curves, evaluated_instances  # noqa: E402
from conftest import import_extension_package  # noqa: E402

from nnvis_addon.core.export_format import read_export  # noqa: E402
from nnvis_export import CustomLayerWarning, ExportError, export_model  # noqa: E402

#: Activation dtype per zoo model (both are tested; float32 compares tightly).
DTYPES = {"every_layer": "float32", "residual": "float32", "custom": "float32"}
#: Layers whose activations are compared with keras.Model(model.inputs, layer.output).predict.
PROBED = {
    "residual": ["res1_add", "res2_proj_bn", "res2_out", "output"],
    "inception": ["branch_pool", "mixed", "output"],
    "depthwise": ["dw_conv", "dw_bn", "sep_conv"],
    "bn_dropout": ["bn1", "drop1", "bn2", "output"],
    "conv1d": ["conv1", "conv2", "gap"],
    "every_layer": ["norm", "pad", "conv_s2", "dw", "sep", "mul", "conv_dilated", "add", "cat",
                    "reshape", "conv1d"],
    "custom": ["scale", "square_relu", "output"],
}
CUSTOM_LAYERS = {"scale": "ChannelScale", "square_relu": "SquaredReLU"}


def _close(actual, expected, dtype: str):
    actual = np.asarray(actual, np.float32)
    if dtype == "float32":
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    else:  # float16 keeps 11 significant bits
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-3 * scale)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """{name: (model, samples, export path, CustomLayerWarning messages)} for every zoo model."""
    root = tmp_path_factory.mktemp("zoo")
    built = {}
    for name, builder in model_zoo.ZOO.items():
        model = builder()
        samples = model_zoo.samples(model, count=2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = export_model(model, samples, root / name,
                                activation_dtype=DTYPES.get(name, "float16"), verbose=False)
        messages = [str(w.message) for w in caught if issubclass(w.category, CustomLayerWarning)]
        built[name] = (model, samples, path, messages)
    return built


# -- the export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(model_zoo.ZOO))
def test_graph_equals_keras_graph(zoo, name):
    model, samples, path, _ = zoo[name]
    export = read_export(path)
    expected = model_zoo.keras_inbound(model)
    assert {layer.name: list(layer.inbound) for layer in export.layers} == expected
    positions = {layer.name: i for i, layer in enumerate(export.layers)}
    for layer in export.layers:  # topological order
        assert all(positions[source] < positions[layer.name] for source in layer.inbound)
    keras_layers = {layer.name: layer for layer in model.layers}
    for layer in export.layers[1:]:
        keras_layer = keras_layers[layer.name]
        assert layer.type == type(keras_layer).__name__
        assert layer.output_shape == tuple(int(d) for d in keras_layer.output.shape[1:])
        assert layer.params == keras_layer.count_params()
    assert export.layers[0].type == "InputLayer"
    assert export.layers[0].output_shape == samples.shape[1:]
    assert export.num_samples == 2


@pytest.mark.parametrize("name", list(model_zoo.ZOO))
def test_activations_and_weights_equal_keras(zoo, name):
    model, samples, path, _ = zoo[name]
    export = read_export(path)
    dtype = DTYPES.get(name, "float16")
    for layer_name in PROBED[name]:
        layer = model.get_layer(layer_name)
        expected = keras.Model(model.inputs, layer.output).predict(samples, verbose=0)
        _close(export.activations(layer_name), expected, dtype)
    np.testing.assert_array_equal(export.activations(export.layers[0].name), samples)
    for layer in model.layers:
        weights = layer.get_weights()
        exported = export.weights(layer.name)
        assert len(exported) == len(weights), layer.name
        for got, want in zip(exported, weights):
            np.testing.assert_array_equal(got, want)


def test_every_layer_type_config_and_weight_names(zoo):
    model, _, path, messages = zoo["every_layer"]
    export = read_export(path)
    assert messages == []
    for name, type_name in model_zoo.EVERY_LAYER_TYPES.items():
        assert export.layer(name).type == type_name, name
    config = {layer.name: layer.config for layer in export.layers}
    shapes = {layer.name: layer.output_shape for layer in export.layers}
    assert shapes["pad"] == (18, 20, 3) and config["pad"]["padding"] == [[1, 1], [2, 2]]
    assert shapes["conv_s2"] == (8, 9, 8)
    assert {k: config["conv_s2"][k] for k in ("filters", "kernel_size", "strides", "padding")} == \
        {"filters": 8, "kernel_size": [3, 3], "strides": [2, 2], "padding": "valid"}
    assert "dilation_rate" not in config["conv_s2"] and "groups" not in config["conv_s2"]
    assert config["conv_dilated"]["dilation_rate"] == [2, 2]
    assert config["bn"]["axis"] == -1
    assert config["act"]["activation"] == "relu"
    assert config["dw"]["depth_multiplier"] == 2 and config["dw"]["kernel_size"] == [3, 3]
    assert shapes["dw"] == (8, 9, 16)
    assert config["relu6"]["max_value"] == 6.0
    assert config["sep"]["filters"] == 16 and config["sep"]["depth_multiplier"] == 1
    assert config["avg"]["pool_size"] == [2, 2] and shapes["avg"] == (4, 4, 16)
    assert shapes["gap"] == (16,) and config["gap"]["keepdims"] is False
    assert shapes["gmp"] == (16,)
    assert config["cat"]["axis"] == -1 and shapes["cat"] == (32,)
    assert config["drop"]["rate"] == 0.3
    assert config["reshape"]["target_shape"] == [8, 4] and shapes["reshape"] == (8, 4)
    assert config["conv1d"]["kernel_size"] == [3] and shapes["conv1d"] == (8, 4)
    assert config["rescale"]["scale"] == pytest.approx(1 / 255)
    assert config["rescale"]["offset"] == -0.5
    assert config["norm"]["mean"] == [0.1, 0.0, -0.1]
    assert config["norm"]["variance"] == [1.0, 2.0, 0.5]
    assert config["output"]["units"] == model_zoo.CLASSES
    assert list(export.layer("mul").inbound) == ["relu6", "sep"]
    assert list(export.layer("add").inbound) == ["mul", "conv_dilated"]

    def names(layer):
        return [w.name for w in export.layer(layer).weights]

    assert names("dw") == ["depthwise_kernel", "bias"]
    assert export.layer("dw").weights[0].shape == (3, 3, 8, 2)
    assert names("sep") == ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert [w.shape for w in export.layer("sep").weights] == [(3, 3, 8, 1), (1, 1, 8, 16), (16,)]
    assert names("bn") == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert names("conv1d") == ["kernel", "bias"]
    for weightless in ("rescale", "norm", "pad", "act", "relu6", "mul", "add", "avg", "gap", "gmp",
                       "cat", "drop", "reshape", "flat"):
        assert names(weightless) == [], weightless


def test_mobilenet_style_weight_names(zoo):
    export = read_export(zoo["depthwise"][2])
    assert [w.name for w in export.layer("dw_conv").weights] == ["depthwise_kernel"]
    assert [w.name for w in export.layer("sep_conv").weights] == \
        ["depthwise_kernel", "pointwise_kernel", "bias"]
    for bn in ("stem_bn", "dw_bn", "pw_bn"):
        assert [w.name for w in export.layer(bn).weights] == \
            ["gamma", "beta", "moving_mean", "moving_variance"]
    assert export.layer("stem_conv").config["strides"] == [2, 2]
    assert export.layer("stem_relu").config["max_value"] == 6.0


def test_adapted_normalization_exports_its_statistics(tmp_path):
    keras.utils.set_random_seed(1)
    data = np.random.default_rng(1).normal(3.0, 2.0, (64, 6, 6, 2)).astype(np.float32)
    norm = keras.layers.Normalization(axis=-1, name="norm")
    norm.adapt(data)
    inputs = keras.Input((6, 6, 2), name="input")
    outputs = keras.layers.Conv2D(3, 3, name="conv")(norm(inputs))
    model = keras.Model(inputs, outputs, name="adapted")
    export = read_export(export_model(model, data[:2], tmp_path, activation_dtype="float32",
                                     verbose=False))
    layer = export.layer("norm")
    assert [w.name for w in layer.weights] == ["mean", "variance", "count"]
    assert "mean" not in layer.config  # statistics are weights here, not constants
    mean, variance, count = export.weights("norm")
    np.testing.assert_allclose(mean, data.mean(axis=(0, 1, 2)), rtol=1e-4)
    assert count.shape == ()
    _close(export.activations("norm"), norm(data[:2]).numpy(), "float32")


def test_custom_layers_export_with_class_name_and_warning(zoo):
    model, samples, path, messages = zoo["custom"]
    export = read_export(path)
    for name, type_name in CUSTOM_LAYERS.items():
        assert export.layer(name).type == type_name
        assert any(f"{name!r}" in m and type_name in m and "generic block" in m for m in messages)
    assert len(messages) == len(CUSTOM_LAYERS)
    assert [w.name for w in export.layer("scale").weights] == ["scale", "shift"]
    assert export.layer("scale").params == 12
    assert not export.layer("square_relu").weights
    assert export.layer("square_relu").output_shape == (16, 16, 6)


def test_custom_layer_without_names_or_config(tmp_path):
    """A custom layer whose weights have no names and whose get_config fails still exports."""

    class Opaque(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units))
            self.b = self.add_weight(shape=(self.units,), initializer="ones")

        def call(self, x):
            return keras.ops.matmul(x, self.w) + self.b

        def get_config(self):
            raise NotImplementedError("no config")

    keras.utils.set_random_seed(2)
    inputs = keras.Input((5,), name="input")
    outputs = Opaque(3, name="opaque")(inputs)
    model = keras.Model(inputs, outputs, name="opaque_model")
    samples = np.random.default_rng(2).random((2, 5), dtype=np.float32)
    with pytest.warns(CustomLayerWarning, match="'opaque' is a custom layer class Opaque"):
        path = export_model(model, samples, tmp_path, activation_dtype="float32", verbose=False)
    layer = read_export(path).layer("opaque")
    assert layer.type == "Opaque" and layer.config == {}
    assert len({w.name for w in layer.weights}) == 2
    assert [w.shape for w in layer.weights] == [(5, 3), (3,)]


def test_multi_input_and_shared_layers_are_refused(tmp_path):
    layers = keras.layers
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    two = keras.Model([a, b], layers.Dense(2, name="d")(layers.Add(name="add")([a, b])))
    with pytest.raises(ExportError, match="2 inputs"):
        export_model(two, np.zeros((1, 4), np.float32), tmp_path, verbose=False)
    inputs = keras.Input((8, 8, 3), name="input")
    shared = layers.Conv2D(3, 3, padding="same", name="shared")
    x = shared(shared(inputs))
    model = keras.Model(inputs, x)
    with pytest.raises(ExportError, match="'shared' is used more than once"):
        export_model(model, np.zeros((1, 8, 8, 3), np.float32), tmp_path, verbose=False)
    assert not list(tmp_path.glob("*.nnvis.json"))


# -- the import in Blender -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_api():
    nnvis = import_extension_package()
    from nnvis.nnvis_addon.blender import scene  # noqa: F401 - the working tree's script API
    return nnvis.nnvis_addon.blender.scene


def _import(scene_api, path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    # every layer its own unit, every channel its own map (test_folding.py and test_picture.py
    # check the folded units and the input drawn as a picture)
    root = scene_api.import_network(path, scene_api.ImportOptions(fold=False,
                                                                  input_as_picture=False))
    bpy.context.view_layer.update()
    return root, {obj["nnvis_layer"]: obj for obj in scene_api.network_layers(root)}


@pytest.mark.parametrize("name", list(model_zoo.ZOO))
def test_import_draws_every_layer_and_cell(zoo, scene_api, name):
    model, _, path, _ = zoo[name]
    export = read_export(path)
    root, layers = _import(scene_api, path)
    assert list(layers) == [layer.name for layer in export.layers]
    for layer in export.layers:
        obj = layers[layer.name]
        assert obj["nnvis_layer_type"] == layer.type
        positions, _ = evaluated_instances(obj)
        if layer.type in CUSTOM_LAYERS.values() and obj.get("nnvis_block"):
            assert len(positions) == 1, layer.name  # an unknown type: one block (importer's choice)
        else:
            assert len(positions) == layer.cells, layer.name
        assert np.all(np.isfinite(positions)), layer.name


# -- placement of a DAG (the DAG layout) ---------------------------------------------------------


def _world_box(obj) -> tuple[np.ndarray, np.ndarray]:
    """World-space axis-aligned box of a layer's evaluated cells (instance centres, grown by half
    a cell). ``obj.bound_box`` of the evaluated object only covers its realized geometry (the
    label), not the instanced cells, so the instances are read instead."""
    positions, _ = evaluated_instances(obj)
    matrix = np.array(obj.matrix_world)
    world = positions.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    root = obj.parent
    half = 0.5 * float(root["nnvis_cell_size"]) if root is not None else 0.05
    return world.min(axis=0) - half, world.max(axis=0) + half


def _overlap(a, b, margin: float = 1e-4) -> bool:
    return bool(np.all(a[0] < b[1] - margin) and np.all(b[0] < a[1] - margin))


def test_dag_placement_inception_branches_do_not_overlap(zoo, scene_api):
    _, _, path, _ = zoo["inception"]
    root, layers = _import(scene_api, path)
    boxes = {name: _world_box(obj) for name, obj in layers.items()}
    branches = model_zoo.INCEPTION_BRANCHES
    for i, first in enumerate(branches):
        for second in branches[i + 1:]:
            for a in first:
                for b in second:
                    assert not _overlap(boxes[a], boxes[b]), \
                        f"branch layers {a} {boxes[a]} and {b} {boxes[b]} overlap"
    # every layer's box is distinct from every other one (no two layers drawn in one place)
    names = list(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not _overlap(boxes[a], boxes[b]), f"layers {a} and {b} overlap"
    # the merge comes after all its branches and the stem before them
    x = {name: layers[name].matrix_world.translation.x for name in layers}
    for branch in branches:
        assert x["stem"] < x[branch[0]] and x[branch[-1]] < x["mixed"]


def _connection(layers, source, target):
    root = next(iter(layers.values())).parent
    for obj in root.users_collection[0].objects:
        if obj.get("nnvis_source_layer") == source and obj.get("nnvis_target_layer") == target:
            return obj
    return None


def _curve_points_world(scene_api, obj) -> np.ndarray:
    nnvis = import_extension_package()
    compat = nnvis.nnvis_addon.blender.compat
    modifier = obj.modifiers[nnvis.nnvis_addon.blender.connections.MODIFIER_NAME]
    compat.set_modifier_input(modifier, "As Tubes", False)
    obj.update_tag()
    curves = evaluated_curves(obj)
    assert curves["count"] > 0, obj.name
    points = curves["points"].reshape(-1, 3).astype(np.float64)
    matrix = np.array(obj.matrix_world)
    world = points @ matrix[:3, :3].T + matrix[:3, 3]
    return world.reshape(curves["points"].shape)


def test_dag_placement_residual_skip_curves_clear_the_skipped_layers(zoo, scene_api):
    _, _, path, _ = zoo["residual"]
    root, layers = _import(scene_api, path)
    boxes = {name: _world_box(obj) for name, obj in layers.items()}
    skips = {("stem_relu", "res1_add"): ["res1a_conv", "res1a_bn", "res1a_relu", "res1b_conv",
                                         "res1b_bn"],
             ("res2_proj_bn", "res2_add"): ["res2a_relu", "res2b_conv", "res2b_bn"]}
    for (source, target), skipped in skips.items():
        obj = _connection(layers, source, target)
        assert obj is not None, f"no connection object {source} -> {target}"
        points = _curve_points_world(scene_api, obj)
        tolerance = 0.5
        for end, layer in ((points[:, 0], source), (points[:, -1], target)):
            lo, hi = boxes[layer]
            assert np.all(end >= lo - tolerance) and np.all(end <= hi + tolerance), \
                f"{source} -> {target}: curve ends are not at layer {layer}"
        for layer in skipped:
            hits = _segments_hit_box(points, *boxes[layer])
            assert not hits.any(), (f"skip connection {source} -> {target}: {int(hits.sum())} of "
                                    f"{hits.size} curve segments pass through layer {layer}")


def _segments_hit_box(curves: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(curves, P - 1) bool: which polyline segments of ``curves`` (E, P, 3) cross the box (slab
    test, so a thin layer between two sample points is still found)."""
    start, end = curves[:, :-1], curves[:, 1:]
    direction = end - start
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / direction
        t0 = (lo - start) * inverse
        t1 = (hi - start) * inverse
    near = np.where(np.isnan(t0), -np.inf, np.minimum(t0, t1))
    far = np.where(np.isnan(t1), np.inf, np.maximum(t0, t1))
    parallel = direction == 0  # a segment parallel to a slab is inside it or never
    inside_slab = (start >= lo) & (start <= hi)
    near = np.where(parallel, np.where(inside_slab, -np.inf, np.inf), near)
    far = np.where(parallel, np.where(inside_slab, np.inf, -np.inf), far)
    enter = np.maximum(near.max(axis=-1), 0.0)
    leave = np.minimum(far.min(axis=-1), 1.0)
    return enter <= leave
