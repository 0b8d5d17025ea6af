"""One operation, step by step: what a Conv2D, pooling or Dense cell computes (numpy only).

A close-up of one output cell (``nnvis.show_operation``, blender/operation.py) shows the input
patch the kernel reads, the kernel's weights, their products and the result, sliding along the
chosen row as CNN Explainer's convolution view does. :func:`operation` computes every step from
the export's own numbers (the layer's weights and its input layer's recorded activations at one
sample and epoch):

* **Conv2D / DepthwiseConv2D** (strides, dilation, groups, ``"same"``/``"valid"`` padding, as
  core/receptive_field.py ``windows`` reads them): one step per output column of the chosen row.
  A step shows one input channel (``input_channel``; by default the one contributing most,
  ``|sum of a * w|``, to the chosen cell): its patch, the kernel slice between it and the output
  channel, their products and ``part``, the products' sum. ``total`` is the cell's whole
  pre-activation (every input channel and the bias), ``output`` the exported value of the cell.
* **MaxPooling2D / AveragePooling2D**: the same steps over the output channel's own input
  channel; the "kernel" says what the pool does: 1 on the window's largest value (max), ``1/n``
  on the ``n`` taps inside the input (average, padding not counted, as Keras does), so ``part``
  = ``total`` is the pooled value.
* **Dense**: one step per chunk of ``chunk`` inputs (rounded up to fill a square-ish grid;
  the last chunk's taps past the inputs are padding): the chunk's inputs, their weights to the
  chosen neuron, the products; ``part`` is the chunk's sum, ``total`` the sum so far plus the
  bias, so the last step's total is the neuron's pre-activation. (On maps a Dense layer applies
  per position: the chosen row and column.)

``output`` is what the export recorded for the cell: the layer's activation of ``total``
(:func:`activate` knows Keras's common ones). A unit that folds BatchNormalization and an
activation behind its convolution (core/folding.py) still shows the convolution's own output
here: the export records it before the folded layers. Taps on padding read 0 and have the
``padding`` flag.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .export_format import Layer, NetworkExport
from .receptive_field import ReceptiveFieldError, Window, windows

CONV_TYPES = frozenset({"Conv2D", "DepthwiseConv2D"})
POOL_TYPES = frozenset({"MaxPooling2D", "AveragePooling2D"})
OPERATION_TYPES = CONV_TYPES | POOL_TYPES | {"Dense"}
DENSE_CHUNK = 16  # inputs per step of a Dense neuron (a 4 x 4 grid)


class OperationError(ValueError):
    """A cell whose operation cannot be shown (a layer type without one, an index out of
    range, weights missing from the export)."""


@dataclass(frozen=True)
class Operation:
    """Every step of one operation; arrays are (steps, taps) unless said otherwise."""

    layer: str
    source: str                 # the layer whose values the kernel reads
    kind: str                   # "conv", "depthwise", "max_pool", "average_pool", "dense"
    sample: int
    epoch_index: int
    channel: int                # output channel (or neuron)
    input_channel: int          # the input channel shown (-1 for Dense)
    grid: tuple[int, int]       # (rows, cols) of the kernel grid
    cells: np.ndarray           # (steps, 2) output (row, col) of each step; Dense: (row, col)
    taps: np.ndarray            # (steps, taps, 2) input (row, col) read; Dense: (-1, input)
    padding: np.ndarray         # bool: the tap reads padding (or lies past a Dense's inputs)
    patch: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    part: np.ndarray            # (steps,) sum of the step's products
    total: np.ndarray           # (steps,) pre-activation (see the module docstring)
    output: np.ndarray          # (steps,) the exported value of the step's cell
    activation: str
    chosen_step: int            # the step of the chosen cell
    reads: np.ndarray | None = None  # (steps, 2) centre (row, col) of the input window
    span: tuple[int, int] = (0, 0)   # the window's rows and columns of input cells

    @property
    def steps(self) -> int:
        return len(self.part)

    @property
    def taps_per_step(self) -> int:
        return self.grid[0] * self.grid[1]

    def step_values(self) -> np.ndarray:
        """(steps, 3 * taps + 3) float64: patch, kernel, products, part, total, output."""
        return np.concatenate([self.patch, self.kernel, self.products, self.part[:, None],
                               self.total[:, None], self.output[:, None]], axis=1)


def activate(name: str, values: np.ndarray, axis_values: np.ndarray | None = None) -> np.ndarray:
    """Keras's activation ``name`` of ``values``; softmax normalises over ``axis_values`` (all
    the neuron's pre-activations at that position, ``values`` among them)."""
    x = np.asarray(values, np.float64)
    functions: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "linear": lambda v: v, "relu": lambda v: np.maximum(v, 0.0),
        "relu6": lambda v: np.clip(v, 0.0, 6.0), "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "tanh": np.tanh, "softplus": lambda v: np.logaddexp(0.0, v),
        "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0.0))),
        "swish": lambda v: v / (1.0 + np.exp(-v)), "silu": lambda v: v / (1.0 + np.exp(-v)),
    }
    if name == "softmax":
        if axis_values is None:
            raise OperationError("softmax needs the other neurons' values")
        all_values = np.asarray(axis_values, np.float64)
        shift = all_values.max(axis=-1, keepdims=True)
        return np.exp(x - shift) / np.exp(all_values - shift).sum(axis=-1)
    if name not in functions:
        raise OperationError(f"activation {name!r} is not one nnvis computes")
    return functions[name](x)


