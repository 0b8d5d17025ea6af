"""The "NNVis Epoch Counter" geometry-nodes group: the on-screen "Epoch N" text of a playback.

The counter object's mesh holds one vertex per recorded epoch (vertex ``i`` = epoch index ``i``)
with float point attributes:

* ``nnvis_epoch_number``: the recorded epoch number shown after "Epoch ";
* ``nnvis_metric_1`` / ``nnvis_metric_2``: the value of the metric in slot 1 / 2 at that epoch,
  and ``nnvis_has_metric_1`` / ``nnvis_has_metric_2`` (1 where it was recorded, else 0).

The group samples them at ``round(Epoch)`` (Sample Index) and writes two lines of text with
Value to String and Join Strings, so the counter follows the (keyframed, driven) ``Epoch`` input
without any Python: a saved .blend shows the right numbers on a machine without nnvis.

* line 1, size ``Size``: ``<Prefix><epoch number>`` ("Epoch 12");
* line 2, size ``Size x Metric Size``, below: ``<label> <value x scale><suffix>`` for each slot
  recorded at that epoch ("accuracy 98.3%   loss 0.061"); empty where none was recorded.

Text lies in the object's XY plane, facing +Z, left-aligned on x = 0, the metric line's baseline
on y = 0. For tests and tools the output mesh carries what it shows as point attributes:
``nnvis_counter_epoch`` (the epoch number), ``nnvis_counter_epoch_chars`` and
``nnvis_counter_metric_chars`` (the two lines' lengths) and ``nnvis_counter_metric_1`` /
``nnvis_counter_metric_2`` (the values shown, scaled; NaN-free: 0 where none is shown).
"""

from __future__ import annotations

from .builder import find_current, new_modifier_group

GROUP_NAME = "NNVis Epoch Counter"
VERSION = 2
EPOCH_NUMBER_ATTRIBUTE = "nnvis_epoch_number"
SLOTS = (1, 2)
LINE_SPACING = 1.35  # distance between the two baselines, in units of the first line's size


def metric_attribute(slot: int) -> str:
    return f"nnvis_metric_{slot}"


def has_metric_attribute(slot: int) -> str:
    return f"nnvis_has_metric_{slot}"


# name, kind, default, min, max, subtype, description
INPUTS = (
    ("Epoch", "FLOAT", 0.0, 0.0, None, None, "Recorded epoch index; the nearest one is shown"),
    ("Epoch Count", "INT", 1, 1, None, None, "Number of recorded epochs"),
    ("Prefix", "STRING", "Epoch ", None, None, None, "Text before the epoch number"),
    ("Size", "FLOAT", 0.1, 0.0, None, "DISTANCE", "Height of the epoch line's letters"),
    ("Metric Size", "FLOAT", 0.7, 0.0, None, "FACTOR", "Metric line's letters, relative to Size"),
    *(row for slot in SLOTS for row in (
        (f"Metric {slot} Label", "STRING", "", None, None, None, f"Name before metric {slot}"),
        (f"Metric {slot} Scale", "FLOAT", 1.0, None, None, None, f"Metric {slot} shown times this"),
        (f"Metric {slot} Decimals", "INT", 3, 0, 9, None, f"Decimals of metric {slot}"),
        (f"Metric {slot} Suffix", "STRING", "", None, None, None, f"Text after metric {slot}"),
    )),
    ("Material", "MATERIAL", None, None, None, None, "Material of the text"),
)


def ensure_counter_group():
    return find_current(GROUP_NAME, VERSION) or build_counter_group()


