"""The "NNVis Layer" geometry-nodes group: one modifier per layer object.

The layer's mesh holds one vertex per cell (H x W x C; a Dense layer is C neurons of 1 x 1)
with integer attributes ``channel``, ``row``, ``col`` and one float attribute per recorded
(sample, epoch): ``nnvis_act_s{sample}_e{epoch_index}``. Everything that changes the picture is
a group input, so the panel and animation never rebuild meshes:

* layout: each channel's map is a grid of cells; maps sit in a linear row or a grid of maps,
  blended by ``Grid Layout`` (0 = linear, 1 = grid) so layout changes can animate;
* ``Collapse`` (0..1) slides every map onto the centre; with ``Collapse Summary`` 0 the maps end
  stacked tightly along the layer axis, with 1 (max) or 2 (mean) they merge into one map showing
  the max or mean over channels (the ``nnvis_max_``/``nnvis_mean_`` attributes), the other maps
  shrinking away;
* ``Sample`` and ``Epoch`` pick the activation attribute, each clamped to what was recorded
  (``Sample Count``, ``Epoch Count``): past the last sample or epoch shows the last one, below 0
  the first; a fractional epoch interpolates linearly between the two neighbouring recorded
  epochs unless ``Step Epochs`` is on;
* the activation is normalised by (``Value Min``, ``Value Max``) or by the network-wide range
  (``Normalize Globally``) and stored as ``activation`` and ``activation_norm`` on the instances,
  which the cell material reads; a cell whose recorded value is NaN/Inf (a diverged epoch) gets
  ``activation`` 0 and ``activation_invalid`` 1 (else 0), which the material shows in its
  invalid colour. The check runs in the nodes, so a saved .blend needs no Python for it;
* ``Picture`` (the input drawn as a picture, core/picture.py): the cells also carry the shown
  sample's pixel colours (``picture_colour``, with ``picture`` = 1), see picture_nodes.py.

Layer-local axes: the network runs along +X; in a layer, "right" is -Y and "down" is -Z, so a
camera in front-left of the network sees maps unmirrored.

The unit's label is not drawn here: it is a static text object of its own (blender/labels.py),
so playback never rebuilds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import picture_nodes
from .builder import find_current, new_modifier_group

GROUP_NAME = "NNVis Layer"
VERSION = 12
ACTIVATION_ATTRIBUTE_PREFIX = "nnvis_act_"
# Collapse Summary -> attribute prefix of the per-cell summary over channels.
SUMMARY_PREFIXES = {1: "nnvis_max_", 2: "nnvis_mean_"}
# 1 on a cell whose shown value is NaN/Inf in the export (read by the cell material).
INVALID_ATTRIBUTE = "activation_invalid"
# The activation mapped to 0..1 by the colour range: what the cell material colours by.
NORM_ATTRIBUTE = "activation_norm"


def summary_attribute_name(kind: int, sample: int, epoch_index: int) -> str:
    return f"{SUMMARY_PREFIXES[kind]}s{sample}_e{epoch_index}"


def activation_attribute_name(sample: int, epoch_index: int) -> str:
    return f"{ACTIVATION_ATTRIBUTE_PREFIX}s{sample}_e{epoch_index}"


# name, kind, default, min, max, subtype, description
INPUTS = (
    ("Map Height", "INT", 1, 1, None, None, "Rows of each channel's map (H)"),
    ("Map Width", "INT", 1, 1, None, None, "Columns of each channel's map (W)"),
    ("Channels", "INT", 1, 1, None, None, "Number of maps (C); neurons for a Dense layer"),
    ("Grid Layout", "FLOAT", 0.0, 0.0, 1.0, "FACTOR", "0: maps in a linear row, 1: maps in a grid"),
    ("Grid Columns", "INT", 0, 0, None, None, "Maps per grid row; 0 picks a near-square grid"),
    ("Cell Size", "FLOAT", 0.1, 0.0001, None, "DISTANCE", "Distance between neighbouring cells"),
    ("Cell Scale", "FLOAT", 1.0, 0.001, None, None, "This layer's cells relative to Cell Size"),
    ("Cell Gap", "FLOAT", 0.12, 0.0, 0.95, "FACTOR", "Gap between cells, as a fraction of the cell"),
    ("Channel Gap", "FLOAT", 0.2, 0.0, None, "DISTANCE", "Space between maps"),
    ("Tile Depth", "FLOAT", 0.25, 0.001, None, "FACTOR", "Tile thickness along the layer axis, in cells"),
    ("Collapse", "FLOAT", 0.0, 0.0, 1.0, "FACTOR", "0: every map shown; 1: maps stacked tightly"),
    ("Hidden", "FLOAT", 0.0, 0.0, 1.0, "FACTOR", "1: the layer is hidden inside its collapsed block (cells shrink to nothing)"),
    ("Stack Spacing", "FLOAT", 0.35, 0.0, None, "FACTOR", "Collapsed maps' spacing along the layer axis, in cells"),
    ("Collapse Summary", "INT", 0, 0, 2, None, "Collapsed: 0 stack the maps, 1 show the max over channels, 2 the mean"),
    ("Has Summaries", "BOOLEAN", False, None, None, None, "The mesh holds max/mean-over-channel attributes"),
    ("Picture", "BOOLEAN", False, None, None, None, "Cells show the sample's pixel colours (the input as a picture)"),
    ("Sample", "INT", 0, 0, None, None, "Input sample whose activations are shown"),
    ("Sample Count", "INT", 1, 1, None, None, "Number of recorded samples"),
    ("Epoch", "FLOAT", 0.0, 0.0, None, None, "Recorded epoch index; fractions interpolate"),
    ("Epoch Count", "INT", 1, 1, None, None, "Number of recorded epochs"),
    ("Step Epochs", "BOOLEAN", False, None, None, None, "Hold each epoch instead of interpolating"),
    ("Value Min", "FLOAT", 0.0, None, None, None, "Activation shown at the bottom of the colour ramp"),
    ("Value Max", "FLOAT", 1.0, None, None, None, "Activation shown at the top of the colour ramp"),
    ("Normalize Globally", "BOOLEAN", False, None, None, None, "Use the network-wide range instead"),
    ("Global Min", "FLOAT", 0.0, None, None, None, "Network-wide minimum activation"),
    ("Global Max", "FLOAT", 1.0, None, None, None, "Network-wide maximum activation"),
    ("Cell Material", "MATERIAL", None, None, None, None, "Material of the cells"),
    ("Viewport Points", "BOOLEAN", False, None, None, None, "Draw cells as points in the viewport (big layers); tiles in renders"),
)


def ensure_layer_group():
    """The shared layer group, built on first use and reused by every import."""
    return find_current(GROUP_NAME, VERSION) or build_layer_group()


@dataclass
class _MapLayout:
    """Single values of the map layout the later steps read (sockets of the tree)."""

    pitch: Any
    map_w: Any
    map_h: Any
    step_u: Any
    step_v: Any
    cols: Any
    blend: Any        # Grid Layout: 0 linear row, 1 grid
    total_w: Any
    total_h: Any
    merge: Any        # 1 when collapsing into one summary map


def build_layer_group():
    b, m, inp = new_modifier_group(GROUP_NAME, VERSION, "nnvis: cells of one network layer, coloured by activation",
                                   INPUTS)
    layout = _map_layout(b, m, inp)
    placed, channel = _cell_positions(b, m, inp, layout)
    stored, sample_text = _activation(b, m, inp, placed.outputs[0], layout)
    stored = picture_nodes.store_picture(b, m, stored.outputs[0], inp["Picture"], sample_text)
    stored = _drop_recorded_attributes(b, stored)
    cells = _cells(b, m, inp, stored, layout, channel)
    b.section(None)
    go = b.node("NodeGroupOutput")
    b.link(cells.outputs[0], go.inputs[0])
    b.arrange()
    return b.tree


def _map_layout(b, m, inp) -> _MapLayout:
    """Where each map sits: a linear row or a grid (blended by Grid Layout), the layer's size."""
    b.section("Map layout")
    pitch = m.mul(inp["Cell Size"], inp["Cell Scale"])
    channels = inp["Channels"]
    gap = inp["Channel Gap"]
    map_w = m.mul(inp["Map Width"], pitch)
    map_h = m.mul(inp["Map Height"], pitch)
    step_u = m.add(map_w, gap)
    step_v = m.add(map_h, gap)
    auto_cols = m.op("CEIL", m.op("SQRT", channels))
    cols = m.switch("FLOAT", b.node("FunctionNodeCompare", {0: inp["Grid Columns"], 1: 0.5},
                                    data_type="FLOAT", operation="GREATER_THAN").outputs[0],
                    auto_cols, m.op("MINIMUM", inp["Grid Columns"], channels))
    rows = m.op("CEIL", m.div(channels, cols))
    blend = inp["Grid Layout"]
    total_w = m.sub(m.lerp(m.mul(channels, step_u), m.mul(cols, step_u), blend), gap)
    total_h = m.sub(m.lerp(step_v, m.mul(rows, step_v), blend), gap)
    merging = b.node("FunctionNodeCompare", {2: inp["Collapse Summary"], 3: 0},
                     data_type="INT", operation="GREATER_THAN").outputs[0]
    merging = b.node("FunctionNodeBooleanMath", {0: merging, 1: inp["Has Summaries"]},
                     operation="AND").outputs[0]
    merge = m.switch("FLOAT", merging, 0.0, 1.0)
    return _MapLayout(pitch, map_w, map_h, step_u, step_v, cols, blend, total_w, total_h, merge)


