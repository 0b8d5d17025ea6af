"""Format v1 reader: round trips through ExportWriter, the main rejections, and the minischema
validator against the ``jsonschema`` package."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from export_factory import cnn_layers, dense_layers, load_document, make_export, write_document

from nnvis_addon.core import minischema
from nnvis_addon.core.export_format import (
    SCHEMA_PATH,
    ExportFormatError,
    ExportFormatWarning,
    ExportWriter,
    NnvisError,
    load_schema,
    read_export,
)

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]


def _bits(array: np.ndarray) -> bytes:
    """Exact bytes of an array's values (NaN payloads and -0.0 included)."""
    return np.ascontiguousarray(array).tobytes()


def _memmap_backed(array: np.ndarray) -> bool:
    base = array
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


def _assert_same(read: np.ndarray, written: np.ndarray) -> None:
    assert read.dtype == written.dtype.newbyteorder("<") or read.dtype == written.dtype
    assert read.shape == written.shape
    assert _bits(read) == _bits(written)


# --------------------------------------------------------------------------------------------
# round trip


def test_round_trip_values(tmp_path):
    built = make_export(tmp_path, samples=3, epochs=2, class_names=[f"c{i}" for i in range(5)])
    net = read_export(built.path)
    assert net.path == built.path
    assert net.version == "1.0"
    assert net.name == "tiny"
    assert net.input_shape == (6, 6, 1)
    assert net.class_names == [f"c{i}" for i in range(5)]
    assert net.num_samples == 3
    assert net.epoch_numbers == [1, 2]
    assert [layer.name for layer in net.layers] == ["input", "conv", "pool", "flatten", "dense"]
    for layer, defined in zip(net.layers, built.layers):
        assert layer.type == defined.type
        assert layer.output_shape == defined.output_shape
        assert [(w.name, w.shape) for w in layer.weights] == defined.weights
    assert net.layer("conv").inbound == ("input",)
    assert net.layer("conv").params == 3 * 3 * 1 * 4 + 4
    assert net.layer("flatten").cells == 16
    for sample, inputs, scores, label in zip(net.samples, built.inputs, built.scores, built.labels):
        _assert_same(sample.input, inputs)
        _assert_same(sample.scores, scores)
        assert sample.label == label
    for e, epoch in enumerate(net.epochs):
        assert set(epoch.activations) == {layer.name for layer in built.layers}
        for name, array in epoch.activations.items():
            _assert_same(array, built.activations[e][name])
        assert set(epoch.weights) == {"conv", "dense"}
        for name, arrays in epoch.weights.items():
            for array, written in zip(arrays, built.weights[e][name], strict=True):
                _assert_same(array, written)
        assert epoch.metrics["loss"] == pytest.approx(1.0 / (e + 1))
        assert len(epoch.predictions) == 3
    _assert_same(net.activations("pool", 0), built.activations[0]["pool"])
    _assert_same(net.weights("dense")[0], built.weights[-1]["dense"][0])
    assert net.warnings == []


def test_arrays_are_read_only_memory_mapped_views(tmp_path):
    built = make_export(tmp_path)
    net = read_export(built.path)
    conv = net.activations("conv")
    assert _memmap_backed(conv), "activations should be views of the memory-mapped sidecar"
    assert not conv.flags.writeable
    with pytest.raises(ValueError):
        conv[0, 0, 0, 0] = 1.0
    kernel = net.weights("conv")[0]
    assert _memmap_backed(kernel) and not kernel.flags.writeable
    # Small arrays come inline from the JSON: read-only as well.
    bias = net.weights("conv")[1]
    assert not _memmap_backed(bias) and not bias.flags.writeable
    with pytest.raises(ValueError):
        bias[0] = 1.0
    assert built.sidecar.read_bytes()  # the file is still there, untouched
    _assert_same(conv, built.activations[-1]["conv"])


