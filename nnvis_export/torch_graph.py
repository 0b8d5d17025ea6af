"""A PyTorch module's graph as format v1 layers, and every layer's activations from one forward
pass.

The graph comes from ``torch.fx`` symbolic tracing, or, for a module fx cannot trace
(Python control flow on shapes, calls fx does not follow), from ``torch.export`` (a saved
``.pt2`` program is such a graph already). One run of the traced graph on two copies of the
first sample tells which nodes carry a batch of per-sample values (the layers), which are
parameters and which are only shape arithmetic; :mod:`~nnvis_export.torch_ops` says what each
layer is in Keras's terms. Activations come from running the same graph node by node over the
samples, each drawn node's output copied (NCHW -> NHWC, in the export's dtype) as soon as it is
computed, so in-place operations later in the graph cannot change it.
"""

from __future__ import annotations

import contextlib
import operator
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from .errors import CustomLayerWarning, ExportError
from .text import shape_text
from .torch_ops import (
    ALIAS_OPS,
    FIRST,
    LAST,
    Call,
    Layout,
    Param,
    Weight,
    argument_names,
    map_call,
    module_call,
    op_name,
)

MAX_RANK = 4  # axes of one sample's output, as format v1 allows
PROBE_BATCH = 2  # samples in the analysis run: a batch axis of 1 would be ambiguous


@dataclass
class NodeInfo:
    """What one node's value is: ``batch`` (a tensor with one row per sample), ``tuple`` (of
    such tensors), ``param`` (a parameter or constant), ``other`` (sizes, None...)."""

    kind: str
    dependent: bool  # computed from the input
    shape: tuple[int, ...] = ()  # per sample, for batch tensors


@dataclass
class TorchLayer:
    """One format v1 layer of the graph: the node whose value is its output, its record parts,
    its weights (with their conversions) and how its output becomes channels-last."""

    name: str
    type: str
    node: fx.Node
    inbound: list[str]
    shape: tuple[int, ...]             # one sample's output, PyTorch layout
    layout: Layout
    config: dict[str, Any] = field(default_factory=dict)
    weights: list[Weight] = field(default_factory=list)
    custom: str | None = None          # what an op without a drawing is, for the warning

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layout.shape(self.shape)


# --------------------------------------------------------------------------------------------
# Tracing


def trace(module, probe: torch.Tensor) -> tuple[fx.GraphModule, str]:
    """The module as an fx graph and what made it: ``torch.fx`` or ``torch.export``."""
    if isinstance(module, torch.export.ExportedProgram):
        return module.module(), "torch.export"
    if isinstance(module, fx.GraphModule):
        return module, "torch.fx"
    try:
        return fx.symbolic_trace(module), "torch.fx"
    except Exception as fx_error:  # noqa: BLE001 - fx raises TraceError, TypeError, ...
        try:
            batch = torch.export.Dim("batch")
            program = torch.export.export(module, (probe,), dynamic_shapes=({0: batch},),
                                          strict=False)
        except Exception as export_error:  # noqa: BLE001
            raise ExportError(f"cannot trace module {type(module).__name__}: torch.fx says "
                              f"{_first_line(fx_error)}; torch.export says "
                              f"{_first_line(export_error)}") from None
        return program.module(), "torch.export"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


@contextlib.contextmanager
def evaluating(module):
    """``module`` (and every submodule) in eval mode and without gradients, restored after."""
    modules = list(module.modules()) if isinstance(module, nn.Module) else []
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.training = False
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode


# --------------------------------------------------------------------------------------------
# The analysis run


class _Analysis(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, batch: int):
        super().__init__(gm)
        self.batch = batch
        self.info: dict[fx.Node, NodeInfo] = {}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        dependent = n.op == "placeholder" or any(self.info[a].dependent for a in n.all_input_nodes)
        self.info[n] = NodeInfo(_kind(value, dependent, self.batch), dependent,
                                tuple(value.shape[1:]) if isinstance(value, torch.Tensor)
                                and value.dim() else ())
        return value


def _kind(value: Any, dependent: bool, batch: int) -> str:
    if isinstance(value, torch.Tensor):
        if not dependent:
            return "param"
        return "batch" if value.dim() >= 1 and value.shape[0] == batch else "mixed"
    if dependent and isinstance(value, (tuple, list)) and value and \
            isinstance(value[0], torch.Tensor) and value[0].dim() and value[0].shape[0] == batch:
        return "tuple"
    return "other"


