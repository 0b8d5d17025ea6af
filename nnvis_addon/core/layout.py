"""Layout maths for a network scene (numpy only).

Every layer becomes a grid of cells: a channels-last output (H, W, C) is C maps of H x W cells;
a vector (N,) is N neurons, i.e. N maps of 1 x 1; a sequence (L, C) is C maps of 1 x L. Cells
are ordered like Keras flattens them, index = (row * W + col) * C + channel, so a layer's
activations ``array.reshape(S, -1)`` line up with its cells.

The same formulas run in the "NNVis Layer" geometry-nodes group (geometry_nodes/layer_nodes.py);
the tests check the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from . import controls
from .atlas import ValueRange
from .blocks import Block, collapsed_by_default, find_blocks
from .controls import default
from .export_format import Layer, NetworkExport
from .picture import display_colours, is_picture_layer
from .rows import Rows, allowed_breaks, choose_starts, fold_columns, row_count, row_pitch

MAP_LAYOUTS = ("linear", "grid")
BLOCK_MODES = ("auto", "collapsed", "expanded", "off")
WRAP_MODES = ("auto", "off")  # long networks fold into rows (core/rows.py), or stay one line
# A collapsed layer's gap to the next one shrinks by this fraction (the location drivers'
# rule, blender/scene.py): the planned factors account for it.
COLLAPSED_GAP = 0.5


@dataclass(frozen=True)
class CellGrid:
    height: int
    width: int
    channels: int

    @property
    def cells(self) -> int:
        return self.height * self.width * self.channels


def cell_grid(output_shape: tuple[int, ...]) -> CellGrid:
    """How a layer's output is drawn: (H, W, C) maps; higher ranks fold leading axes into H."""
    if len(output_shape) == 1:
        return CellGrid(1, 1, output_shape[0])
    if len(output_shape) == 2:
        return CellGrid(1, output_shape[0], output_shape[1])
    return CellGrid(math.prod(output_shape[:-2]), output_shape[-2], output_shape[-1])


