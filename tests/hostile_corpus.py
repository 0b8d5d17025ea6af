"""A corpus of broken and hostile nnvis exports, generated on demand.

    python tests/hostile_corpus.py OUT_DIR              # writes the corpus, lists the cases
    python tests/hostile_corpus.py OUT_DIR --markdown   # ... and prints what the reader says
                                                        #     about each, as a Markdown table
    from hostile_corpus import build_corpus             # in tests
    for case in build_corpus(tmp_path): ...

Every case starts from a small valid export (tests/export_factory.py) and breaks one thing.
``Case.expected`` is a substring of the message ``read_export`` must raise (an
``ExportFormatError``) -- or, for ``kind == "warning"``, of the ``ExportFormatWarning`` it must
emit while loading.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_factory import BuiltExport, load_document, make_export, write_document  # noqa: E402

from nnvis_addon.core.export_format import ExportFormatError, ExportFormatWarning, read_export  # noqa: E402

PICKLE_MARKER_NAME = "UNPICKLED-MARKER"
MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    path: Path                # what to pass to read_export
    description: str          # the bad input, in a few words
    expected: str             # substring of the error (or, for kind "warning", warning) message
    kind: str = "error"       # "error": read_export raises; "warning": it loads and warns
    layer: str | None = None  # the layer the error must name, where one applies
    schema_violation: bool = False   # the document parses but breaks the JSON schema
    max_peak_bytes: int | None = None  # tracemalloc bound on the failed read
    marker: Path | None = None  # a file that appears only if something unpickled the payload


class _Payload:
    """Unpickling this creates ``path`` (via builtins.open): proof that something unpickled."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# --------------------------------------------------------------------------------------------
# helpers


def _base(folder: Path, **kwargs) -> BuiltExport:
    return make_export(folder, name="tiny", **kwargs)


def _edit(folder: Path, change: Callable[[dict], Any], **kwargs) -> Path:
    """A valid export whose document then goes through ``change(document)``."""
    built = _base(folder, **kwargs)
    document = load_document(built.path)
    change(document)
    return write_document(built.path, document)


def _raw(folder: Path, change: Callable[[bytes], bytes]) -> Path:
    """A valid export whose document's bytes then go through ``change``."""
    built = _base(folder)
    built.path.write_bytes(change(built.path.read_bytes()))
    return built.path


def _activation_ref(document: dict, layer: str, epoch: int = 0) -> int:
    return document["epochs"][epoch]["activations"][layer]


def _weight_ref(document: dict, layer: str, position: int = 0, epoch: int = 0) -> int:
    return document["epochs"][epoch]["weights"][layer][position]


def _first_buffer_array(document: dict, dtype: str = "float32") -> int:
    return next(i for i, a in enumerate(document["arrays"]) if "buffer" in a and a["dtype"] == dtype)


def _first_inline_array(document: dict) -> int:
    return next(i for i, a in enumerate(document["arrays"]) if "data" in a)


def _set(path: list, value: Any) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _delete(path: list) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        node = document
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


# --------------------------------------------------------------------------------------------
# the cases: each function makes its files under ``folder`` and returns the Case


CASES: list[Callable[[Path], Case | None]] = []


def case(fn: Callable[[Path], Case | None]) -> Callable[[Path], Case | None]:
    CASES.append(fn)
    return fn


# -- the document as bytes and JSON


@case
def truncated_json(folder: Path) -> Case:
    path = _raw(folder, lambda raw: raw[:len(raw) // 2])
    return Case("truncated_json", path, "structure document cut off half-way", "is not valid JSON")


@case
def empty_document(folder: Path) -> Case:
    path = _raw(folder, lambda raw: b"")
    return Case("empty_document", path, "structure document of zero bytes", "is not valid JSON")


@case
def invalid_utf8(folder: Path) -> Case:
    path = _raw(folder, lambda raw: raw.replace(b'"tiny"', b'"ti\xff\xfeny"', 1))
    return Case("invalid_utf8", path, "bytes 0xFF 0xFE inside a string", "is not valid UTF-8")


@case
def utf8_bom(folder: Path) -> Case:
    path = _raw(folder, lambda raw: b"\xef\xbb\xbf" + raw)
    return Case("utf8_bom", path, "document starts with a UTF-8 byte order mark", "BOM")


@case
def top_level_array(folder: Path) -> Case:
    path = _raw(folder, lambda raw: b"[" + raw + b"]")
    return Case("top_level_array", path, "a JSON array (holding the document) instead of an object",
                "top level must be a JSON object, got a JSON array", schema_violation=True)


@case
def deep_nesting(folder: Path) -> Case:
    depth = 100_000
    path = _raw(folder, lambda raw: raw.replace(b'"config": {', b'"config": {"deep": ' + b"[" * depth
                                                + b"]" * depth + b",", 1))
    return Case("deep_nesting", path, f"a JSON value nested {depth:,} levels deep",
                "nested too deeply")


@case
def huge_string(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 1, "name"], "c" * (16 * MB)))
    return Case("huge_string", path, "a 16 MiB layer name", "must have at most 256 characters",
                schema_violation=True)


