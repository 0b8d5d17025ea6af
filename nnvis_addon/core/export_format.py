"""nnvis layer-export format v1: reader and writer (numpy only, no bpy, no TensorFlow).

An export is a JSON structure document (``<name>.nnvis.json``) plus binary sidecar buffers
(``<name>.bin``) in the same folder. docs/format.md describes it; the JSON Schema lives in
``schema/nnvis-format-1.schema.json`` and is enforced here, followed by the checks a schema
cannot express (array shapes against layers, sidecar bounds, graph order).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import minischema

FORMAT_NAME = "nnvis"
FORMAT_VERSION = "1.1"                # the newest version this reader knows
BASE_VERSION = "1.0"                  # what a writer writes when it uses no 1.1 field
SUPPORTED_MAJOR = 1
DOCUMENT_SUFFIX = ".nnvis.json"
BUFFER_ALIGNMENT = 64
INLINE_MAX_ELEMENTS = 16
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64")
_FINITE_CHECK_CHUNK = 1 << 24
# No array may claim more bytes than this (its non-zero dimensions multiplied), whatever its
# buffer holds: keeps numpy from being asked for impossible shapes.
MAX_ARRAY_BYTES = 1 << 48
_NPY_MAGIC = b"\x93NUMPY"
_VERSION_RE = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})")
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
SCHEMA_PATH = Path(__file__).with_name("schema") / "nnvis-format-1.schema.json"
# Format 1.1: class evidence maps per epoch (epochs[].explanations, described by "explain").
EXPLANATION_KINDS = ("gradcam_predicted", "gradcam_label", "saliency_predicted",
                     "saliency_label")
CLASS_SCORES = ("logit", "output")    # what the maps differentiate: the pre-softmax logit or
                                      # the output as it is


class NnvisError(Exception):
    """Base class of every error nnvis raises on purpose."""


class ExportFormatError(NnvisError):
    """An export cannot be read; the message names the file, the layer and the field."""

    def __init__(self, message: str, *, file: os.PathLike | str, layer: str | None = None,
                 field: str | None = None):
        self.file = str(file)
        self.layer = layer
        self.field = field
        self.detail = message
        where = [Path(self.file).name or self.file]
        if layer is not None:
            where.append(f"layer {minischema.short_repr(layer, 100)}")
        if field is not None:
            where.append(f"field {field if len(field) <= 200 else field[:197] + '...'}")
        super().__init__(f"{': '.join(where)}: {message}")


@contextmanager
def errors_naming_layer(file: os.PathLike | str, layer: str, drawing: str):
    """Re-raise a ``ValueError`` or ``ArithmeticError`` raised while ``drawing`` part of a layer
    (its cells, its connections) from its values as an :class:`ExportFormatError` naming the
    file and the layer; nnvis's own errors pass unchanged."""
    try:
        yield
    except NnvisError:
        raise
    except (ValueError, ArithmeticError) as exc:
        raise ExportFormatError(f"cannot draw {drawing}: {exc}", file=file, layer=layer) from exc


class ExportFormatWarning(UserWarning):
    """An export loads but holds something a user should know about (NaN/Inf values)."""


@dataclass(frozen=True)
class WeightSpec:
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Layer:
    index: int
    name: str
    type: str
    output_shape: tuple[int, ...]
    inbound: tuple[str, ...]
    config: dict
    weights: tuple[WeightSpec, ...]
    params: int
    folded: tuple[str, ...] = ()      # layers folded into this drawn unit (core/folding.py)
    unit_label: str | None = None     # the unit's name on screen, e.g. "conv1 + BN + ReLU"

    @property
    def cells(self) -> int:
        return math.prod(self.output_shape)


@dataclass
class Sample:
    name: str
    input: np.ndarray
    label: int | None
    predicted_class: int | None
    scores: np.ndarray | None


@dataclass
class Epoch:
    epoch: int
    metrics: dict[str, float | None]
    predictions: list[int] | None
    weights: dict[str, list[np.ndarray]]
    activations: dict[str, np.ndarray]
    # 1.1: EXPLANATION_KINDS -> (S, *spatial) class evidence maps (docs/format.md)
    explanations: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Explain:
    """How an export's class evidence maps were computed (format 1.1 ``explain``)."""

    gradcam_layer: str | None       # the convolution whose Grad-CAM the maps are
    score: str                      # CLASS_SCORES: which class score was differentiated


