"""nnvis layer-export format v1: reader and writer (numpy only, no bpy, no TensorFlow).

An export is a JSON structure document (``<name>.nnvis.json``) plus binary sidecar buffers
(``<name>.bin``) in the same folder. docs/format.md describes it; the JSON Schema lives in
``schema/nnvis-format-1.schema.json`` and is enforced here, followed by the checks a schema
cannot express (array shapes against layers, sidecar bounds, graph order).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import minischema

FORMAT_NAME = "nnvis"
FORMAT_VERSION = "1.0"
SUPPORTED_MAJOR = 1
DOCUMENT_SUFFIX = ".nnvis.json"
BUFFER_ALIGNMENT = 64
INLINE_MAX_ELEMENTS = 16
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64")
_FINITE_CHECK_CHUNK = 1 << 24
SCHEMA_PATH = Path(__file__).with_name("schema") / "nnvis-format-1.schema.json"


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
        where = [f"{Path(self.file).name}"]
        if layer is not None:
            where.append(f"layer {layer!r}")
        if field is not None:
            where.append(f"field {field}")
        super().__init__(f"{': '.join(where)}: {message}")


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

    @property
    def num_samples(self) -> int:
        return len(self.samples)

    @property
    def epoch_numbers(self) -> list[int]:
        return [e.epoch for e in self.epochs]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
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


def _load_json(doc_path: Path) -> dict:
    try:
        size = doc_path.stat().st_size
    except OSError as exc:
        raise ExportFormatError(f"cannot open: {exc.strerror or exc}", file=doc_path) from None
    if not doc_path.is_file():
        raise ExportFormatError("is not a file", file=doc_path)
    if size > MAX_DOCUMENT_BYTES:
        raise ExportFormatError(f"structure document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}",
                                file=doc_path)
    raw = doc_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportFormatError(f"is not valid UTF-8 (byte {exc.start})", file=doc_path) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportFormatError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                                file=doc_path) from None
    except RecursionError:
        raise ExportFormatError("is not valid JSON: nested too deeply", file=doc_path) from None
    if not isinstance(document, dict):
        raise ExportFormatError("top level must be a JSON object", file=doc_path)
    return document


def _major_version(document: dict, doc_path: Path) -> int:
    if document.get("format") != FORMAT_NAME:
        raise ExportFormatError(f"not an nnvis export (field 'format' must be {FORMAT_NAME!r})",
                                file=doc_path, field="format")
    version = document.get("version")
    if not isinstance(version, str) or not version.partition(".")[0].isdigit():
        raise ExportFormatError(f"format version must be a string like '1.0', got {version!r}",
                                file=doc_path, field="version")
    return int(version.partition(".")[0])


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
        try:
            minischema.validate(doc, load_schema())
        except minischema.SchemaViolation as exc:
            raise self.error(exc.message, layer=self._layer_for_path(exc.path),
                             field=exc.path) from None

        buffers = self._open_buffers(doc["buffers"])
        self.arrays = self._make_arrays(doc["arrays"], buffers)
        layers = self._layers(doc["layers"])
        model = doc["model"]
        input_shape = tuple(model["input_shape"])
        samples = self._samples(doc["samples"], input_shape)
        epochs = self._epochs(doc["epochs"], layers, len(samples))
        if self.messages:
            warnings.warn(f"{self.doc_path.name}: " + "; ".join(self.messages), ExportFormatWarning,
                          stacklevel=3)
        return NetworkExport(
            path=self.doc_path, version=doc["version"], generator=doc.get("generator"),
            name=model["name"], frameworks=dict(model.get("frameworks", {})),
            input_shape=input_shape, class_names=model.get("class_names"),
            layers=layers, samples=samples, epochs=epochs, warnings=list(self.messages))

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

    def _open_buffers(self, specs: list[dict]) -> list[np.ndarray]:
        folder_real = Path(os.path.realpath(self.folder))
        buffers = []
        for index, spec in enumerate(specs):
            where = f"buffers[{index}].uri"
            uri = spec["uri"]
            if "\\" in uri or uri.startswith("/") or (len(uri) > 1 and uri[1] == ":") \
                    or os.path.isabs(uri):
                raise self.error(f"sidecar path {uri!r} must be relative to the export's folder",
                                 field=where)
            if ".." in Path(uri).parts or "\x00" in uri:
                raise self.error(f"sidecar path {uri!r} must not leave the export's folder ('..')",
                                 field=where)
            real = Path(os.path.realpath(self.folder / uri))
            if folder_real != real and folder_real not in real.parents:
                raise self.error(f"sidecar path {uri!r} resolves outside the export's folder "
                                 f"(a symbolic link?)", field=where)
            if not real.is_file():
                raise self.error(f"sidecar file {uri!r} is missing", field=where)
            actual = real.stat().st_size
            declared = spec["byte_length"]
            if actual != declared:
                kind = "truncated" if actual < declared else "longer than declared"
                raise self.error(f"sidecar file {uri!r} is {kind}: {actual} bytes on disk, "
                                 f"{declared} declared", field=f"buffers[{index}].byte_length")
            if actual == 0:
                buffers.append(np.zeros(0, dtype=np.uint8))
            else:
                buffers.append(np.memmap(real, dtype=np.uint8, mode="r"))
        return buffers

    def _make_arrays(self, specs: list[dict], buffers: list[np.ndarray]) -> list[np.ndarray]:
        arrays = []
        for index, spec in enumerate(specs):
            where = f"arrays[{index}]"
            dtype = np.dtype(spec["dtype"]).newbyteorder("<")
            shape = tuple(spec["shape"])
            count = math.prod(shape)
            if "data" in spec:
                if "buffer" in spec or "byte_offset" in spec:
                    raise self.error("an array is either inline ('data') or in a buffer, not both",
                                     field=where)
                data = spec["data"]
                if len(data) != count:
                    raise self.error(f"inline data has {len(data)} values, shape {list(shape)} "
                                     f"needs {count}", field=where + ".data")
                values = np.array([math.nan if v is None else v for v in data], dtype=np.float64)
                if dtype.kind != "f" and not np.all(np.isfinite(values) & (values == np.round(values))):
                    raise self.error(f"inline data for dtype {spec['dtype']} must be integers",
                                     field=where + ".data")
                array = values.astype(dtype).reshape(shape)
                array.setflags(write=False)
            else:
                if "buffer" not in spec:
                    raise self.error("array needs 'data' or 'buffer'", field=where)
                buffer_index = spec["buffer"]
                if buffer_index >= len(buffers):
                    raise self.error(f"buffer {buffer_index} does not exist ({len(buffers)} buffers)",
                                     field=where + ".buffer")
                buffer = buffers[buffer_index]
                offset = spec.get("byte_offset", 0)
                nbytes = count * dtype.itemsize
                if offset % dtype.itemsize:
                    raise self.error(f"byte_offset {offset} is not a multiple of the {spec['dtype']} "
                                     f"item size", field=where + ".byte_offset")
                if offset + nbytes > buffer.size:
                    raise self.error(f"array of {nbytes} bytes at offset {offset} runs past the end "
                                     f"of buffer {buffer_index} ({buffer.size} bytes)",
                                     field=where + ".byte_offset")
                array = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset) if count else \
                    np.zeros(shape, dtype=dtype)
            arrays.append(array)
        return arrays

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
        if bad:
            self.messages.append(f"{what} has {bad} NaN/Inf values")

    # -- structure ------------------------------------------------------------------------------

    def _layers(self, specs: list[dict]) -> list[Layer]:
        layers: list[Layer] = []
        names: dict[str, int] = {}
        all_names = {spec["name"] for spec in specs}
        for index, spec in enumerate(specs):
            name = spec["name"]
            if name in names:
                raise self.error("duplicate layer name", layer=name, field=f"layers[{index}].name")
            for inbound in spec["inbound"]:
                if inbound == name:
                    raise self.error("layer lists itself as inbound (a cycle)", layer=name,
                                     field=f"layers[{index}].inbound")
                if inbound not in all_names:
                    raise self.error(f"inbound layer {inbound!r} does not exist", layer=name,
                                     field=f"layers[{index}].inbound")
                if inbound not in names:
                    raise self.error(f"inbound layer {inbound!r} comes later: layers must be in "
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
                                 f"{list(layer.output_shape)} disagree with units={units}",
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
                                 f"{list(layer.output_shape)} disagree with filters={filters}",
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
                raise self.error(f"activations for unknown layer {unknown[0]!r}",
                                 layer=unknown[0], field=f"{where}.activations")
            epochs.append(Epoch(epoch=spec["epoch"], metrics=dict(spec.get("metrics", {})),
                                predictions=predictions, weights=weights, activations=activations))
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


# --------------------------------------------------------------------------------------------
# Writing


class ExportWriter:
    """Streams arrays into one sidecar buffer and writes the structure document at the end.

    >>> writer = ExportWriter(folder, "digits_cnn")
    >>> ref = writer.add_array(np.zeros((4, 8, 8, 3)), dtype="float16")
    >>> writer.finish(model=..., layers=..., samples=..., epochs=...)
    """

    def __init__(self, folder: os.PathLike | str, name: str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.buffer_name = f"{name}.bin"
        self._buffer_path = self.folder / self.buffer_name
        self._partial = self._buffer_path.with_suffix(".bin.partial")
        self._file = open(self._partial, "wb")
        self._offset = 0
        self.arrays: list[dict] = []

    @property
    def document_path(self) -> Path:
        return self.folder / f"{self.name}{DOCUMENT_SUFFIX}"

    def add_array(self, array: Any, dtype: str | None = None) -> int:
        """Store ``array`` (inline when tiny, else in the sidecar) and return its reference."""
        array = np.asarray(array)
        dtype_name = dtype or array.dtype.name
        if dtype_name not in DTYPES:
            raise ValueError(f"dtype {dtype_name} is not allowed in nnvis exports ({DTYPES})")
        target = np.dtype(dtype_name).newbyteorder("<")
        data = np.ascontiguousarray(array, dtype=target)
        spec: dict[str, Any] = {"dtype": dtype_name, "shape": [int(d) for d in data.shape]}
        if data.size <= INLINE_MAX_ELEMENTS:
            spec["data"] = [None if isinstance(v, float) and not math.isfinite(v) else v
                            for v in data.reshape(-1).tolist()]
        else:
            padding = (-self._offset) % BUFFER_ALIGNMENT
            if padding:
                self._file.write(b"\0" * padding)
                self._offset += padding
            spec.update(buffer=0, byte_offset=self._offset)
            self._file.write(memoryview(data).cast("B"))
            self._offset += data.nbytes
        self.arrays.append(spec)
        return len(self.arrays) - 1

    def finish(self, *, model: dict, layers: list[dict], samples: list[dict], epochs: list[dict],
               generator: str) -> Path:
        """Write the document; return its path. Files appear only when complete."""
        self._file.close()
        os.replace(self._partial, self._buffer_path)
        document = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "generator": generator,
            "model": model,
            "buffers": [{"uri": self.buffer_name, "byte_length": self._offset}],
            "arrays": self.arrays,
            "layers": layers,
            "samples": samples,
            "epochs": epochs,
        }
        partial = self.document_path.with_suffix(".partial")
        partial.write_text(_dump_json(document), encoding="utf-8")
        os.replace(partial, self.document_path)
        return self.document_path

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


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

