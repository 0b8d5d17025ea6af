"""An ONNX graph as format v1 layers, with the Keras path's layer type names and weight layouts,
so that the Blender side draws an ONNX export exactly as the same network exported from Keras.

Two steps around one onnxruntime run (:mod:`~nnvis_export.onnx_export`):

1. :func:`plan_graph` (before the run): the graph's one data input, the nodes that compute data
   (everything derived from the input except shapes: ``Shape``'s output and what is computed from
   it and from constants is not drawn), the checks that the graph is a CNN nnvis can draw, and
   the tensors to fetch (every node output: the run computes them all at once).
2. :func:`map_graph` (after the run, with every tensor's value): each data node becomes a layer
   (``Conv`` -> ``Conv2D`` with an HWIO ``kernel``, ``Gemm`` -> ``Dense`` with an (in, out)
   ``kernel``...), folds away (``Identity``, ``Dropout``, layout ``Transpose``, a bias ``Add``
   into the ``MatMul`` or ``Conv`` before it) or, for an op nnvis has no drawing for, becomes a
   custom layer (a generic block) with a :class:`~nnvis_export.errors.CustomLayerWarning`.

Layouts: ONNX maps are channels-first (N, C, H, W); the export stores them channels-last, as
Keras does. A Flatten of maps is stored in Keras's (H, W, C) order too, and the Dense layer it
feeds gets its kernel rows in that order, so its connections come from the right cells.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .errors import CustomLayerWarning, ExportError
from .text import shape_text

CHANNELS_FIRST, CHANNELS_LAST, FLAT = "channels_first", "channels_last", "flat"
MAX_RANK = 4              # output shapes without the batch axis, as the format's schema allows
CONFIG_MAX_NUMBERS = 256  # a constant of a Rescaling (Add/Mul by constants) kept in the config

#: Ops of graphs that are not CNNs: recurrent layers, attention, control flow.
NOT_CNN_OPS = frozenset({"LSTM", "GRU", "RNN", "Loop", "Scan", "If", "Attention",
                         "MultiHeadAttention", "SequenceConstruct", "SplitToSequence"})
#: Ops whose output is a shape (metadata of a data tensor), never data.
SHAPE_OPS = frozenset({"Shape", "Size"})
#: Float input element types a CNN takes.
FLOAT_TYPES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16",
               TensorProto.DOUBLE: "float64"}


# --------------------------------------------------------------------------------------------
# Before the run: the data input, the data nodes, the checks


@dataclass
class GraphPlan:
    """What :func:`plan_graph` found: the data input and the nodes computing data."""

    input_name: str
    input_shape: tuple[int | str | None, ...]   # with the batch axis; str/None where symbolic
    input_dtype: str
    input_layout: str
    data_nodes: list[Any]                        # NodeProto, in graph order
    data: set[str]                               # names of the data tensors
    output_name: str                             # the model's (first) output
    fetch: list[str] = field(default_factory=list)


def plan_graph(model, model_name: str) -> GraphPlan:
    """The data input, the nodes that compute data from it (those the outputs need), the CNN
    checks, and the tensors to fetch; ExportError when nnvis cannot draw the graph."""
    graph = model.graph
    name, shape, dtype = _data_input(graph, model_name)
    data = {name}
    nodes = []
    for node in graph.node:
        if node.op_type not in SHAPE_OPS and any(i in data for i in node.input if i):
            data.update(o for o in node.output if o)
            nodes.append(node)
    if not graph.output or graph.output[0].name not in data:
        raise ExportError(f"ONNX model {model_name!r}: its output does not depend on its input "
                          f"{name!r}; nothing to draw")
    nodes = _needed(nodes, {o.name for o in graph.output})
    _check_cnn(nodes, model_name)
    fetch = list(dict.fromkeys(o for node in graph.node for o in node.output if o))
    return GraphPlan(name, shape, dtype, _input_layout(name, shape, nodes), nodes, data,
                     graph.output[0].name, fetch)


def _data_input(graph, model_name: str) -> tuple[str, tuple, str]:
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ExportError(f"ONNX model {model_name!r} has {len(inputs)} inputs "
                          f"({', '.join(i.name for i in inputs)}); nnvis format v1 records models "
                          f"with exactly one input")
    tensor_type = inputs[0].type.tensor_type
    if tensor_type.elem_type not in FLOAT_TYPES:
        kind = TensorProto.DataType.Name(tensor_type.elem_type) if tensor_type.elem_type else "?"
        raise ExportError(f"ONNX model {model_name!r} is not a CNN nnvis can draw: its input "
                          f"{inputs[0].name!r} is {kind} (token ids?), not floating-point values")
    if not tensor_type.HasField("shape"):
        raise ExportError(f"ONNX model {model_name!r}: input {inputs[0].name!r} has no known "
                          f"rank; export the model with a fixed input rank")
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                  for d in tensor_type.shape.dim)
    if not 2 <= len(shape) <= MAX_RANK + 1:
        raise ExportError(f"ONNX model {model_name!r}: input {inputs[0].name!r} has shape "
                          f"{shape_text(shape)}; nnvis draws a batch of samples of 1 to "
                          f"{MAX_RANK} axes")
    return inputs[0].name, shape, FLOAT_TYPES[tensor_type.elem_type]


def _needed(nodes: list, outputs: set[str]) -> list:
    """The nodes (in order) that the graph's outputs depend on."""
    wanted = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in wanted for o in node.output):
            kept.append(node)
            wanted.update(i for i in node.input if i)
    return kept[::-1]


