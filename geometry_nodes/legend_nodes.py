"""The "NNVis Colour Legend" geometry-nodes group: the on-screen colour bar of a network.

The legend object (blender/legend.py) rides on the network's camera in the lower-right corner
of the frame. Its group draws, in the object's XY plane facing +Z (towards the camera), right-
aligned on x = 0 with the lowest baseline on y = 0:

* a colour bar of ``Steps`` tiles from x = -``Width`` to 0: tile ``i`` is an instance carrying
  ``nnvis_legend_norm`` = i / (Steps - 1), drawn with the "NNVis Legend" material, which colours
  it by the cells' own mapping (materials.py ``_viridis``), so the bar shows exactly the colours (ramp and
  glow) a cell of that normalised value gets: the ramp has one home, the material;
* under the bar, the value at each end (left-aligned at the bar's left end, right-aligned at
  its right end); above it, a title that says how the colours are normalised;
* both from string inputs made at import (core/legend.py), one set for per-layer and one for
  global normalisation, switched by the ``Global`` input, which a simple driver ties to the
  root's ``nnvis_normalize_globally``: the legend follows the control without Python.

For tests and tools the text mesh carries what it shows as point attributes:
``nnvis_legend_global`` (1 when the global texts are shown) and ``nnvis_legend_title_chars``,
``nnvis_legend_low_chars``, ``nnvis_legend_high_chars`` (the lengths of the shown strings).
"""

from __future__ import annotations

from .builder import find_current, new_modifier_group

GROUP_NAME = "NNVis Colour Legend"
VERSION = 3
# The normalised value a tile of the colour bar shows (read by the legend material).
NORM_ATTRIBUTE = "nnvis_legend_norm"
BAR_GAP = 0.45     # from the top of the end values (one text size) to the bar, in text sizes
TITLE_GAP = 0.45   # from the bar to the title's baseline, in text sizes

# name, kind, default, min, max, subtype, description
INPUTS = (
    ("Global", "BOOLEAN", False, None, None, None, "Show the global range (else per layer)"),
    ("Per Layer Title", "STRING", "", None, None, None, "Title with per-layer normalisation"),
    ("Per Layer Low", "STRING", "", None, None, None, "Left end of the bar, per layer"),
    ("Per Layer High", "STRING", "", None, None, None, "Right end of the bar, per layer"),
    ("Global Title", "STRING", "", None, None, None, "Title with global normalisation"),
    ("Global Low", "STRING", "", None, None, None, "Left end of the bar: the global minimum"),
    ("Global High", "STRING", "", None, None, None, "Right end of the bar: the global maximum"),
    ("Width", "FLOAT", 0.7, 0.0, None, "DISTANCE", "Length of the colour bar"),
    ("Bar Height", "FLOAT", 0.05, 0.0, None, "DISTANCE", "Height of the colour bar"),
    ("Text Size", "FLOAT", 0.05, 0.0, None, "DISTANCE", "Height of the letters"),
    ("Steps", "INT", 64, 2, 1024, None, "Tiles of the colour bar"),
    ("Bar Material", "MATERIAL", None, None, None, None, "The colour bar's material (NNVis Legend)"),
    ("Text Material", "MATERIAL", None, None, None, None, "Material of the text"),
)


def ensure_legend_group():
    return find_current(GROUP_NAME, VERSION) or build_legend_group()


