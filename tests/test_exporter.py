"""The Keras/TensorFlow exporter against real TensorFlow (no mocks).

One module-scoped training run (the bundled example's CNN, 2 epochs on a subset of the digits)
feeds most tests: two EpochRecorders (float16 and float32), a callback that captures
``layer.get_weights()`` and saves TF checkpoints, and a ModelCheckpoint writing per-epoch
``.weights.h5`` files.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from nnvis_addon.core.export_format import read_export  # noqa: E402
from nnvis_export import (  # noqa: E402
    EpochRecorder,
    ExportError,
    ExportWarning,
    export_checkpoints,
    export_model,
    list_checkpoints,
    summarize,
)
from nnvis_export.cli import main as cli_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["input", "conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "output"]
TYPES = ["InputLayer", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense",
         "Dense"]
SHAPES = [(16, 16, 1), (16, 16, 8), (8, 8, 8), (8, 8, 16), (4, 4, 16), (256,), (32,), (10,)]
EPOCHS = 2


def _load_example_script():
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "scripts" / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _float16_close(actual, expected):
    """float16 keeps 11 significant bits: relative error <= 2**-11, plus subnormal slack."""
    np.testing.assert_allclose(np.asarray(actual, np.float32), expected, rtol=1e-3, atol=1e-4)


class Capture(keras.callbacks.Callback):
    """Weights per epoch (get_weights), plus epoch 0 weight files the way training would save."""

    def __init__(self, weights_dir: Path, tf_dir: Path):
        super().__init__()
        self.weights_dir = weights_dir
        self.tf_dir = tf_dir
        self.weights: dict[int, dict[str, list[np.ndarray]]] = {}

    def _capture(self, epoch: int):
        self.weights[epoch] = {layer.name: [np.array(w) for w in layer.get_weights()]
                               for layer in self.model.layers}
        tf.train.Checkpoint(model=self.model).write(str(self.tf_dir / f"ckpt-{epoch}"))

    def on_train_begin(self, logs=None):
        self.model.save_weights(self.weights_dir / "weights.00.weights.h5")
        self._capture(0)

    def on_epoch_end(self, epoch, logs=None):
        self._capture(epoch + 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    example = _load_example_script()
    tmp = tmp_path_factory.mktemp("exporter")
    keras.utils.set_random_seed(7)
    x_train, x_test, y_train, y_test = example.load_data()
    indices, samples, labels = example.pick_samples(x_test, y_test)
    model = example.build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    weights_dir, tf_dir = tmp / "weights", tmp / "tf_ckpt"
    weights_dir.mkdir()
    tf_dir.mkdir()
    rec16 = EpochRecorder(samples, tmp / "f16", labels=labels, activation_dtype="float16",
                          verbose=False)
    rec32 = EpochRecorder(samples, tmp / "f32", labels=labels, activation_dtype="float32",
                          class_names=[str(i) for i in range(10)], verbose=False)
    capture = Capture(weights_dir, tf_dir)
    checkpoint = keras.callbacks.ModelCheckpoint(str(weights_dir / "weights.{epoch:02d}.weights.h5"),
                                                 save_weights_only=True)
    csv_log = tmp / "training.log"
    history = model.fit(x_train[:600], y_train[:600], epochs=EPOCHS, batch_size=32, verbose=0,
                        callbacks=[rec16, rec32, capture, checkpoint,
                                   keras.callbacks.CSVLogger(str(csv_log))])
    history_json = tmp / "history.json"
    history_json.write_text(json.dumps(history.history))
    model_path = tmp / "digits.keras"
    model.save(model_path)
    samples_npy = tmp / "samples.npy"
    np.save(samples_npy, samples)
    return dict(tmp=tmp, model=model, model_path=model_path, samples=samples, labels=labels,
                samples_npy=samples_npy, history=history.history, csv_log=csv_log,
                history_json=history_json, captured=capture.weights, weights_dir=weights_dir,
                tf_dir=tf_dir, f16=read_export(rec16.export_path),
                f32=read_export(rec32.export_path), f16_path=rec16.export_path)


def _layer_models(model):
    """An independent keras.Model(model.inputs, layer.output) per layer."""
    return {layer.name: keras.Model(model.inputs, layer.output) for layer in model.layers}


# -- structure -------------------------------------------------------------------------------


def test_layer_records(trained):
    export = trained["f16"]
    model = trained["model"]
    assert [layer.name for layer in export.layers] == LAYERS
    assert [layer.type for layer in export.layers] == TYPES
    assert [layer.output_shape for layer in export.layers] == SHAPES
    assert [list(layer.inbound) for layer in export.layers] == [[]] + [[n] for n in LAYERS[:-1]]
    assert export.input_shape == (16, 16, 1)
    assert export.num_samples == 4
    conv1 = export.layer("conv1")
    assert conv1.config == {"filters": 8, "kernel_size": [3, 3], "strides": [1, 1],
                            "padding": "same", "activation": "relu", "use_bias": True,
                            "data_format": "channels_last"}
    assert export.layer("pool1").config["pool_size"] == [2, 2]
    assert export.layer("output").config["units"] == 10
    assert export.layer("output").config["activation"] == "softmax"
    assert [w.name for w in conv1.weights] == ["kernel", "bias"]
    assert conv1.weights[0].shape == (3, 3, 1, 8)
    for layer in model.layers:
        assert export.layer(layer.name).params == layer.count_params()
    assert export.layer("input").params == 0 and not export.layer("input").weights
    assert export.frameworks["keras"] == keras.__version__
    assert trained["f32"].class_names == [str(i) for i in range(10)]


def test_epochs_and_metrics(trained):
    export = trained["f16"]
    history = trained["history"]
    assert export.epoch_numbers == list(range(EPOCHS + 1))
    assert export.epochs[0].metrics == {}
    for k in range(1, EPOCHS + 1):
        metrics = export.epochs[k].metrics
        assert metrics["loss"] == pytest.approx(history["loss"][k - 1])
        assert metrics["accuracy"] == pytest.approx(history["accuracy"][k - 1])
        assert np.isfinite(metrics["loss"])


def test_weights_equal_get_weights_every_epoch(trained):
    captured = trained["captured"]
    for export in (trained["f16"], trained["f32"]):
        for index, epoch in enumerate(export.epochs):
            assert set(epoch.weights) == {"conv1", "conv2", "dense1", "output"}
            for layer, expected in captured[epoch.epoch].items():
                got = export.weights(layer, index)
                assert len(got) == len(expected), layer
                for a, b in zip(got, expected):
                    assert a.dtype == np.float32
                    np.testing.assert_array_equal(a, b)
    # training changed them: epoch 0 and the last epoch differ
    assert not np.array_equal(trained["f16"].weights("conv1", 0)[0],
                              trained["f16"].weights("conv1", -1)[0])


def test_activations_equal_independent_layer_models(trained):
    """Each epoch's weights loaded back, each layer predicted on its own, against the export."""
    model = keras.models.load_model(trained["model_path"], compile=False)
    samples = trained["samples"]
    per_layer = _layer_models(model)
    f16, f32 = trained["f16"], trained["f32"]
    for index, epoch in enumerate(f16.epochs):
        model.load_weights(trained["weights_dir"] / f"weights.{epoch.epoch:02d}.weights.h5")
        for name, layer_model in per_layer.items():
            expected = layer_model.predict(samples, verbose=0)
            assert f32.activations(name, index).dtype == np.float32
            np.testing.assert_allclose(f32.activations(name, index), expected, rtol=1e-5, atol=1e-6)
            assert f16.activations(name, index).dtype == np.float16
            _float16_close(f16.activations(name, index), expected)
    # the input layer's activations are the samples, one shared array for every epoch
    np.testing.assert_array_equal(f32.activations("input", 0), samples)
    document = json.loads(trained["f16_path"].read_text())
    assert len({e["activations"]["input"] for e in document["epochs"]}) == 1


