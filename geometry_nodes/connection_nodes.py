"""The "NNVis Connections" geometry-nodes group: one modifier per connection (layer pair) object.

The object's hair-curves data holds one curve per kept edge, all with the same number of points:

* curve attributes ``source_first``/``source_last`` and ``target_first``/``target_last`` (INT):
  the edge runs between the midpoints of those cells of the source and target layer objects, read
  from their evaluated cell centres (the bare vertices the layer group outputs beside its
  tiles), so connections follow any layout, spacing or collapse change;
  ``nnvis_w_peak`` (FLOAT) the edge's largest finite |w| over the recorded epochs; ``structural``
  (FLOAT, 1 for weight-less links such as pooling);
* point attributes ``nnvis_t`` (0..1 along the edge) and ``nnvis_offset`` (the bundling's
  displacement from the straight line, perpendicular to the layer axis).

Outputs tubes (or render-ready hair curves) whose radius follows the edge's peak |w| (structural
links, which carry no weights, at ``Structural Radius`` of it: faint beside the weighted ones);
with ``Render Tubes`` off, tubes are drawn only in the viewport and final renders get the curves
(the render preset, ``blender/render.py``). The weight at the shown epoch is not here: the weights of every epoch lie in the network's value
atlas, which the connection material reads (geometry_nodes/atlas_nodes.py), so playback
evaluates no geometry; the group stores the edge's index there (``nnvis_edge``), ``Weight Max``
and ``Threshold`` for it. The material colours by the signed weight, fades weak edges and does
not draw those weaker than ``Threshold`` (a fraction of Weight Max); an edge whose weight at the
shown epoch is NaN/Inf (a diverged run) shows in the invalid colour.
"""

from __future__ import annotations

from .builder import find_current, new_modifier_group

GROUP_NAME = "NNVis Connections"
VERSION = 6
# The connection object's stream of edge weights (one block per epoch) in the network's atlas.
WEIGHTS_STREAM = "nnvis_edges"
# Curve attributes written at import: the largest finite |w| of the edge over the epochs (its
# radius), and 1 on the curves of a structural link (channel to channel, no weights of its own).
PEAK_ATTRIBUTE = "nnvis_w_peak"
STRUCTURAL_ATTRIBUTE = "structural"
# Where an edge runs: point attributes 0..1 along it and the bundling's offset from the
# straight line; curve attributes, the first and last drawn cell of each end's unit.
T_ATTRIBUTE = "nnvis_t"
OFFSET_ATTRIBUTE = "nnvis_offset"
ENDPOINT_ATTRIBUTES = ("source_first", "source_last", "target_first", "target_last")
# Attributes of the imported curves only the modifier's placing and sizing read
PLACEMENT_ATTRIBUTES = (T_ATTRIBUTE, OFFSET_ATTRIBUTE, *ENDPOINT_ATTRIBUTES, PEAK_ATTRIBUTE)
STRUCTURAL_RADIUS = 0.4  # their radius, relative to a weighted edge's
# Curve attributes the connection material reads (stored by the group).
EDGE_ATTRIBUTE = "nnvis_edge"               # the edge's index in the weights stream
WEIGHT_MAX_ATTRIBUTE = "nnvis_weight_max"   # |w| shown at full colour and opacity
THRESHOLD_ATTRIBUTE = "nnvis_threshold"     # weaker edges (fraction of it) are not drawn


INPUTS = (
    ("Source", "OBJECT", None, None, None, None, "Layer object the edges start from"),
    ("Target", "OBJECT", None, None, None, None, "Layer object the edges end at"),
    ("Weight Max", "FLOAT", 1.0, 0.0, None, None, "|w| drawn at full radius, colour and opacity"),
    ("Threshold", "FLOAT", 0.0, 0.0, 1.0, "FACTOR", "Hide edges weaker than this fraction of Weight Max"),
    ("Radius", "FLOAT", 0.01, 0.0, None, "DISTANCE", "Radius of the strongest edge"),
    ("Min Radius", "FLOAT", 0.15, 0.0, 1.0, "FACTOR", "Radius of the weakest edge, relative"),
    ("Structural Radius", "FLOAT", STRUCTURAL_RADIUS, 0.0, 1.0, "FACTOR",
     "Radius of structural links (pooling, merges: no weights of their own), relative"),
    ("As Tubes", "BOOLEAN", True, None, None, None, "Mesh tubes; off: render-ready hair curves"),
    ("Tube Resolution", "INT", 5, 3, None, None, "Sides of each tube"),
    ("Render Tubes", "BOOLEAN", True, None, None, None,
     "Tubes in final renders too; off: hair curves there (Cycles draws them with their radius, "
     "which looks the same and costs less)"),
    ("Material", "MATERIAL", None, None, None, None, "Material of the connections"),
)


def ensure_connection_group():
    return find_current(GROUP_NAME, VERSION) or build_connection_group()