def analyse(gm: fx.GraphModule, probe: torch.Tensor) -> dict[fx.Node, NodeInfo]:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ExportError(f"the module takes {len(placeholders)} inputs; nnvis format v1 records "
                          f"models with exactly one input")
    analysis = _Analysis(gm, probe.shape[0])
    try:
        analysis.run(probe)
    except Exception as exc:  # noqa: BLE001 - whatever the module raises for these samples
        raise ExportError(f"the module fails on the samples (shape "
                          f"{shape_text(tuple(probe.shape[1:]))} each): {_first_line(exc)}") from None
    return analysis.info


# --------------------------------------------------------------------------------------------
# The walk: nodes -> layers


class _Walk:
    """Builds the layers of ``gm`` in graph order (which is topological)."""

    def __init__(self, gm: fx.GraphModule, info: dict[fx.Node, NodeInfo]):
        self.gm = gm
        self.info = info
        self.layer_of: dict[fx.Node, TorchLayer] = {}
        self.layers: list[TorchLayer] = []
        self.names: set[str] = set()
        self.module_names = _module_names(gm, info)

    def run(self) -> list[TorchLayer]:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self._add_input(node)
            elif node.op != "output" and self.info[node].kind == "batch":
                self._add_node(node)
        return self.layers

    def _unique(self, name: str) -> str:
        unique, count = name, 0
        while unique in self.names:
            count += 1
            unique = f"{name}_{count}"
        self.names.add(unique)
        return unique

    def _add_input(self, node: fx.Node) -> None:
        info = self.info[node]
        if info.kind != "batch" or not info.shape:
            raise ExportError(f"the module's input {node.name!r} is not a batch of samples with "
                              f"at least one axis each")
        layout = FIRST if len(info.shape) >= 2 else LAST
        layer = TorchLayer(self._unique(node.name), "InputLayer", node, [], info.shape, layout)
        self.layer_of[node] = layer
        self.layers.append(layer)

    def _add_node(self, node: fx.Node) -> None:
        source = node
        if node.op == "call_function" and node.target is operator.getitem and \
                self.info[node.args[0]].kind == "tuple":
            source = node.args[0]  # an op returning a tuple (batch norm, pooling with indices)
            if node.args[1] != 0 and source in self.layer_of:
                raise ExportError(f"operation {source.name!r} has several per-sample outputs "
                                  f"that the module uses; nnvis format v1 records one per layer")
        elif node.op in ("call_function", "call_method") and op_name(node.target) in ALIAS_OPS:
            alias = node.args[0] if node.args else None
            if isinstance(alias, fx.Node) and alias in self.layer_of:
                self.layer_of[node] = self.layer_of[alias]
                return
        call, what = self._call(source, node)
        mapped = map_call(call) if call is not None else None
        inputs = call.inputs if call is not None else self._batch_inputs(source)
        layout = mapped.layout if mapped is not None else _custom_layout(self.info[node].shape,
                                                                         inputs, self.layer_of)
        layer = TorchLayer(self._unique(self.module_names.get(source, source.name)),
                           mapped.type if mapped else what, node,
                           list(dict.fromkeys(self.layer_of[i].name for i in inputs)),
                           self.info[node].shape, layout)
        if mapped is not None:
            layer.config, layer.weights = mapped.config, mapped.weights
        else:
            layer.custom, layer.weights = what, self._custom_weights(source)
        _check_shape(layer)
        self.layer_of[node] = self.layer_of[source] = layer
        self.layers.append(layer)

    def _batch_inputs(self, node: fx.Node) -> list[fx.Node]:
        found = []
        for arg in node.all_input_nodes:
            info = self.info[arg]
            if info.kind == "mixed":
                raise ExportError(f"operation {node.name!r} reads {arg.name!r}, which mixes the "
                                  f"samples of a batch (shape {shape_text(info.shape)} without "
                                  f"a per-sample axis); nnvis draws per-sample layers")
            if info.kind == "batch" and arg in self.layer_of:
                found.append(arg)
        return found

    def _call(self, source: fx.Node, node: fx.Node) -> tuple[Call | None, str]:
        """The call of ``source`` (None for a module nnvis does not know) and what it is."""
        inputs = self._batch_inputs(source)
        if source.op == "call_module":
            module = self.gm.get_submodule(source.target)
            known = module_call(module)
            if known is None:
                return None, type(module).__name__
            op, args = known
        else:
            op = op_name(source.target)
            args = self._named_args(source, op)
        shapes = [self.info[i].shape for i in inputs]
        layouts = [self.layer_of[i].layout for i in inputs]
        return Call(op, args, inputs, shapes, layouts, self.info[node].shape), op

    def _named_args(self, node: fx.Node, op: str) -> dict[str, Any]:
        names = argument_names(node.target, op)
        named = dict(zip(names, node.args))
        for key, value in node.kwargs.items():
            named[{"self": "input", "train": "training"}.get(key, key)] = value
        return {key: self._value(value) for key, value in named.items()}

    def _value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return type(value)(self._value(v) for v in value)
        if not isinstance(value, fx.Node):
            return value
        if value.op == "get_attr":
            gm, target = self.gm, value.target
            return Param(lambda: _fetch(gm, target), str(target))
        return value if self.info[value].kind == "batch" else None

    def _custom_weights(self, node: fx.Node) -> list[Weight]:
        if node.op != "call_module":
            return []
        module = self.gm.get_submodule(node.target)
        return [Weight(name, Param(lambda m=module, n=name: getattr(m, n), name))
                for name, _ in module.named_parameters(recurse=False)]