def cell_attributes(grid: CellGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(channel, row, col) int32 arrays in Keras flatten order."""
    index = np.arange(grid.cells, dtype=np.int64)
    channel = index % grid.channels
    pixel = index // grid.channels
    return (channel.astype(np.int32), (pixel // grid.width).astype(np.int32),
            (pixel % grid.width).astype(np.int32))


def grid_columns(channels: int, requested: int = 0) -> int:
    return min(requested, channels) if requested > 0 else math.ceil(math.sqrt(channels))


def layer_extent(grid: CellGrid, *, grid_layout: float, cell_size: float, channel_gap: float,
                 requested_columns: int = 0) -> tuple[float, float]:
    """(width, height) of a layer's cell area, exactly as the geometry nodes compute it."""
    step_u = grid.width * cell_size + channel_gap
    step_v = grid.height * cell_size + channel_gap
    cols = grid_columns(grid.channels, requested_columns)
    rows = math.ceil(grid.channels / cols)
    width = grid.channels * step_u + (cols * step_u - grid.channels * step_u) * grid_layout - channel_gap
    height = step_v + (rows * step_v - step_v) * grid_layout - channel_gap
    return width, height


def cell_centres(grid: CellGrid, *, grid_layout: float, cell_size: float, channel_gap: float,
                 requested_columns: int = 0, collapse: float = 0.0,
                 stack_spacing: float = 0.35, merge: bool = False) -> np.ndarray:
    """(cells, 3) layer-local cell centres; right is -Y, down is -Z (see layer_nodes.py).

    ``collapse`` slides every map onto the centre, stacked ``stack_spacing`` cells apart along
    the layer axis, or all in one place when the maps ``merge`` into a summary map, exactly like
    the geometry nodes.
    """
    channel, row, col = (a.astype(np.float64) for a in cell_attributes(grid))
    step_u = grid.width * cell_size + channel_gap
    step_v = grid.height * cell_size + channel_gap
    cols = grid_columns(grid.channels, requested_columns)
    width, height = layer_extent(grid, grid_layout=grid_layout, cell_size=cell_size,
                                 channel_gap=channel_gap, requested_columns=requested_columns)
    map_u = channel * step_u + ((channel % cols) * step_u - channel * step_u) * grid_layout
    map_v = np.floor(channel / cols) * step_v * grid_layout
    centred_u = width / 2 - grid.width * cell_size / 2
    centred_v = height / 2 - grid.height * cell_size / 2
    map_u = map_u + (centred_u - map_u) * collapse
    map_v = map_v + (centred_v - map_v) * collapse
    u = (col + 0.5) * cell_size + map_u
    v = (row + 0.5) * cell_size + map_v
    x = channel * collapse * stack_spacing * cell_size * (0.0 if merge else 1.0)
    return np.stack([x, width / 2 - u, height / 2 - v], axis=1)


def activation_range(arrays: Iterable[np.ndarray]) -> tuple[float, float]:
    """(min, max) over the finite values of ``arrays`` (any iterable: one array at a time); a
    usable range even if all are equal."""
    seen = ValueRange()
    for array in arrays:
        seen.add(array)
    lo, hi = seen.lo, seen.hi
    if not math.isfinite(lo):
        return 0.0, 1.0
    if hi - lo < 1e-12:
        return lo, lo + 1.0
    return lo, hi


# Keras layer classes nnvis knows how to draw cell by cell; anything else (a custom layer) is
# drawn as one block with its output shape, and the import warns about it.
KNOWN_LAYER_TYPES = frozenset({
    "InputLayer", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D",
    "Conv2DTranspose", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "Dense", "Flatten", "Reshape", "Dropout", "SpatialDropout2D", "BatchNormalization",
    "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "ZeroPadding1D", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Rescaling", "Normalization",
    "Permute", "RepeatVector", "Embedding", "Identity", "TFSMLayer",
})


# Layers that keep their input's shape (normalisation, activation, merges): they follow the
# previous column at a fraction of the layer spacing, so deep networks stay compact.
COMPACT_LAYER_TYPES = frozenset({
    "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU",
    "Softmax", "Dropout", "SpatialDropout2D", "Rescaling", "Normalization", "ZeroPadding1D",
    "ZeroPadding2D", "Identity", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
})


@dataclass
class LayoutOptions:
    map_layout: str = "grid"          # feature maps: "linear" or "grid"
    layer_spacing: float = default(controls.LAYER_SPACING)  # between columns of layers, along +X
    cell_size: float = default(controls.CELL_SIZE)
    channel_gap: float = 0.25         # between feature maps
    neuron_gap: float = 0.05          # between neurons of a vector layer
    vector_grid_above: int = 64       # vectors with more neurons are laid out in a grid
    tile_depth: float = 0.3           # feature-map tiles, in cells
    neuron_depth: float = 0.8         # neuron cubes, in cells
    neuron_scale: float = 2.0         # neurons are drawn this much larger than feature-map cells
    max_layer_cells: int | None = 250_000  # larger layers show downsampled maps (None: never)
    max_total_cells: int | None = 4_000_000  # deep networks share this budget: each layer gets
                                             # at most its share (never under 4,096 cells)
    branch_gap: float = 1.0           # between layers side by side in one column (branches)
    block_cells: float = 6.0          # size of an unknown layer's block, in cells
    compact_spacing: float = 0.4      # spacing before a column of COMPACT_LAYER_TYPES, relative
    compact_labels_up_to: int = 40    # deeper networks hide the labels of compact layers
    input_as_picture: bool = True     # an image input is one map in its own colours
                                      # (core/picture.py); False: one map per channel
    blocks: str = "auto"              # "auto": collapse blocks of deep networks (core/blocks.py);
                                      # "collapsed", "expanded", or "off" (no blocks)
    summary_above_channels: int = 16  # units with more maps open summarised into their max map
    column_aspect: float = 8.0        # big vectors: a slim column this many times taller than wide
    view_overlap: float = 0.8         # spacing vs. neighbouring units' widths, so that none hides
                                      # another from the default camera (front-left, see staging)
    unit_margin: float = 0.6          # and at least this much free space between them
    compress_sizes_above: int = 64    # networks whose largest map is at least this tall draw
    size_exponent: float = 0.5        # maps this tall at (height / largest) ** size_exponent
                                      # of the largest: the pyramid reads, 7x7 is no speck
    wrap: str = "auto"                # WRAP_MODES: "auto" folds a long network into rows
    wrap_aspect: float = 16.0         # when its line is more than this many row heights long

    def __post_init__(self):
        if self.map_layout not in MAP_LAYOUTS:
            raise ValueError(f"map_layout must be one of {MAP_LAYOUTS}, got {self.map_layout!r}")
        if not (self.layer_spacing > 0 and self.cell_size > 0):
            raise ValueError("layer_spacing and cell_size must be positive")
        if self.max_layer_cells is not None and self.max_layer_cells < 1:
            raise ValueError("max_layer_cells must be positive (or None)")
        if self.blocks not in BLOCK_MODES:
            raise ValueError(f"blocks must be one of {BLOCK_MODES}, got {self.blocks!r}")
        if self.wrap not in WRAP_MODES:
            raise ValueError(f"wrap must be one of {WRAP_MODES}, got {self.wrap!r}")


@dataclass
class LayerPlan:
    layer: Layer
    grid: CellGrid                    # what is drawn (downsampled or a block for big/unknown)
    column: int                       # longest path from an input: layers of a column share x
    spacing_factor: float             # gap to the previous column, in layer spacings
    x: float
    y: float                          # side-by-side offset of parallel branches in a column
    stride: int                       # display downsampling of each map (1: every cell)
    block: bool                       # an unknown layer type, drawn as one block
    grid_layout: float
    channel_gap: float
    tile_depth: float
    cell_scale: float
    value_min: float
    value_max: float
    label: str
    show_label: bool = True
    picture: bool = False             # the input drawn as one map in the image's colours
    in_block: str | None = None       # the block the unit belongs to (core/blocks.py)
    hidden: bool = False              # hidden inside its collapsed block: no width, not drawn
    block_output: bool = False        # the unit a collapsed block is drawn as
    summarised: bool = False          # opens collapsed into its max map (Collapse 1, max)
    grid_columns: int = 0             # maps (neurons) per grid row; 0: a near-square grid
    z: float = 0.0                    # height of its row (0 unless the network is folded)
    row: int = 0                      # the row it is in (core/rows.py)
    direction: float = 1.0            # its row runs along +X (1) or -X (-1)

    @property
    def is_vector(self) -> bool:
        return self.grid.height == 1 and self.grid.width == 1

    @property
    def downsampled(self) -> bool:
        return self.stride > 1

    def extent(self, cell_size: float) -> tuple[float, float]:
        """(width, height) as drawn at import: one map when summarised."""
        pitch = cell_size * self.cell_scale
        if self.summarised:
            return self.grid.width * pitch, self.grid.height * pitch
        return layer_extent(self.grid, grid_layout=self.grid_layout, cell_size=pitch,
                            channel_gap=self.channel_gap, requested_columns=self.grid_columns)

    def display_values(self, activations: np.ndarray) -> np.ndarray:
        """(samples, drawn cells) float32 values for one epoch's (samples, *output) array.

        A drawn cell standing for several values (a downsampled block, an unknown layer's
        block) is their mean, or NaN if any of them is NaN/Inf: the nodes draw it as invalid.
        """
        samples = activations.shape[0]
        if self.block:
            values = np.asarray(activations, dtype=np.float32).reshape(samples, -1)
            if not values.shape[1]:
                return np.zeros((samples, 1), np.float32)
            with np.errstate(all="ignore"):
                mean = values.mean(axis=1, keepdims=True, dtype=np.float64)
            mean[~np.isfinite(values).all(axis=1)] = np.nan
            return mean.astype(np.float32)
        true = cell_grid(self.layer.output_shape)
        values = np.asarray(activations, dtype=np.float32).reshape(
            samples, true.height, true.width, true.channels)
        if self.picture:  # one map: a cell's value is its pixel's mean over the channels
            values = values.mean(axis=3, keepdims=True, dtype=np.float64).astype(np.float32)
        if self.stride > 1:
            values = downsample_maps(values, self.stride)
        return values.reshape(samples, -1)

    def picture_colours(self, activations: np.ndarray) -> np.ndarray:
        """(samples, drawn cells, 3) float32 linear RGB of a picture layer's (samples, H, W, C)
        pixels, downsampled like its cells, by the display mapping of core/picture.py."""
        samples = activations.shape[0]
        values = np.asarray(activations, dtype=np.float32).reshape(
            samples, *self.layer.output_shape)
        if self.stride > 1:
            values = downsample_maps(values, self.stride)
        return display_colours(values).reshape(samples, -1, 3)


@dataclass
class NetworkPlan:
    options: LayoutOptions
    layers: list[LayerPlan]
    global_min: float
    global_max: float
    bounds_min: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    bounds_max: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    warnings: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    collapsed_blocks: frozenset[str] = frozenset()
    rows: Rows | None = None          # how a long network is folded (None: one line)
    _by_name: dict[str, LayerPlan] = field(default_factory=dict, init=False, repr=False,
                                           compare=False)

    def layer(self, name: str) -> LayerPlan:
        """The plan of the unit called ``name`` (a dictionary, made on the first call)."""
        if len(self._by_name) != len(self.layers):
            self._by_name = {p.layer.name: p for p in self.layers}
        return self._by_name[name]


def downsample_maps(values: np.ndarray, stride: int) -> np.ndarray:
    """Mean over stride x stride blocks of (samples, H, W, C) maps (partial edge blocks too);
    NaN for a block holding a NaN/Inf value (drawn as invalid)."""
    samples, height, width, channels = values.shape
    rows, cols = -(-height // stride), -(-width // stride)
    shape = (samples, rows, stride, cols, stride, channels)
    padded = np.full((samples, rows * stride, cols * stride, channels), np.nan, np.float32)
    padded[:, :height, :width] = values
    invalid = np.zeros(padded.shape, bool)  # the padding is not invalid, only missing
    invalid[:, :height, :width] = ~np.isfinite(values)
    with np.errstate(all="ignore"):
        mean = np.nanmean(padded.reshape(shape), axis=(2, 4))
    mean[invalid.reshape(shape).any(axis=(2, 4))] = np.nan
    return mean.astype(np.float32)


def display_stride(grid: CellGrid, max_cells: int | None) -> int:
    """Smallest map downsampling that brings a layer under ``max_cells`` drawn cells."""
    if max_cells is None or grid.cells <= max_cells or grid.height * grid.width == 1:
        return 1
    stride = 1
    while (-(-grid.height // stride)) * (-(-grid.width // stride)) * grid.channels > max_cells \
            and (grid.height > stride or grid.width > stride):
        stride += 1
    return stride


def layer_columns(layers: list[Layer]) -> list[int]:
    """Column of each layer: the longest path from an input (layers are in topological order)."""
    column: dict[str, int] = {}
    for layer in layers:
        column[layer.name] = 1 + max((column[name] for name in layer.inbound), default=-1)
    return [column[layer.name] for layer in layers]


def label_size(cell_size: float) -> float:
    """Letter height of layer labels."""
    return max(0.15, 2.8 * cell_size)


LABEL_LINES = 2.6  # a label's height in label sizes: two lines and a gap


def label_height(cell_size: float) -> float:
    """The room a two-line label takes above its unit (an estimate before labels are placed)."""
    return LABEL_LINES * label_size(cell_size)


def layer_label(layer: Layer, grid: CellGrid | None = None, stride: int = 1,
                block: bool = False) -> str:
    shape = "x".join(str(d) for d in layer.output_shape)
    name = layer.unit_label or layer.name
    if block:
        return f"{name}\n{layer.type} {shape} (not drawn)"
    if stride > 1 and grid is not None:
        return f"{name}\n{layer.type} {shape} (shown {grid.height}x{grid.width})"
    return f"{name}\n{layer.type} {shape}"


def plan_network(export: NetworkExport, options: LayoutOptions | None = None) -> NetworkPlan:
    options = options or LayoutOptions()
    plans = []
    warnings = []
    columns = layer_columns(export.layers)
    layer_budget = options.max_layer_cells
    if options.max_total_cells is not None:
        share = max(4096, options.max_total_cells // len(export.layers))
        layer_budget = share if layer_budget is None else min(layer_budget, share)
    for layer, column in zip(export.layers, columns):
        true_grid = cell_grid(layer.output_shape)
        picture = options.input_as_picture and is_picture_layer(layer)
        if picture:
            true_grid = CellGrid(true_grid.height, true_grid.width, 1)
        block = layer.type not in KNOWN_LAYER_TYPES
        stride = 1 if block else display_stride(true_grid, layer_budget)
        if block:
            grid = CellGrid(1, 1, 1)
            warnings.append(f"layer {layer.name!r} has an unknown type {layer.type!r}: "
                            f"drawn as a block")
        else:
            grid = CellGrid(-(-true_grid.height // stride), -(-true_grid.width // stride),
                            true_grid.channels)
        vector = grid.height == 1 and grid.width == 1
        if block:
            grid_layout, gap, depth, scale = 0.0, 0.0, 1.0, options.block_cells
        elif vector:
            grid_layout = 1.0 if grid.channels > options.vector_grid_above else 0.0
            gap, depth, scale = options.neuron_gap, options.neuron_depth, options.neuron_scale
        else:
            grid_layout = 1.0 if options.map_layout == "grid" else 0.0
            gap, depth, scale = options.channel_gap, options.tile_depth, 1.0
        plan = LayerPlan(layer=layer, grid=grid, column=column, spacing_factor=1.0, x=0.0,
                         y=0.0, stride=stride, block=block, grid_layout=grid_layout,
                         channel_gap=gap, tile_depth=depth, cell_scale=scale, value_min=0.0,
                         value_max=1.0, label=layer_label(layer, grid, stride, block),
                         picture=picture)
        plan.value_min, plan.value_max = activation_range(
            plan.display_values(epoch.activations[layer.name]) for epoch in export.epochs)
        plans.append(plan)
    blocks, collapsed = _plan_blocks(export, plans, options)
    _shape_units(plans, options, deep=bool(collapsed))
    _place_columns(plans, options)
    _place_branches(plans, options)
    rows = _wrap_rows(export, plans, blocks, options) if options.wrap == "auto" else None
    if len(plans) > options.compact_labels_up_to:  # deep: label the units and the blocks
        for plan in plans:
            plan.show_label = plan.layer.type not in COMPACT_LAYER_TYPES or plan.block_output
    # Pictures show their own colours: their pixel values do not stretch the global range.
    coloured = [p for p in plans if not p.picture] or plans
    global_min = min(p.value_min for p in coloured)
    global_max = max(p.value_max for p in coloured)
    lo = [min(p.x for p in plans) - options.cell_size, 0.0, 0.0]
    hi = [max(p.x for p in plans) + options.cell_size, 0.0, 0.0]
    for p in plans:
        width, height = p.extent(options.cell_size)
        lo[1], hi[1] = min(lo[1], p.y - width / 2), max(hi[1], p.y + width / 2)
        lo[2], hi[2] = min(lo[2], p.z - height / 2), max(hi[2], p.z + height / 2)
    return NetworkPlan(options=options, layers=plans, global_min=global_min, global_max=global_max,
                       bounds_min=(lo[0], lo[1], lo[2]), bounds_max=(hi[0], hi[1], hi[2]),
                       warnings=warnings, blocks=blocks, collapsed_blocks=collapsed, rows=rows)


def _plan_blocks(export: NetworkExport, plans: list[LayerPlan],
                 options: LayoutOptions) -> tuple[list[Block], frozenset[str]]:
    """Find the blocks, mark their units and hide the members of collapsed ones; a block's
    output unit is labelled with the block's name."""
    if options.blocks == "off":
        return [], frozenset()
    blocks = find_blocks(export.layers)
    collapse = options.blocks == "collapsed" or (
        options.blocks == "auto" and collapsed_by_default(len(plans), blocks))
    by_name = {plan.layer.name: plan for plan in plans}
    for block in blocks:
        for name in block.members:
            by_name[name].in_block = block.name
            by_name[name].hidden = collapse and name != block.output
        output = by_name[block.output]
        output.block_output = True
        output.label = f"{block.name} ({len(block.members)} units)\n" + \
            output.label.split("\n", 1)[-1]
    return blocks, frozenset(block.name for block in blocks) if collapse else frozenset()


def _shape_units(plans: list[LayerPlan], options: LayoutOptions, deep: bool = False) -> None:
    """Shapes that read: maps drawn at their true relative size (a downsampled cell stands for
    stride x stride pixels; big networks compress the range, see ``size_exponent``), units with
    many maps (every unit of maps, in a deep network with collapsed blocks: one map a unit reads
    as a row) opened as their max map, big vectors as slim columns about as tall as the maps
    around them."""
    maps = [p for p in plans if not (p.block or p.is_vector)]
    tallest = max((cell_grid(p.layer.output_shape).height for p in maps), default=1)
    exponent = options.size_exponent if tallest >= options.compress_sizes_above else 1.0
    for plan in maps:
        true_height = cell_grid(plan.layer.output_shape).height
        drawn_height = tallest * (true_height / tallest) ** exponent  # in cells of Cell Size
        plan.cell_scale = drawn_height / plan.grid.height
        many = plan.grid.channels > (1 if deep else options.summary_above_channels)
        plan.summarised = many and not plan.picture
    map_heights = sorted(p.extent(options.cell_size)[1] for p in plans
                         if not (p.block or p.is_vector or p.hidden))
    target = map_heights[len(map_heights) // 2] if map_heights else 2.0
    target = min(max(target, 2.0), 12.0)
    for plan in plans:
        if not plan.is_vector or plan.block or plan.grid.channels <= options.vector_grid_above:
            continue
        channels = plan.grid.channels
        plan.grid_layout = 1.0
        plan.grid_columns = max(1, math.ceil(math.sqrt(channels / options.column_aspect)))
        rows = math.ceil(channels / plan.grid_columns)
        pitch = target / rows  # one neuron and its gap
        plan.cell_scale = min(options.neuron_scale, pitch / options.cell_size)
        plan.channel_gap = options.neuron_gap * plan.cell_scale / options.neuron_scale


def _column_widths(plans: list[LayerPlan], options: LayoutOptions) -> dict[int, float]:
    """Width (along y) of every column's shown units side by side."""
    widths: dict[int, list[float]] = {}
    for plan in plans:
        widths.setdefault(plan.column, [])
        if not plan.hidden:
            widths[plan.column].append(plan.extent(options.cell_size)[0])
    return {column: sum(w) + options.branch_gap * max(0, len(w) - 1)
            for column, w in widths.items()}


def _place_columns(plans: list[LayerPlan], options: LayoutOptions) -> None:
    """x of each column: the previous column's plus the spacing -- a fraction of it when every
    layer of the column is a compact (shape-keeping) layer, more when the units on either side
    are wide enough to hide one another from the default camera, none when every unit of the
    column is hidden in a collapsed block. ``spacing_factor`` is what the layer's location
    driver multiplies the spacing by (it halves after a collapsed unit: see blender/scene.py)."""
    factor: dict[int, float] = {}
    for plan in plans:
        compact = plan.layer.type in COMPACT_LAYER_TYPES and not plan.block_output
        own = options.compact_spacing if compact else 1.0
        factor[plan.column] = max(factor.get(plan.column, 0.0), own)
    shown: dict[int, bool] = {}  # a column of units hidden in collapsed blocks takes no room
    collapsed: dict[int, float] = {}  # the column head's collapse at import (the driver reads it)
    for plan in plans:
        shown[plan.column] = shown.get(plan.column, False) or not plan.hidden
        collapsed.setdefault(plan.column, 1.0 if plan.summarised else 0.0)
    widths = _column_widths(plans, options)
    x = {0: 0.0}
    previous_shown = 0
    for column in range(1, max(factor) + 1):
        needed = options.view_overlap * (widths[previous_shown] + widths[column]) / 2 \
            + options.unit_margin
        gap = max(options.layer_spacing * factor[column], needed)
        factor[column] = gap / options.layer_spacing / (1 - COLLAPSED_GAP * collapsed[column - 1])
        x[column] = x[column - 1] + gap * shown[column]
        if shown[column]:
            previous_shown = column
    for plan in plans:
        plan.spacing_factor = factor[plan.column] if plan.column else 0.0
        plan.x = x[plan.column]


def _place_branches(plans: list[LayerPlan], options: LayoutOptions) -> None:
    """Layers sharing a column (parallel branches) sit side by side along the layer's right
    (-Y), in graph order, centred on the network axis."""
    by_column: dict[int, list[LayerPlan]] = {}
    for plan in plans:
        by_column.setdefault(plan.column, []).append(plan)
    for members in by_column.values():
        if len(members) == 1:
            continue
        widths = [m.extent(options.cell_size)[0] for m in members]
        total = sum(widths) + options.branch_gap * (len(members) - 1)
        cursor = total / 2
        for member, width in zip(members, widths):
            member.y = cursor - width / 2   # right is -Y: the first branch is leftmost
            cursor -= width + options.branch_gap


def _link_spans(export: NetworkExport, plans: list[LayerPlan],
                blocks: list[Block]) -> list[tuple[int, int]]:
    """(source column, target column) of every link the network draws: the graph's, the ones
    drawn from a Flatten's feeder (core/links.py), and each block's entry-to-output link."""
    column = {p.layer.name: p.column for p in plans}
    inbound = {layer.name: layer.inbound for layer in export.layers}
    spans = []
    for layer in export.layers:
        for name in layer.inbound:
            spans.append((column[name], column[layer.name]))
            if export.layer(name).type == "Flatten":
                spans += [(column[feeder], column[layer.name]) for feeder in inbound[name]]
    spans += [(column[block.entry], column[block.output]) for block in blocks
              if block.entry is not None]
    return spans


def _wrap_rows(export: NetworkExport, plans: list[LayerPlan], blocks: list[Block],
               options: LayoutOptions) -> Rows | None:
    """Fold a network whose line is too long into rows (core/rows.py): every unit gets its row,
    height and direction, and a row's first column follows the previous one at no spacing.
    None when it stays one line."""
    columns = max(p.column for p in plans) + 1
    x = np.zeros(columns)
    shown = np.zeros(columns, bool)
    for plan in plans:
        x[plan.column] = plan.x
        shown[plan.column] |= not plan.hidden
    drawn = [p for p in plans if not p.hidden]
    pitch = row_pitch([p.extent(options.cell_size)[1] for p in drawn],
                      list(_column_widths(plans, options).values()),
                      label_height(options.cell_size), options.unit_margin)
    count = row_count(float(x[-1] - x[0]), pitch, options.wrap_aspect)
    if count < 2:
        return None
    allowed = allowed_breaks(columns, _link_spans(export, plans, blocks)) & shown
    rows = Rows(choose_starts(x, allowed, count), pitch)
    if rows.count < 2:
        return None
    folded, heights, directions = fold_columns(x, rows)
    row = rows.row_of(columns)
    starts = set(rows.starts[1:])
    for plan in plans:
        plan.x, plan.z = float(folded[plan.column]), float(heights[plan.column])
        plan.direction, plan.row = float(directions[plan.column]), int(row[plan.column])
        if plan.column in starts:
            plan.spacing_factor = 0.0
    return rows


def layer_corners(plan: NetworkPlan, label_height: float) -> np.ndarray:
    """Corners of every layer's box (cells plus the label above), for framing a camera."""
    corners = []
    for layer in plan.layers:
        if layer.hidden:
            continue
        depth = plan.options.cell_size * layer.cell_scale
        width, height = layer.extent(plan.options.cell_size)
        for x in (layer.x - depth, layer.x + depth):
            for y in (layer.y - width / 2, layer.y + width / 2):
                for z in (layer.z - height / 2, layer.z + height / 2 + label_height):
                    corners.append((x, y, z))
    return np.asarray(corners, dtype=np.float64)


def fit_camera(points: np.ndarray, view_direction, fov_x: float, fov_y: float,
               margin: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """(location, forward) of a perspective camera looking along -view_direction that shows every
    point with ``margin`` (fraction of the frame) to spare, centred on the points' projection."""
    back = np.asarray(view_direction, dtype=np.float64)
    back /= np.linalg.norm(back)
    forward = -back
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    tan_x = math.tan(fov_x / 2) * (1 - 2 * margin)
    tan_y = math.tan(fov_y / 2) * (1 - 2 * margin)
    target = (points.min(axis=0) + points.max(axis=0)) / 2
    for _ in range(4):  # distance, then re-centre the projection; converges in a few steps
        q = points - target
        x, y, z = q @ right, q @ up, q @ forward
        distance = max(np.max(np.abs(x) / tan_x - z), np.max(np.abs(y) / tan_y - z))
        depth = distance + z
        sx, sy = x / depth, y / depth
        shift_x = (sx.max() + sx.min()) / 2 * distance
        shift_y = (sy.max() + sy.min()) / 2 * distance
        target = target + right * shift_x + up * shift_y
    return target + back * distance, forward