@case
def huge_integer(folder: Path) -> Case:
    path = _raw(folder, lambda raw: raw.replace(b'"byte_length": ', b'"byte_length": ' + b"9" * 5000,
                                                1))
    return Case("huge_integer", path, "an integer literal of 5,000 digits", "is not valid JSON")


@case
def duplicate_keys(folder: Path) -> Case:
    path = _raw(folder, lambda raw: raw.replace(b'{\n "format": "nnvis",',
                                                b'{\n "layers": [],\n "format": "nnvis",', 1))
    return Case("duplicate_keys", path, "key 'layers' twice in the top-level object",
                "duplicate key 'layers'")


@case
def nan_literal(folder: Path) -> Case:
    path = _raw(folder, lambda raw: raw.replace(b'"loss": ', b'"loss": NaN, "x": ', 1))
    return Case("nan_literal", path, "the non-standard literal NaN in a metric",
                "NaN is not valid JSON")


@case
def lone_surrogate_name(folder: Path) -> Case:
    path = _raw(folder, lambda raw: raw.replace(b'"name": "conv"', b'"name": "conv\\ud800"', 1))
    return Case("lone_surrogate_name", path, "layer name with a lone UTF-16 surrogate escape",
                "not valid Unicode text")


@case
def document_too_large(folder: Path) -> Case:
    path = _base(folder).path
    os.truncate(path, 600 * MB)  # sparse: takes no disk space
    return Case("document_too_large", path, "a 600 MiB structure document (sparse file)",
                "the limit is", max_peak_bytes=10 * MB)


# -- the paths passed to read_export


@case
def nonexistent_path(folder: Path) -> Case:
    folder.mkdir(parents=True, exist_ok=True)
    return Case("nonexistent_path", folder / "nothing.nnvis.json", "a path that does not exist",
                "cannot open")


@case
def folder_without_document(folder: Path) -> Case:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("not an export\n")
    return Case("folder_without_document", folder, "a folder holding no *.nnvis.json",
                "found 0")


@case
def folder_with_two_documents(folder: Path) -> Case:
    make_export(folder, name="first")
    make_export(folder, name="second", seed=1)
    return Case("folder_with_two_documents", folder, "a folder holding two *.nnvis.json",
                "found 2")


# -- format and version


@case
def not_nnvis(folder: Path) -> Case:
    path = _edit(folder, _set(["format"], "gltf"))
    return Case("not_nnvis", path, "field 'format' is 'gltf'", "not an nnvis export",
                schema_violation=True)


@case
def unknown_major_version(folder: Path) -> Case:
    path = _edit(folder, _set(["version"], "2.0"))
    return Case("unknown_major_version", path, "version '2.0'",
                "is not supported: this nnvis reads major version 1")


@case
def version_not_string(folder: Path) -> Case:
    path = _edit(folder, _set(["version"], 1.0))
    return Case("version_not_string", path, "version 1.0 as a JSON number",
                "format version must be a string like '1.0', got a JSON number",
                schema_violation=True)


@case
def version_missing(folder: Path) -> Case:
    path = _edit(folder, _delete(["version"]))
    return Case("version_missing", path, "no 'version' field", "got nothing", schema_violation=True)


@case
def version_unicode_digits(folder: Path) -> Case:
    path = _edit(folder, _set(["version"], "\u00b2.0"))
    return Case("version_unicode_digits", path, "version '\u00b2.0' (a superscript digit)",
                "format version must be a string like '1.0'", schema_violation=True)