def _layer_input(export: NetworkExport, layer: str, sample: int,
                 epoch_index: int) -> tuple[Layer, np.ndarray, dict[str, np.ndarray]]:
    try:
        item = export.layer(layer)
    except KeyError:
        raise OperationError(f"no layer {layer!r} in the export") from None
    if item.type not in OPERATION_TYPES:
        raise OperationError(f"{item.type} layer {layer!r} has no operation to show "
                             f"(Conv2D, DepthwiseConv2D, pooling or Dense)")
    if len(item.inbound) != 1:
        raise OperationError(f"layer {layer!r} has {len(item.inbound)} inputs")
    if not 0 <= sample < export.num_samples:
        raise OperationError(f"sample {sample} is outside 0..{export.num_samples - 1}")
    epoch = export.epochs[epoch_index]
    x = np.asarray(epoch.activations[item.inbound[0]][sample], np.float64)
    arrays = export.weights(layer, epoch_index)
    if item.weights and len(arrays) != len(item.weights):
        raise OperationError(f"layer {layer!r} has no weights at epoch index {epoch_index}")
    weights = {spec.name: np.asarray(a, np.float64) for spec, a in zip(item.weights, arrays)}
    return item, x, weights


def _check(value: int, size: int, what: str) -> int:
    if not 0 <= int(value) < size:
        raise OperationError(f"{what} {value} is outside 0..{size - 1}")
    return int(value)


def operation(export: NetworkExport, layer: str, *, channel: int, row: int = 0, col: int = 0,
              sample: int = 0, epoch_index: int = -1, input_channel: int | None = None,
              chunk: int = DENSE_CHUNK) -> Operation:
    """The steps of output cell (``row``, ``col``, ``channel``) of ``layer`` (a neuron
    ``channel`` of a Dense layer on a vector) for ``sample`` at ``epoch_index``."""
    epoch_index = range(len(export.epochs))[epoch_index]
    item, x, weights = _layer_input(export, layer, sample, epoch_index)
    output = np.asarray(export.epochs[epoch_index].activations[layer][sample], np.float64)
    channel = _check(channel, item.output_shape[-1], "channel")
    common: dict[str, Any] = dict(layer=layer, source=item.inbound[0], sample=sample, epoch_index=epoch_index,
                  channel=channel, activation=str(item.config.get("activation") or "linear"))
    if item.type == "Dense":
        return _dense(item, x, weights, output, row, col, chunk, common)
    if output.ndim != 3:
        raise OperationError(f"layer {layer!r} is not a 2-D map layer")
    row = _check(row, output.shape[0], "row")
    col = _check(col, output.shape[1], "column")
    try:
        window = windows(item, x.shape)
    except ReceptiveFieldError as exc:
        raise OperationError(str(exc)) from exc
    taps, padding = _window_taps(window, row, output.shape[1], x.shape[:2])
    kernel, source_channel, kind = _kernel(item, weights, x, channel, input_channel)
    if kind.endswith("pool"):
        patch, kernel = _pool_kernel(item, x, taps, padding, channel)
    else:
        patch = np.where(padding, 0.0, x[taps[..., 0], taps[..., 1], source_channel])
        kernel = np.broadcast_to(kernel.reshape(-1), patch.shape).copy()
    products = patch * kernel
    total = _conv_totals(item, weights, x, window, row, output.shape[1], channel) \
        if not kind.endswith("pool") else products.sum(axis=1)
    cells = np.stack([np.full(output.shape[1], row), np.arange(output.shape[1])], axis=1)
    spans = [(w.size - 1) * w.dilation for w in window]
    reads = np.stack([np.full(len(cells), row * window[0].stride - window[0].pad + spans[0] / 2),
                      cells[:, 1] * window[1].stride - window[1].pad + spans[1] / 2], axis=1)
    return Operation(reads=reads.astype(np.float64), span=(spans[0] + 1, spans[1] + 1),
                     kind=kind, input_channel=source_channel, grid=(window[0].size,
                     window[1].size), cells=cells, taps=taps, padding=padding, patch=patch,
                     kernel=kernel, products=products, part=products.sum(axis=1), total=total,
                     output=output[row, :, channel].copy(), chosen_step=col, **common)


