"""Keras 3 / TensorFlow exporter for nnvis export format v1.

Everything the format needs goes through :class:`nnvis_addon.core.export_format.ExportWriter`;
every export is read back with :func:`~nnvis_addon.core.export_format.read_export` before it is
reported as written. This module only knows Keras: the graph walk, the activation model, the
samples, the checkpoints.

Epoch numbers: epoch 0 is the network before training; epoch ``k`` is the network after ``k``
epochs of training (Keras's ``on_epoch_end(k - 1)``, ``ModelCheckpoint``'s ``{epoch}`` = k).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nnvis_addon.core.export_format import ExportFormatError, ExportWriter, NetworkExport, read_export

from ._version import __version__
from .checkpoints import Checkpoint, list_checkpoints
from .errors import CustomLayerWarning, ExportError, ExportWarning
from .inputs import SampleFiles, check_model_path, read_sample_files

ACTIVATION_DTYPES = ("float16", "float32")
WEIGHT_DTYPE = "float32"
GENERATOR = f"nnvis_export {__version__}"

#: Layer configuration keys that matter for drawing; only the ones a layer has are exported.
CONFIG_KEYS = ("filters", "units", "kernel_size", "strides", "padding", "pool_size", "activation",
               "use_bias", "axis", "rate", "data_format",
               # DepthwiseConv2D/SeparableConv2D, dilated and grouped convolutions
               "depth_multiplier", "dilation_rate", "groups",
               # ReLU, LeakyReLU
               "max_value", "negative_slope", "threshold",
               # Reshape, global pooling, resampling, cropping
               "target_shape", "keepdims", "size", "interpolation", "cropping",
               # Rescaling, Normalization (mean/variance only when given as small constants)
               "scale", "offset", "mean", "variance", "invert")

#: Keys left out when they hold Keras's default (plain convolutions stay as they always were).
CONFIG_DEFAULTS = {"dilation_rate": 1, "groups": 1}

#: Config values that are lists of numbers (Normalization's mean/variance, a Rescaling scale per
#: channel) are exported only up to this many numbers; larger ones stay in the weights or out.
CONFIG_MAX_NUMBERS = 256

#: Variable names kept as they are; any other variable is named after its path's last part.
SHORT_WEIGHT_NAMES = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance",
                      "depthwise_kernel", "pointwise_kernel")

MAX_RANK = 4  # output shapes without the batch axis, as the format's schema allows
FLOAT16_MAX = float(np.finfo(np.float16).max)


def _log(verbose: bool, message: str) -> None:
    if verbose:
        print(f"nnvis: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The functional graph


@dataclass
class GraphLayer:
    """One layer of the model's graph, in topological order."""

    name: str
    layer: Any                 # the Keras layer (an InputLayer for the input)
    type: str                  # Keras class name
    inbound: list[str]         # names of the layers feeding this one
    tensor: Any                # the symbolic output (KerasTensor)
    is_input: bool


def _history(tensor) -> tuple[Any, Any]:
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise ExportError(f"{tensor!r} is not a symbolic Keras tensor of a functional graph")
    operation, node_index = history[0], history[1]
    return operation, operation._inbound_nodes[node_index]


def _model_io(model) -> tuple[list, list]:
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ExportError(f"model {model.name!r} has no functional graph ({exc}); build it with an "
                          f"Input (or call it on data) before exporting") from None
    if not inputs or not outputs:
        raise ExportError(f"model {model.name!r} is not built; give it an Input or call it on data")
    return inputs, outputs


def _build_sequential(model, samples) -> None:
    """Give a Sequential model defined without an Input its graph, from the samples' shape."""
    if not isinstance(model, keras.Sequential):
        return
    try:
        if model.inputs:
            return
    except (AttributeError, ValueError):
        pass
    shape = np.shape(samples)
    if len(shape) < 2:
        return
    try:
        model.build((None, *shape[1:]))
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad shape
        raise ExportError(f"Sequential model {model.name!r} has no Input and cannot be built for "
                          f"samples of shape {tuple(shape[1:])}: {exc}") from None