# -- schema: missing, mistyped, out-of-range fields


@case
def missing_top_level_field(folder: Path) -> Case:
    path = _edit(folder, _delete(["layers"]))
    return Case("missing_top_level_field", path, "no 'layers' field",
                "missing required field 'layers'", schema_violation=True)


@case
def missing_layer_field(folder: Path) -> Case:
    path = _edit(folder, _delete(["layers", 1, "output_shape"]))
    return Case("missing_layer_field", path, "layer 'conv' without 'output_shape'",
                "missing required field 'output_shape'", layer="conv", schema_violation=True)


@case
def unknown_field(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 2, "colour"], "red"))
    return Case("unknown_field", path, "layer 'pool' with an extra field 'colour'",
                "unknown field 'colour'", layer="pool", schema_violation=True)


@case
def shape_as_string(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 1, "output_shape"], "4,4,4"))
    return Case("shape_as_string", path, "output_shape '4,4,4' (a string)",
                "must be of type array, got string", layer="conv", schema_violation=True)


@case
def float_for_integer(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 2, "output_shape"], [2, 2.5, 4]))
    return Case("float_for_integer", path, "2.5 in an output_shape", "must be of type integer",
                layer="pool", schema_violation=True)


@case
def negative_size(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 3, "output_shape"], [-16]))
    return Case("negative_size", path, "output_shape [-16]", "must be >= 1", layer="flatten",
                schema_violation=True)


@case
def negative_byte_length(folder: Path) -> Case:
    path = _edit(folder, _set(["buffers", 0, "byte_length"], -1))
    return Case("negative_byte_length", path, "buffer byte_length -1", "must be >= 0",
                schema_violation=True)


@case
def zero_channel_layer(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 1, "output_shape"], [4, 4, 0]))
    return Case("zero_channel_layer", path, "Conv2D output_shape [4, 4, 0]", "must be >= 1",
                layer="conv", schema_violation=True)


@case
def unknown_dtype(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["arrays"][_first_buffer_array(d)].update(dtype="float128"))
    return Case("unknown_dtype", path, "dtype 'float128'", "must be one of", schema_violation=True)


@case
def empty_layer_list(folder: Path) -> Case:
    path = _edit(folder, _set(["layers"], []))
    return Case("empty_layer_list", path, "'layers': []", "must have at least 1 items",
                schema_violation=True)


@case
def empty_epoch_list(folder: Path) -> Case:
    path = _edit(folder, _set(["epochs"], []))
    return Case("empty_epoch_list", path, "'epochs': []", "must have at least 1 items",
                schema_violation=True)


# -- absurd sizes (must fail before allocating)


@case
def absurd_layer_size(folder: Path) -> Case:
    def change(document: dict) -> None:
        huge = [1_000_000, 1_000_000, 4]
        document["layers"][2]["output_shape"] = huge
        array = document["arrays"][_activation_ref(document, "pool")]
        array["shape"] = [array["shape"][0], *huge]
    path = _edit(folder, change)
    return Case("absurd_layer_size", path,
                "layer 'pool' claims 4*10^12 cells, its activations array too; sidecar 2.5 KiB",
                "runs past the end of buffer 0", layer="pool", max_peak_bytes=10 * MB)


@case
def absurd_zero_size_shape(folder: Path) -> Case:
    def change(document: dict) -> None:
        document["arrays"].append({"dtype": "float64", "shape": [0, 2 ** 62, 2 ** 62], "data": []})
    path = _edit(folder, change)
    return Case("absurd_zero_size_shape", path, "an empty array of shape [0, 2^62, 2^62]",
                "is absurdly large", max_peak_bytes=10 * MB)


@case
def absurd_byte_length(folder: Path) -> Case:
    path = _edit(folder, _set(["buffers", 0, "byte_length"], 10 ** 15))
    return Case("absurd_byte_length", path, "buffer byte_length 10^15 for a 2.5 KiB sidecar",
                "is truncated", max_peak_bytes=10 * MB)


@case
def absurd_inline_claim(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["arrays"][_first_inline_array(d)].update(shape=[10 ** 12]))
    return Case("absurd_inline_claim", path, "an inline array of 5 values claiming shape [10^12]",
                "inline data has 5 values", max_peak_bytes=10 * MB)