def _fetch(gm: fx.GraphModule, target: str) -> torch.Tensor:
    value: Any = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _custom_layout(shape: tuple[int, ...], inputs: list[fx.Node], layer_of) -> Layout:
    if len(shape) >= 2 and any(layer_of[i].layout.kind == "first" for i in inputs):
        return FIRST
    return LAST


def _check_shape(layer: TorchLayer) -> None:
    shape = layer.output_shape
    if not 1 <= len(shape) <= MAX_RANK or min(shape) < 1:
        raise ExportError(f"layer {layer.name!r} ({layer.custom or layer.type}) has output shape "
                          f"{shape_text(shape)} per sample; nnvis format v1 records 1 to "
                          f"{MAX_RANK} axes of size >= 1 (without the batch axis)")


def _module_names(gm: fx.GraphModule, info: dict[fx.Node, NodeInfo]) -> dict[fx.Node, str]:
    """Layer names after the modules: a ``call_module`` node is its module's path
    (``layer1.0.conv1``); in a ``torch.export`` graph, the last per-sample node computed inside
    a built-in module (a Conv2d, a ReLU) is that module's path; a function called inside one of
    the model's own modules is named after both (``layer1.0.add``). Other nodes keep their
    function's name (``add``)."""
    names: dict[fx.Node, str] = {}
    last_in_module: dict[str, fx.Node] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target != "_guards_fn":
            names[node] = str(node.target)
            continue
        if node.op not in ("call_function", "call_method") or \
                info[node].kind not in ("batch", "tuple"):
            continue
        function = _function_name(node.target)
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            names[node] = function
            continue
        key, (path, module_type) = list(stack.items())[-1]
        path = _module_path(str(path))
        if _type_name(module_type).startswith("torch.nn.modules.") and path:
            last_in_module[key] = node  # a built-in module's op: the last one is the module
            names[node] = f"{path}.{function}"
            continue
        names[node] = f"{path}.{function}" if path else function
    for key, node in last_in_module.items():
        names[node] = _module_path(str(list(node.meta["nn_module_stack"][key])[0]))
    return names


def _function_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    if isinstance(target, torch._ops.OpOverload):
        return target.overloadpacket.__name__
    return str(getattr(target, "__name__", target)).strip("_") or "op"


def _type_name(module_type: Any) -> str:
    if isinstance(module_type, type):
        return f"{module_type.__module__}.{module_type.__qualname__}"
    return str(module_type)


def _module_path(path: str) -> str:
    """``L['self'].layer1[0].conv1`` (how some versions spell a path) -> ``layer1.0.conv1``."""
    for prefix in ("L['self'].", "L__self__."):
        path = path.removeprefix(prefix)
    return path.replace("[", ".").replace("]", "").replace("'", "")


# --------------------------------------------------------------------------------------------
# The graph as a whole