def model_graph(model) -> list[GraphLayer]:
    """The layers of a Functional or Sequential Keras model in topological order.

    The graph is walked back from ``model.outputs`` through each tensor's Keras history, so it
    follows this model's own graph even when a layer was also used elsewhere. Sequential models
    get their implicit InputLayer as the first record.
    """
    inputs, outputs = _model_io(model)
    if len(inputs) != 1:
        raise ExportError(f"model {model.name!r} has {len(inputs)} inputs; nnvis format v1 "
                          f"records models with exactly one input")
    nodes: dict[int, Any] = {}
    node_of_layer: dict[str, int] = {}
    parents: dict[int, list[int]] = {}
    stack = [_history(t)[1] for t in outputs]
    while stack:
        node = stack.pop()
        if id(node) in nodes:
            continue
        name = node.operation.name
        if name in node_of_layer:
            raise ExportError(f"layer {name!r} is used more than once in model {model.name!r} "
                              f"(a shared layer); nnvis format v1 records one output per layer")
        nodes[id(node)] = node
        node_of_layer[name] = id(node)
        parent_nodes = list(node.parent_nodes)
        parents[id(node)] = [id(p) for p in parent_nodes]
        stack.extend(parent_nodes)

    # Kahn's algorithm, preferring Keras's own layer order among the layers that are ready.
    keras_order = getattr(model, "operations", None) or getattr(model, "_layers", None) \
        or model.layers
    priority = {id(op): i for i, op in enumerate(keras_order)}
    children: dict[int, list[int]] = {key: [] for key in nodes}
    missing = {key: len(set(ps)) for key, ps in parents.items()}
    for key, ps in parents.items():
        for p in set(ps):
            children[p].append(key)
    fallback = len(priority)
    ready = [(priority.get(id(nodes[k].operation), fallback), nodes[k].operation.name, k)
             for k, n in missing.items() if n == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, _, key = heapq.heappop(ready)
        ordered.append(key)
        for child in children[key]:
            missing[child] -= 1
            if missing[child] == 0:
                op = nodes[child].operation
                heapq.heappush(ready, (priority.get(id(op), fallback), op.name, child))
    if len(ordered) != len(nodes):  # pragma: no cover - Keras graphs are acyclic
        raise ExportError(f"model {model.name!r} has a cycle")

    input_node = _history(inputs[0])[1]
    graph = []
    for key in ordered:
        node = nodes[key]
        op = node.operation
        outs = list(node.output_tensors)
        if len(outs) != 1:
            raise ExportError(f"layer {op.name!r} has {len(outs)} outputs; nnvis format v1 records "
                              f"layers with one output")
        is_input = node is input_node
        if not is_input and not node.parent_nodes:
            raise ExportError(f"layer {op.name!r} has no inputs and is not the model input")
        inbound = list(dict.fromkeys(nodes[p].operation.name for p in parents[key]))
        graph.append(GraphLayer(name=op.name, layer=op,
                                type="InputLayer" if is_input else type(op).__name__,
                                inbound=inbound, tensor=outs[0], is_input=is_input))
    if not graph[0].is_input:  # pragma: no cover - the input has no parents, it comes first
        raise ExportError(f"model {model.name!r}: the input is not first in the graph")
    return graph


def layer_config(layer) -> dict:
    """The layer's configuration keys that matter for drawing (:data:`CONFIG_KEYS`), as JSON."""
    try:
        config = layer.get_config()
    except Exception:  # noqa: BLE001 - some layers (TFSMLayer, custom) have no usable config
        return {}
    if not isinstance(config, Mapping):
        return {}
    subset = {}
    for key in CONFIG_KEYS:
        if key in config:
            value = _jsonable(config[key])
            if _count_numbers(value) > CONFIG_MAX_NUMBERS or _is_default(key, value):
                continue
            if value is not None or key == "axis":
                subset[key] = value
    return subset


def _is_default(key: str, value) -> bool:
    if key not in CONFIG_DEFAULTS:
        return False
    values = value if isinstance(value, list) else [value]
    return all(v == CONFIG_DEFAULTS[key] for v in values)


def _count_numbers(value) -> int:
    if isinstance(value, list):
        return sum(_count_numbers(v) for v in value)
    return 1


def is_builtin_layer(layer) -> bool:
    """Whether ``layer`` is one of Keras's own layer classes (not a user-defined subclass)."""
    module = type(layer).__module__ or ""
    return module == "keras" or module.startswith(("keras.", "tf_keras.", "tensorflow."))


def _warn_custom_layers(graph: list[GraphLayer]) -> None:
    for g in graph:
        if g.is_input or is_builtin_layer(g.layer):
            continue
        weights = len(getattr(g.layer, "weights", []) or [])
        warnings.warn(
            f"layer {g.name!r} is a custom layer class {g.type} "
            f"({type(g.layer).__module__}.{type(g.layer).__qualname__}); it is exported with its "
            f"output{' and its ' + str(weights) + ' weights' if weights else ''}, and nnvis will "
            f"draw it as a generic block", CustomLayerWarning, stacklevel=4)


def _jsonable(value):
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (tuple, list)):
        items = [_jsonable(v) for v in value]
        return items
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, dict):  # a serialized object such as a custom activation
        name = value.get("config", {}).get("name") if isinstance(value.get("config"), dict) else None
        return str(name or value.get("class_name") or value)
    return str(value)


#: Keras 3 names some weights differently from the format's short names: {class: {keras: nnvis}}.
WEIGHT_RENAMES = {
    "DepthwiseConv1D": {"kernel": "depthwise_kernel"},
    "DepthwiseConv2D": {"kernel": "depthwise_kernel"},
}


def _weight_names(layer, variables) -> list[str]:
    renames = WEIGHT_RENAMES.get(type(layer).__name__, {}) if is_builtin_layer(layer) else {}
    names = []
    for v in variables:
        name = str(getattr(v, "name", "") or "").split(":")[0]
        if name not in SHORT_WEIGHT_NAMES:
            name = str(getattr(v, "path", name)).split("/")[-1].split(":")[0] or name
        name = renames.get(name, name)
        names.append(name or "weight")
    if len(set(names)) == len(names):
        return names
    # Nested models: "dense/kernel", "dense_1/kernel" (the path below this layer).
    prefix = f"{layer.name}/"
    names = []
    for v in variables:
        path = str(getattr(v, "path", v.name)).split(":")[0]
        names.append(path.split(prefix, 1)[1] if prefix in path else path)
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}_{count}")
    return unique


def _check_data_format(graph: list[GraphLayer]) -> None:
    for g in graph:
        try:
            data_format = g.layer.get_config().get("data_format")
        except Exception:  # noqa: BLE001
            continue
        if data_format == "channels_first":
            raise ExportError(f"layer {g.name!r} uses data_format='channels_first'; nnvis format v1 "
                              f"stores channels-last activations (rebuild the model channels-last)")


# --------------------------------------------------------------------------------------------
# Activations: one multi-output model, one predict call