# -- sidecars


@case
def sidecar_missing(folder: Path) -> Case:
    built = _base(folder)
    built.sidecar.unlink()
    return Case("sidecar_missing", built.path, "tiny.bin deleted", "sidecar file 'tiny.bin' is missing")


@case
def sidecar_short(folder: Path) -> Case:
    built = _base(folder)
    os.truncate(built.sidecar, built.sidecar.stat().st_size - 100)
    return Case("sidecar_short", built.path, "tiny.bin 100 bytes shorter than declared", "is truncated")


@case
def sidecar_long(folder: Path) -> Case:
    built = _base(folder)
    with open(built.sidecar, "ab") as f:
        f.write(b"\0" * 10)
    return Case("sidecar_long", built.path, "tiny.bin 10 bytes longer than declared",
                "is longer than declared")


@case
def sidecar_is_directory(folder: Path) -> Case:
    built = _base(folder)
    (folder / "data").mkdir()
    document = load_document(built.path)
    document["buffers"][0]["uri"] = "data"
    write_document(built.path, document)
    return Case("sidecar_is_directory", built.path, "the sidecar path names a folder",
                "is not a regular file")


@case
def offset_past_end(folder: Path) -> Case:
    def change(document: dict) -> None:
        document["arrays"][_first_buffer_array(document)]["byte_offset"] = \
            document["buffers"][0]["byte_length"] + 64
    path = _edit(folder, change)
    return Case("offset_past_end", path, "byte_offset beyond the end of the sidecar",
                "runs past the end of buffer 0")


@case
def misaligned_offset(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["arrays"][_first_buffer_array(d)].update(byte_offset=2))
    return Case("misaligned_offset", path, "a float32 array at byte_offset 2",
                "is not a multiple of the float32 item size")


@case
def buffer_index_out_of_range(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["arrays"][_first_buffer_array(d)].update(buffer=3))
    return Case("buffer_index_out_of_range", path, "an array in buffer 3 of 1",
                "buffer 3 does not exist")


@case
def inline_and_buffer(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["arrays"][_first_inline_array(d)].update(buffer=0))
    return Case("inline_and_buffer", path, "an array with both 'data' and 'buffer'",
                "either inline ('data') or in a buffer")


@case
def dotdot_sidecar(folder: Path) -> Case:
    path = _edit(folder, _set(["buffers", 0, "uri"], "../tiny.bin"))
    return Case("dotdot_sidecar", path, "sidecar path '../tiny.bin'", "must not leave the export's folder")


@case
def absolute_sidecar(folder: Path) -> Case:
    path = _edit(folder, _set(["buffers", 0, "uri"], "/etc/passwd"))
    return Case("absolute_sidecar", path, "sidecar path '/etc/passwd'", "(it is absolute)")


@case
def url_sidecar(folder: Path) -> Case:
    path = _edit(folder, _set(["buffers", 0, "uri"], "https://example.invalid/tiny.bin"))
    return Case("url_sidecar", path, "sidecar path is a URL", "not a URL")


@case
def nul_in_sidecar(folder: Path) -> Case:
    path = _edit(folder, _set(["buffers", 0, "uri"], "tiny.bin\x00.png"))
    return Case("nul_in_sidecar", path, "sidecar path with a NUL character", "control character")


@case
def symlink_outside(folder: Path) -> Case | None:
    outside = folder / "elsewhere"
    export = folder / "export"
    built = make_export(outside, name="tiny")  # a real, matching sidecar outside the export
    inner = make_export(export, name="tiny")
    inner.sidecar.unlink()
    try:
        os.symlink(built.sidecar, inner.sidecar)
    except (OSError, NotImplementedError):
        return None  # no symbolic links here: the case does not apply
    return Case("symlink_outside", inner.path, "tiny.bin is a symbolic link to a file outside the folder",
                "resolves outside the export's folder")


@case
def pickle_npy_sidecar(folder: Path) -> Case:
    marker = folder / PICKLE_MARKER_NAME
    built = _base(folder)
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    np.save(folder / "payload.npy", payload, allow_pickle=True)
    size = (folder / "payload.npy").stat().st_size
    document = load_document(built.path)
    document["buffers"].append({"uri": "payload.npy", "byte_length": size})
    document["arrays"].append({"dtype": "uint8", "shape": [size], "buffer": 1, "byte_offset": 0})
    write_document(built.path, document)
    return Case("pickle_npy_sidecar", built.path,
                "a .npy file with a pickled object (that would create a file if unpickled) as a sidecar",
                "is a NumPy .npy file", marker=marker)