def _cell_positions(b, m, inp, layout: _MapLayout):
    """Each cell's position from its channel, row and col (fields); (Set Position node, the
    channel field)."""
    b.section("Cell positions")

    def int_attribute(name):
        return b.node("GeometryNodeInputNamedAttribute", {"Name": name}, data_type="INT").outputs[0]

    channel, row, col = (int_attribute(name) for name in ("channel", "row", "col"))
    collapse = inp["Collapse"]
    grid_u = m.mul(m.op("MODULO", channel, layout.cols), layout.step_u)
    grid_v = m.mul(m.op("FLOOR", m.div(channel, layout.cols)), layout.step_v)
    map_u = m.lerp(m.mul(channel, layout.step_u), grid_u, layout.blend)
    map_v = m.mul(grid_v, layout.blend)
    # Collapsed, every map moves onto the first map's place (centred), offset along the axis.
    centred_u = m.sub(m.mul(layout.total_w, 0.5), m.mul(layout.map_w, 0.5))
    centred_v = m.sub(m.mul(layout.total_h, 0.5), m.mul(layout.map_h, 0.5))
    map_u = m.lerp(map_u, centred_u, collapse)
    map_v = m.lerp(map_v, centred_v, collapse)
    cell_u = m.op("MULTIPLY_ADD", m.add(col, 0.5), layout.pitch, map_u)
    cell_v = m.op("MULTIPLY_ADD", m.add(row, 0.5), layout.pitch, map_v)
    stack_x = m.mul(m.mul(m.mul(m.mul(channel, collapse), inp["Stack Spacing"]), layout.pitch),
                    m.sub(1.0, layout.merge))
    position = m.combine(stack_x, m.sub(m.mul(layout.total_w, 0.5), cell_u),
                         m.sub(m.mul(layout.total_h, 0.5), cell_v))
    placed = b.node("GeometryNodeSetPosition", {"Geometry": inp["Geometry"], "Position": position})
    return placed, channel