@dataclass
class NetworkExport:
    """A loaded export. Arrays are read-only numpy views, memory-mapped from the sidecars."""

    path: Path
    version: str
    generator: str | None
    name: str
    frameworks: dict[str, str]
    input_shape: tuple[int, ...]
    class_names: list[str] | None
    layers: list[Layer]
    samples: list[Sample]
    epochs: list[Epoch]
    warnings: list[str] = field(default_factory=list)
    explain: Explain | None = None
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_samples(self) -> int:
        return len(self.samples)

    @property
    def epoch_numbers(self) -> list[int]:
        return [e.epoch for e in self.epochs]

    def layer(self, name: str) -> Layer:
        """The layer called ``name`` (KeyError if none): a dictionary of positions, checked
        against the list and made again when the list changed, so a lookup is not a scan."""
        for attempt in range(2):
            index = self._index.get(name)
            if index is not None and index < len(self.layers) and \
                    self.layers[index].name == name:
                return self.layers[index]
            if attempt == 0:
                self._index = {layer.name: i for i, layer in enumerate(self.layers)}
        raise KeyError(name)

    def activations(self, layer: str, epoch_index: int = -1) -> np.ndarray:
        """Activations of ``layer`` at the ``epoch_index``-th recorded epoch, shape (S, *output)."""
        return self.epochs[epoch_index].activations[layer]

    def weights(self, layer: str, epoch_index: int = -1) -> list[np.ndarray]:
        return self.epochs[epoch_index].weights.get(layer, [])


# --------------------------------------------------------------------------------------------
# Reading


@lru_cache(maxsize=1)
def load_schema() -> dict:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    minischema.check_schema_keywords(schema)
    return schema


def find_document(path: os.PathLike | str) -> Path:
    """The structure document for ``path``: the file itself, or the single one in a folder."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*" + DOCUMENT_SUFFIX))
        if len(found) != 1:
            raise ExportFormatError(
                f"expected exactly one *{DOCUMENT_SUFFIX} document in the folder, found {len(found)}",
                file=path)
        return found[0]
    return path


def read_export(path: os.PathLike | str, *, check_finite: bool = True) -> NetworkExport:
    """Load and validate an export; raise :class:`ExportFormatError` for anything wrong."""
    doc_path = find_document(path)
    document = _load_json(doc_path)
    return _Reader(doc_path, document, check_finite).read()


class _JsonRejected(Exception):
    """Raised from inside the JSON parser's hooks; turned into an ExportFormatError."""


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _JsonRejected(f"duplicate key {_short(key)} in one JSON object")
            seen.add(key)
    return document


def _reject_constant(name: str) -> Any:
    raise _JsonRejected(f"{name} is not valid JSON (write null for a missing number)")