class ActivationProbe:
    """A ``keras.Model`` from the model's input to every layer's output, sharing its weights.

    The activations are cast to ``dtype`` inside the model (TensorFlow's cast is multi-threaded
    and halves what comes back for float16); the model's first output also comes back as float32
    for the predictions.

    TensorFlow refuses layer names outside ASCII letters, digits and ``_ . - / >`` (``'conv 1'``,
    ``'faltung_ä'``) as name scopes of a compiled graph, so such a model cannot ``predict``; it
    still runs eagerly, and the probe falls back to that (:attr:`eager`).
    """

    def __init__(self, model, graph: list[GraphLayer], dtype: str = "float32",
                 verbose: bool = True):
        self.graph = graph
        self.dtype = dtype
        self.verbose = verbose
        self.eager = False
        self.computed = [g for g in graph if not g.is_input]
        if not self.computed:
            raise ExportError(f"model {model.name!r} has no layers besides its input")
        outputs = [g.tensor if str(g.tensor.dtype) == dtype else keras.ops.cast(g.tensor, dtype)
                   for g in self.computed]
        output_tensor = _model_io(model)[1][0]
        outputs.append(keras.ops.cast(output_tensor, "float32"))
        # The probe's own name is the graph's root scope: kept to characters TensorFlow allows.
        self.model = keras.Model(inputs=graph[0].tensor, outputs=outputs,
                                 name=f"nnvis_activations_{_file_name(model.name)}")

    def run(self, samples: np.ndarray, batch_size: int = 32
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every non-input layer's activations for ``samples``, shape (S, *output_shape), and
        the model's (first) output as float32: one call over all samples."""
        outputs = None
        if not self.eager:
            try:
                outputs = self._predict(samples, batch_size)
            except ValueError as exc:
                refused = _refused_scope_name(exc)
                if refused is None:
                    raise
                self.eager = True
                _log(self.verbose, f"note: layer {refused!r} has a name TensorFlow refuses in a "
                                   f"compiled graph (only ASCII letters, digits and _ . - / > "
                                   f"are allowed); computing the activations eagerly instead")
        if outputs is None:
            outputs = self._call_eagerly(samples, batch_size)
        activations = {g.name: out for g, out in zip(self.computed, outputs)}
        return activations, outputs[-1]

    def _predict(self, samples: np.ndarray, batch_size: int) -> list[np.ndarray]:
        if samples.shape[0] <= batch_size:
            outputs = self.model.predict_on_batch(samples)
        else:
            outputs = self.model.predict(samples, batch_size=batch_size, verbose=0)
        return [np.asarray(out) for out in outputs]

    def _call_eagerly(self, samples: np.ndarray, batch_size: int) -> list[np.ndarray]:
        batches = []
        for start in range(0, samples.shape[0], batch_size):
            outputs = self.model(samples[start:start + batch_size], training=False)
            batches.append([keras.ops.convert_to_numpy(out) for out in outputs])
        return [np.concatenate(parts) for parts in zip(*batches)]


_REFUSED_SCOPE = re.compile(r"'(.*?)' is not a valid (?:root )?scope name")


def _refused_scope_name(exc: BaseException) -> str | None:
    """The layer name in TensorFlow's "'<name>' is not a valid scope name" error, else None."""
    match = _REFUSED_SCOPE.search(str(exc))
    return match.group(1) if match else None


# --------------------------------------------------------------------------------------------
# Samples, labels, names


def _input_spec(model) -> tuple[tuple[int | None, ...], str]:
    inputs, _ = _model_io(model)
    if len(inputs) != 1:
        raise ExportError(f"model {model.name!r} has {len(inputs)} inputs; nnvis format v1 "
                          f"records models with exactly one input")
    shape = tuple(None if d is None else int(d) for d in inputs[0].shape[1:])
    dtype = str(getattr(inputs[0], "dtype", "float32"))
    return shape, dtype


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1
                                                                           else "") + ")"


def prepare_samples(samples, input_shape: Sequence[int | None], dtype: str = "float32") -> np.ndarray:
    """``samples`` as an array of shape (S, *input_shape) in the model's input dtype.

    Accepts one sample (shape == input_shape) or a batch, and a batch of single-channel images
    without their channel axis when the model takes (H, W, 1).
    """
    array = np.asarray(samples)
    if array.dtype.kind not in "biuf":
        raise ExportError(f"samples must be a numeric array, got dtype {array.dtype}")
    input_shape = tuple(input_shape)
    rank = len(input_shape)

    def fits(shape) -> bool:
        return len(shape) == rank and all(w is None or w == d for w, d in zip(input_shape, shape))

    if array.ndim == rank and fits(array.shape):
        array = array[np.newaxis]
    elif array.ndim == rank and input_shape[-1] == 1 and fits(array.shape[1:] + (1,)):
        array = array[..., np.newaxis]
    if array.ndim != rank + 1 or not fits(array.shape[1:]):
        raise ExportError(f"samples have shape {_shape_text(array.shape)}, so one sample is "
                          f"{_shape_text(array.shape[1:])}; the model expects samples of shape "
                          f"{_shape_text(input_shape)} (a batch: (S, {_shape_text(input_shape)[1:]})")
    if array.shape[0] == 0:
        raise ExportError("no samples given: at least one is needed")
    if any(d == 0 for d in array.shape[1:]):
        raise ExportError(f"samples of shape {_shape_text(array.shape[1:])} are empty")
    target = dtype if dtype in ("float16", "float32", "float64", "int8", "uint8", "int16", "int32",
                                "int64") else "float32"
    return np.ascontiguousarray(array, dtype=target)


def prepare_labels(labels, count: int) -> list[int | None]:
    if labels is None:
        return [None] * count
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[0] == count and array.shape[1] > 1:  # one-hot
        array = np.argmax(array, axis=1)
    array = array.reshape(-1) if array.ndim == 2 and array.shape[1] == 1 else array
    if array.ndim != 1 or array.shape[0] != count:
        raise ExportError(f"labels have shape {_shape_text(array.shape)}; expected one label per "
                          f"sample ({count},)")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array) & (array == np.round(array))):
            raise ExportError("labels must be class numbers (integers)")
    elif array.dtype.kind not in "biu":
        raise ExportError(f"labels must be class numbers (integers), got dtype {array.dtype}")
    return [int(v) for v in array]


def _file_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
    return cleaned[:200]


# --------------------------------------------------------------------------------------------
# One export, written epoch by epoch


def _frameworks() -> dict[str, str]:
    found = {"keras": keras.__version__, "backend": keras.backend.backend(),
             "numpy": np.__version__}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        found["tensorflow"] = tf.__version__
    return found


def _is_classifier_output(shape: tuple[int, ...]) -> bool:
    return len(shape) == 1


def _classes(scores: np.ndarray, output_layer) -> list[int]:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 1:
        activation = layer_config(output_layer).get("activation")
        threshold = 0.5 if activation == "sigmoid" else 0.0
        return [int(v) for v in (scores[:, 0] >= threshold)]
    return [int(v) for v in np.argmax(np.nan_to_num(scores, nan=-np.inf), axis=1)]


def _metrics(logs: Mapping | None) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {}
    for key, value in (logs or {}).items():
        try:
            number = float(np.asarray(value).reshape(()))
        except (TypeError, ValueError):
            continue
        metrics[str(key)] = number if math.isfinite(number) else None
    return metrics