def _check_cnn(nodes: list, model_name: str) -> None:
    ops = [n.op_type for n in nodes]
    refused = sorted(set(ops) & NOT_CNN_OPS)
    if refused:
        node = next(n for n in nodes if n.op_type == refused[0])
        raise ExportError(f"ONNX model {model_name!r} is not a CNN nnvis can draw: it uses "
                          f"{', '.join(refused)} (node {node.name or node.output[0]!r})")
    if not set(ops) & {"Conv", "Gemm", "MatMul", "ConvTranspose"}:
        raise ExportError(f"ONNX model {model_name!r} is not a CNN nnvis can draw: no "
                          f"convolution or dense layer among its ops "
                          f"({', '.join(sorted(set(ops))) or 'none'})")


def _input_layout(name: str, shape: tuple, nodes: list) -> str:
    """Channels-last when every consumer of a 4-D input turns it channels-first (a tf2onnx
    model's NHWC input), else channels-first for maps and flat for vectors."""
    if len(shape) == 2:
        return FLAT
    consumers = [n for n in nodes if name in n.input]
    if consumers and all(n.op_type == "Transpose" and _perm(n) == perm_to_first(len(shape))
                         for n in consumers):
        return CHANNELS_LAST
    return CHANNELS_FIRST


def _perm(node) -> tuple[int, ...]:
    return tuple(int(p) for p in _attrs(node).get("perm", ()))


def perm_to_first(rank: int) -> tuple[int, ...]:
    return (0, rank - 1, *range(1, rank - 1))


def perm_to_last(rank: int) -> tuple[int, ...]:
    return (0, *range(2, rank), 1)


def _attrs(node) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# --------------------------------------------------------------------------------------------
# After the run: layers


@dataclass
class Tensor:
    """A data tensor as the export has it: the layer whose output it is, its layout, and for a
    flattened map the order of its values (stored value ``k`` is ONNX's value ``order[k]``)."""

    layer: str
    layout: str
    order: np.ndarray | None = None