def build_counter_group():
    b, m, inp = new_modifier_group(GROUP_NAME, VERSION, "nnvis: 'Epoch N' and that epoch's metrics, picked by the Epoch input",
                                   INPUTS)
    b.section("Shown epoch")
    last = m.sub(inp["Epoch Count"], 1)
    index = m.op("ROUND", m.op("MINIMUM", m.op("MAXIMUM", inp["Epoch"], 0.0), last))
    b.section("Epoch line")
    epoch_number = _sample(b, inp["Geometry"], index, EPOCH_NUMBER_ATTRIBUTE)
    epoch_line = m.join([inp["Prefix"], m.text(epoch_number)])
    b.section("Metric line")
    metric_line, shown_metrics = _metric_line(b, m, inp, index)
    b.section("Text")
    metric_size = m.mul(inp["Size"], inp["Metric Size"])
    top = _text_mesh(b, m, epoch_line, inp["Size"], m.mul(inp["Size"], LINE_SPACING))
    bottom = _text_mesh(b, m, metric_line, metric_size, 0.0)
    joined = b.node("GeometryNodeJoinGeometry")
    b.link_multi_input([top.outputs[0], bottom.outputs[0]], joined.inputs[0])
    geometry = b.node("GeometryNodeSetMaterial", {"Geometry": joined.outputs[0],
                                                  "Material": inp["Material"]}).outputs[0]
    b.section("What it shows, for tests and tools")
    shown = (("nnvis_counter_epoch", "FLOAT", epoch_number),
             ("nnvis_counter_epoch_chars", "INT", _length(b, epoch_line)),
             ("nnvis_counter_metric_chars", "INT", _length(b, metric_line)),
             ("nnvis_counter_metric_1", "FLOAT", shown_metrics[0]),
             ("nnvis_counter_metric_2", "FLOAT", shown_metrics[1]))
    for name, kind, value in shown:
        geometry = b.node("GeometryNodeStoreNamedAttribute",
                          {"Geometry": geometry, "Name": name, "Value": value},
                          data_type=kind, domain="POINT").outputs[0]
    b.section(None)
    out = b.node("NodeGroupOutput")
    b.link(geometry, out.inputs[0])
    b.arrange()
    return b.tree


def _metric_line(b, m, inp, index):
    """The second line, ``<label> <value x scale><suffix>`` for each slot recorded at the shown
    epoch (three spaces between two), and the values shown per slot (0 where none is)."""
    parts, present, shown_values = [], [], []
    for slot in SLOTS:
        has = b.node("FunctionNodeCompare",
                     {0: _sample(b, inp["Geometry"], index, has_metric_attribute(slot)), 1: 0.5},
                     data_type="FLOAT", operation="GREATER_THAN").outputs[0]
        value = m.mul(_sample(b, inp["Geometry"], index, metric_attribute(slot)),
                      inp[f"Metric {slot} Scale"])
        text = m.join([inp[f"Metric {slot} Label"], " ",
                       m.text(value, inp[f"Metric {slot} Decimals"]), inp[f"Metric {slot} Suffix"]])
        parts.append(m.switch("STRING", has, "", text))
        present.append(has)
        shown_values.append(m.switch("FLOAT", has, 0.0, value))
    both = b.node("FunctionNodeBooleanMath", {0: present[0], 1: present[1]},
                  operation="AND").outputs[0]
    return m.join([parts[0], m.switch("STRING", both, "", "   "), parts[1]]), shown_values


def _sample(b, geometry, index, attribute):
    """The epoch vertex's value of ``attribute`` at the shown epoch (a single value)."""
    value = b.node("GeometryNodeInputNamedAttribute", {"Name": attribute}, data_type="FLOAT")
    node = b.node("GeometryNodeSampleIndex", {"Geometry": geometry, "Index": index},
                  data_type="FLOAT", domain="POINT")
    b.set_input(node, "Value", value.outputs[0])
    return node.outputs[0]


def _length(b, string):
    return b.node("FunctionNodeStringLength", {"String": string}).outputs[0]


def _text_mesh(b, m, string, size, baseline):
    """``string`` as a filled mesh, left-aligned at x = 0 with its baseline at y = ``baseline``."""
    curves = b.node("GeometryNodeStringToCurves", {"String": string, "Size": size},
                    align_x="LEFT", align_y="BOTTOM_BASELINE")
    # Fill each character instance, then realize: 6x cheaper than filling the realized text
    # (this runs every frame, since the Epoch input is animated).
    mesh = b.node("GeometryNodeFillCurve", {"Curve": curves.outputs[0]})
    mesh = b.node("GeometryNodeRealizeInstances", {"Geometry": mesh.outputs[0]})
    return b.node("GeometryNodeTransform", {"Geometry": mesh.outputs[0],
                                            "Translation": m.combine(0.0, baseline, 0.0)})