def test_float16_preserved_bit_for_bit(tmp_path):
    built = make_export(tmp_path, activation_dtype="float16", weight_dtype="float16",
                        input_dtype="float16", score_dtype="float16", extreme=True)
    net = read_export(built.path)
    conv = net.activations("conv")
    assert conv.dtype == np.float16
    assert net.weights("dense")[1].dtype == np.float16  # inline (5 values)
    assert net.samples[0].scores.dtype == np.float16
    for e, epoch in enumerate(net.epochs):
        for name, array in epoch.activations.items():
            assert np.array_equal(array.view(np.uint16), built.activations[e][name].view(np.uint16))
        for name, arrays in epoch.weights.items():
            for array, written in zip(arrays, built.weights[e][name]):
                assert np.array_equal(array.view(np.uint16), written.view(np.uint16))


def test_inline_small_arrays(tmp_path):
    built = make_export(tmp_path, weight_dtype="float64")
    document = load_document(built.path)
    bias_ref = document["epochs"][0]["weights"]["dense"][1]
    spec = document["arrays"][bias_ref]
    assert "data" in spec and "buffer" not in spec and spec["shape"] == [5]
    net = read_export(built.path)
    _assert_same(net.epochs[0].weights["dense"][1], built.weights[0]["dense"][1])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64"])
def test_inline_integers_exact_at_the_limits(tmp_path, dtype):
    # int64 extremes (2**63 - 1) do not survive a trip through float64: the reader keeps them exact.
    built = make_export(tmp_path, weight_dtype=dtype, extreme=True)
    net = read_export(built.path)
    bias = net.weights("conv", 0)[1]
    info = np.iinfo(dtype)
    assert bias.dtype == np.dtype(dtype)
    assert bias[0] == info.max and bias[-1] == info.min
    for e, epoch in enumerate(net.epochs):
        for name, arrays in epoch.weights.items():
            for array, written in zip(arrays, built.weights[e][name]):
                _assert_same(array, written)


def test_zero_size_and_empty_sidecar(tmp_path):
    writer = ExportWriter(tmp_path, "empty")
    inp = writer.add_array(np.zeros((3,), dtype=np.float32))
    act = writer.add_array(np.zeros((1, 3), dtype=np.float32))
    writer.publish(model={"name": "empty", "input_shape": [3]},
                  layers=[{"name": "input", "type": "InputLayer", "output_shape": [3], "inbound": []}],
                  samples=[{"input": inp}], epochs=[{"epoch": 0, "weights": {},
                                                     "activations": {"input": act}}],
                  generator="test")
    assert (tmp_path / "empty.bin").stat().st_size == 0
    net = read_export(tmp_path)  # a folder with exactly one document
    assert net.activations("input").shape == (1, 3)
    assert not net.activations("input").flags.writeable


def test_inf_in_a_small_array_round_trips(tmp_path):
    """JSON cannot hold Inf: the writer puts such arrays in the sidecar instead of inline."""
    def plant(what, array):
        if what == "scores/0":
            array = array.copy()
            array[:3] = [np.inf, -np.inf, np.nan]
        return array
    built = make_export(tmp_path, mutate_values=plant)
    with pytest.warns(ExportFormatWarning, match=r"samples\[0\].prediction.scores has 3 NaN/Inf"):
        net = read_export(built.path)
    scores = net.samples[0].scores
    assert scores[0] == np.inf and scores[1] == -np.inf and np.isnan(scores[2])
    _assert_same(scores, built.scores[0])


def test_nan_inf_values_load_with_a_warning(tmp_path):
    def plant(what, array):
        if what in ("activations/0/dense", "weights/1/conv/kernel"):
            array = array.copy()
            array.reshape(-1)[:2] = [np.nan, np.inf]
        return array
    built = make_export(tmp_path, mutate_values=plant)
    with pytest.warns(ExportFormatWarning) as record:
        net = read_export(built.path)
    message = str(record[0].message)
    assert "tiny.nnvis.json" in message
    assert "layer 'dense' epochs[0].activations.dense has 2 NaN/Inf values" in message
    assert "layer 'conv' epochs[1].weights.conv.kernel has 2 NaN/Inf values" in message
    assert len(net.warnings) == 2
    assert np.isnan(net.activations("dense", 0)[0, 0])
    # check_finite=False skips the scan and the warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = read_export(built.path, check_finite=False)
    assert quiet.warnings == []