def test_samples_and_predictions(trained):
    export = trained["f32"]
    model = trained["model"]
    scores = model.predict(trained["samples"], verbose=0)
    assert [s.label for s in export.samples] == [int(v) for v in trained["labels"]]
    assert len({s.label for s in export.samples}) == 4
    for sample, expected, row in zip(export.samples, trained["samples"], scores):
        np.testing.assert_array_equal(sample.input, expected)
        assert sample.predicted_class == int(np.argmax(row))
        np.testing.assert_allclose(sample.scores, row, rtol=1e-5, atol=1e-7)
    assert export.epochs[-1].predictions == [int(np.argmax(r)) for r in scores]
    assert all(len(e.predictions) == 4 for e in export.epochs)


# -- checkpoints -----------------------------------------------------------------------------


def _assert_same_arrays(a, b):
    assert a.epoch_numbers == b.epoch_numbers
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    for ea, eb in zip(a.epochs, b.epochs):
        assert ea.predictions == eb.predictions
        for layer in a.layers:
            np.testing.assert_array_equal(ea.activations[layer.name], eb.activations[layer.name])
            for wa, wb in zip(ea.weights.get(layer.name, []), eb.weights.get(layer.name, [])):
                np.testing.assert_array_equal(wa, wb)
    for sa, sb in zip(a.samples, b.samples):
        np.testing.assert_array_equal(sa.input, sb.input)
        np.testing.assert_array_equal(sa.scores, sb.scores)


