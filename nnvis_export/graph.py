"""The model's layer graph as format v1 layers: the walk of a Keras model's functional graph, the
layer records (type, output shape, inbound layers, drawing config, weight names, parameters),
and the checks on what format v1 can record (one input, one output per layer, channels-last).
Custom layer classes are exported as they are, with a warning that nnvis draws them as blocks.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from .errors import CustomLayerWarning, ExportError
from .text import shape_text

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

#: Keras 3 names some weights differently from the format's short names: {class: {keras: nnvis}}.
WEIGHT_RENAMES = {
    "DepthwiseConv1D": {"kernel": "depthwise_kernel"},
    "DepthwiseConv2D": {"kernel": "depthwise_kernel"},
}

MAX_RANK = 4  # output shapes without the batch axis, as the format's schema allows


@dataclass
class GraphLayer:
    """One layer of the model's graph, in topological order."""

    name: str
    layer: Any                 # the Keras layer (an InputLayer for the input)
    type: str                  # Keras class name
    inbound: list[str]         # names of the layers feeding this one
    tensor: Any                # the symbolic output (KerasTensor)
    is_input: bool


# --------------------------------------------------------------------------------------------
# The model's inputs and outputs


def _history(tensor) -> tuple[Any, Any]:
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise ExportError(f"{tensor!r} is not a symbolic Keras tensor of a functional graph")
    operation, node_index = history[0], history[1]
    return operation, operation._inbound_nodes[node_index]


def model_io(model) -> tuple[list, list]:
    """The model's symbolic input and output tensors; ExportError when it has no graph yet."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ExportError(f"model {model.name!r} has no functional graph ({exc}); build it with an "
                          f"Input (or call it on data) before exporting") from None
    if not inputs or not outputs:
        raise ExportError(f"model {model.name!r} is not built; give it an Input or call it on data")
    return inputs, outputs


def model_input(model):
    """The model's one input tensor (format v1 records models with exactly one input)."""
    inputs, _ = model_io(model)
    if len(inputs) != 1:
        raise ExportError(f"model {model.name!r} has {len(inputs)} inputs; nnvis format v1 "
                          f"records models with exactly one input")
    return inputs[0]


def model_input_shape(model) -> tuple[int | None, ...]:
    """One sample's shape as the model takes it (without the batch axis), None where free."""
    return tuple(None if d is None else int(d) for d in model_input(model).shape[1:])


def model_input_dtype(model) -> str:
    return str(getattr(model_input(model), "dtype", "float32"))


def model_output(model):
    """The model's (first) output tensor: its scores are the export's predictions."""
    return model_io(model)[1][0]


def output_layer_name(model) -> str:
    """The name of the layer that computes :func:`model_output`."""
    return _history(model_output(model))[1].operation.name


def build_sequential(model, samples) -> None:
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


# --------------------------------------------------------------------------------------------
# The walk of the functional graph


def model_graph(model) -> list[GraphLayer]:
    """The layers of a Functional or Sequential Keras model in topological order.

    The graph is walked back from ``model.outputs`` through each tensor's Keras history, so it
    follows this model's own graph even when a layer was also used elsewhere. Sequential models
    get their implicit InputLayer as the first record.
    """
    input_tensor = model_input(model)
    nodes, parents = _graph_nodes(model, model_io(model)[1])
    input_node = _history(input_tensor)[1]
    graph = [_graph_layer(nodes[key], [nodes[p] for p in parents[key]], input_node)
             for key in _topological_order(model, nodes, parents)]
    if not graph[0].is_input:  # pragma: no cover - the input has no parents, it comes first
        raise ExportError(f"model {model.name!r}: the input is not first in the graph")
    return graph


def _graph_nodes(model, outputs) -> tuple[dict[int, Any], dict[int, list[int]]]:
    """Every Keras node the outputs depend on, by id, and the ids of each node's parents."""
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
    return nodes, parents


def _topological_order(model, nodes: dict[int, Any], parents: dict[int, list[int]]) -> list[int]:
    """Kahn's algorithm, preferring Keras's own layer order among the layers that are ready."""
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
    return ordered