class ExportSession:
    """Writes one export: samples once, then each recorded epoch's weights and activations.

    Arrays go to the sidecar as soon as an epoch is recorded; only the small structure document
    (array references, metrics, predictions) and the latest epoch's output scores stay in memory.

    ``continue_from``: an export this session extends (a second ``fit`` with the same
    :class:`EpochRecorder`): its epochs are copied into the new files before the first new one,
    and new epoch numbers must come after its last.
    """

    def __init__(self, model, samples, out_dir: os.PathLike | str, *, labels=None,
                 name: str | None = None, activation_dtype: str = "float16",
                 class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True, continue_from: os.PathLike | str | None = None):
        if activation_dtype not in ACTIVATION_DTYPES:
            raise ExportError(f"activation dtype must be one of {', '.join(ACTIVATION_DTYPES)}, "
                              f"got {activation_dtype!r}")
        self.model = model
        _build_sequential(model, samples)
        self.graph = model_graph(model)
        _check_data_format(self.graph)
        _warn_custom_layers(self.graph)
        input_shape, input_dtype = _input_spec(model)
        self.samples = prepare_samples(samples, input_shape, input_dtype)
        count = self.samples.shape[0]
        self.labels = prepare_labels(labels, count)
        if sample_names is not None and len(sample_names) != count:
            raise ExportError(f"{len(sample_names)} sample names for {count} samples")
        self.sample_names = [str(n) for n in sample_names] if sample_names is not None else \
            [f"sample {i}" for i in range(count)]
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.out_dir = Path(out_dir)
        self.model_name = (name or model.name or "model")[:256]
        self.file_name = _file_name(self.model_name)
        self.activation_dtype = activation_dtype
        self.batch_size = int(batch_size)
        self.verbose = verbose
        self.probe = ActivationProbe(model, self.graph, activation_dtype, verbose)
        output_node = _history(_model_io(model)[1][0])[1]
        self.output_layer = output_node.operation.name
        self.writer: ExportWriter | None = None
        self.layers: list[dict] = []
        self.weighted: dict[str, list] = {}
        self.epochs: list[dict] = []
        self.input_refs: list[int] = []
        self.samples_ref: int | None = None
        self.last_scores: np.ndarray | None = None
        self.bytes_written = 0
        self.failed = False
        self.started = time.perf_counter()
        self.new_epochs = 0
        self.earlier: NetworkExport | None = None
        if continue_from is not None:
            self.earlier = self._earlier_export(Path(continue_from))

    def _earlier_export(self, path: Path) -> NetworkExport | None:
        """The export to extend, or None (with a warning) when it is gone or does not match."""
        try:
            earlier = read_export(path, check_finite=False)
        except ExportFormatError as exc:
            warnings.warn(f"cannot add to the earlier export ({exc}); writing a new one",
                          ExportWarning, stacklevel=4)
            return None
        names = [g.name for g in self.graph]
        if [layer.name for layer in earlier.layers] != names or \
                earlier.num_samples != self.samples.shape[0] or \
                tuple(earlier.input_shape) != tuple(self.samples.shape[1:]):
            warnings.warn(f"the earlier export {path.name!r} has other layers or samples than "
                          f"model {self.model.name!r} now; writing a new one", ExportWarning,
                          stacklevel=4)
            return None
        return earlier

    @property
    def last_epoch(self) -> int | None:
        """The last epoch number recorded (or in the export being extended), None if none."""
        if self.epochs:
            return self.epochs[-1]["epoch"]
        return self.earlier.epoch_numbers[-1] if self.earlier is not None else None

    # -- recording ---------------------------------------------------------------------------

    def _add(self, array: np.ndarray, dtype: str) -> int:
        array = np.asarray(array)
        ref = self.writer.add_array(array, dtype=dtype)
        if array.ndim == 0 and self.writer.arrays[ref]["shape"] != []:
            # A scalar weight (Normalization's ``count``): ExportWriter.add_array stores 0-d
            # arrays as shape [1] (np.ascontiguousarray returns at least 1-d); the format allows
            # shape [] (one element) and the layer declares [], so record it as such.
            self.writer.arrays[ref]["shape"] = []
        self.bytes_written += int(array.size) * np.dtype(dtype).itemsize
        return ref

    def _start(self, activations: dict[str, np.ndarray]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = ExportWriter(self.out_dir, self.file_name)
        for i in range(self.samples.shape[0]):
            self.input_refs.append(self._add(self.samples[i], self.samples.dtype.name))
        self.samples_ref = self._add(self.samples, self.samples.dtype.name)
        for g in self.graph:
            shape = tuple(self.samples.shape[1:]) if g.is_input else \
                tuple(int(d) for d in activations[g.name].shape[1:])
            if not 1 <= len(shape) <= MAX_RANK or min(shape) < 1:
                raise ExportError(f"layer {g.name!r} has output shape {_shape_text(shape)} per "
                                  f"sample; nnvis format v1 records 1 to {MAX_RANK} axes of size "
                                  f">= 1 (without the batch axis)")
            record: dict[str, Any] = {"name": g.name, "type": g.type,
                                      "output_shape": list(shape), "inbound": g.inbound}
            config = {} if g.is_input else layer_config(g.layer)
            if config:
                record["config"] = config
            variables = [] if g.is_input else list(g.layer.weights)
            if variables:
                names = _weight_names(g.layer, variables)
                record["weights"] = [{"name": n, "shape": [int(d) for d in v.shape]}
                                     for n, v in zip(names, variables)]
                self.weighted[g.name] = variables
            try:
                params = 0 if g.is_input else int(g.layer.count_params())
            except Exception:  # noqa: BLE001 - unbuilt or exotic layers
                params = sum(math.prod(v.shape) for v in variables)
            record["params"] = params
            self.layers.append(record)

    def record(self, epoch: int, metrics: Mapping | None = None) -> None:
        """Compute and write the model's current state as epoch number ``epoch``.

        On any error the partial sidecar is removed and the session cannot be finished.
        """
        if self.failed:
            raise ExportError("this export failed earlier and was removed; start a new one")
        try:
            self._record(int(epoch), metrics)
        except BaseException:
            self.failed = True
            self.abort()
            raise

    def _record(self, epoch: int, metrics: Mapping | None) -> None:
        if epoch < 0:
            raise ExportError(f"epoch numbers start at 0, got {epoch}")
        if self.last_epoch is not None and epoch <= self.last_epoch:
            raise ExportError(f"epoch {epoch} recorded after epoch {self.last_epoch}: "
                              f"epoch numbers must increase")
        t0 = time.perf_counter()
        activations, scores = self.probe.run(self.samples, self.batch_size)
        t_predict = time.perf_counter() - t0
        if self.writer is None:
            self._start(activations)
            self._copy_earlier_epochs()
        refs: dict[str, int] = {}
        for record, g in zip(self.layers, self.graph):
            if g.is_input:
                refs[g.name] = self.samples_ref
                continue
            array = activations.pop(g.name)
            if list(array.shape[1:]) != record["output_shape"] or array.shape[0] != len(self.labels):
                raise ExportError(f"layer {g.name!r} changed its output shape to "
                                  f"{_shape_text(array.shape[1:])} at epoch {epoch}")
            if self.activation_dtype == "float16":
                overflow = int(np.count_nonzero(np.isinf(array)))
                if overflow:
                    _log(self.verbose, f"warning: layer {g.name!r} at epoch {epoch} has {overflow} "
                                       f"infinite values (beyond float16's range of +-{FLOAT16_MAX:g}"
                                       f"?); export with activation dtype float32")
            refs[g.name] = self._add(array, self.activation_dtype)
            del array
        if _is_classifier_output(tuple(scores.shape[1:])):
            self.last_scores = scores
        weights: dict[str, list[int]] = {}
        for record in self.layers:
            variables = self.weighted.get(record["name"])
            if not variables:
                continue
            arrays = [np.asarray(v.numpy(), dtype=np.float32) for v in variables]
            for spec, array in zip(record["weights"], arrays):
                if list(array.shape) != spec["shape"]:
                    raise ExportError(f"layer {record['name']!r} weight {spec['name']!r} changed "
                                      f"shape to {list(array.shape)} at epoch {epoch}")
            weights[record["name"]] = [self._add(a, WEIGHT_DTYPE) for a in arrays]
        entry: dict[str, Any] = {"epoch": epoch}
        metrics = _metrics(metrics)
        if metrics:
            entry["metrics"] = metrics
        if self.last_scores is not None:
            entry["predictions"] = _classes(self.last_scores, self._layer(self.output_layer))
        entry["weights"] = weights
        entry["activations"] = refs
        self.epochs.append(entry)
        self.new_epochs += 1
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if v is not None)
        _log(self.verbose, f"epoch {epoch}: {len(self.layers)} layers x {len(self.labels)} samples "
                           f"({len(weights)} with weights), predict {t_predict:.2f} s, "
                           f"{self.bytes_written / 1e6:.2f} MB written"
                           + (f"; {shown}" if shown else ""))

    def _layer(self, name: str):
        return next(g.layer for g in self.graph if g.name == name)

    def _copy_earlier_epochs(self) -> None:
        """The epochs of the export being extended, copied into this session's files."""
        if self.earlier is None:
            return
        earlier, self.earlier = self.earlier, None  # its memory maps close once copied
        for epoch in earlier.epochs:
            entry: dict[str, Any] = {"epoch": epoch.epoch}
            if epoch.metrics:
                entry["metrics"] = dict(epoch.metrics)
            if epoch.predictions is not None:
                entry["predictions"] = list(epoch.predictions)
            entry["weights"] = {layer: [self._add(w, WEIGHT_DTYPE) for w in arrays]
                                for layer, arrays in epoch.weights.items()}
            entry["activations"] = {
                g.name: self.samples_ref if g.is_input else
                self._add(epoch.activations[g.name], self.activation_dtype) for g in self.graph}
            self.epochs.append(entry)

    # -- finishing ---------------------------------------------------------------------------

    def finish(self) -> Path:
        """Write the structure document, read the export back to validate it, return its path."""
        if self.failed:
            raise ExportError("this export failed earlier and was removed; start a new one")
        if self.writer is None:
            raise ExportError("nothing to write: no epoch was recorded")
        try:
            score_refs = []
            if self.last_scores is not None:
                score_refs = [self._add(self.last_scores[i], "float32")
                              for i in range(self.last_scores.shape[0])]
                classes = self.epochs[-1]["predictions"]
            samples = []
            for i, ref in enumerate(self.input_refs):
                sample: dict[str, Any] = {"name": self.sample_names[i], "input": ref,
                                          "label": self.labels[i]}
                if score_refs:
                    sample["prediction"] = {"class": classes[i], "scores": score_refs[i]}
                samples.append(sample)
            model: dict[str, Any] = {"name": self.model_name, "frameworks": _frameworks(),
                                     "input_shape": list(self.samples.shape[1:])}
            if self.class_names is not None:
                model["class_names"] = self.class_names
            path = self.writer.finish(model=model, layers=self.layers, samples=samples,
                                      epochs=self.epochs, generator=GENERATOR)
        except BaseException:
            self.abort()
            raise
        try:
            export = read_export(path)
        except ExportFormatError as exc:
            raise ExportError(f"the export just written does not read back: {exc}") from exc
        json_size = path.stat().st_size
        bin_size = (path.parent / f"{self.file_name}.bin").stat().st_size
        _log(self.verbose, f"wrote {path} ({len(export.layers)} layers, {export.num_samples} "
                           f"samples, {len(export.epochs)} epochs; {json_size / 1e3:.1f} kB "
                           f"structure + {bin_size / 1e6:.2f} MB arrays) in "
                           f"{time.perf_counter() - self.started:.1f} s")
        self.writer = None
        return path

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