def test_checkpoint_folder_equals_callback(trained, tmp_path):
    listed = list_checkpoints(trained["weights_dir"])
    assert [c.epoch for c in listed] == list(range(EPOCHS + 1))
    path = export_checkpoints(trained["model_path"], trained["weights_dir"], trained["samples"],
                              tmp_path, labels=trained["labels"], verbose=False)
    _assert_same_arrays(read_export(path), trained["f16"])


def test_tf_checkpoints_equal_callback(trained, tmp_path):
    assert [c.kind for c in list_checkpoints(trained["tf_dir"])] == ["tf"] * (EPOCHS + 1)
    path = export_checkpoints(trained["model_path"], trained["tf_dir"], trained["samples"],
                              tmp_path, labels=trained["labels"], verbose=False)
    _assert_same_arrays(read_export(path), trained["f16"])


def test_checkpoint_names_sort_numerically(tmp_path):
    for name in ["weights.10.weights.h5", "epoch_002.weights.h5", "weights.03-0.41.weights.h5",
                 "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert [(c.epoch, c.path.name) for c in list_checkpoints(tmp_path)] == [
        (2, "epoch_002.weights.h5"), (3, "weights.03-0.41.weights.h5"),
        (10, "weights.10.weights.h5")]
    (tmp_path / "weights.002.weights.h5").write_bytes(b"")
    with pytest.raises(ExportError, match="both are epoch 2"):
        list_checkpoints(tmp_path)
    with pytest.raises(ExportError, match="not a folder"):
        list_checkpoints(tmp_path / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExportError, match="no checkpoints"):
        list_checkpoints(empty)


# -- other model shapes ----------------------------------------------------------------------


def test_functional_branches_add_and_concatenate(tmp_path):
    keras.utils.set_random_seed(3)
    layers = keras.layers
    inputs = keras.Input((8, 8, 3), name="image")
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="branch_a")(inputs)
    b = layers.Conv2D(4, 1, name="branch_b")(inputs)
    added = layers.Add(name="sum")([a, b])
    joined = layers.Concatenate(axis=-1, name="join")([added, a])
    pooled = layers.GlobalAveragePooling2D(name="gap")(joined)
    normed = layers.BatchNormalization(name="bn")(pooled)
    outputs = layers.Dense(3, activation="softmax", name="probs")(normed)
    model = keras.Model(inputs, outputs, name="branchy")
    samples = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)

    path = export_model(model, samples, tmp_path, activation_dtype="float32", epoch=4,
                        metrics={"loss": 1.5}, verbose=False)
    export = read_export(path)
    assert path.name == "branchy.nnvis.json"
    inbound = {layer.name: list(layer.inbound) for layer in export.layers}
    assert inbound == {"image": [], "branch_a": ["image"], "branch_b": ["image"],
                       "sum": ["branch_a", "branch_b"], "join": ["sum", "branch_a"],
                       "gap": ["join"], "bn": ["gap"], "probs": ["bn"]}
    assert [layer.name for layer in export.layers] == list(inbound)
    assert export.layer("join").output_shape == (8, 8, 8)
    assert export.layer("join").config["axis"] == -1
    assert [w.name for w in export.layer("bn").weights] == ["gamma", "beta", "moving_mean",
                                                            "moving_variance"]
    assert export.epoch_numbers == [4] and export.epochs[0].metrics == {"loss": 1.5}
    for layer in model.layers:
        expected = keras.Model(model.inputs, layer.output).predict(samples, verbose=0)
        np.testing.assert_allclose(export.activations(layer.name), expected, rtol=1e-5, atol=1e-6)


def test_sequential_built_without_input_gets_input_record(tmp_path):
    layers = keras.layers
    model = keras.Sequential([layers.Dense(4, activation="relu", name="hidden"),
                              layers.Dense(2, activation="sigmoid", name="out")], name="mlp")
    model.build((None, 6))
    samples = np.linspace(0, 1, 18, dtype=np.float32).reshape(3, 6)
    export = read_export(export_model(model, samples, tmp_path, labels=[0, 1, 1], verbose=False))
    assert [layer.type for layer in export.layers] == ["InputLayer", "Dense", "Dense"]
    assert export.layers[1].inbound == (export.layers[0].name,)
    assert export.layers[0].output_shape == (6,)
    np.testing.assert_array_equal(export.activations(export.layers[0].name), samples)