def build_legend_group():
    b, m, inp = new_modifier_group(GROUP_NAME, VERSION, "nnvis: colour bar of the activation colours with its value range",
                                   INPUTS)
    b.section("Texts of the shown mode")
    shown = {part: m.switch("STRING", inp["Global"], inp[f"Per Layer {part}"], inp[f"Global {part}"])
             for part in ("Title", "Low", "High")}
    b.section("Text")
    size = inp["Text Size"]
    bar_bottom = m.mul(size, 1.0 + BAR_GAP)
    bar_top = m.add(bar_bottom, inp["Bar Height"])
    texts = [_text_mesh(b, m, shown["Low"], size, "LEFT", m.mul(inp["Width"], -1.0), 0.0),
             _text_mesh(b, m, shown["High"], size, "RIGHT", 0.0, 0.0),
             _text_mesh(b, m, shown["Title"], size, "RIGHT", 0.0,
                        m.op("MULTIPLY_ADD", size, TITLE_GAP, bar_top))]
    joined = b.node("GeometryNodeJoinGeometry")
    b.link_multi_input([t.outputs[0] for t in texts], joined.inputs[0])
    text = b.node("GeometryNodeSetMaterial", {"Geometry": joined.outputs[0],
                                              "Material": inp["Text Material"]}).outputs[0]
    b.section("What it shows, for tests and tools")
    text = _store_shown(b, m, text, inp["Global"], shown)
    b.section("Colour bar")
    bar = _colour_bar(b, m, inp, m.mul(m.add(bar_bottom, bar_top), 0.5))
    b.section(None)
    out = b.node("GeometryNodeJoinGeometry")
    b.link_multi_input([text, bar], out.inputs[0])
    b.link(out.outputs[0], b.node("NodeGroupOutput").inputs[0])
    b.arrange()
    return b.tree


def _text_mesh(b, m, string, size, align, x, baseline):
    """``string`` as a filled mesh, aligned ``align`` ("LEFT"/"RIGHT") on ``x``, its baseline
    at y = ``baseline``."""
    curves = b.node("GeometryNodeStringToCurves", {"String": string, "Size": size},
                    align_x=align, align_y="BOTTOM_BASELINE")
    mesh = b.node("GeometryNodeFillCurve", {"Curve": curves.outputs[0]})
    mesh = b.node("GeometryNodeRealizeInstances", {"Geometry": mesh.outputs[0]})
    return b.node("GeometryNodeTransform", {"Geometry": mesh.outputs[0],
                                            "Translation": m.combine(x, baseline, 0.0)})


def _store_shown(b, m, geometry, shown_global, shown):
    """The ``nnvis_legend_*`` attributes: the mode shown and the lengths of its strings."""
    values = {"nnvis_legend_global": m.switch("INT", shown_global, 0, 1)}
    for part in ("Title", "Low", "High"):
        values[f"nnvis_legend_{part.lower()}_chars"] = b.node(
            "FunctionNodeStringLength", {"String": shown[part]}).outputs[0]
    for name, value in values.items():
        geometry = b.node("GeometryNodeStoreNamedAttribute",
                          {"Geometry": geometry, "Name": name, "Value": value},
                          data_type="INT", domain="POINT").outputs[0]
    return geometry


def _colour_bar(b, m, inp, centre_y):
    """``Steps`` tiles side by side from x = -Width to 0, tile i carrying the normalised value
    i / (Steps - 1) (``nnvis_legend_norm``), drawn with the legend material."""
    steps, width = inp["Steps"], inp["Width"]
    step = m.div(width, steps)
    line = b.node("GeometryNodeMeshLine", {"Count": steps}, mode="OFFSET")
    b.set_input(line, "Start Location",
                m.combine(m.mul(m.sub(width, m.mul(step, 0.5)), -1.0), centre_y, 0.0))
    b.set_input(line, "Offset", m.combine(step, 0.0, 0.0))
    value = m.div(b.node("GeometryNodeInputIndex").outputs[0], m.sub(steps, 1))
    points = line.outputs[0]
    for name, field in ((NORM_ATTRIBUTE, value),):
        points = b.node("GeometryNodeStoreNamedAttribute",
                        {"Geometry": points, "Name": name, "Value": field},
                        data_type="FLOAT", domain="POINT").outputs[0]
    tile = b.node("GeometryNodeMeshCube", {"Size": m.combine(step, inp["Bar Height"],
                                                             m.mul(inp["Text Size"], 0.1))})
    tile = b.node("GeometryNodeSetMaterial", {"Geometry": tile.outputs[0],
                                              "Material": inp["Bar Material"]})
    return b.node("GeometryNodeInstanceOnPoints",
                  {"Points": points, "Instance": tile.outputs[0]}).outputs[0]