# --------------------------------------------------------------------------------------------
# Public entry points


class EpochRecorder(keras.callbacks.Callback):
    """Records the network before training and after every epoch; writes one export at the end.

    ``samples``: the inputs to record (S, *input_shape), e.g. a few test images.
    ``labels``: their classes (or one-hot rows), optional. The export lands in ``out_dir`` as
    ``<name>.nnvis.json`` + ``<name>.bin`` (``name`` defaults to the model's name); its path is
    ``export_path`` after training. Arrays are written after each epoch, not kept in memory.

    Epoch numbers are the ones Keras passes: the network before ``fit``'s first epoch ``e`` is
    epoch ``e`` (0, or ``initial_epoch``), after Keras's epoch ``e`` it is epoch ``e + 1``.
    Another ``fit`` with the same recorder adds to the same export: ``fit(initial_epoch=k)``
    continues after the ``k`` epochs recorded; a ``fit`` that starts again at epoch 0 is numbered
    on after the last recorded epoch, with a warning.
    """

    def __init__(self, samples, out_dir: os.PathLike | str, labels=None, name: str | None = None,
                 activation_dtype: str = "float16", *, class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True):
        super().__init__()
        if activation_dtype not in ACTIVATION_DTYPES:
            raise ExportError(f"activation dtype must be one of {', '.join(ACTIVATION_DTYPES)}, "
                              f"got {activation_dtype!r}")
        self.samples = np.asarray(samples)
        self.out_dir = Path(out_dir)
        self.labels = labels
        self.name = name
        self.activation_dtype = activation_dtype
        self.class_names = class_names
        self.sample_names = sample_names
        self.batch_size = batch_size
        self.verbose = verbose
        self.export_path: Path | None = None
        self._session: ExportSession | None = None
        self._fit_started = False   # the current fit has not run its first epoch yet
        self._epoch_shift = 0       # added to Keras's numbers when a fit restarted at 0

    def on_train_begin(self, logs=None):
        if self._session is not None:  # a fit that raised never reached on_train_end
            self._session.abort()
        self._session = ExportSession(
            self.model, self.samples, self.out_dir, labels=self.labels, name=self.name,
            activation_dtype=self.activation_dtype, class_names=self.class_names,
            sample_names=self.sample_names, batch_size=self.batch_size, verbose=self.verbose,
            continue_from=self.export_path)
        self._fit_started = True
        self._epoch_shift = 0

    def on_epoch_begin(self, epoch, logs=None):
        if not self._fit_started or self._session is None:
            return
        self._fit_started = False
        last = self._session.last_epoch
        if last is None or epoch > last:
            self._session.record(epoch)  # the network before this fit trains it
        elif epoch < last:
            self._epoch_shift = last - epoch
            warnings.warn(f"fit() started at epoch {epoch} but this recorder already has epochs "
                          f"up to {last}: recording this fit's epochs as {last + 1}, "
                          f"{last + 2}, ... (pass initial_epoch={last} to fit to number them "
                          f"yourself)", ExportWarning, stacklevel=2)
        # epoch == last: the network is where the earlier fit left it, which is recorded

    def on_epoch_end(self, epoch, logs=None):
        if self._session is not None:
            self._session.record(epoch + 1 + self._epoch_shift, logs)

    def on_train_end(self, logs=None):
        if self._session is None:
            return
        session, self._session = self._session, None
        if session.new_epochs == 0 and session.last_epoch is not None:
            session.abort()  # fit ran no epoch: the earlier export stays as it is
            return
        if session.new_epochs == 0:
            session.record(0)  # fit ran no epoch and nothing was recorded: the network as it is
        self.export_path = session.finish()