def test_dense_only_model(tmp_path):
    built = make_export(tmp_path, layers=dense_layers(7, [4, 3]), samples=1, epochs=1)
    net = read_export(built.path)
    assert [layer.output_shape for layer in net.layers] == [(7,), (4,), (3,)]
    _assert_same(net.weights("dense_1")[0], built.weights[0]["dense_1"][0])


# --------------------------------------------------------------------------------------------
# rejections (the hostile corpus has many more)


def _edit(built, change) -> Path:
    document = load_document(built.path)
    change(document)
    return write_document(built.path, document)


def test_rejects_unknown_major_version(tmp_path):
    built = make_export(tmp_path)
    _edit(built, lambda d: d.update(version="2.0"))
    with pytest.raises(ExportFormatError) as info:
        read_export(built.path)
    message = str(info.value)
    assert "not supported" in message and "major version 1" in message
    assert "tiny.nnvis.json" in message and info.value.field == "version"
    assert isinstance(info.value, NnvisError)


def test_accepts_newer_minor_version(tmp_path):
    built = make_export(tmp_path)
    _edit(built, lambda d: d.update(version="1.7"))
    assert read_export(built.path).version == "1.7"


def test_rejects_array_shape_disagreeing_with_layer(tmp_path):
    built = make_export(tmp_path)

    def change(document):
        ref = document["epochs"][1]["activations"]["flatten"]
        document["arrays"][ref]["shape"] = [2, 8, 2]  # same byte count, wrong shape
    _edit(built, change)
    with pytest.raises(ExportFormatError) as info:
        read_export(built.path)
    assert info.value.layer == "flatten"
    assert info.value.field == "epochs[1].activations.flatten"
    assert "array shape [2, 8, 2] does not match 2 samples x output shape [16]" in str(info.value)


@pytest.mark.parametrize("uri, expected", [
    ("../tiny.bin", "must not leave the export's folder"),
    ("sub/../../tiny.bin", "must not leave the export's folder"),
    ("/tmp/tiny.bin", "(it is absolute)"),
    ("C:/tiny.bin", "(it is absolute)"),
    ("sub\\tiny.bin", "'/' separators"),
])
def test_rejects_sidecar_paths_leaving_the_folder(tmp_path, uri, expected):
    built = make_export(tmp_path / "export")
    _edit(built, lambda d: d["buffers"][0].update(uri=uri))
    with pytest.raises(ExportFormatError) as info:
        read_export(built.path)
    assert expected in str(info.value)
    assert info.value.field == "buffers[0].uri"


def test_sidecar_in_a_subfolder_is_fine(tmp_path):
    built = make_export(tmp_path)
    (tmp_path / "data").mkdir()
    built.sidecar.rename(tmp_path / "data" / "tiny.bin")
    _edit(built, lambda d: d["buffers"][0].update(uri="data/tiny.bin"))
    _assert_same(read_export(built.path).activations("conv"), built.activations[-1]["conv"])


def test_rejects_truncated_sidecar(tmp_path):
    built = make_export(tmp_path)
    size = built.sidecar.stat().st_size
    built.sidecar.write_bytes(built.sidecar.read_bytes()[:size - 1])
    with pytest.raises(ExportFormatError) as info:
        read_export(built.path)
    assert f"sidecar file 'tiny.bin' is truncated: {size - 1} bytes on disk, {size} declared" \
        in str(info.value)
    assert info.value.field == "buffers[0].byte_length"


def test_rejects_offset_past_the_end(tmp_path):
    built = make_export(tmp_path)

    def change(document):
        ref = document["epochs"][0]["activations"]["conv"]
        document["arrays"][ref]["byte_offset"] = document["buffers"][0]["byte_length"] - 64
    _edit(built, change)
    with pytest.raises(ExportFormatError) as info:
        read_export(built.path)
    message = str(info.value)
    assert "runs past the end of buffer 0" in message
    assert info.value.layer == "conv" and "epochs[0].activations.conv" in message