def _graph_layer(node, parent_nodes: list, input_node) -> GraphLayer:
    op = node.operation
    outs = list(node.output_tensors)
    if len(outs) != 1:
        raise ExportError(f"layer {op.name!r} has {len(outs)} outputs; nnvis format v1 records "
                          f"layers with one output")
    is_input = node is input_node
    if not is_input and not node.parent_nodes:
        raise ExportError(f"layer {op.name!r} has no inputs and is not the model input")
    inbound = list(dict.fromkeys(p.operation.name for p in parent_nodes))
    return GraphLayer(name=op.name, layer=op, type="InputLayer" if is_input else type(op).__name__,
                      inbound=inbound, tensor=outs[0], is_input=is_input)


# --------------------------------------------------------------------------------------------
# Checks on what format v1 can record


def check_data_format(graph: list[GraphLayer]) -> None:
    for g in graph:
        try:
            data_format = g.layer.get_config().get("data_format")
        except Exception:  # noqa: BLE001
            continue
        if data_format == "channels_first":
            raise ExportError(f"layer {g.name!r} uses data_format='channels_first'; nnvis format v1 "
                              f"stores channels-last activations (rebuild the model channels-last)")


def is_builtin_layer(layer) -> bool:
    """Whether ``layer`` is one of Keras's own layer classes (not a user-defined subclass)."""
    module = type(layer).__module__ or ""
    return module == "keras" or module.startswith(("keras.", "tf_keras.", "tensorflow."))


def warn_custom_layers(graph: list[GraphLayer]) -> None:
    """A :class:`CustomLayerWarning` for each user-defined layer class (shown at the caller of
    ``export_model`` or of the recorder's ``fit``)."""
    for g in graph:
        if g.is_input or is_builtin_layer(g.layer):
            continue
        weights = len(getattr(g.layer, "weights", []) or [])
        warnings.warn(
            f"layer {g.name!r} is a custom layer class {g.type} "
            f"({type(g.layer).__module__}.{type(g.layer).__qualname__}); it is exported with its "
            f"output{' and its ' + str(weights) + ' weights' if weights else ''}, and nnvis will "
            f"draw it as a generic block", CustomLayerWarning, stacklevel=4)


# --------------------------------------------------------------------------------------------
# Layer records: config, weights, parameters


def layer_record(g: GraphLayer, shape: tuple[int, ...]) -> dict[str, Any]:
    """The format v1 record of ``g`` whose output is ``shape`` per sample: name, type, output
    shape, inbound layers, drawing config, weight names and shapes, parameter count."""
    if not 1 <= len(shape) <= MAX_RANK or min(shape) < 1:
        raise ExportError(f"layer {g.name!r} has output shape {shape_text(shape)} per "
                          f"sample; nnvis format v1 records 1 to {MAX_RANK} axes of size "
                          f">= 1 (without the batch axis)")
    record: dict[str, Any] = {"name": g.name, "type": g.type, "output_shape": list(shape),
                              "inbound": g.inbound}
    config = {} if g.is_input else layer_config(g.layer)
    if config:
        record["config"] = config
    variables = layer_variables(g)
    if variables:
        names = weight_names(g.layer, variables)
        record["weights"] = [{"name": n, "shape": [int(d) for d in v.shape]}
                             for n, v in zip(names, variables)]
    try:
        params = 0 if g.is_input else int(g.layer.count_params())
    except Exception:  # noqa: BLE001 - unbuilt or exotic layers
        params = sum(math.prod(v.shape) for v in variables)
    record["params"] = params
    return record


def layer_variables(g: GraphLayer) -> list:
    """The layer's weight variables in Keras's order (none for the input)."""
    return [] if g.is_input else list(g.layer.weights)


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


def _jsonable(value):
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, dict):  # a serialized object such as a custom activation
        name = value.get("config", {}).get("name") if isinstance(value.get("config"), dict) else None
        return str(name or value.get("class_name") or value)
    return str(value)


def weight_names(layer, variables) -> list[str]:
    """The export's name for each of the layer's variables: the short Keras name (``kernel``),
    renamed where format v1 says otherwise, or the path below the layer when short names
    repeat (a nested model's ``dense/kernel``, ``dense_1/kernel``)."""
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


# --------------------------------------------------------------------------------------------
# The model's own input scaling


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