def export_model(model, samples, out_dir: os.PathLike | str, labels=None, name: str | None = None,
                 activation_dtype: str = "float16", *, epoch: int = 0,
                 metrics: Mapping[str, float] | None = None,
                 class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True) -> Path:
    """Export a (trained) model as one epoch record; return the structure document's path."""
    session = ExportSession(model, samples, out_dir, labels=labels, name=name,
                            activation_dtype=activation_dtype, class_names=class_names,
                            sample_names=sample_names, batch_size=batch_size, verbose=verbose)
    try:
        session.record(epoch, metrics)
    except BaseException:
        session.abort()
        raise
    return session.finish()


def _restore_tf_checkpoint(model, checkpoint: Checkpoint) -> None:
    import tensorflow as tf

    prefix = checkpoint.path
    try:
        saved_shapes = dict(tf.train.list_variables(str(prefix)))
    except Exception as exc:  # noqa: BLE001 - tf raises many kinds for a broken checkpoint
        raise ExportError(f"cannot read TensorFlow checkpoint {prefix.name!r}: "
                          f"{_first_line(exc)}") from None
    roots = list(dict.fromkeys(n.split("/")[0] for n in saved_shapes if "/" in n
                               and not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH",
                                                     "save_counter"))))
    roots.sort(key=lambda r: (r not in ("model", "net", "network"), r))
    for root in roots:
        # A checkpoint of another architecture is found before restoring: a failed restore
        # stays referenced by the model and logs every unrestored value when it is deleted.
        for path, variable in _checkpoint_variables(tf, root, model):
            saved = saved_shapes.get(f"{path}/.ATTRIBUTES/VARIABLE_VALUE")
            if saved is not None and tuple(saved) != tuple(variable.shape):
                raise _shape_mismatch(model, checkpoint, str(variable.path),
                                      tuple(variable.shape), tuple(saved))
        try:
            status = tf.train.Checkpoint(**{root: model}).read(str(prefix))
        except Exception as exc:  # noqa: BLE001 - tf raises many kinds for a broken checkpoint
            raise _checkpoint_error(model, checkpoint, exc) from None
        try:
            status.assert_existing_objects_matched()
        except AssertionError:
            status.expect_partial()
            continue
        status.expect_partial()  # the optimizer's slots may be in there too
        return
    raise ExportError(f"TensorFlow checkpoint {prefix.name!r} does not hold this model's weights "
                      f"(tried tf.train.Checkpoint keys {roots})")


def _checkpoint_variables(tf, root: str, model) -> list[tuple[str, Any]]:
    """(checkpoint key, variable) of every model variable, keyed as ``tf.train.Checkpoint(
    **{root: model})`` writes them (``model/_operations/1/_kernel``)."""
    checkpoint = tf.train.Checkpoint(**{root: model})  # the view holds only a weak reference
    view = tf.train.TrackableView(checkpoint)
    found, seen, queue = [], set(), [(checkpoint, "")]
    for node, path in queue:  # breadth first: the model's layers in order, as the message wants
        for name, child in view.children(node).items():
            if id(child) in seen:
                continue
            seen.add(id(child))
            child_path = f"{path}/{name}" if path else name
            if isinstance(child, (keras.Variable, tf.Variable)):
                found.append((child_path, child))
            else:
                queue.append((child, child_path))
    return found