def _activation(b, m, inp, geometry, layout: _MapLayout):
    """The shown value at (sample, epoch), a summary while merging, normalised and checked for
    NaN/Inf, stored on the points; (last Store node, the clamped sample as text)."""
    b.section("Activation")
    last_sample = m.sub(inp["Sample Count"], 1)
    sample_text = m.text(m.op("MINIMUM", m.op("MAXIMUM", inp["Sample"], 0.0), last_sample))
    activation, valid = m.epoch_attribute([ACTIVATION_ATTRIBUTE_PREFIX + "s", sample_text, "_e"],
                                          inp["Epoch"], inp["Epoch Count"], inp["Step Epochs"])
    use_max = b.node("FunctionNodeCompare", {2: inp["Collapse Summary"], 3: 1},
                     data_type="INT", operation="EQUAL").outputs[0]
    summary_prefix = b.node("GeometryNodeSwitch", {0: use_max, "False": SUMMARY_PREFIXES[2],
                                                   "True": SUMMARY_PREFIXES[1]},
                            input_type="STRING").outputs[0]
    summary, summary_valid = m.epoch_attribute([summary_prefix, "s", sample_text, "_e"],
                                               inp["Epoch"], inp["Epoch Count"],
                                               inp["Step Epochs"])
    summary_weight = m.mul(inp["Collapse"], layout.merge)
    # A single-value switch evaluates only the branch it takes: no summary lookups (two more
    # named attributes per epoch) while the layer is not merging.
    merging_now = b.node("FunctionNodeCompare", {0: summary_weight, 1: 0.0}, data_type="FLOAT",
                         operation="GREATER_THAN").outputs[0]
    activation = m.switch("FLOAT", merging_now, activation,
                          m.lerp(activation, summary, summary_weight))
    both_valid = b.node("FunctionNodeBooleanMath", {0: valid, 1: summary_valid},
                        operation="AND").outputs[0]
    valid = b.node("GeometryNodeSwitch", {0: merging_now, "False": valid, "True": both_valid},
                   input_type="BOOLEAN").outputs[0]
    use_global = inp["Normalize Globally"]
    value_min = m.switch("FLOAT", use_global, inp["Value Min"], inp["Global Min"])
    value_max = m.switch("FLOAT", use_global, inp["Value Max"], inp["Global Max"])
    normalised = b.node("ShaderNodeMapRange", {"Value": activation, "From Min": value_min,
                                               "From Max": value_max, "To Min": 0.0, "To Max": 1.0},
                        clamp=True).outputs[0]
    stored = None
    for name, value in (("activation", activation), (NORM_ATTRIBUTE, normalised),
                        (INVALID_ATTRIBUTE, m.switch("FLOAT", valid, 1.0, 0.0))):
        stored = b.node("GeometryNodeStoreNamedAttribute",
                        {"Geometry": geometry if stored is None else stored.outputs[0],
                         "Name": name, "Value": value}, data_type="FLOAT", domain="POINT")
    return stored, sample_text