def _load_json(doc_path: Path) -> dict:
    try:
        size = doc_path.stat().st_size
        is_file = doc_path.is_file()
    except (OSError, ValueError) as exc:
        raise ExportFormatError(f"cannot open: {getattr(exc, 'strerror', None) or exc}",
                                file=doc_path) from None
    if not is_file:
        raise ExportFormatError("is not a file", file=doc_path)
    if size > MAX_DOCUMENT_BYTES:
        raise ExportFormatError(f"structure document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}",
                                file=doc_path)
    try:
        raw = doc_path.read_bytes()
    except OSError as exc:
        raise ExportFormatError(f"cannot read: {exc.strerror or exc}", file=doc_path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportFormatError(f"is not valid UTF-8 (byte {exc.start})", file=doc_path) from None
    del raw
    try:
        document = json.loads(text, object_pairs_hook=_object_without_duplicates,
                              parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ExportFormatError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                                file=doc_path) from None
    except _JsonRejected as exc:
        raise ExportFormatError(f"is not valid JSON: {exc}", file=doc_path) from None
    except RecursionError:
        raise ExportFormatError("is not valid JSON: nested too deeply", file=doc_path) from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python converts
        detail = str(exc) if len(str(exc)) <= 200 else str(exc)[:197] + "..."
        raise ExportFormatError(f"is not valid JSON: {detail}", file=doc_path) from None
    if not isinstance(document, dict):
        raise ExportFormatError(f"top level must be a JSON object, got a JSON {_json_kind(document)}",
                                file=doc_path)
    return document


def _pointer_to_field(pointer: str) -> str | None:
    """"/layers/1/output_shape/2" -> "layers[1].output_shape[2]", the style of the other errors."""
    field = ""
    for part in pointer.strip("/").split("/"):
        if not part:
            continue
        if part.isascii() and part.isdigit():
            field += f"[{part}]"
        else:
            field += f".{part}" if field else part
    return field or None


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    """A bounded repr: safe for huge strings and deeply nested values from a hostile document."""
    return minischema.short_repr(value, limit)


def _major_version(document: dict, doc_path: Path) -> int:
    if document.get("format") != FORMAT_NAME:
        raise ExportFormatError(f"not an nnvis export (field 'format' must be {FORMAT_NAME!r})",
                                file=doc_path, field="format")
    version = document.get("version")
    match = _VERSION_RE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        got = f"a JSON {_json_kind(version)}" if not isinstance(version, str) else _short(version)
        if "version" not in document:
            got = "nothing"
        raise ExportFormatError(f"format version must be a string like '1.0', got {got}",
                                file=doc_path, field="version")
    return int(match.group(1))


def _minor_version(version: str) -> int:
    return int(_VERSION_RE.fullmatch(version).group(2))


_ADVICE = getattr(mmap, "MADV_DONTNEED", None)


def forget_pages(array: np.ndarray) -> None:
    """Let the process forget the pages of a memory-mapped sidecar that reading ``array`` (a
    view into it) touched; the kernel keeps them cached, and reading again brings them back.
    So the check of every value at reading, and the weights read for a link's edges, do not
    count in the memory of an import. Does nothing for other arrays or platforms."""
    mapped: object = array  # the array whose base is the mapping (a whole sidecar, from its start)
    while isinstance(mapped, np.ndarray) and not isinstance(mapped.base, mmap.mmap):
        mapped = mapped.base
    if _ADVICE is None or not isinstance(mapped, np.ndarray) or array.size == 0:
        return
    base = mapped.__array_interface__["data"][0]
    first = array.__array_interface__["data"][0]
    last = min(first + array.size * array.itemsize, base + mapped.nbytes)
    if not base <= first < base + mapped.nbytes:
        return
    start = (first - base) // mmap.PAGESIZE * mmap.PAGESIZE
    try:
        mapped.base.madvise(_ADVICE, start, last - base - start)
    except (OSError, ValueError):  # not every platform or mapping allows it
        pass


class _Reader:
    def __init__(self, doc_path: Path, document: dict, check_finite: bool):
        self.doc_path = doc_path
        self.folder = doc_path.parent
        self.document = document
        self.check_finite = check_finite
        self.messages: list[str] = []

    def error(self, message: str, layer: str | None = None, field: str | None = None):
        return ExportFormatError(message, file=self.doc_path, layer=layer, field=field)

    def read(self) -> NetworkExport:
        doc = self.document
        major = _major_version(doc, self.doc_path)
        if major != SUPPORTED_MAJOR:
            raise self.error(
                f"format version {doc['version']} is not supported: this nnvis reads major version "
                f"{SUPPORTED_MAJOR} (update nnvis to read this file)", field="version")
        # Minor versions only add optional fields: a newer minor's extra fields are skipped.
        newer_minor = _minor_version(doc["version"]) > _minor_version(FORMAT_VERSION)
        try:
            minischema.validate(doc, load_schema(), ignore_unknown_fields=newer_minor)
        except minischema.SchemaViolation as exc:
            raise self.error(exc.message, layer=self._layer_for_path(exc.path),
                             field=_pointer_to_field(exc.path)) from None

        buffers = self._open_buffers(doc["buffers"])
        self.arrays = self._make_arrays(doc["arrays"], buffers)
        layers = self._layers(doc["layers"])
        model = doc["model"]
        self._check_text(model["name"], "model name", field="model.name")
        input_shape = tuple(model["input_shape"])
        samples = self._samples(doc["samples"], input_shape)
        epochs = self._epochs(doc["epochs"], layers, len(samples))
        explain = self._explanations(doc, layers, samples, epochs, input_shape)
        if self.messages:
            warnings.warn(f"{self.doc_path.name}: " + "; ".join(self.messages), ExportFormatWarning,
                          stacklevel=3)
        return NetworkExport(
            path=self.doc_path, version=doc["version"], generator=doc.get("generator"),
            name=model["name"], frameworks=dict(model.get("frameworks", {})),
            input_shape=input_shape, class_names=model.get("class_names"),
            layers=layers, samples=samples, epochs=epochs, warnings=list(self.messages),
            explain=explain)

    def _layer_for_path(self, path: str) -> str | None:
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "layers" and parts[1].isdigit():
            layers = self.document.get("layers")
            index = int(parts[1])
            if isinstance(layers, list) and index < len(layers) and isinstance(layers[index], dict):
                name = layers[index].get("name")
                return name if isinstance(name, str) else None
        if len(parts) >= 3 and parts[0] == "epochs" and parts[2] in ("weights", "activations") \
                and len(parts) >= 4:
            return parts[3]
        return None

    # -- buffers and arrays --------------------------------------------------------------------

    def _check_text(self, value: str, what: str, layer: str | None = None,
                    field: str | None = None) -> None:
        """Names end up as Blender data-block names and file paths: they must be real Unicode."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.error(f"{what} {_short(value)} is not valid Unicode text (a lone surrogate "
                             f"escape?)", layer=layer, field=field) from None

    def _check_uri(self, uri: str, where: str) -> None:
        shown = _short(uri)
        self._check_text(uri, "sidecar path", field=where)
        if any(ord(c) < 32 or ord(c) == 127 for c in uri):
            raise self.error(f"sidecar path {shown} contains a control character (NUL?)", field=where)
        if "\\" in uri:
            raise self.error(f"sidecar path {shown} must be relative to the export's folder, with '/' "
                             f"separators", field=where)
        if uri.startswith("/") or os.path.isabs(uri) or re.match(r"[A-Za-z]:", uri):
            raise self.error(f"sidecar path {shown} must be relative to the export's folder "
                             f"(it is absolute)", field=where)
        if _URL_RE.match(uri) and "://" in uri:
            raise self.error(f"sidecar path {shown} must be a file name relative to the export's "
                             f"folder, not a URL", field=where)
        if ".." in uri.split("/"):
            raise self.error(f"sidecar path {shown} must not leave the export's folder ('..')",
                             field=where)

    def _open_buffers(self, specs: list[dict]) -> list[np.ndarray]:
        try:
            folder_real = Path(os.path.realpath(self.folder))
        except (OSError, ValueError) as exc:
            raise self.error(f"cannot resolve the export's folder: {exc}") from None
        buffers = []
        for index, spec in enumerate(specs):
            where = f"buffers[{index}].uri"
            uri = spec["uri"]
            self._check_uri(uri, where)
            shown = _short(uri)
            try:
                real = Path(os.path.realpath(self.folder / uri))
                inside = folder_real == real or folder_real in real.parents
                exists = real.exists()
                is_file = real.is_file()
            except (OSError, ValueError) as exc:
                raise self.error(f"sidecar path {shown} cannot be resolved: {exc}",
                                 field=where) from None
            if not inside:
                raise self.error(f"sidecar path {shown} resolves outside the export's folder "
                                 f"(a symbolic link?)", field=where)
            if not exists:
                raise self.error(f"sidecar file {shown} is missing", field=where)
            if not is_file:
                raise self.error(f"sidecar {shown} is not a regular file", field=where)
            try:
                actual = real.stat().st_size
            except OSError as exc:
                raise self.error(f"cannot open sidecar file {shown}: {exc.strerror or exc}",
                                 field=where) from None
            declared = spec["byte_length"]
            if actual != declared:
                kind = "truncated" if actual < declared else "longer than declared"
                raise self.error(f"sidecar file {shown} is {kind}: {actual} bytes on disk, "
                                 f"{declared} declared", field=f"buffers[{index}].byte_length")
            if actual == 0:
                buffer = np.zeros(0, dtype=np.uint8)
                buffer.setflags(write=False)
            else:
                try:
                    buffer = np.memmap(real, dtype=np.uint8, mode="r")
                except (OSError, ValueError) as exc:
                    raise self.error(f"cannot map sidecar file {shown}: "
                                     f"{getattr(exc, 'strerror', None) or exc}", field=where) from None
                if buffer.size != declared:
                    raise self.error(f"sidecar file {shown} changed size while being read",
                                     field=f"buffers[{index}].byte_length")
            # Sidecars hold raw little-endian numbers and are only ever memory-mapped, never
            # np.load()-ed (which could unpickle). A .npy file here is a mistake worth naming.
            if bytes(buffer[:len(_NPY_MAGIC)]) == _NPY_MAGIC:
                raise self.error(f"sidecar file {shown} is a NumPy .npy file; sidecars hold raw "
                                 f"little-endian array data (nnvis never loads .npy or pickle data)",
                                 field=where)
            buffers.append(buffer)
        return buffers

    def _array_users(self, index: int) -> tuple[str | None, str | None]:
        """(layer, field) of the first place the (schema-valid) document refers to array ``index``."""
        doc = self.document
        for e, epoch in enumerate(doc["epochs"]):
            for name, ref in epoch["activations"].items():
                if ref == index:
                    return name, f"epochs[{e}].activations.{name}"
            for name, refs in epoch["weights"].items():
                for position, ref in enumerate(refs):
                    if ref == index:
                        return name, f"epochs[{e}].weights.{name}[{position}]"
        for s, sample in enumerate(doc["samples"]):
            if sample["input"] == index:
                return None, f"samples[{s}].input"
            if (sample.get("prediction") or {}).get("scores") == index:
                return None, f"samples[{s}].prediction.scores"
        return None, None

    def _array_error(self, index: int, message: str, field: str) -> ExportFormatError:
        """An error in ``arrays[index]``, naming the layer and place that use the array."""
        layer, user = self._array_users(index)
        if user is not None:
            message = f"{message} (the array of {user})"
        return self.error(message, layer=layer, field=field)

    def _make_arrays(self, specs: list[dict], buffers: list[np.ndarray]) -> list[np.ndarray]:
        arrays = []
        for index, spec in enumerate(specs):
            where = f"arrays[{index}]"
            fail = self._array_error
            dtype = np.dtype(spec["dtype"]).newbyteorder("<")
            shape = tuple(spec["shape"])
            count = math.prod(shape)
            if math.prod(d for d in shape if d) * dtype.itemsize > MAX_ARRAY_BYTES:
                raise fail(index, f"shape {_short(list(shape), 120)} is absurdly large "
                                  f"(over {MAX_ARRAY_BYTES} bytes)", where + ".shape")
            if "data" in spec:
                if "buffer" in spec or "byte_offset" in spec:
                    raise fail(index, "an array is either inline ('data') or in a buffer, not both",
                               where)
                data = spec["data"]
                if len(data) != count:
                    raise fail(index, f"inline data has {len(data)} values, shape {list(shape)} "
                                      f"needs {count}", where + ".data")
                array = self._inline_values(index, data, dtype, spec["dtype"], where + ".data")
                array = array.reshape(shape)
                array.setflags(write=False)
            else:
                if "buffer" not in spec:
                    raise fail(index, "array needs 'data' or 'buffer'", where)
                buffer_index = spec["buffer"]
                if buffer_index >= len(buffers):
                    raise fail(index, f"buffer {buffer_index} does not exist ({len(buffers)} "
                                      f"buffers)", where + ".buffer")
                buffer = buffers[buffer_index]
                offset = spec.get("byte_offset", 0)
                nbytes = count * dtype.itemsize
                if offset % dtype.itemsize:
                    raise fail(index, f"byte_offset {offset} is not a multiple of the "
                                      f"{spec['dtype']} item size", where + ".byte_offset")
                if offset + nbytes > buffer.size:
                    raise fail(index, f"array of {nbytes} bytes at offset {offset} runs past the "
                                      f"end of buffer {buffer_index} ({buffer.size} bytes)",
                               where + ".byte_offset")
                if count:
                    array = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
                else:
                    array = np.zeros(shape, dtype=dtype)
                    array.setflags(write=False)
            arrays.append(array)
        return arrays

    def _inline_values(self, index: int, data: list, dtype: np.dtype, dtype_name: str,
                       field: str) -> np.ndarray:
        """Inline JSON numbers as a 1-D array of ``dtype``, exactly (int64 does not pass float64)."""
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            values = []
            for position, value in enumerate(data):
                if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                    value = int(value)
                if not isinstance(value, int):
                    raise self._array_error(index, f"inline data for dtype {dtype_name} must be "
                                                   f"integers, value {position} is {_short(value)}",
                                            field)
                if not info.min <= value <= info.max:
                    raise self._array_error(index, f"inline value {position} ({_short(value)}) is "
                                                   f"out of range for dtype {dtype_name}", field)
                values.append(value)
            return np.array(values, dtype=dtype)
        floats = []
        for position, value in enumerate(data):
            try:
                floats.append(math.nan if value is None else float(value))
            except OverflowError:
                raise self._array_error(index, f"inline value {position} ({_short(value)}) is too "
                                               f"large for a floating-point number", field) from None
        with np.errstate(over="ignore", invalid="ignore"):
            return np.array(floats, dtype=np.float64).astype(dtype)

    def _array(self, ref: int, field: str, layer: str | None = None) -> np.ndarray:
        if ref >= len(self.arrays):
            raise self.error(f"array {ref} does not exist ({len(self.arrays)} arrays)", layer=layer,
                             field=field)
        return self.arrays[ref]

    def _check_finite(self, array: np.ndarray, what: str) -> None:
        if not self.check_finite or array.dtype.kind != "f":
            return
        flat = array.reshape(-1)
        bad = 0
        for start in range(0, flat.size, _FINITE_CHECK_CHUNK):
            chunk = flat[start:start + _FINITE_CHECK_CHUNK]
            bad += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
            forget_pages(chunk)
        if bad:
            self.messages.append(f"{what} has {bad} NaN/Inf values")

    # -- structure ------------------------------------------------------------------------------

    def _layers(self, specs: list[dict]) -> list[Layer]:
        layers: list[Layer] = []
        names: dict[str, int] = {}
        all_names = {spec["name"] for spec in specs}
        for index, spec in enumerate(specs):
            name = spec["name"]
            self._check_text(name, "layer name", field=f"layers[{index}].name")
            if name in names:
                raise self.error("duplicate layer name", layer=name, field=f"layers[{index}].name")
            for inbound in spec["inbound"]:
                if inbound == name:
                    raise self.error("layer lists itself as inbound (a cycle)", layer=name,
                                     field=f"layers[{index}].inbound")
                if inbound not in all_names:
                    raise self.error(f"inbound layer {_short(inbound)} does not exist", layer=name,
                                     field=f"layers[{index}].inbound")
                if inbound not in names:
                    raise self.error(f"inbound layer {_short(inbound)} comes later: layers must be in "
                                     f"topological order (is there a cycle?)", layer=name,
                                     field=f"layers[{index}].inbound")
            weights = tuple(WeightSpec(w["name"], tuple(w["shape"])) for w in spec.get("weights", []))
            if len({w.name for w in weights}) != len(weights):
                raise self.error("duplicate weight name", layer=name, field=f"layers[{index}].weights")
            layer = Layer(index=index, name=name, type=spec["type"],
                          output_shape=tuple(spec["output_shape"]), inbound=tuple(spec["inbound"]),
                          config=dict(spec.get("config", {})), weights=weights,
                          params=spec.get("params", sum(math.prod(w.shape) for w in weights)))
            self._check_layer_config(layer, layers, names)
            names[name] = index
            layers.append(layer)
        return layers

    def _check_layer_config(self, layer: Layer, earlier: list[Layer], names: dict[str, int]) -> None:
        """Shape rules for the layer types whose weights nnvis draws as connections."""
        field = f"layers[{layer.index}]"
        config = layer.config
        kernel = next((w for w in layer.weights if w.name == "kernel"), None)
        if layer.type == "Dense" and kernel is not None:
            units = config.get("units", layer.output_shape[-1])
            if len(kernel.shape) != 2 or kernel.shape[1] != units or layer.output_shape[-1] != units:
                raise self.error(f"Dense kernel shape {list(kernel.shape)} and output shape "
                                 f"{list(layer.output_shape)} disagree with units={_short(units)}",
                                 layer=layer.name, field=field + ".weights")
            if len(layer.inbound) == 1:
                source = earlier[names[layer.inbound[0]]]
                if source.output_shape[-1] != kernel.shape[0]:
                    raise self.error(f"Dense kernel expects {kernel.shape[0]} inputs but inbound "
                                     f"layer {source.name!r} gives {source.output_shape[-1]}",
                                     layer=layer.name, field=field + ".weights")
        if layer.type in ("Conv2D", "Conv1D") and kernel is not None:
            filters = config.get("filters", layer.output_shape[-1])
            rank = 4 if layer.type == "Conv2D" else 3
            if len(kernel.shape) != rank or kernel.shape[-1] != filters or \
                    layer.output_shape[-1] != filters:
                raise self.error(f"{layer.type} kernel shape {list(kernel.shape)} and output shape "
                                 f"{list(layer.output_shape)} disagree with filters={_short(filters)}",
                                 layer=layer.name, field=field + ".weights")

    def _samples(self, specs: list[dict], input_shape: tuple[int, ...]) -> list[Sample]:
        samples = []
        for index, spec in enumerate(specs):
            where = f"samples[{index}]"
            array = self._array(spec["input"], where + ".input")
            if tuple(array.shape) != input_shape:
                raise self.error(f"input has shape {list(array.shape)}, the model's input shape is "
                                 f"{list(input_shape)}", field=where + ".input")
            self._check_finite(array, where + ".input")
            prediction = spec.get("prediction") or {}
            scores = None
            if "scores" in prediction:
                scores = self._array(prediction["scores"], where + ".prediction.scores")
                self._check_finite(scores, where + ".prediction.scores")
            samples.append(Sample(name=spec.get("name", f"sample {index}"), input=array,
                                  label=spec.get("label"), predicted_class=prediction.get("class"),
                                  scores=scores))
        return samples

    def _epochs(self, specs: list[dict], layers: list[Layer], num_samples: int) -> list[Epoch]:
        epochs = []
        previous = -1
        weighted = {layer.name: layer for layer in layers if layer.weights}
        for index, spec in enumerate(specs):
            where = f"epochs[{index}]"
            if spec["epoch"] <= previous:
                raise self.error(f"epoch numbers must increase, got {spec['epoch']} after {previous}",
                                 field=where + ".epoch")
            previous = spec["epoch"]
            predictions = spec.get("predictions")
            if predictions is not None and len(predictions) != num_samples:
                raise self.error(f"{len(predictions)} predictions for {num_samples} samples",
                                 field=where + ".predictions")
            weights = self._epoch_weights(spec["weights"], weighted, where)
            activations = {}
            given = spec["activations"]
            for layer in layers:
                field = f"{where}.activations.{layer.name}"
                if layer.name not in given:
                    raise self.error("activations missing", layer=layer.name, field=field)
                array = self._array(given[layer.name], field, layer.name)
                expected = (num_samples, *layer.output_shape)
                if tuple(array.shape) != expected:
                    raise self.error(f"array shape {list(array.shape)} does not match "
                                     f"{num_samples} samples x output shape {list(layer.output_shape)}",
                                     layer=layer.name, field=field)
                self._check_finite(array, f"layer {layer.name!r} {field}")
                activations[layer.name] = array
            unknown = sorted(set(given) - {layer.name for layer in layers})
            if unknown:
                raise self.error(f"activations for unknown layer {_short(unknown[0])}",
                                 layer=unknown[0], field=f"{where}.activations")
            explanations = {kind: self._array(ref, f"{where}.explanations.{kind}")
                            for kind, ref in spec.get("explanations", {}).items()}
            epochs.append(Epoch(epoch=spec["epoch"], metrics=dict(spec.get("metrics", {})),
                                predictions=predictions, weights=weights, activations=activations,
                                explanations=explanations))
        return epochs

    def _epoch_weights(self, given: dict, weighted: dict[str, Layer], where: str) -> dict:
        weights = {}
        for name, layer in weighted.items():
            field = f"{where}.weights.{name}"
            if name not in given:
                raise self.error("weights missing", layer=name, field=field)
            refs = given[name]
            if len(refs) != len(layer.weights):
                raise self.error(f"{len(refs)} weight arrays, the layer declares {len(layer.weights)}",
                                 layer=name, field=field)
            arrays = []
            for ref, spec in zip(refs, layer.weights):
                array = self._array(ref, f"{field}.{spec.name}", name)
                if tuple(array.shape) != spec.shape:
                    raise self.error(f"{spec.name} has shape {list(array.shape)}, the layer declares "
                                     f"{list(spec.shape)}", layer=name, field=f"{field}.{spec.name}")
                self._check_finite(array, f"layer {name!r} {field}.{spec.name}")
                arrays.append(array)
            weights[name] = arrays
        unknown = sorted(set(given) - set(weighted))
        if unknown:
            raise self.error("weights for a layer that declares none (or does not exist)",
                             layer=unknown[0], field=f"{where}.weights")
        return weights


    def _explanations(self, doc: dict, layers: list[Layer], samples: list[Sample],
                      epochs: list[Epoch], input_shape: tuple[int, ...]) -> Explain | None:
        """Format 1.1's class evidence maps: described by ``explain``, shaped like the maps
        they cover, label maps only where every sample has a label."""
        used = [i for i, epoch in enumerate(epochs) if epoch.explanations]
        spec = doc.get("explain")
        if (spec is not None or used) and _minor_version(doc["version"]) < 1:
            raise self.error("explanations need format version 1.1 (the document says "
                             f"{doc['version']})", field="explain" if spec is not None else
                             f"epochs[{used[0]}].explanations")
        if spec is None:
            if used:
                raise self.error("explanations without the 'explain' field that describes them",
                                 field=f"epochs[{used[0]}].explanations")
            return None
        explain = Explain(gradcam_layer=spec.get("gradcam_layer"), score=spec["score"])
        gradcam_shape = None
        if explain.gradcam_layer is not None:
            layer = next((item for item in layers if item.name == explain.gradcam_layer), None)
            if layer is None or len(layer.output_shape) < 2:
                raise self.error(f"gradcam_layer {_short(explain.gradcam_layer)} is not a layer "
                                 f"of maps", field="explain.gradcam_layer")
            gradcam_shape = (len(samples), *layer.output_shape[:-1])
        saliency_shape = (len(samples), *input_shape[:-1]) if len(input_shape) > 1 \
            else (len(samples), *input_shape)
        for i in used:
            for kind, array in epochs[i].explanations.items():
                self._check_explanation(kind, array, gradcam_shape, saliency_shape, samples,
                                        f"epochs[{i}].explanations.{kind}")
        return explain

    def _check_explanation(self, kind: str, array: np.ndarray, gradcam_shape, saliency_shape,
                           samples: list[Sample], field: str) -> None:
        expected = gradcam_shape if kind.startswith("gradcam") else saliency_shape
        if expected is None:
            raise self.error("a Grad-CAM map without explain.gradcam_layer", field=field)
        if tuple(array.shape) != expected or array.dtype.kind != "f":
            raise self.error(f"map of shape {list(array.shape)} ({array.dtype}), expected float "
                             f"{list(expected)}", field=field)
        if kind.endswith("_label") and any(sample.label is None for sample in samples):
            raise self.error("maps for the true label, but not every sample has a label",
                             field=field)
        self._check_finite(array, field)


# --------------------------------------------------------------------------------------------
# Writing


class ExportWriter:
    """Streams arrays into sidecar buffers and writes the structure document.

    >>> writer = ExportWriter(folder, "digits_cnn")
    >>> ref = writer.add_array(np.zeros((4, 8, 8, 3)), dtype="float16")
    >>> writer.publish(model=..., layers=..., samples=..., epochs=...)

    :meth:`publish` writes a complete export of everything added so far; more arrays may follow
    and be published again. The arrays added after a publish go to a new sidecar segment
    (``<name>.1.bin``, ``<name>.2.bin``, ...; the first is ``<name>.bin``), so publishing after
    every recorded epoch writes each array once.
    """

    def __init__(self, folder: os.PathLike | str, name: str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.arrays: list[dict] = []
        self.segments: list[dict] = []  # published: {"uri", "byte_length"}
        self._offset = 0
        self._file: Any = None  # the open segment's partial file, made by the first array
        self._replaced: list[str] | None = None  # the sidecars of the export this one replaces

    @property
    def document_path(self) -> Path:
        return self.folder / f"{self.name}{DOCUMENT_SUFFIX}"

    @property
    def buffer_name(self) -> str:
        """The open segment's file name."""
        index = len(self.segments)
        return f"{self.name}.bin" if index == 0 else f"{self.name}.{index}.bin"

    @property
    def _partial(self) -> Path:
        return self.folder / f"{self.buffer_name}.partial"

    def add_array(self, array: Any, dtype: str | None = None) -> int:
        """Store ``array`` (inline when tiny, else in the sidecar) and return its reference."""
        array = np.asarray(array)
        dtype_name = dtype or array.dtype.name
        if dtype_name not in DTYPES:
            raise ValueError(f"dtype {dtype_name} is not allowed in nnvis exports ({DTYPES})")
        target = np.dtype(dtype_name).newbyteorder("<")
        data = np.asarray(array, dtype=target, order="C")  # keeps 0-d scalars 0-d
        spec: dict[str, Any] = {"dtype": dtype_name, "shape": [int(d) for d in data.shape]}
        # JSON has no Inf: an array holding NaN/Inf goes to the sidecar so it reads back exactly
        # (inline, both would come back as NaN via null).
        inline = data.size <= INLINE_MAX_ELEMENTS and (data.dtype.kind != "f" or
                                                       bool(np.all(np.isfinite(data))))
        if inline:
            spec["data"] = data.reshape(-1).tolist()
        else:
            if self._file is None:
                self._file = open(self._partial, "wb")
            padding = (-self._offset) % BUFFER_ALIGNMENT
            if padding:
                self._file.write(b"\0" * padding)
                self._offset += padding
            spec.update(buffer=len(self.segments), byte_offset=self._offset)
            self._file.write(data.data.cast("B"))  # the array's own memoryview, as bytes
            self._offset += data.nbytes
        self.arrays.append(spec)
        return len(self.arrays) - 1

    def publish(self, *, model: dict, layers: list[dict], samples: list[dict],
                epochs: list[dict], generator: str, explain: dict | None = None,
                readable: bool = True) -> Path:
        """Write the document of everything added so far; return its path. Files appear only
        when complete. ``explain`` (format 1.1) describes the epochs' ``explanations``; the
        document is version 1.1 with it, 1.0 without. More arrays may be added afterwards.
        ``readable``: indented JSON with short lists on one line (else compact, several times
        faster: for the exports published while recording, which the last one replaces)."""
        if self._replaced is None:
            self._replaced = _sidecars_of(self.document_path)
        if self._file is not None:  # the open segment is complete: it joins the published ones
            self._file.close()
            self._file = None
            os.replace(self._partial, self.folder / self.buffer_name)
            self.segments.append({"uri": self.buffer_name, "byte_length": self._offset})
            self._offset = 0
        document = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION if explain is not None else BASE_VERSION,
            "generator": generator,
            "model": model,
            "buffers": self.segments or [{"uri": f"{self.name}.bin", "byte_length": 0}],
            "arrays": self.arrays,
            "layers": layers,
            "samples": samples,
            "epochs": epochs,
        }
        if explain is not None:
            document["explain"] = explain
        if not self.segments:  # every array inline: an empty sidecar, as the format asks
            (self.folder / f"{self.name}.bin").write_bytes(b"")
        partial = self.document_path.with_suffix(".partial")
        text = _dump_json(document) if readable else json.dumps(
            document, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        partial.write_text(text, encoding="utf-8")
        # The sidecar segments are complete before the document replaces an older export's:
        # the renames are the only window in which an old document could meet a new buffer.
        os.replace(partial, self.document_path)
        self._forget_replaced({spec["uri"] for spec in document["buffers"]})
        return self.document_path

    def _forget_replaced(self, kept: set[str]) -> None:
        """Remove the extra sidecar segments of the export this one replaced (the same name in
        the same folder), which no document refers to any more."""
        for uri in self._replaced or []:
            if uri not in kept and re.fullmatch(re.escape(self.name) + r"\.\d+\.bin", uri):
                (self.folder / uri).unlink(missing_ok=True)
        self._replaced = []

    def merge_segments(self) -> None:
        """Join the sidecar segments (the published ones and the open one) into one, so that
        the next :meth:`publish` writes an export of two files: each array is copied once,
        its reference follows. The segments go once that document replaces the one naming
        them."""
        parts = [self.folder / spec["uri"] for spec in self.segments]
        if self._file is not None:
            self._file.close()
            self._file = None
            parts.append(self._partial)
        if len(parts) < 2:
            if parts and parts[-1] == self._partial:  # the only segment is the open one
                self._file = open(self._partial, "ab")
            return
        merged = self.folder / f"{self.name}.bin.merging"
        starts = []
        with open(merged, "wb") as out:
            offset = 0
            for part in parts:
                padding = (-offset) % BUFFER_ALIGNMENT
                out.write(b"\0" * padding)
                starts.append(offset + padding)
                with open(part, "rb") as source:
                    offset = starts[-1] + _copy(source, out)
        for spec in self.arrays:
            if "buffer" in spec:
                spec["byte_offset"] += starts[spec["buffer"]]
                spec["buffer"] = 0
        self._replaced = [spec["uri"] for spec in self.segments]
        if parts[-1] == self._partial:
            self._partial.unlink()
        self.segments = []
        os.replace(merged, self._partial)  # the open segment 0: the next publish names it
        self._file = open(self._partial, "ab")
        self._offset = offset

    def abort(self) -> None:
        """Remove the open segment's partial file; published files stay."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._partial.unlink(missing_ok=True)


def _copy(source, out, chunk: int = 1 << 24) -> int:
    """Copy an open file into another, a chunk at a time; the bytes copied."""
    copied = 0
    while data := source.read(chunk):
        out.write(data)
        copied += len(data)
    return copied


def _sidecars_of(document_path: Path) -> list[str]:
    """The sidecar file names an existing export's document lists (none if it does not read)."""
    try:
        document = json.loads(document_path.read_text(encoding="utf-8"))
        return [str(spec["uri"]) for spec in document["buffers"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _dump_json(document: dict) -> str:
    """Readable JSON whose short number lists (shapes, inline data) stay on one line."""
    text = json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False)
    return _collapse_number_lists(text)


def _collapse_number_lists(text: str) -> str:
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("["):
            j = i + 1
            items = []
            while j < len(lines) and _is_scalar_item(lines[j]):
                items.append(lines[j].strip().rstrip(","))
                j += 1
            if j < len(lines) and lines[j].strip() in ("]", "],") and items:
                out.append(line.rstrip() + ", ".join(items) + lines[j].strip())
                i = j + 1
                continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def _is_scalar_item(line: str) -> bool:
    item = line.strip().rstrip(",")
    if item in ("null", "true", "false"):
        return True
    if item.startswith('"') and item.endswith('"') and len(item) < 40:
        return True
    try:
        float(item)
        return True
    except ValueError:
        return False