def test_sequential_without_input_recorded_during_fit(tmp_path):
    """A Sequential model defined without an Input gets its graph from the samples' shape."""
    keras.utils.set_random_seed(5)
    layers = keras.layers
    model = keras.Sequential([layers.Conv2D(2, 3, name="conv"), layers.Flatten(name="flat"),
                              layers.Dense(2, activation="softmax", name="out")], name="lazy")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(2).random((32, 8, 8, 1), dtype=np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    recorder = EpochRecorder(x[:3], tmp_path, labels=y[:3], activation_dtype="float32",
                             verbose=False)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[recorder])
    export = read_export(recorder.export_path)
    assert [layer.type for layer in export.layers] == ["InputLayer", "Conv2D", "Flatten", "Dense"]
    assert export.epoch_numbers == [0, 1] and "loss" in export.epochs[1].metrics
    for got, expected in zip(export.weights("out", -1), model.get_layer("out").get_weights()):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(export.activations("out", -1), model.predict(x[:3], verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise_clear_errors(trained, tmp_path):
    model = trained["model"]
    with pytest.raises(ExportError, match=r"model expects samples of shape \(16, 16, 1\)"):
        export_model(model, np.zeros((2, 8, 8, 1), np.float32), tmp_path, verbose=False)
    with pytest.raises(ExportError, match="one label per sample"):
        export_model(model, trained["samples"], tmp_path, labels=[1, 2], verbose=False)
    with pytest.raises(ExportError, match="activation dtype"):
        EpochRecorder(trained["samples"], tmp_path, activation_dtype="int8")
    assert not list(tmp_path.glob("*.nnvis.json"))


# -- command line ----------------------------------------------------------------------------


def test_cli_exports_a_saved_model(trained, tmp_path, capsys):
    samples = tmp_path / "samples.npy"
    labels = tmp_path / "labels.npy"
    np.save(samples, trained["samples"])
    np.save(labels, trained["labels"])
    out = tmp_path / "out"
    code = cli_main([str(trained["model_path"]), "--samples", str(samples), "--labels", str(labels),
                     "--out", str(out), "--indices", "0,2", "--name", "cli_digits",
                     "--dtype", "float32", "--class-names", "0,1,2,3,4,5,6,7,8,9"])
    assert code == 0
    printed = capsys.readouterr()
    assert "cli_digits" in printed.out and "conv2" in printed.out and "files:" in printed.out
    assert "nnvis: wrote" in printed.err
    assert cli_main([str(trained["model_path"]), "--samples", str(samples), "--out", str(out),
                     "--name", "quiet_digits", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")  # --quiet: no progress and no summary
    assert (out / "quiet_digits.nnvis.json").is_file()
    export = read_export(out / "cli_digits.nnvis.json")
    assert export.num_samples == 2
    assert [s.label for s in export.samples] == [int(trained["labels"][0]), int(trained["labels"][2])]
    np.testing.assert_array_equal(export.samples[1].input, trained["samples"][2])
    np.testing.assert_array_equal(export.activations("output"), trained["f32"].activations("output")[[0, 2]])


def test_cli_checkpoints(trained, tmp_path, capsys):
    samples = tmp_path / "samples.npy"
    np.save(samples, trained["samples"])
    code = cli_main([str(trained["model_path"]), "--samples", str(samples), "--out", str(tmp_path),
                     "--checkpoints", str(trained["weights_dir"]), "--quiet"])
    assert code == 0
    export = read_export(tmp_path / f"{trained['model'].name}.nnvis.json")
    assert export.epoch_numbers == list(range(EPOCHS + 1))
    np.testing.assert_array_equal(export.activations("conv2", 1), trained["f16"].activations("conv2", 1))


def _write_pngs(folder: Path, count: int, shape: tuple[int, int, int], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"digit_{i}.png"
        path.write_bytes(tf.io.encode_png(rng.integers(0, 256, shape).astype("uint8")).numpy())
        paths.append(str(path))
    return paths


def test_cli_images(trained, tmp_path, capsys):
    """Images into a model without its own Rescaling layer: a warning without --rescale, none
    with the README's --rescale 1/255."""
    paths = _write_pngs(tmp_path, 3, (20, 24, 3), seed=1)
    model = str(trained["model_path"])
    assert cli_main([model, "--samples", *paths, "--out", str(tmp_path / "raw"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("nnvis-export: warning: the images go in as pixel values 0..255")
    assert f"model {trained['model'].name!r} has no Rescaling" in err
    assert "pass --rescale 1/255" in err and len(err.splitlines()) == 1
    raw = read_export(next((tmp_path / "raw").glob("*.nnvis.json")))
    assert float(raw.samples[0].input.max()) > 1.0

    out = tmp_path / "out"
    assert cli_main([model, "--samples", *paths, "--out", str(out), "--rescale", "1/255",
                     "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    export = read_export(next(out.glob("*.nnvis.json")))
    assert export.input_shape == (16, 16, 1)
    assert [s.name for s in export.samples] == ["digit_0.png", "digit_1.png", "digit_2.png"]
    assert 0.0 <= float(export.samples[0].input.min()) and float(export.samples[0].input.max()) <= 1.0
    np.testing.assert_allclose(export.samples[0].input, raw.samples[0].input / 255, rtol=1e-6)


@pytest.mark.parametrize("front", [[], ["resize"]])
def test_cli_images_for_a_model_with_its_own_rescaling(tmp_path, capsys, front):
    """A model that starts with Rescaling (here also behind a Resizing layer) gets the 0..255
    pixels as they are, and --rescale on top of it is warned about."""
    layers = keras.layers
    before = [layers.Resizing(8, 8, name="resize")] if front else []
    model = keras.Sequential([layers.Input((8, 8, 3), name="image"), *before,
                              layers.Rescaling(1 / 255, name="scale"),
                              layers.Conv2D(2, 3, name="conv"),
                              layers.GlobalAveragePooling2D(name="gap"),
                              layers.Dense(2, activation="softmax", name="out")], name="scaler")
    model_path = tmp_path / "scaler.keras"
    model.save(model_path)
    paths = _write_pngs(tmp_path, 2, (8, 8, 3), seed=2)
    out = tmp_path / "out"
    assert cli_main([str(model_path), "--samples", *paths, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err
    assert "the model scales them itself (layer 'scale' (Rescaling, scale=0.00392157))" in err
    export = read_export(out / "scaler.nnvis.json")
    pixels = tf.io.decode_png(Path(paths[0]).read_bytes()).numpy().astype(np.float32)
    np.testing.assert_array_equal(export.samples[0].input, pixels)
    _float16_close(export.activations("scale")[0], pixels / 255)

    assert cli_main([str(model_path), "--samples", *paths, "--out", str(out), "--rescale",
                     "1/255", "--quiet"]) == 0
    assert capsys.readouterr().err == (
        "nnvis-export: warning: --rescale 0.00392157 scales the pixels and then the model's own "
        "layer 'scale' (Rescaling, scale=0.00392157) scales them again; leave --rescale out to "
        "feed the 0..255 pixels the model expects\n")


def test_cli_errors_exit_2(trained, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 8, 8, 1), np.float32))
    code = cli_main([str(trained["model_path"]), "--samples", str(bad), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "nnvis-export: error:" in err and "(8, 8, 1)" in err and "(16, 16, 1)" in err
    assert cli_main([str(tmp_path / "missing.keras"), "--samples", str(bad),
                     "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert cli_main([str(trained["model_path"]), "--samples", str(pickled),
                     "--out", str(tmp_path)]) == 2
    assert "pickled" in capsys.readouterr().err
    assert cli_main([str(trained["model_path"]), "--samples", str(bad), "--out", str(tmp_path),
                     "--indices", "0,9"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--dtype", "float16"])
    assert exit_info.value.code == 2
    assert not list(tmp_path.glob("*.nnvis.json"))


# -- metrics logs, other architectures, code in models, names (issue 16) ---------------------


def _assert_logged_metrics(export, history, epochs):
    for epoch in epochs:
        metrics = export.epochs[export.epoch_numbers.index(epoch)].metrics
        for name in ("loss", "accuracy"):
            assert metrics[name] == pytest.approx(history[name][epoch - 1], rel=1e-6), (epoch, name)


@pytest.mark.parametrize("log", ["csv_log", "history_json"])
def test_cli_checkpoints_with_metrics_log(trained, tmp_path, capsys, log):
    """Checkpoints carry no metrics; --metrics takes them from CSVLogger's file or the History."""
    code = cli_main([str(trained["model_path"]), "--samples", str(trained["samples_npy"]),
                     "--out", str(tmp_path), "--checkpoints", str(trained["weights_dir"]),
                     "--metrics", str(trained[log]), "--quiet"])
    assert code == 0
    assert capsys.readouterr().err == ""  # every trained epoch has its row: no warning
    export = read_export(tmp_path / f"{trained['model'].name}.nnvis.json")
    assert export.epoch_numbers == list(range(EPOCHS + 1))
    assert export.epochs[0].metrics == {}  # before training: no log row
    _assert_logged_metrics(export, trained["history"], range(1, EPOCHS + 1))


def test_cli_single_export_with_metrics_log(trained, tmp_path, capsys):
    """Without --epoch, a saved model with its training log is the log's last epoch."""
    args = [str(trained["model_path"]), "--samples", str(trained["samples_npy"]),
            "--metrics", str(trained["csv_log"]), "--quiet"]
    assert cli_main(args + ["--out", str(tmp_path / "last")]) == 0
    export = read_export(next((tmp_path / "last").glob("*.nnvis.json")))
    assert export.epoch_numbers == [EPOCHS]
    _assert_logged_metrics(export, trained["history"], [EPOCHS])
    assert cli_main(args + ["--out", str(tmp_path / "first"), "--epoch", "1"]) == 0
    _assert_logged_metrics(read_export(next((tmp_path / "first").glob("*.nnvis.json"))),
                           trained["history"], [1])
    assert capsys.readouterr().err == ""


def test_cli_warns_about_epochs_missing_from_the_log(trained, tmp_path, capsys):
    short_log = tmp_path / "short.csv"
    short_log.write_text("\n".join(trained["csv_log"].read_text().splitlines()[:2]) + "\n")
    code = cli_main([str(trained["model_path"]), "--samples", str(trained["samples_npy"]),
                     "--out", str(tmp_path), "--checkpoints", str(trained["weights_dir"]),
                     "--metrics", str(short_log), "--quiet"])
    assert code == 0
    missing = ", ".join(str(e) for e in range(2, EPOCHS + 1))
    assert capsys.readouterr().err.startswith(
        f"nnvis-export: warning: metrics log 'short.csv' has no row for epoch{'s' * (EPOCHS > 2)} "
        f"{missing} (it has epochs 1-1")
    export = read_export(tmp_path / f"{trained['model'].name}.nnvis.json")
    assert [bool(e.metrics) for e in export.epochs] == [False, True] + [False] * (EPOCHS - 1)


def _digits_model_with_dense1(units: int):
    """The bundled example's architecture with another width of dense1."""
    layers = keras.layers
    return keras.Sequential([
        layers.Input((16, 16, 1), name="input"),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dense(units, activation="relu", name="dense1"),
        layers.Dense(10, activation="softmax", name="output"),
    ], name="wider")


@pytest.mark.parametrize("folder, first", [("weights_dir", "weights.00.weights.h5"),
                                           ("tf_dir", "ckpt-0")])
def test_cli_checkpoints_of_another_architecture(trained, tmp_path, capfd, folder, first):
    """One line naming the layer and both shapes: no Keras warnings, no tensor dump, no
    TensorFlow log of unrestored values."""
    wider = tmp_path / "wider.keras"
    _digits_model_with_dense1(48).save(wider)
    trained_units = trained["model"].get_layer("dense1").units
    capfd.readouterr()
    code = cli_main([str(wider), "--samples", str(trained["samples_npy"]), "--out", str(tmp_path),
                     "--checkpoints", str(trained[folder]), "--quiet"])
    assert code == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert lines == [f"nnvis-export: error: checkpoint {first!r} does not fit model 'wider': "
                     f"layer 'dense1' kernel has shape (256, 48) in the model but "
                     f"(256, {trained_units}) in the checkpoint (saved from another "
                     f"architecture?)"]
    assert not list(tmp_path.glob("*.nnvis.json"))


def test_second_fit_appends_to_the_export(tmp_path):
    """A second fit with the same EpochRecorder adds its epochs, numbered as Keras passes them
    (initial_epoch); a fit that restarts at 0 is numbered on, with a warning."""
    keras.utils.set_random_seed(11)
    layers = keras.layers
    model = keras.Sequential([layers.Input((6,), name="x"),
                              layers.Dense(4, activation="relu", name="hidden"),
                              layers.Dense(2, activation="softmax", name="out")], name="appender")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(4)
    x = rng.random((64, 6), dtype=np.float32)
    y = (x.sum(axis=1) > 3).astype("int64")
    recorder = EpochRecorder(x[:3], tmp_path, labels=y[:3], activation_dtype="float32",
                             verbose=False)
    first = model.fit(x, y, epochs=2, verbose=0, callbacks=[recorder]).history
    after_first = read_export(recorder.export_path)
    kept_weights = [np.array(w) for w in after_first.weights("out", -1)]
    kept_activations = np.array(after_first.activations("hidden", -1))
    del after_first  # its memory maps; the next fit replaces the files

    second = model.fit(x, y, initial_epoch=2, epochs=4, verbose=0, callbacks=[recorder]).history
    export = read_export(recorder.export_path)
    assert export.epoch_numbers == [0, 1, 2, 3, 4]
    for got, kept in zip(export.weights("out", 2), kept_weights):
        np.testing.assert_array_equal(got, kept)
    np.testing.assert_array_equal(export.activations("hidden", 2), kept_activations)
    _assert_logged_metrics(export, first, [1, 2])
    for epoch in (3, 4):
        assert export.epochs[epoch].metrics["loss"] == pytest.approx(second["loss"][epoch - 3])
    for got, expected in zip(export.weights("out", -1), model.get_layer("out").get_weights()):
        np.testing.assert_array_equal(got, expected)
    del export

    with pytest.warns(ExportWarning, match=r"started at epoch 0 .* recording this fit's epochs "
                                           r"as 5, 6, \.\.\. \(pass initial_epoch=4"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[recorder])
    assert read_export(recorder.export_path).epoch_numbers == [0, 1, 2, 3, 4, 5]


def test_a_fit_that_crashes_keeps_the_epochs_recorded(tmp_path):
    """Every epoch leaves a complete export (a sidecar segment an epoch); a fit that raises keeps
    them, the next fit goes on from them, and a fit that ends joins the segments into one."""
    keras.utils.set_random_seed(12)
    layers = keras.layers
    model = keras.Sequential([layers.Input((6,), name="x"),
                              layers.Dense(4, activation="relu", name="hidden"),
                              layers.Dense(2, activation="softmax", name="out")], name="crasher")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(5)
    x = rng.random((32, 6), dtype=np.float32)
    y = (x.sum(axis=1) > 3).astype("int64")
    recorder = EpochRecorder(x[:3], tmp_path, labels=y[:3], activation_dtype="float32",
                             verbose=False)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt  # Ctrl-C after the second epoch

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, verbose=0, callbacks=[recorder, Crash()])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["crasher.1.bin", "crasher.2.bin", "crasher.bin", "crasher.nnvis.json"]
    crashed = read_export(tmp_path / "crasher.nnvis.json")
    assert crashed.epoch_numbers == [0, 1, 2]
    kept = np.array(crashed.weights("out", 2)[0])
    del crashed

    model.fit(x, y, initial_epoch=2, epochs=3, verbose=0, callbacks=[recorder])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crasher.bin", "crasher.nnvis.json"]
    export = read_export(recorder.export_path)
    assert export.epoch_numbers == [0, 1, 2, 3]
    np.testing.assert_array_equal(export.weights("out", 2)[0], kept)
    for got, expected in zip(export.weights("out", -1), model.get_layer("out").get_weights()):
        np.testing.assert_array_equal(got, expected)


def test_recorder_starts_anew_when_the_earlier_export_cannot_be_extended(tmp_path):
    layers = keras.layers
    x = np.linspace(0, 1, 24, dtype=np.float32).reshape(8, 3)
    first = keras.Sequential([layers.Input((3,), name="x"), layers.Dense(2, name="out")],
                             name="same")
    first.compile(optimizer="sgd", loss="mse")
    recorder = EpochRecorder(x[:2], tmp_path, verbose=False)
    first.fit(x, x[:, :2], epochs=2, verbose=0, callbacks=[recorder])
    recorder.export_path.unlink()  # the user removed the export between two fits
    with pytest.warns(ExportWarning, match="cannot add to the earlier export .*writing a new one"):
        first.fit(x, x[:, :2], epochs=1, verbose=0, callbacks=[recorder])
    assert read_export(recorder.export_path).epoch_numbers == [0, 1]

    other = keras.Sequential([layers.Input((3,), name="x"), layers.Dense(4, name="wide"),
                              layers.Dense(2, name="out")], name="same")
    other.compile(optimizer="sgd", loss="mse")
    with pytest.warns(ExportWarning, match="has other layers or samples than model 'same' now"):
        other.fit(x, x[:, :2], epochs=1, verbose=0, callbacks=[recorder])
    export = read_export(recorder.export_path)
    assert export.epoch_numbers == [0, 1] and [layer.name for layer in export.layers] == [
        "x", "wide", "out"]


def test_recorder_resuming_at_initial_epoch(tmp_path):
    layers = keras.layers
    model = keras.Sequential([layers.Input((3,), name="x"), layers.Dense(2, name="out")],
                             name="resumed")
    model.compile(optimizer="sgd", loss="mse")
    x = np.linspace(0, 1, 24, dtype=np.float32).reshape(8, 3)
    recorder = EpochRecorder(x[:2], tmp_path, verbose=False)
    model.fit(x, x[:, :2], initial_epoch=3, epochs=5, verbose=0, callbacks=[recorder])
    assert read_export(recorder.export_path).epoch_numbers == [3, 4, 5]


def _lambda_model(path: Path) -> None:
    inputs = keras.Input((4,), name="x")
    doubled = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    outputs = keras.layers.Dense(2, name="out")(doubled)
    keras.Model(inputs, outputs, name="coded").save(path)


def test_cli_lambda_layer_needs_unsafe_load_code(tmp_path, capsys):
    model = tmp_path / "coded.keras"
    _lambda_model(model)
    samples = tmp_path / "x.npy"
    np.save(samples, np.arange(8, dtype=np.float32).reshape(2, 4))
    out = tmp_path / "out"
    args = [str(model), "--samples", str(samples), "--out", str(out), "--quiet"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnvis-export: error: cannot load model 'coded.keras': layer 'double' "
                          "(Lambda) holds Python code")
    assert "--unsafe-load-code" in err and "load_model(path, safe_mode=False)" in err
    assert not out.exists()

    assert cli_main(args + ["--unsafe-load-code"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("nnvis-export: WARNING: --unsafe-load-code: Keras safe mode is OFF for "
                          "'coded.keras'")
    export = read_export(out / "coded.nnvis.json")
    assert export.layer("double").type == "Lambda"
    np.testing.assert_allclose(export.activations("double"), 2 * np.load(samples), rtol=1e-3)


@pytest.mark.parametrize("layer_name, model_name", [("faltung_ä", "net"), ("conv 1", "net"),
                                                    ("conv", "modèle")])
def test_names_tensorflow_refuses_in_a_graph(tmp_path, capsys, layer_name, model_name):
    """TensorFlow's compiled graphs refuse these names as scopes; the export says which layer
    and computes its activations eagerly."""
    inputs = keras.Input((6, 6, 1), name="image")
    features = keras.layers.Conv2D(2, 3, name=layer_name)(inputs)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Flatten(name="flat")(features))
    model = keras.Model(inputs, outputs, name=model_name)
    samples = np.random.default_rng(6).random((40, 6, 6, 1), dtype=np.float32)
    path = export_model(model, samples, tmp_path, activation_dtype="float32", batch_size=16)
    export = read_export(path)
    assert export.name == model_name and export.layers[1].name == layer_name
    np.testing.assert_allclose(export.activations("out"), np.asarray(model(samples)),
                               rtol=1e-5, atol=1e-6)
    err = capsys.readouterr().err
    refused_layer = layer_name != "conv"
    assert (f"note: layer {layer_name!r} has a name TensorFlow refuses in a compiled graph"
            in err) == refused_layer


def test_cli_savedmodel_folder(trained, tmp_path):
    folder = tmp_path / "saved"
    trained["model"].export(str(folder), verbose=False)
    samples = tmp_path / "samples.npy"
    np.save(samples, trained["samples"])
    assert cli_main([str(folder), "--samples", str(samples), "--out", str(tmp_path / "out"),
                     "--quiet"]) == 0
    export = read_export(next((tmp_path / "out").glob("*.nnvis.json")))
    assert [layer.type for layer in export.layers] == ["InputLayer", "TFSMLayer"]
    np.testing.assert_allclose(export.activations(export.layers[1].name),
                               trained["f16"].activations("output"), rtol=1e-3, atol=1e-4)


def test_summary_without_tensorflow(example_export):
    """``nnvis-export --summary`` reads an export without importing TensorFlow."""
    code = ("import sys; from nnvis_export.cli import main; rc = main(['--summary', sys.argv[1]]); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; sys.exit(rc)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code, str(example_export)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "digits_cnn" in result.stdout and "conv1" in result.stdout and "epoch 0" in result.stdout


# -- the bundled example ---------------------------------------------------------------------


def test_bundled_example(example_export):
    export = read_export(example_export)
    assert len(export.epochs) >= 9
    assert export.epoch_numbers[0] == 0
    assert export.num_samples == 4
    assert len({s.label for s in export.samples}) == 4
    assert [layer.name for layer in export.layers] == LAYERS
    assert [layer.output_shape for layer in export.layers] == SHAPES
    assert all(export.activations(layer.name).dtype == np.float16 for layer in export.layers[1:])
    assert export.epochs[-1].metrics["val_accuracy"] > 0.9
    assert [s.predicted_class for s in export.samples] == [s.label for s in export.samples]
    size = sum(p.stat().st_size for p in example_export.parent.glob("digits_cnn.*"))
    assert size < 3_000_000
    assert "digits_cnn" in summarize(example_export, file=io.StringIO())