@dataclass
class OnnxLayer:
    """One format v1 layer made from an ONNX node (or the input)."""

    name: str
    type: str
    inbound: list[str]
    tensor: str                                   # the ONNX tensor holding its output
    layout: str
    order: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)
    scope: str = ""                               # module path (PyTorch exports) for its name
    op: str = ""                                  # the node name's op part, for its name

    def activations(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Its output for the samples, channels-last (flattened maps in (H, W, C) order)."""
        return to_export_layout(values[self.tensor], self.layout, self.order)

    def record(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Its format v1 ``layers[]`` entry for the output ``shape`` (without the batch axis)."""
        if not 1 <= len(shape) <= MAX_RANK or min(shape) < 1:
            raise ExportError(f"layer {self.name!r} has output shape {shape_text(shape)} per "
                              f"sample; nnvis format v1 records 1 to {MAX_RANK} axes of size "
                              f">= 1 (without the batch axis)")
        record: dict[str, Any] = {"name": self.name, "type": self.type,
                                  "output_shape": list(shape), "inbound": self.inbound}
        if self.config:
            record["config"] = self.config
        if self.weights:
            record["weights"] = [{"name": n, "shape": list(a.shape)} for n, a in self.weights]
        record["params"] = int(sum(a.size for _, a in self.weights))
        return record


def to_export_layout(array: np.ndarray, layout: str, order: np.ndarray | None = None
                     ) -> np.ndarray:
    """An ONNX tensor (batch first) as the export stores it: channels-last, flattened maps in
    (H, W, C) order."""
    if layout == CHANNELS_FIRST and array.ndim >= 3:
        return np.ascontiguousarray(array.transpose(perm_to_last(array.ndim)))
    if order is not None:
        return np.ascontiguousarray(array[:, order])
    return array


@dataclass
class Mapped:
    """What a node handler makes of a node: a layer of ``type`` (layout None: its first data
    input's), or, with ``alias``, no layer: the output is that data input."""

    type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)
    layout: str | None = None
    order: np.ndarray | None = None
    alias: bool = False


@dataclass
class NodeView:
    """One data node with what its handler needs: attributes, data inputs (as the export has
    them), constant inputs (by position) and every tensor's value from the run."""

    node: Any
    attrs: dict[str, Any]
    data: list[tuple[int, str]]                   # (position, tensor name) of data inputs
    consts: dict[int, np.ndarray]
    values: dict[str, np.ndarray]
    tensors: dict[str, Tensor]

    @property
    def label(self) -> str:
        return f"node {self.node.name or self.node.output[0]!r} ({self.node.op_type})"

    def first(self) -> Tensor:
        return self.tensors[self.data[0][1]]

    def in_shape(self, index: int = 0) -> tuple[int, ...]:
        return tuple(self.values[self.data[index][1]].shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.values[self.node.output[0]].shape)

    def const(self, position: int, default=None):
        return self.consts.get(position, default)

    def refuse(self, why: str) -> ExportError:
        return ExportError(f"{self.label}: {why}")


Handler = Callable[[NodeView], Mapped]


def map_graph(model, plan: GraphPlan, values: dict[str, np.ndarray], samples_count: int
              ) -> list[OnnxLayer]:
    """The layers of the graph in topological order, the input first; ``values`` holds every
    tensor of the run (and the initializers)."""
    from .onnx_ops import HANDLERS, custom_layer, fold_bias

    consumers = _consumers(plan.data_nodes)
    input_layer = OnnxLayer(name=plan.input_name, type="InputLayer", inbound=[],
                            tensor=plan.input_name, layout=plan.input_layout)
    layers = [input_layer]
    tensors = {plan.input_name: Tensor(input_layer.name, plan.input_layout)}
    by_name = {input_layer.name: input_layer}
    for node in plan.data_nodes:
        view = _view(node, plan, values, tensors)
        _check_outputs(view, consumers, samples_count)
        folded = fold_bias(view, by_name, consumers)
        if folded is not None:
            tensors[node.output[0]] = folded
            continue
        handler = HANDLERS.get(node.op_type)
        mapped = handler(view) if handler is not None else custom_layer(view)
        if mapped.alias:  # the input itself, perhaps in another layout (a Transpose)
            source = view.first()
            tensors[node.output[0]] = source if mapped.layout is None else \
                Tensor(source.layer, mapped.layout)
            continue
        layer = _new_layer(view, mapped)
        layers.append(layer)
        by_name[layer.name] = layer
        tensors[node.output[0]] = Tensor(layer.name, layer.layout, layer.order)
    _name_layers(layers, tensors)
    return layers