class TorchGraph:
    """A module (or a ``torch.export`` program) as format v1 layers.

    ``probe``: a few samples in the module's own layout (two copies of the first sample, or a
    static program's batch size of them) for the analysis run.
    """

    def __init__(self, module, probe: torch.Tensor):
        self.module = module
        self.static_batch = static_batch(module)
        with evaluating(module):
            self.gm, self.traced_by = trace(module, probe)
            self.info = analyse(self.gm, probe)
        walk = _Walk(self.gm, self.info)
        self.layers = walk.run()
        self.by_name = {layer.name: layer for layer in self.layers}
        self.output_layer = _output_layer(self.gm, self.info, walk.layer_of)
        self._capture = {layer.node: layer for layer in self.layers if layer.type != "InputLayer"}
        if all(layer.custom for layer in self.layers[1:]):
            what = ", ".join(sorted({str(layer.custom) for layer in self.layers[1:]}))
            raise ExportError(f"module {type(module).__name__} has no layer nnvis can draw (only "
                              f"{what}); nnvis draws CNNs: convolutions, pooling, normalisation, "
                              f"activations, dense layers and their merges")

    @property
    def input(self) -> TorchLayer:
        return self.layers[0]

    def warn_custom_layers(self, stacklevel: int) -> None:
        """A :class:`CustomLayerWarning` for each op without a drawing (it becomes a block)."""
        for layer in self.layers:
            if layer.custom is None:
                continue
            weights = f" and its {len(layer.weights)} weights" if layer.weights else ""
            warnings.warn(f"layer {layer.name!r} is the PyTorch op {layer.custom}, which nnvis "
                          f"has no drawing for; it is exported with its output{weights}, and "
                          f"nnvis will draw it as a generic block", CustomLayerWarning,
                          stacklevel=stacklevel)

    def weights(self, name: str) -> list[np.ndarray]:
        """Layer ``name``'s current weights, float32, in the Keras layouts."""
        return [np.asarray(w.convert(w.param.fetch().detach().cpu().float().numpy()), np.float32)
                for w in self.by_name[name].weights]

    def record(self, name: str) -> dict[str, Any]:
        """Layer ``name``'s format v1 record (its weights' shapes from their current values)."""
        layer = self.by_name[name]
        record: dict[str, Any] = {"name": layer.name, "type": layer.type,
                                  "output_shape": list(layer.output_shape),
                                  "inbound": layer.inbound}
        if layer.config:
            record["config"] = layer.config
        arrays = self.weights(name)
        if arrays:
            record["weights"] = [{"name": w.name, "shape": list(a.shape)}
                                 for w, a in zip(layer.weights, arrays)]
        record["params"] = int(sum(a.size for a in arrays))
        return record

    def run(self, samples: np.ndarray, batch_size: int, dtype: str
            ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Every layer's activations but the input's (channels-last, ``dtype``) and the module's
        output as float32 (None when it is not one row per sample): one pass per batch."""
        size = self.static_batch or batch_size
        parts: dict[str, list[np.ndarray]] = {layer.name: [] for layer in self._capture.values()}
        scores: list[np.ndarray] = []
        with evaluating(self.module):
            for start in range(0, samples.shape[0], size):
                batch = samples[start:start + size]
                count = batch.shape[0]
                if self.static_batch and count < size:  # a static program: fill its batch
                    batch = np.concatenate([batch, np.repeat(batch[-1:], size - count, axis=0)])
                capture = _Capture(self.gm, self._capture, getattr(torch, dtype), count)
                output = capture.run(torch.from_numpy(np.ascontiguousarray(batch)))
                for name, array in capture.arrays.items():
                    parts[name].append(array)
                scores.append(_scores(output, count))
        activations = {name: np.concatenate(p) if len(p) > 1 else p[0] for name, p in parts.items()}
        if any(s is None for s in scores):
            return activations, None
        return activations, np.concatenate(scores)


class _Capture(fx.Interpreter):
    """Runs the graph and keeps a channels-last copy of every drawn node's output."""

    def __init__(self, gm: fx.GraphModule, capture: dict[fx.Node, TorchLayer], dtype, count: int):
        super().__init__(gm)
        self.capture = capture
        self.dtype = dtype
        self.count = count
        self.arrays: dict[str, np.ndarray] = {}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        layer = self.capture.get(n)
        if layer is not None:
            if isinstance(value, (tuple, list)):
                value = value[0]
            converted = layer.layout.to_channels_last(value[:self.count].detach())
            copy = torch.empty(converted.shape, dtype=self.dtype)  # a copy, whatever in-place
            self.arrays[layer.name] = copy.copy_(converted).numpy()  # ops do to value later
        return value


def _scores(output: Any, count: int) -> np.ndarray | None:
    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    if isinstance(output, dict) and output:
        output = next(iter(output.values()))
    if not isinstance(output, torch.Tensor) or output.dim() < 1:
        return None
    return output[:count].detach().float().cpu().numpy()


def _output_layer(gm: fx.GraphModule, info: dict[fx.Node, NodeInfo], layer_of) -> str:
    output = next(n for n in gm.graph.nodes if n.op == "output")
    for node in output.all_input_nodes:
        if node in layer_of:
            return layer_of[node].name
    raise ExportError("the module's output is not a batch of per-sample values")


def static_batch(module) -> int | None:
    """The batch size a ``torch.export`` program was exported with when it is fixed, else None."""
    if not isinstance(module, torch.export.ExportedProgram):
        return None
    inputs = set(module.graph_signature.user_inputs)
    for node in module.graph.nodes:
        if node.op == "placeholder" and node.name in inputs:
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            if shape is not None and len(shape) and isinstance(shape[0], int):
                return int(shape[0])
            return None
    return None
