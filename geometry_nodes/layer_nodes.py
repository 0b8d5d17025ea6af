"""The "NNVis Layer" geometry-nodes group: one modifier per layer object.

The layer's mesh holds one vertex per cell (H x W x C; a Dense layer is C neurons of 1 x 1)
with integer attributes ``channel``, ``row``, ``col``. Everything that changes the picture is a
group input, so the panel and animation never rebuild meshes:

* layout: each channel's map is a grid of cells; maps sit in a linear row or a grid of maps,
  blended by ``Grid Layout`` (0 = linear, 1 = grid) so layout changes can animate;
* ``Collapse`` (0..1) slides every map onto the centre; with ``Collapse Summary`` 0 the maps end
  stacked tightly along the layer axis, with 1 (max) or 2 (mean) they merge into one map showing
  the max or mean over channels, the other maps shrinking away;
* the values are not here: the recorded activations of every (sample, epoch) lie in the
  network's value atlas, which the cell material reads at the shown sample and epoch
  (geometry_nodes/atlas_nodes.py), so playback evaluates no geometry. This group stores on the
  instances what the material needs for that: the cell's index in the layer's stream
  (``nnvis_cell``), its pixel's index in the summary streams (``nnvis_map_cell``), how far it
  shows the summary (``nnvis_summary_mix``, max or mean: ``nnvis_summary_max``) and the colour
  range (``Value Min``/``Value Max``, or the network-wide range with ``Normalize Globally``:
  ``nnvis_value_min``/``nnvis_value_max``);
* output: the cells as tile instances (points in the viewport for big layers), none for cells
  shrunk to nothing (the other maps of a merged layer, a unit hidden in its collapsed block:
  fewer instances for a renderer to take over), and every cell's centre as a bare vertex, which
  renders as nothing: where the connections end (connection_nodes.py);
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
VERSION = 15
# Instance attributes the cell material reads (geometry_nodes/materials.py):
CELL_ATTRIBUTE = "nnvis_cell"                # the cell's index in the layer's value stream
MAP_CELL_ATTRIBUTE = "nnvis_map_cell"        # its pixel's index in the summary streams
SUMMARY_MIX_ATTRIBUTE = "nnvis_summary_mix"  # 0: the cell's own value .. 1: its pixel's summary
SUMMARY_MAX_ATTRIBUTE = "nnvis_summary_max"  # 1: the summary is the max over channels, 0: mean
VALUE_MIN_ATTRIBUTE = "nnvis_value_min"      # the colour range
VALUE_MAX_ATTRIBUTE = "nnvis_value_max"
# The layer object's value streams in the network's atlas (blender/value_atlas.py prefixes):
# its cells, and per pixel the max and the mean over channels.
CELLS_STREAM = "nnvis_cells"
SUMMARY_STREAMS = {1: "nnvis_max", 2: "nnvis_mean"}
# Units showing the class evidence overlay (core/evidence.py MAPS, KINDS): per map they show
# (Grad-CAM; on the input also saliency) its value per drawn pixel, for the predicted class and
# for the true label (the predicted one's place when no labels were given).
OVERLAY_STREAMS = {
    "gradcam": {"predicted": "nnvis_cam_predicted", "label": "nnvis_cam_label"},
    "saliency": {"predicted": "nnvis_saliency_predicted", "label": "nnvis_saliency_label"},
}


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
    ("Sample", "INT", 0, 0, None, None, "Input sample whose picture is shown"),
    ("Sample Count", "INT", 1, 1, None, None, "Number of recorded samples"),
    ("Value Min", "FLOAT", 0.0, None, None, None, "Activation shown at the bottom of the colour ramp"),
    ("Value Max", "FLOAT", 1.0, None, None, None, "Activation shown at the top of the colour ramp"),
    ("Normalize Globally", "BOOLEAN", False, None, None, None, "Use the network-wide range instead"),
    ("Global Min", "FLOAT", 0.0, None, None, None, "Network-wide minimum activation"),
    ("Global Max", "FLOAT", 1.0, None, None, None, "Network-wide maximum activation"),
    ("Cell Material", "MATERIAL", None, None, None, None, "Material of the cells"),
    ("Summary Material", "MATERIAL", None, None, None, None,
     "Material of the cells while the maps merge into their max or mean map (reads the summaries)"),
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
    stored, sample_text = _shading(b, m, inp, placed.outputs[0], layout)
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


def _shading(b, m, inp, geometry, layout: _MapLayout):
    """What the cell material needs to find and colour a cell's value (geometry_nodes/
    atlas_nodes.py): its place in the layer's streams, how much of the summary map it shows and
    the colour range; all static during playback. (last Store node, the clamped sample as text)."""
    b.section("Shading: the cell's values in the atlas, colour range")
    last_sample = m.sub(inp["Sample Count"], 1)
    sample_text = m.text(m.op("MINIMUM", m.op("MAXIMUM", inp["Sample"], 0.0), last_sample))

    def int_attribute(name):
        return b.node("GeometryNodeInputNamedAttribute", {"Name": name}, data_type="INT").outputs[0]

    map_cell = m.op("MULTIPLY_ADD", int_attribute("row"), inp["Map Width"], int_attribute("col"))
    use_max = b.node("FunctionNodeCompare", {2: inp["Collapse Summary"], 3: 1},
                     data_type="INT", operation="EQUAL").outputs[0]
    use_global = inp["Normalize Globally"]
    stored = None
    for name, value in ((CELL_ATTRIBUTE, b.node("GeometryNodeInputIndex").outputs[0]),
                        (MAP_CELL_ATTRIBUTE, map_cell),
                        (SUMMARY_MIX_ATTRIBUTE, m.mul(inp["Collapse"], layout.merge)),
                        (SUMMARY_MAX_ATTRIBUTE, m.switch("FLOAT", use_max, 0.0, 1.0)),
                        (VALUE_MIN_ATTRIBUTE, m.switch("FLOAT", use_global, inp["Value Min"],
                                                       inp["Global Min"])),
                        (VALUE_MAX_ATTRIBUTE, m.switch("FLOAT", use_global, inp["Value Max"],
                                                       inp["Global Max"]))):
        stored = b.node("GeometryNodeStoreNamedAttribute",
                        {"Geometry": geometry if stored is None else stored.outputs[0],
                         "Name": name, "Value": value}, data_type="FLOAT", domain="POINT")
    return stored, sample_text


def _without_attributes(b, geometry, pattern: str):
    """A node giving ``geometry`` without the named attributes that match ``pattern`` (a
    wildcard)."""
    removed = b.node("GeometryNodeRemoveAttribute", {"Geometry": geometry, "Name": pattern})
    if "Pattern Mode" in removed.inputs:  # Blender 5.0+: a menu input
        b.set_input(removed, "Pattern Mode", "Wildcard")
    else:  # Blender 4.2-4.5: a node property
        removed.pattern_mode = "WILDCARD"
    return removed


def _drop_recorded_attributes(b, stored):
    """The per-sample picture colours stay on the mesh; instances carry only what they draw."""
    return _without_attributes(b, stored.outputs[0], picture_nodes.PICTURE_COLOUR_PREFIX + "*")


def _cells(b, m, inp, stored, layout: _MapLayout, channel):
    """Cells as instanced tiles (points in the viewport for big layers): the group's output."""
    b.section("Cells")
    # The summaries' attributes are read only while merging (a material that does not read
    # them costs Blender fewer lookups per cell when it hands a render to Cycles).
    merging = b.node("FunctionNodeCompare", {0: m.mul(inp["Collapse"], layout.merge), 1: 0.0},
                     data_type="FLOAT", operation="GREATER_THAN").outputs[0]
    material = b.node("GeometryNodeSwitch", {0: merging, "False": inp["Cell Material"],
                                             "True": inp["Summary Material"]},
                      input_type="MATERIAL").outputs[0]
    tile = m.mul(layout.pitch, m.sub(1.0, inp["Cell Gap"]))
    tile_size = m.combine(m.mul(layout.pitch, inp["Tile Depth"]), tile, tile)
    cube = b.node("GeometryNodeMeshCube", {"Size": tile_size})
    cube = b.node("GeometryNodeSetMaterial", {"Geometry": cube.outputs[0],
                                              "Material": material})
    # Merging into one summary map, every map but the first shrinks away.
    other_map = b.node("FunctionNodeCompare", {2: channel, 3: 0}, data_type="INT",
                       operation="GREATER_THAN").outputs[0]
    shrink = m.mul(m.mul(inp["Collapse"], layout.merge), m.switch("FLOAT", other_map, 0.0, 1.0))
    shown = m.sub(1.0, inp["Hidden"])  # a unit hidden in a collapsed block shrinks away
    scale = m.mul(m.sub(1.0, shrink), shown)
    # Cells shrunk to nothing (the other maps of a merged layer, a unit hidden in its block)
    # are not made at all: no instance for a renderer to take over.
    gone = b.node("FunctionNodeCompare", {0: scale, 1: 1e-6}, data_type="FLOAT",
                  operation="LESS_THAN").outputs[0]
    kept = b.node("GeometryNodeDeleteGeometry", {"Geometry": stored.outputs[0],
                                                 "Selection": gone}, domain="POINT")
    cells = b.node("GeometryNodeInstanceOnPoints", {"Points": kept.outputs[0],
                                                    "Instance": cube.outputs[0], "Scale": scale})
    # Level of detail: in the viewport a big layer can show points instead of tile instances.
    points = b.node("GeometryNodeMeshToPoints", {"Mesh": kept.outputs[0],
                                                  "Radius": m.mul(m.mul(tile, 0.5), shown)})
    points = b.node("GeometryNodeSetMaterial", {"Geometry": points.outputs[0],
                                                "Material": material})
    as_points = b.node("FunctionNodeBooleanMath", {
        0: b.node("GeometryNodeIsViewport").outputs[0], 1: inp["Viewport Points"]},
        operation="AND").outputs[0]
    drawn = b.node("GeometryNodeSwitch", {0: as_points, "False": cells.outputs[0],
                                          "True": points.outputs[0]}, input_type="GEOMETRY")
    # Every cell's centre, drawn or not, as a bare vertex (it renders as nothing): where the
    # connections end (connection_nodes.py samples them by cell index).
    centres = _without_attributes(b, stored.outputs[0], "*").outputs[0]
    joined = b.node("GeometryNodeJoinGeometry")
    b.link_multi_input([drawn.outputs[0], centres], joined.inputs[0])
    return joined