def build_connection_group():
    b, m, inp = new_modifier_group(GROUP_NAME, VERSION, "nnvis: weighted, bundled connections between two layers",
                                   INPUTS)
    b.section("Curves between the cells")

    def int_attribute(name):
        return b.node("GeometryNodeInputNamedAttribute", {"Name": name}, data_type="INT").outputs[0]

    position = b.node("GeometryNodeInputPosition").outputs[0]

    def endpoint(layer_object, first, last):
        info = b.node("GeometryNodeObjectInfo", {"Object": layer_object}, transform_space="RELATIVE")
        samples = []
        for attribute in (first, last):
            sample = b.node("GeometryNodeSampleIndex", {"Geometry": info.outputs["Geometry"],
                                                        "Index": int_attribute(attribute)},
                            data_type="FLOAT_VECTOR", domain="POINT")
            b.set_input(sample, "Value", position)
            samples.append(sample.outputs[0])
        mid = b.node("ShaderNodeVectorMath", {0: samples[0], 1: samples[1]}, operation="ADD")
        return b.node("ShaderNodeVectorMath", {0: mid.outputs[0], "Scale": 0.5},
                      operation="SCALE").outputs[0]

    start = endpoint(inp["Source"], *ENDPOINT_ATTRIBUTES[:2])
    end = endpoint(inp["Target"], *ENDPOINT_ATTRIBUTES[2:])
    t = b.node("GeometryNodeInputNamedAttribute", {"Name": T_ATTRIBUTE},
               data_type="FLOAT").outputs[0]
    offset = b.node("GeometryNodeInputNamedAttribute", {"Name": OFFSET_ATTRIBUTE},
                    data_type="FLOAT_VECTOR").outputs[0]
    straight = b.node("ShaderNodeMix", {"Factor": t, "A": start, "B": end}, data_type="VECTOR",
                      clamp_factor=True)
    curved = b.node("ShaderNodeVectorMath", {0: b.out(straight, "Result"), 1: offset},
                    operation="ADD")
    # Hair curves default to Catmull-Rom (12 evaluated points a segment): the points are dense
    # enough to draw as a polyline, at a twelfth of the cost.
    poly = b.node("GeometryNodeCurveSplineType", {"Curve": inp["Geometry"]}, spline_type="POLY")
    placed = b.node("GeometryNodeSetPosition", {"Geometry": poly.outputs[0],
                                                "Position": curved.outputs[0]})

    b.section("For the material: the edge's index, scale and threshold")
    geometry = placed.outputs[0]
    for name, value in ((EDGE_ATTRIBUTE, b.node("GeometryNodeInputIndex").outputs[0]),
                        (WEIGHT_MAX_ATTRIBUTE, m.op("MAXIMUM", inp["Weight Max"], 1e-12)),
                        (THRESHOLD_ATTRIBUTE, inp["Threshold"])):
        geometry = b.node("GeometryNodeStoreNamedAttribute",
                          {"Geometry": geometry, "Name": name, "Value": value},
                          data_type="FLOAT", domain="CURVE").outputs[0]
    shaded = _tubes(b, m, inp, geometry)
    b.section(None)
    out = b.node("NodeGroupOutput")
    b.link(shaded.outputs[0], out.inputs[0])
    b.arrange()
    return b.tree


def _tubes(b, m, inp, curves):
    """The curves sized by their peak |w|, as tubes (the viewport; final renders too unless
    ``Render Tubes`` is off) or as curves, with the connections' material."""
    b.section("Radius by the edge's strongest weight over the epochs")
    peak = b.node("GeometryNodeInputNamedAttribute", {"Name": PEAK_ATTRIBUTE},
                  data_type="FLOAT").outputs[0]
    strength = m.op("MINIMUM", m.div(peak, m.op("MAXIMUM", inp["Weight Max"], 1e-12)), 1.0)
    structural = b.node("GeometryNodeInputNamedAttribute", {"Name": STRUCTURAL_ATTRIBUTE},
                        data_type="FLOAT").outputs[0]
    radius = m.mul(m.mul(inp["Radius"], m.lerp(inp["Min Radius"], 1.0, strength)),
                   m.lerp(1.0, inp["Structural Radius"], structural))
    sized = b.node("GeometryNodeSetCurveRadius", {"Curve": curves, "Radius": radius}).outputs[0]
    # What placed and sized the curves is not needed any more: without it the tube mesh (which
    # would carry every point and curve attribute to each of its vertices and faces) is smaller.
    for name in PLACEMENT_ATTRIBUTES:
        sized = b.node("GeometryNodeRemoveAttribute", {"Geometry": sized, "Name": name}).outputs[0]

    profile = b.node("GeometryNodeCurvePrimitiveCircle", {"Resolution": inp["Tube Resolution"],
                                                          "Radius": 1.0})
    tubes = b.node("GeometryNodeCurveToMesh", {"Curve": sized,
                                               "Profile Curve": profile.outputs[0]})
    if "Scale" in tubes.inputs:  # Blender 4.5+: the profile scale is an input, not the radius
        b.set_input(tubes, "Scale", b.node("GeometryNodeInputRadius").outputs[0])
    # Final renders may draw the curves themselves (the render preset's choice): Cycles gives
    # them their radius, so only the viewport needs the tube mesh.
    tubes_here = b.node("FunctionNodeBooleanMath", {
        0: b.node("GeometryNodeIsViewport").outputs[0], 1: inp["Render Tubes"]},
        operation="OR").outputs[0]
    as_tubes = b.node("FunctionNodeBooleanMath", {0: inp["As Tubes"], 1: tubes_here},
                      operation="AND").outputs[0]
    shape = b.node("GeometryNodeSwitch", {0: as_tubes, "False": sized,
                                          "True": tubes.outputs[0]}, input_type="GEOMETRY")
    shaded = b.node("GeometryNodeSetMaterial", {"Geometry": shape.outputs[0],
                                                "Material": inp["Material"]})
    return shaded
