"""Property tests of the reader (hypothesis): random valid exports round-trip exactly; random
damage to the document or the sidecar gives an ExportFormatError (or a clean load), nothing else."""

from __future__ import annotations

import functools
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from export_factory import cnn_layers, dense_layers, make_export
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnvis_addon.core.export_format import (
    DTYPES,
    ExportFormatError,
    ExportFormatWarning,
    NetworkExport,
    read_export,
)

# NNVIS_HYPOTHESIS_EXAMPLES=5000 for a long hunt; the default keeps the file well under a minute.
SETTINGS = settings(max_examples=int(os.environ.get("NNVIS_HYPOTHESIS_EXAMPLES", "100")),
                    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def model_layers(draw):
    if draw(st.booleans()):
        h = draw(st.integers(2, 9))
        w = draw(st.integers(2, 9))
        kernel = draw(st.integers(1, min(h, w)))
        pool = draw(st.integers(1, min(h, w) - kernel + 1))
        return cnn_layers((h, w, draw(st.integers(1, 3))), filters=draw(st.integers(1, 5)),
                          kernel=kernel, pool=pool, units=draw(st.integers(1, 7)))
    return dense_layers(draw(st.integers(1, 24)), draw(st.lists(st.integers(1, 20), min_size=1,
                                                                max_size=4)))


@st.composite
def export_options(draw):
    epochs = draw(st.lists(st.integers(0, 1000), min_size=1, max_size=3, unique=True))
    dtype = st.sampled_from(DTYPES)
    return dict(layers=draw(model_layers()), samples=draw(st.integers(1, 4)),
                epoch_numbers=sorted(epochs), input_dtype=draw(dtype), weight_dtype=draw(dtype),
                activation_dtype=draw(dtype), score_dtype=draw(dtype),
                extreme=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 32 - 1)))


def _same(read: np.ndarray, written: np.ndarray) -> bool:
    return (read.dtype == written.dtype and read.shape == written.shape
            and np.ascontiguousarray(read).tobytes() == np.ascontiguousarray(written).tobytes())


@SETTINGS
@given(options=export_options())
def test_random_valid_exports_round_trip(options):
    with tempfile.TemporaryDirectory() as folder:
        built = make_export(folder, **options)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # valid finite data: no warning of any kind
            net = read_export(built.path)
        assert net.epoch_numbers == built.epoch_numbers
        assert [layer.output_shape for layer in net.layers] == \
            [layer.output_shape for layer in built.layers]
        for sample, inputs, scores in zip(net.samples, built.inputs, built.scores, strict=True):
            assert _same(sample.input, inputs)
            assert _same(sample.scores, scores)
        for epoch, activations, weights in zip(net.epochs, built.activations, built.weights,
                                               strict=True):
            assert epoch.activations.keys() == activations.keys()
            for name, array in epoch.activations.items():
                assert _same(array, activations[name]), name
            assert epoch.weights.keys() == weights.keys()
            for name, arrays in epoch.weights.items():
                for array, written in zip(arrays, weights[name], strict=True):
                    assert _same(array, written), name
        del net


# --------------------------------------------------------------------------------------------
# damage


@functools.cache
def _pristine() -> tuple[bytes, bytes]:
    """(document bytes, sidecar bytes) of a small valid export."""
    with tempfile.TemporaryDirectory() as folder:
        built = make_export(folder, samples=2, epochs=2)
        return built.path.read_bytes(), built.sidecar.read_bytes()


def _read_survives(document: bytes, sidecar: bytes) -> NetworkExport | ExportFormatError:
    """Read the damaged export; return what came back; fail on anything but ExportFormatError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.nnvis.json"
        path.write_bytes(document)
        (Path(folder) / "tiny.bin").write_bytes(sidecar)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                net = read_export(path)
            except ExportFormatError as exc:
                assert str(exc).startswith("tiny.nnvis.json:"), str(exc)
                result = exc
            else:
                for epoch in net.epochs:  # touch every mapped byte
                    for array in epoch.activations.values():
                        array.tobytes()
                result = net
                del net
        stray = [f"{w.category.__name__}: {w.message}" for w in caught
                 if not issubclass(w.category, ExportFormatWarning)]
        assert not stray, stray
        return result


flips = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                 min_size=1, max_size=8)


def _flip(data: bytes, changes) -> bytes:
    out = bytearray(data)
    for where, value in changes:
        out[int(where * len(out))] = value
    return bytes(out)


@SETTINGS
@given(changes=flips)
def test_document_byte_flips(changes):
    document, sidecar = _pristine()
    _read_survives(_flip(document, changes), sidecar)


# Printable flips hit the JSON's structure (digits, quotes, brackets) far more often.
printable_flips = st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                     st.sampled_from(b'0123456789-.eE"[]{},:nul \\/')),
                           min_size=1, max_size=4)


@SETTINGS
@given(changes=printable_flips)
def test_document_printable_flips(changes):
    document, sidecar = _pristine()
    _read_survives(_flip(document, changes), sidecar)


@SETTINGS
@given(cut=st.floats(0, 1, exclude_max=True))
def test_document_truncations(cut):
    document, sidecar = _pristine()
    kept = document[:int(cut * len(document))]
    result = _read_survives(kept, sidecar)
    if len(kept) < len(document.rstrip()):  # only trailing whitespace gone: still valid
        assert isinstance(result, ExportFormatError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


@SETTINGS
@given(data=st.data())
def test_document_value_replacements(data):
    """Any one value of the document replaced by arbitrary JSON: type confusion everywhere."""
    document, sidecar = _pristine()
    tree = json.loads(document)
    paths = [p for p in _paths(tree) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        node = tree
        for key in path[:-1]:
            node = node[key]
        if data.draw(st.booleans()) and isinstance(node, dict):
            node.pop(path[-1], None)
        else:
            node[path[-1]] = data.draw(json_values)
        paths = [p for p in _paths(tree) if p]
    _read_survives(json.dumps(tree).encode(), sidecar)


@SETTINGS
@given(changes=flips)
def test_sidecar_byte_flips(changes):
    document, sidecar = _pristine()
    _read_survives(document, _flip(sidecar, changes))


@SETTINGS
@given(cut=st.integers(0, 4000))
def test_sidecar_truncations_and_extensions(cut):
    document, sidecar = _pristine()
    damaged = sidecar[:cut] if cut < len(sidecar) else sidecar + b"\0" * (cut - len(sidecar) + 1)
    result = _read_survives(document, damaged)
    assert isinstance(result, ExportFormatError)
