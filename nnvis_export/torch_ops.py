"""PyTorch operations as format v1 layers: which Keras layer type each module or function call
is, its drawing config, and its weights converted to the Keras layouts, so a PyTorch export
reads exactly like a Keras one (the Blender side knows only Keras's names).

A traced node becomes a :class:`Call` (a canonical op name and its named arguments, whether it
came from a module such as ``nn.Conv2d``, a function such as ``F.relu``/``torch.add``, a tensor
method such as ``x.view`` or an ATen op of a ``torch.export`` program); :func:`map_call` turns it
into a :class:`Mapped` layer or returns None for an op nnvis has no drawing for (the graph
exports those as custom-layer blocks).

Weight conversions (PyTorch -> Keras): a convolution's ``(out, in/groups, *k)`` kernel becomes
``(*k, in/groups, out)`` (HWIO; a grouped convolution keeps Keras's own grouped-kernel layout
and ``config.groups``), a depthwise one (``groups == in_channels``) ``(*k, in, multiplier)``
named ``depthwise_kernel``; Linear's ``(out, in)`` becomes ``(in, out)``, its rows reordered from
(c, h, w) to (h, w, c) when it reads a flattened feature map; BatchNorm's weight, bias,
running_mean and running_var are ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

# --------------------------------------------------------------------------------------------
# Layouts: a tensor's axes in PyTorch and in the format


@dataclass(frozen=True)
class Layout:
    """How a PyTorch value (batch first) becomes the format's channels-last array: ``first``
    (N, C, *spatial) moves C to the end; ``flat`` is one axis made of ``parts``, each a
    (C, *spatial) map flattened in PyTorch's (c, h, w) order (re-ordered to (h, w, c)) or a plain
    (n,) vector (a ``torch.cat`` of flattened maps and vectors); ``last`` stays as it is."""

    kind: str = "last"
    parts: tuple[tuple[int, ...], ...] = ()

    def to_channels_last(self, value: torch.Tensor) -> torch.Tensor:
        if self.kind == "first" and value.dim() >= 3:
            return value.permute(0, *range(2, value.dim()), 1)
        if self.kind == "flat" and self.reorders:
            return torch.cat([_map_last(part, shape) for part, shape in
                              zip(value.split(self.sizes, dim=1), self.parts)], dim=1)
        return value

    @property
    def sizes(self) -> list[int]:
        return [math.prod(shape) for shape in self.parts]

    @property
    def reorders(self) -> bool:
        return any(len(shape) >= 2 and math.prod(shape[1:]) > 1 for shape in self.parts)

    def flat_parts(self, size: int) -> tuple[tuple[int, ...], ...]:
        """This layout's parts as a flat axis of ``size`` values."""
        return self.parts if self.kind == "flat" else ((size,),)

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """One sample's channels-last shape for its PyTorch ``shape``."""
        if self.kind == "first" and len(shape) >= 2:
            return (*shape[1:], shape[0])
        return tuple(shape)


FIRST = Layout("first")
LAST = Layout("last")


# --------------------------------------------------------------------------------------------
# A call: one traced operation with named arguments


@dataclass(frozen=True)
class Param:
    """A parameter or buffer an operation reads, fetched anew at each epoch (training changes
    it in place)."""

    fetch: Callable[[], torch.Tensor]
    origin: str = ""


@dataclass
class Call:
    """One operation: canonical ``op`` name, named ``args`` (graph nodes for batch tensors,
    :class:`Param` for parameters and buffers, constants otherwise), its batch-tensor inputs'
    per-sample PyTorch shapes and layouts, and its output's per-sample PyTorch shape."""

    op: str
    args: dict[str, Any]
    inputs: list[fx.Node]
    in_shapes: list[tuple[int, ...]]
    in_layouts: list[Layout]
    out_shape: tuple[int, ...]

    def get(self, name: str, default: Any = None) -> Any:
        value = self.args.get(name, default)
        return default if value is None and default is not None else value


@dataclass
class Weight:
    """One exported weight: its format name, where it comes from, and its conversion."""

    name: str
    param: Param
    convert: Callable[[np.ndarray], np.ndarray] = lambda a: a