def test_error_attributes(tmp_path):
    error = ExportFormatError("broken", file=tmp_path / "x.nnvis.json", layer="conv",
                              field="layers[1]")
    assert str(error) == "x.nnvis.json: layer 'conv': field layers[1]: broken"
    assert (error.file, error.layer, error.field, error.detail) == \
        (str(tmp_path / "x.nnvis.json"), "conv", "layers[1]", "broken")


def test_raw_pickle_bytes_in_a_sidecar_are_read_as_bytes(tmp_path):
    """The reader never unpickles: a pickle (no .npy header) as a buffer is just bytes."""
    from hostile_corpus import _Payload
    marker = tmp_path / "UNPICKLED"
    payload = pickle.dumps(_Payload(marker))
    folder = tmp_path / "export"
    writer = ExportWriter(folder, "pkl")
    n = len(payload)
    inp = writer.add_array(np.frombuffer(payload, dtype=np.uint8), dtype="uint8")
    act = writer.add_array(np.zeros((1, n), dtype=np.float16))
    path = writer.publish(model={"name": "pkl", "input_shape": [n]},
                         layers=[{"name": "bytes", "type": "InputLayer", "output_shape": [n],
                                  "inbound": []}],
                         samples=[{"input": inp}],
                         epochs=[{"epoch": 0, "weights": {}, "activations": {"bytes": act}}],
                         generator="test")
    sidecar = folder / "payload.pkl"
    (folder / "pkl.bin").rename(sidecar)
    document = load_document(path)
    document["buffers"][0]["uri"] = "payload.pkl"
    write_document(path, document)

    net = read_export(path)
    assert net.samples[0].input.tobytes() == payload
    assert not marker.exists(), "the reader unpickled the sidecar"
    # The detector works: unpickling the sidecar the unsafe way creates the marker.
    with open(sidecar, "rb") as f:
        pickle.load(f)
    assert marker.exists()


# --------------------------------------------------------------------------------------------
# minischema against jsonschema


def _both_verdicts(document) -> tuple[bool, bool]:
    schema = load_schema()
    try:
        minischema.validate(document, schema)
        mini = True
    except minischema.SchemaViolation:
        mini = False
    reference = jsonschema.Draft202012Validator(schema).is_valid(document)
    return mini, reference


def test_schema_file_is_valid_draft_2020_12():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    minischema.check_schema_keywords(schema)


def _valid_documents(tmp_path) -> list[tuple[str, dict]]:
    documents = []
    variants = {
        "default": {},
        "dense": {"layers": dense_layers(5, [3]), "samples": 1, "epochs": 1},
        "wide": {"layers": cnn_layers((8, 8, 3), filters=2, kernel=2, pool=2, units=3),
                 "samples": 4, "epochs": 3, "class_names": ["a", "b", "c"]},
        "ints": {"weight_dtype": "int16", "activation_dtype": "uint8", "input_dtype": "int8"},
        "extremes": {"extreme": True, "activation_dtype": "float64"},
    }
    for name, kwargs in variants.items():
        built = make_export(tmp_path / name, **kwargs)
        documents.append((name, load_document(built.path)))
    for example in sorted((ROOT / "examples").rglob("*.nnvis.json")):
        documents.append((str(example.relative_to(ROOT)), load_document(example)))
    return documents


def test_minischema_agrees_with_jsonschema_on_valid_documents(tmp_path):
    for name, document in _valid_documents(tmp_path):
        assert _both_verdicts(document) == (True, True), name