def _consumers(nodes: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in nodes:
        for name in set(node.input):
            counts[name] = counts.get(name, 0) + 1
    return counts


def _view(node, plan: GraphPlan, values: dict[str, np.ndarray], tensors: dict[str, Tensor]
          ) -> NodeView:
    data, consts = [], {}
    for position, name in enumerate(node.input):
        if not name:
            continue
        if name in plan.data:
            if name not in tensors:
                raise ExportError(f"node {node.name or node.output[0]!r} ({node.op_type}) uses "
                                  f"{name!r} before it is computed: the graph is not in "
                                  f"topological order")
            data.append((position, name))
        else:
            consts[position] = values[name]
    return NodeView(node, _attrs(node), data, consts, values, tensors)


def _check_outputs(view: NodeView, consumers: dict[str, int], samples_count: int) -> None:
    """One output in use, keeping the batch axis: what a format v1 layer can record."""
    extra = [o for o in view.node.output[1:] if o and consumers.get(o, 0)]
    if extra:
        raise view.refuse(f"{1 + len(extra)} of its outputs are in use; nnvis format v1 records "
                          f"layers with one output")
    shape = view.out_shape
    if not shape or shape[0] != samples_count:
        raise view.refuse(f"its output has shape {shape_text(shape)}, which does not keep the "
                          f"batch of {samples_count} samples as its first axis; nnvis draws "
                          f"per-sample outputs only")


def _new_layer(view: NodeView, mapped: Mapped) -> OnnxLayer:
    inbound = list(dict.fromkeys(view.tensors[name].layer for _, name in view.data))
    layout = mapped.layout or view.first().layout
    scope, op = _scope(view.node)
    # Named after its output tensor (unique in the graph) until _name_layers names it.
    return OnnxLayer(name=view.node.output[0], type=mapped.type, inbound=inbound,
                     tensor=view.node.output[0], layout=layout, order=mapped.order,
                     config=mapped.config, weights=mapped.weights, scope=scope, op=op)


def _scope(node) -> tuple[str, str]:
    """A PyTorch export's node name ``/layer1/layer1.0/conv1/Conv`` as the module's path
    ``layer1.0.conv1`` and the op part in lower case, as PyTorch spells it (``/Add_1``:
    ``add_1``); other names as they are."""
    name = node.name or node.output[0]
    if not name.startswith("/"):
        return "", name
    *parts, op = name[1:].split("/")
    path = ""
    for part in parts:
        path = part if not path or part.startswith(path + ".") else f"{path}.{part}"
    return path, (op or node.op_type).lower()


def _name_layers(layers: list[OnnxLayer], tensors: dict[str, Tensor]) -> None:
    """Unique names: a module's path when it is a leaf module that made one layer
    (``layer1.0.conv1``), ``path/op`` for the ops of a module's own forward (``layer1.0/add``)
    or of a module that made several, the node's own name otherwise; the inbound lists and
    tensors follow."""
    per_scope: dict[str, int] = {}
    for layer in layers[1:]:
        if layer.scope:
            per_scope[layer.scope] = per_scope.get(layer.scope, 0) + 1
    parents = {scope[:i] for scope in per_scope for i, c in enumerate(scope) if c == "."}
    new_names: dict[str, str] = {}
    taken: set[str] = set()
    for layer in layers:
        wanted = layer.op or layer.name
        if layer.scope:
            alone = per_scope[layer.scope] == 1 and layer.scope not in parents
            wanted = layer.scope if alone else f"{layer.scope}/{layer.op}"
        name, count = wanted[:256], 0
        while name in taken:
            count += 1
            name = f"{wanted[:248]}_{count}"
        taken.add(name)
        new_names[layer.name] = name
    for layer in layers:
        layer.name = new_names[layer.name]
        layer.inbound = [new_names[n] for n in layer.inbound]
    for tensor in {id(t): t for t in tensors.values()}.values():  # aliases share one
        tensor.layer = new_names[tensor.layer]


def initializer_values(model) -> dict[str, np.ndarray]:
    """The graph's initializers as numpy arrays, by name."""
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def warn_custom(view: NodeView, weights: int) -> None:
    warnings.warn(f"{view.label} has no nnvis drawing; it is exported with its output"
                  f"{' and its ' + str(weights) + ' constant inputs' if weights else ''}, and "
                  f"nnvis will draw it as a generic block", CustomLayerWarning, stacklevel=5)