@dataclass
class Mapped:
    """What a call is in format v1: the Keras layer type, config, weights and output layout."""

    type: str
    config: dict[str, Any] = field(default_factory=dict)
    weights: list[Weight] = field(default_factory=list)
    layout: Layout = LAST


# --------------------------------------------------------------------------------------------
# Modules as calls


def _param(module: nn.Module, attribute: str) -> Param | None:
    if getattr(module, attribute, None) is None:
        return None
    return Param(lambda: getattr(module, attribute), attribute)


def _module_args(module: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """The canonical op and named arguments of a built-in module, None for other modules."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return "conv", {"weight": _param(module, "weight"), "bias": _param(module, "bias"),
                        "stride": module.stride, "padding": module.padding,
                        "dilation": module.dilation, "groups": module.groups,
                        "padding_mode": module.padding_mode}
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return "batch_norm", {name: _param(module, name) for name in
                              ("weight", "bias", "running_mean", "running_var")}
    if isinstance(module, nn.Linear):
        return "linear", {"weight": _param(module, "weight"), "bias": _param(module, "bias")}
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
        op = "max_pool" if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)) else "avg_pool"
        return op, {"kernel_size": module.kernel_size, "stride": module.stride,
                    "padding": module.padding, "ceil_mode": module.ceil_mode,
                    "dilation": getattr(module, "dilation", 1)}
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return "adaptive_avg_pool", {"output_size": module.output_size}
    if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)):
        return "adaptive_max_pool", {"output_size": module.output_size}
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)):
        spatial = isinstance(module, (nn.Dropout1d, nn.Dropout2d))
        return ("spatial_dropout" if spatial else "dropout"), {"p": module.p}
    if isinstance(module, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        return "hardtanh", {"min_val": module.min_val, "max_val": module.max_val}
    simple = _SIMPLE_MODULES.get(type(module))
    if simple is not None:
        return simple, {name: getattr(module, name) for name in _MODULE_ATTRIBUTES.get(simple, ())}
    return None


_SIMPLE_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.SiLU: "silu", nn.GELU: "gelu", nn.Sigmoid: "sigmoid",
    nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.Tanh: "tanh",
    nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.Softmax: "softmax", nn.Identity: "identity",
    nn.Flatten: "flatten", nn.Unflatten: "reshape",
}
_MODULE_ATTRIBUTES = {"gelu": ("approximate",), "leaky_relu": ("negative_slope",),
                      "elu": ("alpha",), "softmax": ("dim",)}


def module_call(module: nn.Module) -> tuple[str, dict[str, Any]] | None:
    return _module_args(module)


# --------------------------------------------------------------------------------------------
# Functions, methods and ATen ops as calls

#: Function and ATen op names -> canonical op names (anything else keeps its name).
OP_NAMES = {
    "conv1d": "conv", "conv2d": "conv", "convolution": "conv",
    "max_pool1d": "max_pool", "max_pool2d": "max_pool", "max_pool2d_with_indices": "max_pool",
    "avg_pool1d": "avg_pool", "avg_pool2d": "avg_pool",
    "adaptive_avg_pool1d": "adaptive_avg_pool", "adaptive_avg_pool2d": "adaptive_avg_pool",
    "_adaptive_avg_pool2d": "adaptive_avg_pool", "adaptive_max_pool1d": "adaptive_max_pool",
    "adaptive_max_pool2d": "adaptive_max_pool",
    "_native_batch_norm_legit_no_training": "batch_norm", "relu_": "relu", "relu6": "relu6",
    "hardtanh_": "hardtanh", "hardswish_": "hardswish", "hardsigmoid_": "hardsigmoid",
    "silu_": "silu", "sigmoid_": "sigmoid", "iadd": "add", "add_": "add", "imul": "mul",
    "mul_": "mul", "isub": "sub", "sub_": "sub", "concat": "cat", "concatenate": "cat",
    "view": "reshape", "_unsafe_view": "reshape", "_softmax": "softmax", "dropout2d": "spatial_dropout",
    "dropout1d": "spatial_dropout", "feature_dropout": "spatial_dropout", "alpha_dropout": "dropout",
    "leaky_relu_": "leaky_relu", "elu_": "elu", "tanh_": "tanh",
}

#: Argument names of functions and methods without a Python signature (ATen ops carry their
#: own schema; ``self`` is called ``input`` throughout).
ARGUMENT_NAMES = {
    "conv": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "linear": ("input", "weight", "bias"),
    "max_pool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg_pool": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    "adaptive_avg_pool": ("input", "output_size"), "adaptive_max_pool": ("input", "output_size"),
    "add": ("input", "other", "alpha"), "sub": ("input", "other", "alpha"),
    "mul": ("input", "other"), "cat": ("tensors", "dim"), "flatten": ("input", "start_dim", "end_dim"),
    "mean": ("input", "dim", "keepdim"), "dropout": ("input", "p", "training"),
    "spatial_dropout": ("input", "p", "training"), "softmax": ("input", "dim"),
    "leaky_relu": ("input", "negative_slope"), "hardtanh": ("input", "min_val", "max_val"),
    "elu": ("input", "alpha"), "gelu": ("input", "approximate"),
    "pad": ("input", "pad", "mode", "value"),
}
_RENAMED_ARGUMENTS = {"self": "input", "train": "training", "size": "shape"}

#: Operations that return their input unchanged (the layer is the input's).
ALIAS_OPS = frozenset({"contiguous", "clone", "detach", "to", "float", "alias", "_to_copy",
                       "type_as", "lift_fresh_copy"})


def op_name(target: Any) -> str:
    """The canonical op name of a ``call_function``/``call_method`` target."""
    if isinstance(target, str):
        name = target
    elif isinstance(target, torch._ops.OpOverload):
        name = target.overloadpacket.__name__
    else:
        name = getattr(target, "__name__", str(target))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    return OP_NAMES.get(name, name)


def argument_names(target: Any, op: str) -> tuple[str, ...]:
    """Positional argument names of ``target`` (the schema of an ATen op, the signature of a
    Python function, else :data:`ARGUMENT_NAMES`)."""
    if isinstance(target, torch._ops.OpOverload):
        names = tuple(a.name for a in target._schema.arguments)
    elif op in ARGUMENT_NAMES:
        names = ARGUMENT_NAMES[op]
    else:
        names = ("input", "other")
    return tuple(_RENAMED_ARGUMENTS.get(n, n) for n in names)


# --------------------------------------------------------------------------------------------
# Config helpers


def _pair(value: Any, rank: int) -> list[int]:
    if isinstance(value, (list, tuple)):
        values = [int(v) for v in value]
        return values * rank if len(values) == 1 else values
    return [int(value)] * rank


def _padding(call: Call, kernel: list[int], strides: list[int], dilation: list[int]):
    """Keras's ``same``/``valid`` where PyTorch's zero padding means the same, else the
    padding per spatial axis."""
    padding = call.get("padding", 0)
    if isinstance(padding, str):
        return padding
    pads = _pair(padding, len(kernel))
    if not any(pads):
        return "valid"
    same = [d * (k - 1) // 2 for k, d in zip(kernel, dilation)]
    if all(s == 1 for s in strides) and pads == same and all(d * (k - 1) % 2 == 0
                                                           for k, d in zip(kernel, dilation)):
        return "same"
    return pads


def _map_last(values: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(N, prod(shape)) in (c, *spatial) order -> (N, prod(shape)) in (*spatial, c) order."""
    if len(shape) < 2:
        return values
    grid = values.reshape(values.shape[0], *shape)
    return grid.permute(0, *range(2, grid.dim()), 1).reshape(values.shape[0], -1)


def _conv_kernel(array: np.ndarray) -> np.ndarray:
    """(out, in/groups, *k) -> (*k, in/groups, out)."""
    return np.ascontiguousarray(np.moveaxis(array, (0, 1), (-1, -2)))


def _depthwise_kernel(channels: int) -> Callable[[np.ndarray], np.ndarray]:
    """(channels * multiplier, 1, *k) -> (*k, channels, multiplier): output o = c * m + j."""
    def convert(array: np.ndarray) -> np.ndarray:
        grouped = array.reshape(channels, array.shape[0] // channels, *array.shape[2:])
        return np.ascontiguousarray(np.moveaxis(grouped, (0, 1), (-2, -1)))
    return convert


def _dense_kernel(layout: Layout) -> Callable[[np.ndarray], np.ndarray]:
    """(out, in) -> (in, out), rows of a flattened (c, *spatial) map re-ordered to (*spatial, c)."""
    def convert(array: np.ndarray) -> np.ndarray:
        if layout.kind == "flat" and layout.reorders:
            columns = torch.from_numpy(np.ascontiguousarray(array))  # (out, in): rows of in
            return np.ascontiguousarray(layout.to_channels_last(columns).numpy().T)
        return np.ascontiguousarray(array.T)
    return convert


def _spatial_rank(call: Call) -> int | None:
    """The input's spatial rank (1 or 2) when it is a channels-first map, else None."""
    if not call.in_layouts or call.in_layouts[0].kind != "first":
        return None
    rank = len(call.in_shapes[0]) - 1
    return rank if rank in (1, 2) else None


# --------------------------------------------------------------------------------------------
# The mapping: one function per kind of op


def _conv(call: Call) -> Mapped | None:
    rank = _spatial_rank(call)
    weight, bias = call.get("weight"), call.get("bias")
    if rank is None or not isinstance(weight, Param) or call.get("transposed", False):
        return None
    shape = tuple(weight.fetch().shape)
    channels, groups, filters = call.in_shapes[0][0], int(call.get("groups", 1)), shape[0]
    kernel = [int(k) for k in shape[2:]]
    strides = _pair(call.get("stride", 1), rank)
    dilation = _pair(call.get("dilation", 1), rank)
    config: dict[str, Any] = {"kernel_size": kernel, "strides": strides,
                              "padding": _padding(call, kernel, strides, dilation),
                              "data_format": "channels_last", "activation": "linear",
                              "use_bias": isinstance(bias, Param)}
    if call.get("padding_mode", "zeros") != "zeros":
        config["padding_mode"] = call.get("padding_mode")
    if any(d != 1 for d in dilation):
        config["dilation_rate"] = dilation
    weights = []
    if groups == channels and groups > 1:  # depthwise: one group per input channel
        type_name = f"DepthwiseConv{rank}D"
        config["depth_multiplier"] = filters // channels
        weights.append(Weight("depthwise_kernel", weight, _depthwise_kernel(channels)))
    else:
        type_name = f"Conv{rank}D"
        config = {"filters": filters, **config}
        if groups > 1:  # Keras's Conv2D(groups=g) keeps the same (*k, in/groups, out) kernel
            config["groups"] = groups
        weights.append(Weight("kernel", weight, _conv_kernel))
    if isinstance(bias, Param):
        weights.append(Weight("bias", bias))
    return Mapped(type_name, config, weights, FIRST)


def _batch_norm(call: Call) -> Mapped | None:
    names = (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
             ("running_var", "moving_variance"))
    weights = [Weight(short, call.args[name]) for name, short in names
               if isinstance(call.args.get(name), Param)]
    return Mapped("BatchNormalization", {"axis": -1}, weights, call.in_layouts[0])


def _activation(call: Call) -> Mapped | None:
    layout = call.in_layouts[0]
    if call.op == "relu":
        return Mapped("ReLU", {"negative_slope": 0.0, "threshold": 0.0}, layout=layout)
    if call.op == "relu6" or (call.op == "hardtanh" and float(call.get("min_val", -1.0)) == 0.0):
        top = 6.0 if call.op == "relu6" else float(call.get("max_val", 1.0))
        return Mapped("ReLU", {"max_value": top, "negative_slope": 0.0, "threshold": 0.0},
                      layout=layout)
    if call.op == "leaky_relu":
        return Mapped("LeakyReLU", {"negative_slope": float(call.get("negative_slope", 0.01))},
                      layout=layout)
    if call.op == "elu":
        return Mapped("ELU", {"alpha": float(call.get("alpha", 1.0))}, layout=layout)
    if call.op == "softmax":
        return Mapped("Softmax", {"axis": _axis(call, call.get("dim", -1))}, layout=layout)
    name = KERAS_ACTIVATIONS.get(call.op)
    return None if name is None else Mapped("Activation", {"activation": name}, layout=layout)


#: PyTorch activation functions -> Keras activation names (Keras's hard_silu is Hardswish).
KERAS_ACTIVATIONS = {"silu": "silu", "gelu": "gelu", "sigmoid": "sigmoid", "tanh": "tanh",
                     "hardswish": "hard_silu", "hardsigmoid": "hard_sigmoid"}


def _axis(call: Call, dim: int) -> int:
    """A PyTorch dimension of the input (batch included) as the channels-last axis (-1 for
    channels)."""
    rank = len(call.in_shapes[0]) + 1
    dim = int(dim) % rank
    if call.in_layouts[0].kind != "first" or rank < 3:
        return dim if dim < rank - 1 else -1
    return -1 if dim == 1 else dim - 1


def _pool(call: Call) -> Mapped | None:
    rank = _spatial_rank(call)
    if rank is None:
        return None
    kernel = _pair(call.get("kernel_size"), rank)
    stride = call.get("stride")
    strides = _pair(stride if stride not in (None, [], ()) else kernel, rank)
    dilation = _pair(call.get("dilation", 1), rank)
    if any(d != 1 for d in dilation):
        return None
    config: dict[str, Any] = {"pool_size": kernel, "strides": strides,
                              "padding": _padding(call, kernel, strides, dilation),
                              "data_format": "channels_last"}
    if call.get("ceil_mode", False):
        config["ceil_mode"] = True
    kind = "MaxPooling" if call.op == "max_pool" else "AveragePooling"
    return Mapped(f"{kind}{rank}D", config, layout=FIRST)


def _adaptive_pool(call: Call) -> Mapped | None:
    rank = _spatial_rank(call)
    if rank is None:
        return None
    spatial = call.in_shapes[0][1:]
    sizes = [s if o is None else int(o) for o, s in zip(_sizes(call.get("output_size"), rank),
                                                        spatial)]
    kind = "Max" if call.op == "adaptive_max_pool" else "Average"
    if all(s == 1 for s in sizes):
        return Mapped(f"Global{kind}Pooling{rank}D", {"keepdims": True,
                                                     "data_format": "channels_last"}, layout=FIRST)
    if any(n % s for n, s in zip(spatial, sizes)):
        return None  # uneven windows: no Keras pooling layer computes this
    pool = [n // s for n, s in zip(spatial, sizes)]
    return Mapped(f"{kind}Pooling{rank}D", {"pool_size": pool, "strides": pool, "padding": "valid",
                                           "data_format": "channels_last"}, layout=FIRST)


def _sizes(value: Any, rank: int) -> list[int | None]:
    if isinstance(value, (list, tuple)):
        return list(value) * rank if len(value) == 1 else list(value)
    return [value] * rank


def _mean(call: Call) -> Mapped | None:
    rank = _spatial_rank(call)
    dims = call.get("dim")
    if rank is None or dims is None:
        return None
    dims = [dims] if isinstance(dims, int) else list(dims)
    total = rank + 2
    if sorted(int(d) % total for d in dims) != list(range(2, total)):
        return None
    keep = bool(call.get("keepdim", False))
    return Mapped(f"GlobalAveragePooling{rank}D", {"keepdims": keep, "data_format": "channels_last"},
                  layout=FIRST if keep else LAST)


def _linear(call: Call) -> Mapped | None:
    weight, bias = call.get("weight"), call.get("bias")
    layout = call.in_layouts[0]
    if not isinstance(weight, Param) or (layout.kind == "first" and len(call.in_shapes[0]) > 1):
        return None
    weights = [Weight("kernel", weight, _dense_kernel(layout))]
    if isinstance(bias, Param):
        weights.append(Weight("bias", bias))
    config = {"units": int(call.out_shape[-1]), "activation": "linear",
              "use_bias": isinstance(bias, Param)}
    return Mapped("Dense", config, weights, LAST)


def _reshape(call: Call) -> Mapped | None:
    """Flatten when all of a sample's values become one axis (Keras's Flatten order is kept by
    the ``flat`` layout), else Reshape to the channels-last shape."""
    shape, layout = call.in_shapes[0], call.in_layouts[0]
    if len(call.out_shape) == 1 and math.prod(call.out_shape) == math.prod(shape):
        flat = Layout("flat", (tuple(shape),)) if layout.kind == "first" and len(shape) >= 2 \
            else layout if layout.kind == "flat" else LAST
        return Mapped("Flatten", {"data_format": "channels_last"}, layout=flat)
    out = Layout("first") if len(call.out_shape) >= 2 else LAST
    return Mapped("Reshape", {"target_shape": list(out.shape(call.out_shape))}, layout=out)


def _merge(call: Call) -> Mapped | None:
    layout = call.in_layouts[0]
    other = call.get("other") if call.op != "cat" else None
    if call.op == "cat":
        if len(call.out_shape) == 1 and any(lay.kind == "flat" for lay in call.in_layouts):
            parts = tuple(part for lay, shape in zip(call.in_layouts, call.in_shapes)
                          for part in lay.flat_parts(shape[0]))
            layout = Layout("flat", parts)  # flattened maps and vectors side by side
        return Mapped("Concatenate", {"axis": _axis(call, call.get("dim", 0))}, layout=layout)
    if float(call.get("alpha", 1) or 1) != 1:
        return None
    if len(call.inputs) >= 2:
        return Mapped({"add": "Add", "sub": "Subtract", "mul": "Multiply"}[call.op], layout=layout)
    if isinstance(other, (int, float)) and not isinstance(other, bool):  # x * 2, x + 1
        scale, offset = (float(other), 0.0) if call.op == "mul" else \
            (1.0, float(other) if call.op == "add" else -float(other))
        return Mapped("Rescaling", {"scale": scale, "offset": offset}, layout=layout)
    return None


def _pad(call: Call) -> Mapped | None:
    """``F.pad`` of a map's spatial axes as ZeroPadding1D/2D; another mode than zeros (a
    reflect-padded convolution's pad in a torch.export graph) is kept in ``config.mode``."""
    rank = _spatial_rank(call)
    pads = [int(p) for p in call.get("pad", ())]
    if rank is None or len(pads) != 2 * rank or min(pads) < 0:
        return None
    mode, value = call.get("mode", "constant"), call.get("value", 0.0)
    pairs = [[pads[2 * i], pads[2 * i + 1]] for i in reversed(range(rank))]  # last axis first
    config: dict[str, Any] = {"padding": pairs if rank == 2 else pairs[0],
                              "data_format": "channels_last"}
    if mode != "constant":
        config["mode"] = mode
    elif value not in (None, 0, 0.0):
        return None
    return Mapped(f"ZeroPadding{rank}D", config, layout=FIRST)


def _dropout(call: Call) -> Mapped | None:
    type_name = "SpatialDropout2D" if call.op == "spatial_dropout" else "Dropout"
    return Mapped(type_name, {"rate": float(call.get("p", 0.5))}, layout=call.in_layouts[0])


HANDLERS: dict[str, Callable[[Call], Mapped | None]] = {
    "conv": _conv, "batch_norm": _batch_norm, "linear": _linear,
    "max_pool": _pool, "avg_pool": _pool,
    "adaptive_avg_pool": _adaptive_pool, "adaptive_max_pool": _adaptive_pool, "mean": _mean,
    "flatten": _reshape, "reshape": _reshape, "add": _merge, "sub": _merge, "mul": _merge,
    "cat": _merge, "pad": _pad, "dropout": _dropout, "spatial_dropout": _dropout,
    "identity": lambda call: Mapped("Identity", layout=call.in_layouts[0]),
    **{op: _activation for op in ("relu", "relu6", "hardtanh", "leaky_relu", "elu", "softmax",
                                  *KERAS_ACTIVATIONS)},
}


def map_call(call: Call) -> Mapped | None:
    """The format v1 layer of ``call``; None when nnvis has no drawing for it."""
    handler = HANDLERS.get(call.op)
    if handler is None or not call.inputs:
        return None
    return handler(call)