# -- layers and the graph


@case
def duplicate_layer_names(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 2, "name"], "conv"))
    return Case("duplicate_layer_names", path, "two layers named 'conv'", "duplicate layer name",
                layer="conv")


@case
def inbound_cycle(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 1, "inbound"], ["pool"]))
    return Case("inbound_cycle", path, "conv <- pool <- conv", "is there a cycle?", layer="conv")


@case
def inbound_self(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 3, "inbound"], ["flatten"]))
    return Case("inbound_self", path, "layer 'flatten' lists itself as inbound",
                "lists itself as inbound (a cycle)", layer="flatten")


@case
def inbound_dangling(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 3, "inbound"], ["poool"]))
    return Case("inbound_dangling", path, "inbound layer 'poool' does not exist",
                "inbound layer 'poool' does not exist", layer="flatten")


@case
def dense_kernel_mismatch(folder: Path) -> Case:
    path = _edit(folder, _set(["layers", 4, "weights", 0, "shape"], [16, 6]))
    return Case("dense_kernel_mismatch", path, "Dense(5) declaring a [16, 6] kernel",
                "disagree with units=5", layer="dense")


@case
def lone_surrogate_model_name(folder: Path) -> Case:
    path = _raw(folder, lambda raw: raw.replace(b'"name": "tiny"', b'"name": "tiny\\udfff"', 1))
    return Case("lone_surrogate_model_name", path, "model name with a lone surrogate escape",
                "model name")


# -- arrays against layers, samples, epochs


@case
def activation_shape_mismatch(folder: Path) -> Case:
    def change(document: dict) -> None:
        array = document["arrays"][_activation_ref(document, "pool")]
        array["shape"] = [array["shape"][0], 4, 1, 4]  # same byte count, wrong shape
    path = _edit(folder, change)
    return Case("activation_shape_mismatch", path, "activations of 'pool' shaped (S, 4, 1, 4) "
                "for output (2, 2, 4)", "does not match 2 samples x output shape [2, 2, 4]",
                layer="pool")


@case
def weight_shape_mismatch(folder: Path) -> Case:
    def change(document: dict) -> None:
        document["arrays"][_weight_ref(document, "conv")]["shape"] = [3, 3, 4, 1]
    path = _edit(folder, change)
    return Case("weight_shape_mismatch", path, "conv kernel stored as [3, 3, 4, 1], declared [3, 3, 1, 4]",
                "kernel has shape [3, 3, 4, 1], the layer declares [3, 3, 1, 4]", layer="conv")


@case
def sample_input_shape_mismatch(folder: Path) -> Case:
    path = _edit(folder, _set(["model", "input_shape"], [6, 6, 2]))
    return Case("sample_input_shape_mismatch", path, "model input_shape [6, 6, 2] for (6, 6, 1) samples",
                "the model's input shape is [6, 6, 2]")


@case
def array_ref_out_of_range(folder: Path) -> Case:
    path = _edit(folder, _set(["samples", 0, "input"], 999))
    return Case("array_ref_out_of_range", path, "a sample input referring to array 999",
                "array 999 does not exist")


@case
def inline_wrong_length(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["arrays"][_first_inline_array(d)]["data"].append(0.5))
    return Case("inline_wrong_length", path, "inline data of 6 values for shape [5]",
                "inline data has 6 values, shape [5] needs 5")


@case
def inline_int_out_of_range(folder: Path) -> Case:
    def change(document: dict) -> None:
        document["arrays"].append({"dtype": "int8", "shape": [2], "data": [1, 300]})
    path = _edit(folder, change)
    return Case("inline_int_out_of_range", path, "int8 inline data holding 300",
                "out of range for dtype int8")


@case
def inline_float_for_int(folder: Path) -> Case:
    def change(document: dict) -> None:
        document["arrays"].append({"dtype": "int32", "shape": [2], "data": [1, 2.5]})
    path = _edit(folder, change)
    return Case("inline_float_for_int", path, "int32 inline data holding 2.5",
                "must be integers, value 1 is 2.5")