def _drop_recorded_attributes(b, stored):
    """The per-(sample, epoch) attributes stay on the mesh; instances carry only what they draw."""
    for prefix in (ACTIVATION_ATTRIBUTE_PREFIX, *SUMMARY_PREFIXES.values(),
                   picture_nodes.PICTURE_COLOUR_PREFIX):
        stored = b.node("GeometryNodeRemoveAttribute", {"Geometry": stored.outputs[0],
                                                        "Name": prefix + "*"})
        if "Pattern Mode" in stored.inputs:  # Blender 5.0+: a menu input
            b.set_input(stored, "Pattern Mode", "Wildcard")
        else:  # Blender 4.2-4.5: a node property
            stored.pattern_mode = "WILDCARD"
    return stored


def _cells(b, m, inp, stored, layout: _MapLayout, channel):
    """Cells as instanced tiles (points in the viewport for big layers): the group's output."""
    b.section("Cells")
    tile = m.mul(layout.pitch, m.sub(1.0, inp["Cell Gap"]))
    tile_size = m.combine(m.mul(layout.pitch, inp["Tile Depth"]), tile, tile)
    cube = b.node("GeometryNodeMeshCube", {"Size": tile_size})
    cube = b.node("GeometryNodeSetMaterial", {"Geometry": cube.outputs[0],
                                              "Material": inp["Cell Material"]})
    # Merging into one summary map, every map but the first shrinks away.
    other_map = b.node("FunctionNodeCompare", {2: channel, 3: 0}, data_type="INT",
                       operation="GREATER_THAN").outputs[0]
    shrink = m.mul(m.mul(inp["Collapse"], layout.merge), m.switch("FLOAT", other_map, 0.0, 1.0))
    shown = m.sub(1.0, inp["Hidden"])  # a unit hidden in a collapsed block shrinks away
    cells = b.node("GeometryNodeInstanceOnPoints", {"Points": stored.outputs[0],
                                                    "Instance": cube.outputs[0],
                                                    "Scale": m.mul(m.sub(1.0, shrink), shown)})
    # Level of detail: in the viewport a big layer can show points instead of tile instances.
    points = b.node("GeometryNodeMeshToPoints", {"Mesh": stored.outputs[0],
                                                  "Radius": m.mul(m.mul(tile, 0.5), shown)})
    points = b.node("GeometryNodeSetMaterial", {"Geometry": points.outputs[0],
                                                "Material": inp["Cell Material"]})
    as_points = b.node("FunctionNodeBooleanMath", {
        0: b.node("GeometryNodeIsViewport").outputs[0], 1: inp["Viewport Points"]},
        operation="AND").outputs[0]
    return b.node("GeometryNodeSwitch", {0: as_points, "False": cells.outputs[0],
                                         "True": points.outputs[0]}, input_type="GEOMETRY")