@contextlib.contextmanager
def _keras_warnings_held_back():
    """Hold back Keras's warnings while a checkpoint loads: on a mismatch they are several
    "Skipping ..." lines that bury the one line :func:`_checkpoint_error` makes of the error.
    The warnings of a load that succeeds are shown as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)


def _load_checkpoint(model, checkpoint: Checkpoint) -> None:
    if checkpoint.kind == "tf":
        _restore_tf_checkpoint(model, checkpoint)
        return
    with _keras_warnings_held_back():
        try:
            model.load_weights(str(checkpoint.path))
        except Exception as exc:  # noqa: BLE001 - Keras raises ValueError, KeyError, OSError...
            raise _checkpoint_error(model, checkpoint, exc) from None


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# Keras: "... variable.shape=(144, 32), Received: value.shape=(144, 16). Target variable:
# <Variable path=dense1/kernel, ..." (the rest of that message prints the variable's values)
_KERAS_SHAPE_MISMATCH = re.compile(r"variable\.shape=(\([^)]*\)), Received: value\.shape="
                                   r"(\([^)]*\))\. Target variable: <Variable path=([^,>\s]+)")


def _first_line(exc: BaseException) -> str:
    text = _ANSI_ESCAPE.sub("", str(exc))
    return next((line.strip() for line in text.splitlines() if line.strip()),
                type(exc).__name__)


def _checkpoint_error(model, checkpoint: Checkpoint, exc: BaseException) -> ExportError:
    """One line for a checkpoint that does not load: for Keras's shape mismatch (a checkpoint of
    another architecture; its message goes on to print the variable's values) the layer, the
    weight and both shapes, else the error's first line."""
    match = _KERAS_SHAPE_MISMATCH.search(_ANSI_ESCAPE.sub("", str(exc)))
    if match is None:
        return ExportError(f"cannot load checkpoint {checkpoint.path.name!r} into model "
                           f"{model.name!r}: {_first_line(exc)}")
    model_shape, saved_shape, variable = match.groups()
    return _shape_mismatch(model, checkpoint, variable, model_shape, saved_shape)


def _shape_mismatch(model, checkpoint: Checkpoint, variable_path: str, model_shape,
                    saved_shape) -> ExportError:
    layer, weight = _variable_owner(model, variable_path)
    return ExportError(f"checkpoint {checkpoint.path.name!r} does not fit model {model.name!r}: "
                       f"layer {layer!r} {weight} has shape {_tuple_text(model_shape)} in the "
                       f"model but {_tuple_text(saved_shape)} in the checkpoint (saved from "
                       f"another architecture?)")


def _tuple_text(shape) -> str:
    """A shape as Python writes a tuple, whether it came as a tuple or as Keras's text."""
    return shape if isinstance(shape, str) else str(tuple(int(d) for d in shape))


def _variable_owner(model, variable_path: str) -> tuple[str, str]:
    """The model's layer holding the variable at ``variable_path`` and the weight's name there
    (as the export names it)."""
    for layer in model.layers:
        variables = list(layer.weights)
        for variable, name in zip(variables, _weight_names(layer, variables)):
            if str(getattr(variable, "path", "")).split(":")[0] == variable_path:
                return layer.name, name
    layer, _, weight = variable_path.rpartition("/")
    return layer or variable_path, weight


def export_checkpoints(model, checkpoint_dir: os.PathLike | str, samples, out_dir: os.PathLike | str,
                       labels=None, name: str | None = None, activation_dtype: str = "float16", *,
                       metrics: Mapping[int, Mapping[str, float]] | None = None,
                       class_names: Sequence[str] | None = None,
                       sample_names: Sequence[str] | None = None, batch_size: int = 32,
                       verbose: bool = True) -> Path:
    """One export with an epoch per checkpoint in ``checkpoint_dir``.

    ``model``: a model file (.keras/.h5, or a SavedModel folder) or a ``keras.Model``; each
    checkpoint's weights are loaded into it in turn. ``metrics``: optional {epoch: {name: value}},
    e.g. from :func:`nnvis_export.read_metrics_log` (a CSVLogger file or a History JSON).
    """
    if not isinstance(model, keras.Model):
        model = load_model(model)
    checkpoints = list_checkpoints(checkpoint_dir)
    _log(verbose, f"{len(checkpoints)} checkpoints: epochs "
                  f"{', '.join(str(c.epoch) for c in checkpoints)}")
    session = ExportSession(model, samples, out_dir, labels=labels, name=name,
                            activation_dtype=activation_dtype, class_names=class_names,
                            sample_names=sample_names, batch_size=batch_size, verbose=verbose)
    try:
        for checkpoint in checkpoints:
            _load_checkpoint(model, checkpoint)
            session.record(checkpoint.epoch, (metrics or {}).get(checkpoint.epoch))
    except BaseException:
        session.abort()
        raise
    return session.finish()


# --------------------------------------------------------------------------------------------
# Loading models and samples (the CLI's inputs)