def test_minischema_agrees_with_jsonschema_on_the_corpus(tmp_path):
    from hostile_corpus import build_corpus
    checked = violations = 0
    for case in build_corpus(tmp_path):
        if not case.path.is_file() or case.path.stat().st_size > 64 * 1024 * 1024:
            continue  # a folder, a missing file, or the sparse 600 MiB one
        try:
            document = json.loads(case.path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            assert not case.schema_violation, case.name
            continue  # not JSON: nothing to validate
        mini, reference = _both_verdicts(document)
        assert mini == reference, f"{case.name}: minischema says {mini}, jsonschema {reference}"
        assert (not mini) == case.schema_violation, f"{case.name}: schema_violation flag is wrong"
        checked += 1
        violations += case.schema_violation
    assert checked >= 40 and violations >= 12


@pytest.mark.parametrize("document, mini_ok, reference_ok", [
    # Deliberate difference: JSON Schema counts 1.0 as an integer; minischema (and so the reader)
    # wants a real integer, as numpy shapes and offsets do.
    ({"shape": [4.0]}, False, True),
    ({"shape": [4]}, True, True),
    ({"shape": [4.5]}, False, False),
    ({"shape": [True]}, False, False),
    ({"shape": [-1]}, False, False),
])
def test_minischema_integers(document, mini_ok, reference_ok):
    schema = {"type": "object", "properties": {"shape": {"type": "array",
                                                         "items": {"type": "integer", "minimum": 0}}}}
    try:
        minischema.validate(document, schema)
        mini = True
    except minischema.SchemaViolation:
        mini = False
    assert mini == mini_ok
    assert jsonschema.Draft202012Validator(schema).is_valid(document) == reference_ok


def test_short_repr_is_bounded():
    nested: list = []
    for _ in range(10_000):
        nested = [nested]
    assert len(minischema.short_repr(nested)) <= 60
    assert len(minischema.short_repr("x" * 10_000_000)) <= 60
    with pytest.raises(minischema.SchemaViolation, match="must be one of"):
        minischema.validate(nested, {"enum": ["a"]})


def test_newer_minor_version_with_new_fields_is_read(tmp_path):
    """Minor versions only add fields: a 1.0 reader reads a 1.7 file and skips what it adds."""
    path = make_export(tmp_path).path
    document = json.loads(path.read_text())
    document["version"] = "1.7"
    document["description"] = "a field from the future"
    document["layers"][0]["display_hint"] = {"colour": "red"}
    path.write_text(json.dumps(document))
    export = read_export(path)
    assert export.version == "1.7" and len(export.layers) == len(document["layers"])
    document["version"] = "1.0"
    path.write_text(json.dumps(document))
    with pytest.raises(ExportFormatError, match="unknown field '(description|display_hint)'"):
        read_export(path)


def test_published_segments_read_and_merge_into_one_sidecar(tmp_path):
    """An export published after each step: each publish reads back whole, the arrays added
    after it go to a segment of their own, and merging leaves one sidecar with the same arrays."""
    rng = np.random.default_rng(3)
    writer = ExportWriter(tmp_path, "grow")
    arrays, refs = [], []

    def add(count):
        for _ in range(count):
            arrays.append(rng.random(int(rng.integers(17, 300))).astype(np.float32))
            refs.append(writer.add_array(arrays[-1]))

    def document():
        return {"model": {"name": "grow", "input_shape": [3]}, "layers": [], "samples": [],
                "epochs": [], "generator": "test"}

    def check(path):
        raw = json.loads(path.read_text(encoding="utf-8"))
        for ref, array in zip(refs, arrays):
            spec = raw["arrays"][ref]
            data = (tmp_path / raw["buffers"][spec["buffer"]]["uri"]).read_bytes()
            got = np.frombuffer(data, "<f4", count=array.size, offset=spec["byte_offset"])
            np.testing.assert_array_equal(got, array)
        return [buffer["uri"] for buffer in raw["buffers"]]

    add(3)
    assert check(writer.publish(**document())) == ["grow.bin"]
    add(2)
    assert check(writer.publish(**document())) == ["grow.bin", "grow.1.bin"]
    add(4)  # in the open segment
    writer.merge_segments()
    add(1)
    assert check(writer.publish(**document())) == ["grow.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grow.bin", "grow.nnvis.json"]
    assert all(spec["byte_offset"] % 64 == 0 for spec in
               json.loads((tmp_path / "grow.nnvis.json").read_text())["arrays"])