@case
def predictions_count(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["epochs"][0]["predictions"].pop())
    return Case("predictions_count", path, "1 prediction for 2 samples", "1 predictions for 2 samples")


@case
def epochs_out_of_order(folder: Path) -> Case:
    path = _base(folder, epoch_numbers=[5, 3]).path
    return Case("epochs_out_of_order", path, "epochs 5 then 3", "epoch numbers must increase, got 3 after 5")


@case
def epochs_repeated(folder: Path) -> Case:
    path = _base(folder, epoch_numbers=[2, 2]).path
    return Case("epochs_repeated", path, "epoch 2 twice", "epoch numbers must increase, got 2 after 2")


@case
def weights_unknown_layer(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["epochs"][0]["weights"].update(ghost=[0]))
    return Case("weights_unknown_layer", path, "weights for a layer 'ghost' that does not exist",
                "weights for a layer that declares none (or does not exist)", layer="ghost")


@case
def weights_missing(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["epochs"][1]["weights"].pop("dense"))
    return Case("weights_missing", path, "epoch 2 without the weights of 'dense'", "weights missing",
                layer="dense")


@case
def weights_count(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["epochs"][0]["weights"]["conv"].pop())
    return Case("weights_count", path, "conv with 1 weight array of its 2",
                "1 weight arrays, the layer declares 2", layer="conv")


@case
def activations_missing(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["epochs"][0]["activations"].pop("pool"))
    return Case("activations_missing", path, "epoch 1 without the activations of 'pool'",
                "activations missing", layer="pool")


@case
def activations_unknown_layer(folder: Path) -> Case:
    path = _edit(folder, lambda d: d["epochs"][0]["activations"].update(ghost=0))
    return Case("activations_unknown_layer", path, "activations for a layer 'ghost' that does not exist",
                "activations for unknown layer 'ghost'", layer="ghost")


# -- loads, but warns


def _plant_nonfinite(what: str, array: np.ndarray) -> np.ndarray:
    if what == "activations/1/conv":
        array = array.copy()
        flat = array.reshape(-1)
        flat[0], flat[1], flat[2] = np.nan, np.inf, -np.inf
    return array


@case
def nan_inf_activations(folder: Path) -> Case:
    path = _base(folder, mutate_values=_plant_nonfinite).path
    return Case("nan_inf_activations", path, "NaN, +Inf and -Inf in the activations of 'conv' (allowed)",
                "has 3 NaN/Inf values", kind="warning", layer="conv")


# --------------------------------------------------------------------------------------------


def build_corpus(folder: Path | str) -> list[Case]:
    """Write every case under ``folder`` (one sub-folder each) and return them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for make in CASES:
        built = make(folder / make.__name__)
        if built is not None:
            assert built.name == make.__name__, (built.name, make.__name__)
            cases.append(built)
    return cases


def outcome(case: Case) -> tuple[str, str]:
    """("error" | "warning" | "loaded" | "crash", message) of reading ``case``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            read_export(case.path)
        except ExportFormatError as exc:
            return "error", str(exc)
        except BaseException as exc:  # noqa: BLE001 - reported, not hidden
            return "crash", f"{type(exc).__name__}: {exc}"[:300]
    ours = [str(w.message) for w in caught if issubclass(w.category, ExportFormatWarning)]
    return ("warning", ours[0]) if ours else ("loaded", "")


def markdown_table(cases: list[Case]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")
    rows = ["| # | Case | Bad input | What the user sees |", "|---|---|---|---|"]
    for number, case_ in enumerate(cases, 1):
        kind, message = outcome(case_)
        shown = f"`{cell(message)}`" if message else ""
        if kind == "warning":
            shown = f"loads, with warning {shown}"
        elif kind != "error":
            shown = f"**{kind}** {shown}"
        rows.append(f"| {number} | `{case_.name}` | {cell(case_.description)} | {shown} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the corpus into")
    parser.add_argument("--markdown", action="store_true",
                        help="read every case and print a Markdown table of the messages")
    args = parser.parse_args(argv)
    cases = build_corpus(args.out_dir)
    if args.markdown:
        print(markdown_table(cases))
    else:
        for case_ in cases:
            print(f"{case_.name:28} {case_.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