def load_model(path: os.PathLike | str, *, safe_mode: bool = True, verbose: bool = True):
    """Load a ``.keras``/``.h5`` model or wrap a SavedModel folder.

    ``safe_mode=True`` (Keras's own safe mode) refuses Python code stored in the file (Lambda
    layers), because loading it would run that code; pass ``safe_mode=False`` only for files
    you trust.
    """
    path = check_model_path(path)
    if path.is_dir():
        return _load_saved_model(path, verbose)
    try:
        return keras.models.load_model(path, safe_mode=safe_mode, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        if safe_mode and "safe_mode" in str(exc):
            raise ExportError(_code_refused_message(path)) from None
        raise ExportError(f"cannot load model {path.name!r}: {exc}") from None


def _code_refused_message(path: Path) -> str:
    names = _lambda_layer_names(path)
    which = (f"layer{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)} "
             f"(Lambda)" if names else "a layer (Lambda)")
    return (f"cannot load model {path.name!r}: {which} holds Python code, which Keras's safe mode "
            f"refuses because loading it runs code stored in the file. If you trust the file: "
            f"nnvis-export --unsafe-load-code, or from Python "
            f"nnvis_export.load_model(path, safe_mode=False) and pass the model to export_model")


def _lambda_layer_names(path: Path) -> list[str]:
    """The Lambda layers named in a saved model's configuration (.keras or .h5); [] when the
    configuration cannot be read (the message then names no layer)."""
    import json
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        else:
            import h5py

            with h5py.File(path, "r") as file:
                raw = file.attrs.get("model_config")
                config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:  # noqa: BLE001 - only used to improve a message; Keras read the file
        return []
    names, stack = [], [config]
    while stack:  # iterative: a hostile file's nesting cannot exhaust the Python stack
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda" and isinstance(node.get("config"), dict):
                names.append(str(node["config"].get("name", "?")))
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return list(dict.fromkeys(names))


def _load_saved_model(path: Path, verbose: bool = True):
    """A SavedModel's serving function as a one-layer Keras model (its inner layers are opaque)."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"cannot load SavedModel {path.name!r}: {exc}") from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    endpoint = "serving_default" if "serving_default" in signatures else \
        (next(iter(signatures)) if len(signatures) == 1 else None)
    if endpoint is None:
        raise ExportError(f"SavedModel {path.name!r} has no serving_default signature; export it "
                          f"from Keras with model.export() or save it as .keras")
    _, kwargs = signatures[endpoint].structured_input_signature
    if len(kwargs) != 1:
        raise ExportError(f"SavedModel {path.name!r} signature {endpoint!r} takes {len(kwargs)} "
                          f"inputs; nnvis format v1 records models with exactly one input")
    input_name, spec = next(iter(kwargs.items()))
    if spec.shape.rank is None or spec.shape.rank < 2:
        raise ExportError(f"SavedModel {path.name!r}: input {input_name!r} has shape {spec.shape}, "
                          f"expected a batch of samples")
    outputs = signatures[endpoint].structured_outputs
    if isinstance(outputs, dict) and len(outputs) != 1:
        raise ExportError(f"SavedModel {path.name!r} signature {endpoint!r} has {len(outputs)} "
                          f"outputs; only single-output SavedModels are supported")
    inputs = keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype.name, name=input_name)
    layer = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint,
                                   name=_file_name(path.name) + "_savedmodel")
    result = layer(inputs)
    if isinstance(result, dict):
        result = next(iter(result.values()))
    _log(verbose, f"note: {path.name} is a SavedModel; its layers are not visible to Keras, so "
                  f"the export shows it as one {type(layer).__name__} layer (save the model as "
                  f".keras to see every layer)")
    return keras.Model(inputs, result, name=_file_name(path.name))


def _load_image(path: Path, channels: int, target: tuple[int, int] | None) -> np.ndarray:
    """One image as float32 (H, W, channels), pixel values 0..255, resized (bilinear) to target.

    Uses ``keras.utils.load_img`` (Pillow); without Pillow, TensorFlow's own PNG/JPEG/BMP/GIF
    decoder does the same job.
    """
    try:
        import PIL.Image  # noqa: F401 - keras.utils.load_img needs it
    except ImportError:
        return _load_image_tf(path, channels, target)
    mode = {1: "grayscale", 3: "rgb", 4: "rgba"}[channels]
    try:
        image = keras.utils.load_img(path, color_mode=mode, target_size=target,
                                     interpolation="bilinear")
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for a bad file
        raise ExportError(f"cannot read image {path.name!r}: {exc}") from None
    return keras.utils.img_to_array(image, dtype="float32")


def _load_image_tf(path: Path, channels: int, target: tuple[int, int] | None) -> np.ndarray:
    import tensorflow as tf

    try:
        image = tf.io.decode_image(path.read_bytes(), channels=channels, expand_animations=False)
    except Exception as exc:  # noqa: BLE001 - tf raises InvalidArgumentError and others
        raise ExportError(f"cannot read image {path.name!r}: {str(exc).splitlines()[0]}") from None
    image = tf.cast(image, tf.float32)
    if target is not None and tuple(image.shape[:2]) != tuple(target):
        image = tf.image.resize(image, target, method="bilinear")
    return image.numpy()


def load_samples(paths: Sequence[os.PathLike | str], input_shape: Sequence[int | None],
                 rescale: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """Samples from one ``.npy`` file (``allow_pickle=False``) or from image files/folders; see
    :func:`load_sample_files`. Returns the array and a name per sample."""
    return load_sample_files(read_sample_files(paths), input_shape, rescale)


def load_sample_files(files: SampleFiles, input_shape: Sequence[int | None],
                      rescale: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """The samples of ``files`` (see :func:`nnvis_export.inputs.read_sample_files`) for a model
    input of ``input_shape``, and a name per sample.

    Images are loaded with ``keras.utils.load_img`` (or TensorFlow's decoder when Pillow is
    missing), resized (bilinear) to the model input's height and width, grayscale when the model
    takes one channel, and multiplied by ``rescale`` (pixel values are 0..255). An array is
    returned as it is.
    """
    if files.array is not None:
        array = files.array
        if array.ndim == len(input_shape):
            count = 1 if tuple(array.shape) == tuple(input_shape) else array.shape[0]
        else:
            count = array.shape[0] if array.ndim else 0
        return array, [f"{files.array_name}[{i}]" for i in range(count)]
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3, 4):
        raise ExportError(f"the model takes inputs of shape {_shape_text(input_shape)}; images "
                          f"need a model input of shape (height, width, 1 or 3 or 4 channels)")
    height, width, channels = input_shape
    target = (height, width) if height is not None and width is not None else None
    arrays = [_load_image(path, channels, target) * np.float32(rescale) for path in files.images]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ExportError(f"the images have different sizes {sorted(shapes)}; the model input has "
                          f"no fixed size, so resize them first")
    return np.stack(arrays), [p.name for p in files.images]


#: Layers that move, crop or resize pixels without changing their range: a model's own
#: scaling layer may sit behind them.
RANGE_KEEPING_LAYERS = (keras.layers.Resizing, keras.layers.CenterCrop, keras.layers.RandomFlip,
                        keras.layers.RandomRotation, keras.layers.RandomZoom,
                        keras.layers.RandomTranslation, keras.layers.RandomCrop,
                        keras.layers.ZeroPadding2D, keras.layers.Cropping2D)
#: Layers that scale raw inputs inside the model (a Normalization adapted on 0..255 pixels).
INPUT_SCALING_LAYERS = (keras.layers.Rescaling, keras.layers.Normalization)


def input_scaling_layer(model) -> GraphLayer | None:
    """The model's own ``Rescaling`` (or ``Normalization``) layer when the input goes straight
    into it, possibly through layers that only move pixels (resize, crop, flip, pad)."""
    graph = model_graph(model)
    current = graph[0]
    while True:
        consumers = [g for g in graph if current.name in g.inbound]
        if len(consumers) != 1:
            return None
        current = consumers[0]
        if isinstance(current.layer, INPUT_SCALING_LAYERS):
            return current
        if not isinstance(current.layer, RANGE_KEEPING_LAYERS):
            return None


def model_input_shape(model) -> tuple[int | None, ...]:
    return _input_spec(model)[0]


def model_input_dtype(model) -> str:
    return _input_spec(model)[1]