def _window_taps(window: tuple[Window, ...], row: int, cols: int,
                 in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(cols, taps, 2) input (row, col) of every tap of every output column of ``row`` (clipped
    into the input) and where they fall on padding."""
    tap_rows = row * window[0].stride - window[0].pad + np.arange(window[0].size) * window[0].dilation
    out_cols = np.arange(cols)[:, None]
    tap_cols = out_cols * window[1].stride - window[1].pad + \
        np.arange(window[1].size)[None, :] * window[1].dilation
    rows_grid = np.broadcast_to(tap_rows[None, :, None], (cols, len(tap_rows), window[1].size))
    cols_grid = np.broadcast_to(tap_cols[:, None, :], rows_grid.shape)
    taps = np.stack([rows_grid, cols_grid], axis=-1).reshape(cols, -1, 2)
    padding = (taps[..., 0] < 0) | (taps[..., 0] >= in_shape[0]) | \
        (taps[..., 1] < 0) | (taps[..., 1] >= in_shape[1])
    clipped = np.stack([np.clip(taps[..., 0], 0, in_shape[0] - 1),
                        np.clip(taps[..., 1], 0, in_shape[1] - 1)], axis=-1)
    return clipped, padding


def _grouped_kernel(item: Layer, weights: dict, channels: int) -> tuple[np.ndarray, int]:
    """The kernel as (kh, kw, Cin / groups, Cout) and its groups."""
    if item.type == "DepthwiseConv2D":
        depthwise = weights.get("depthwise_kernel")
        if depthwise is None:
            raise OperationError(f"layer {item.name!r} has no depthwise_kernel")
        return depthwise.reshape(*depthwise.shape[:2], 1, -1), channels
    kernel = weights.get("kernel")
    if kernel is None:
        raise OperationError(f"layer {item.name!r} has no kernel")
    return kernel, int(item.config.get("groups", 1) or 1)


def _kernel(item: Layer, weights: dict, x: np.ndarray, channel: int,
            input_channel: int | None) -> tuple[np.ndarray, int, str]:
    """The (kh, kw) kernel slice between the shown input channel and ``channel``, that input
    channel, and the operation's kind."""
    if item.type in POOL_TYPES:
        kind = "max_pool" if item.type.startswith("Max") else "average_pool"
        return np.zeros(0), channel, kind
    kernel, groups = _grouped_kernel(item, weights, x.shape[-1])
    per_group, cout = kernel.shape[2], kernel.shape[3]
    first = (channel // (cout // groups)) * per_group
    readable = range(first, first + per_group)
    if input_channel is None:
        input_channel = first + int(np.argmax(np.abs(_channel_terms(item, weights, x, channel))))
    if int(input_channel) not in readable:
        raise OperationError(f"output channel {channel} of {item.name!r} reads input channels "
                             f"{first}..{first + per_group - 1}, not {input_channel}")
    kind = "depthwise" if item.type == "DepthwiseConv2D" else "conv"
    return kernel[:, :, int(input_channel) - first, channel], int(input_channel), kind


def _channel_terms(item: Layer, weights: dict, x: np.ndarray, channel: int) -> np.ndarray:
    """|sum of a * w| per readable input channel over the whole output map of ``channel``:
    which input channel matters most to it."""
    kernel, groups = _grouped_kernel(item, weights, x.shape[-1])
    per_group, cout = kernel.shape[2], kernel.shape[3]
    first = (channel // (cout // groups)) * per_group
    window = windows(item, x.shape)
    out_rows = item.output_shape[0]
    sums = np.zeros(per_group)
    for out_row in range(out_rows):
        taps, padding = _window_taps(window, out_row, item.output_shape[1], x.shape[:2])
        patch = np.where(padding[..., None], 0.0,
                         x[taps[..., 0], taps[..., 1], first:first + per_group])
        sums += np.abs(np.einsum("stc,tc->c", patch,
                                 kernel[:, :, :, channel].reshape(-1, per_group)))
    return sums


def _conv_totals(item: Layer, weights: dict, x: np.ndarray, window: tuple[Window, ...],
                 row: int, cols: int, channel: int) -> np.ndarray:
    """Every step's pre-activation: all readable input channels and the bias."""
    kernel, groups = _grouped_kernel(item, weights, x.shape[-1])
    per_group, cout = kernel.shape[2], kernel.shape[3]
    first = (channel // (cout // groups)) * per_group
    taps, padding = _window_taps(window, row, cols, x.shape[:2])
    patch = np.where(padding[..., None], 0.0, x[taps[..., 0], taps[..., 1], first:first + per_group])
    totals = np.einsum("stc,tc->s", patch, kernel[:, :, :, channel].reshape(-1, per_group))
    bias = weights.get("bias")
    return totals + (float(bias[channel]) if bias is not None else 0.0)


def _pool_kernel(item: Layer, x: np.ndarray, taps: np.ndarray, padding: np.ndarray,
                 channel: int) -> tuple[np.ndarray, np.ndarray]:
    """A pool's patch and what it does as a kernel: one-hot on the largest tap inside the input
    (max; the first of equal ones) or 1/n on the n taps inside it (average)."""
    patch = np.where(padding, 0.0, x[taps[..., 0], taps[..., 1], channel])
    inside = ~padding
    if item.type.startswith("Max"):
        ranked = np.where(inside, patch, -np.inf)
        kernel = np.zeros_like(patch)
        kernel[np.arange(len(patch)), np.argmax(ranked, axis=1)] = 1.0
    else:
        kernel = inside / np.maximum(inside.sum(axis=1, keepdims=True), 1)
    return patch, kernel


def _dense(item: Layer, x: np.ndarray, weights: dict, output: np.ndarray, row: int, col: int,
           chunk: int, common: dict) -> Operation:
    kernel, bias = weights.get("kernel"), weights.get("bias")
    if kernel is None:
        raise OperationError(f"Dense layer {item.name!r} has no kernel")
    position: tuple[int, ...] = ()
    if x.ndim == 3:
        position = (_check(row, x.shape[0], "row"), _check(col, x.shape[1], "column"))
    elif x.ndim != 1:
        raise OperationError(f"Dense layer {item.name!r} reads a rank-{x.ndim} input")
    inputs = x[position].reshape(-1)
    side = math.ceil(math.sqrt(max(1, int(chunk))))
    grid = (math.ceil(max(1, int(chunk)) / side), side)
    chunk = grid[0] * grid[1]  # a chunk fills the grid
    steps = math.ceil(len(inputs) / chunk)
    index = np.arange(steps * chunk).reshape(steps, chunk)
    padding = index >= len(inputs)
    clipped = np.minimum(index, len(inputs) - 1)
    patch = np.where(padding, 0.0, inputs[clipped])
    weights_of = np.where(padding, 0.0, kernel[clipped, common["channel"]])
    products = patch * weights_of
    part = products.sum(axis=1)
    total = np.cumsum(part) + (float(bias[common["channel"]]) if bias is not None else 0.0)
    taps = np.stack([np.full(index.shape, -1), clipped], axis=-1)
    cells = np.tile(np.asarray(position or (0, 0))[None, :], (steps, 1))
    shown = float(output[(*position, common["channel"])])
    return Operation(kind="dense", input_channel=-1, grid=grid, cells=cells, taps=taps,
                     padding=padding, patch=patch, kernel=weights_of, products=products,
                     part=part, total=total, output=np.full(steps, shown),
                     chosen_step=steps - 1, **common)


# -- the close-up's geometry --------------------------------------------------------------------

CLOSE_UP_PITCH = 1.15   # cells of the close-up apart, in cell sizes (a thin gap between them)
CLOSE_UP_GAP = 2.0      # cell sizes between the patch, kernel, products and results
PART_NAMES = ("patch", "kernel", "products", "result")


@dataclass(frozen=True)
class CloseUp:
    """The close-up's quads in a unit's plane (x = 0, right is -Y, up is +Z, as the maps are
    drawn): four vertices a quad, each with the slot of the step's values it shows
    (:meth:`Operation.step_values` order) and the scale its colour is normalised by; the
    centre above each part, for its caption."""

    vertices: np.ndarray        # (4 * quads, 3) float32
    faces: np.ndarray           # (quads, 4) int32
    slot: np.ndarray            # (4 * quads,) float32
    scale: np.ndarray           # (4 * quads,) float32, > 0
    captions: np.ndarray        # (4, 3): above the patch, kernel, products and results
    width: float


def value_scales(op: Operation) -> np.ndarray:
    """Per slot of a step: the largest |value| its part takes over all steps (1 where all are
    0): the patch, the kernel, the products and the three results share one scale each."""
    taps = op.taps_per_step
    values = np.abs(np.nan_to_num(op.step_values(), nan=0.0, posinf=0.0, neginf=0.0))
    parts = [values[:, :taps], values[:, taps:2 * taps], values[:, 2 * taps:3 * taps],
             values[:, 3 * taps:]]
    scales = [float(part.max(initial=0.0)) or 1.0 for part in parts]
    return np.repeat(scales, [taps, taps, taps, 3]).astype(np.float32)


def close_up(op: Operation, cell_size: float, bottom: float) -> CloseUp:
    """The quads of ``op``'s close-up, their lowest edge at height ``bottom``, centred on x = 0:
    the patch, kernel and products as grids, then the part, total and output in a column."""
    rows, cols = op.grid
    taps, pitch, size = op.taps_per_step, CLOSE_UP_PITCH * cell_size, cell_size
    grid_width, gap = cols * pitch, CLOSE_UP_GAP * cell_size
    height = max(rows, 3) * pitch
    lefts = [i * (grid_width + gap) for i in range(3)] + [3 * (grid_width + gap)]
    width = lefts[3] + pitch
    tap_row, tap_col = np.divmod(np.arange(taps), cols)
    centres = []   # (screen x, screen y) of each slot's quad
    for part in range(3):
        centres.append(np.stack([lefts[part] + (tap_col + 0.5) * pitch,
                                 height - (tap_row + 0.5) * pitch], axis=1))
    result_rows = np.arange(3)
    centres.append(np.stack([np.full(3, lefts[3] + 0.5 * pitch),
                             height - (result_rows + 0.5) * height / 3], axis=1))
    xy = np.concatenate(centres) - [width / 2, -bottom]
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64) * size / 2
    quad_xy = (xy[:, None, :] + corners[None]).reshape(-1, 2)
    vertices = np.stack([np.zeros(len(quad_xy)), -quad_xy[:, 0], quad_xy[:, 1]], axis=1)
    slots = np.repeat(np.arange(3 * taps + 3), 4).astype(np.float32)
    captions = np.array([(0.0, -(left + (grid_width if i < 3 else pitch) / 2 - width / 2),
                          bottom + height + 0.6 * cell_size) for i, left in enumerate(lefts)])
    return CloseUp(vertices.astype(np.float32),
                   np.arange(len(vertices), dtype=np.int32).reshape(-1, 4), slots,
                   np.repeat(value_scales(op), 4), captions.astype(np.float32), float(width))


def captions(op: Operation) -> tuple[str, str, str, str]:
    """What the four parts of the close-up are called (shown above them)."""
    if op.kind == "dense":
        return ("inputs", f"weights to {op.channel}", "products", "sum, so far + bias, output")
    if op.kind.endswith("pool"):
        kernel = "max picks" if op.kind == "max_pool" else "average of"
        return (f"patch of ch {op.input_channel}", kernel, "products", "pooled")
    rows, cols = op.grid
    return (f"patch of ch {op.input_channel}", f"{rows}x{cols} kernel", "products",
            "this ch, all + bias, output")
