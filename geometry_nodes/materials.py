"""Shader materials, built from Python like the geometry-nodes groups.

* "NNVis Activation" (one per network atlas): a cell's value at the shown sample and epoch, read
  from the network's value atlas (geometry_nodes/atlas_nodes.py; the layer object's shown sample
  and epoch are driven by the root), normalised by the colour range the layer group stores,
  through a viridis colour ramp, with emission that grows with the activation so strong cells glow
  on a dark background; a picture's cell (``picture`` 1, the input as a picture) shows its
  ``picture_colour`` instead, as plain emission (strength 1, no diffuse or specular light), so
  under the "Standard" view transform it renders as the pixel's own sRGB value.
* "NNVis Label": flat, slightly emissive white for layer labels.
* "NNVis Answer" (one per network atlas): the output's class probabilities as bars beside the
  output unit (blender/answer.py), each filled up to its probability at the shown epoch, the
  predicted class orange, the true class marked green.
* "NNVis Connection" (one per network atlas): blue (negative) through grey to red (positive) by
  the signed weight at the shown epoch, from the atlas; structural links (``structural`` 1:
  pooling, merges, no weights of their own) neutral grey, dimmer and mostly transparent, so the
  weighted connections and the maps read through them.

A traced cell (Explain a prediction, blender/trace.py) shows through one framed part of the cell
and connection materials, "Trace highlight": each cell's or edge's ``nnvis_trace`` (0..1) sets a
brightness between ``TRACE_DIM`` and ``TRACE_HIGHLIGHT``, applied as strongly as the object's
``nnvis_trace_strength`` property says (0: the material as without a trace). It reads nothing
of how activations are stored.

A unit showing the class evidence overlay (see core/evidence.py: Grad-CAM on the last
convolution's unit and the input picture, saliency on the input picture) reads its pixel's map
at the shown epoch from its own streams in the atlas and covers the cell with a jet heat colour,
as much as the object's ``nnvis_gradcam`` (driven by the root's control) says; the input picture
shows Grad-CAM or saliency as its ``nnvis_evidence_map`` says (0..1, blending), the last
convolution's Grad-CAM fades out as saliency is chosen.

Values that are NaN/Inf in the export (a diverged training run) show in ``INVALID_COLOUR``,
magenta, Blender's own "something is missing" colour: viridis never has red and blue both high
with no green, nor does the blue-grey-red of connections. The atlas marks them with a code of
their own, which the shaders decode, so no Python is needed to show them either.
"""

from __future__ import annotations

import bpy

from ..nnvis_addon.core import names
from ..nnvis_addon.core.colour import srgb_to_linear
from . import atlas_nodes, connection_nodes, layer_nodes, legend_nodes, picture_nodes
from .builder import BUILDER_VERSION_KEY, FieldMath, TreeBuilder

ACTIVATION_MATERIAL = "NNVis Activation"
LEGEND_MATERIAL = "NNVis Legend"
LABEL_MATERIAL = "NNVis Label"
VERSION = 11

# Viridis (matplotlib), sRGB, sampled at 9 evenly spaced positions.
VIRIDIS_SRGB = (
    (0.267, 0.005, 0.329), (0.278, 0.175, 0.483), (0.230, 0.322, 0.546),
    (0.173, 0.449, 0.558), (0.128, 0.567, 0.551), (0.153, 0.680, 0.504),
    (0.369, 0.788, 0.383), (0.678, 0.864, 0.190), (0.993, 0.906, 0.144),
)


# Cells and edges whose value is NaN/Inf: linear RGB magenta, glowing a fixed amount.
INVALID_COLOUR = (1.0, 0.0, 1.0, 1.0)
INVALID_GLOW = 1.5
# A picture's cells emit their pixel colour at this strength (1: the colour itself).
PICTURE_GLOW = 1.0
# The trace highlight's brightness (glow and opacity factor) at nnvis_trace 0 and 1, at full
# strength: cells and edges off the traced paths fade to TRACE_DIM, the paths glow brighter.
TRACE_DIM = 0.12
TRACE_HIGHLIGHT = 2.0
EDGE_TRACE_DIM = 0.1
EDGE_TRACE_HIGHLIGHT = 3.0
# The class evidence overlay (Grad-CAM or saliency): a cell's heat colour (jet, sRGB stops)
# covers it by nnvis_gradcam * (GRADCAM_BASE + GRADCAM_GAIN * map value), glowing GRADCAM_GLOW.
JET_SRGB = ((0.0, (0.0, 0.0, 0.55)), (0.125, (0.0, 0.0, 1.0)), (0.375, (0.0, 1.0, 1.0)),
            (0.625, (1.0, 1.0, 0.0)), (0.875, (1.0, 0.0, 0.0)), (1.0, (0.55, 0.0, 0.0)))
GRADCAM_BASE = 0.2
GRADCAM_GAIN = 0.45
GRADCAM_GLOW = 1.2


def _find_current(name: str):
    material = bpy.data.materials.get(name)
    if material is not None and material.get(BUILDER_VERSION_KEY) == VERSION and material.library is None:
        return material
    return None


def _new_material(name: str) -> tuple[bpy.types.Material, TreeBuilder]:
    material = bpy.data.materials.new(name)
    material[BUILDER_VERSION_KEY] = VERSION
    # Thousands of glowing cells would each be a light for Cycles' light tree (about 15 s to
    # build on 2 cores, every render); their glow shows directly, not as light on the others.
    if hasattr(material, "cycles"):
        material.cycles.emission_sampling = "NONE"
    if material.node_tree is None:  # Blender < 5.0; from 5.0 on materials always use nodes
        material.use_nodes = True
    tree = material.node_tree
    assert tree is not None  # a material uses nodes now
    tree.nodes.clear()
    return material, TreeBuilder(tree)


def new_activation_material(name: str, image, height: int, *, picture: bool = False,
                            overlay: tuple[str, ...] = (),
                            summary: bool = False) -> bpy.types.Material:
    """The cell material of one network atlas: each cell's value at the shown sample and epoch
    from the atlas ``image`` (``height`` rows; geometry_nodes/atlas_nodes.py), normalised by the
    colour range the layer group stores, coloured by viridis with a glow that grows with it.
    ``picture``: the cells may show their pixel colours (the input as a picture); ``overlay``:
    the class evidence maps it shows (core/evidence.py MAPS; none: no overlay); ``summary``:
    the max or mean over channels of merging maps (the layer group switches to this variant
    while its maps merge). Only the units that need them get these parts, because every
    attribute a shader reads costs Blender a lookup per cell (instance) when it hands a render
    to Cycles."""
    material, b = _new_material(name)
    blocks = atlas_nodes.add_epoch_blocks(b, height)

    def instance(attribute_name):
        return _attribute(b, "INSTANCER", attribute_name)

    b.section("The cell's value at the epoch")
    value, invalid = atlas_nodes.add_stream_value(
        b, image, blocks, instance(layer_nodes.CELL_ATTRIBUTE),
        atlas_nodes.object_place(b, layer_nodes.CELLS_STREAM))
    if summary:
        value, invalid = _summary(b, image, blocks, instance, value, invalid)
    b.section("Colour range")
    norm = b.node("ShaderNodeMapRange", {"Value": value,
                                         "From Min": instance(layer_nodes.VALUE_MIN_ATTRIBUTE),
                                         "From Max": instance(layer_nodes.VALUE_MAX_ATTRIBUTE)},
                  clamp=True).outputs[0]
    heat = _evidence_overlay(b, image, blocks, instance, overlay) if overlay else None
    _colour_cells(b, norm, invalid, instance, heat, picture)
    return material


def _summary(b: TreeBuilder, image, blocks, instance, value, invalid):
    """Its pixel's max or mean over the channels mixed in as the maps merge (collapsed maps)."""
    m = FieldMath(b)
    b.section("Its pixel's max or mean over channels (collapsed maps)")
    use_max = instance(layer_nodes.SUMMARY_MAX_ATTRIBUTE)
    summary_place = [_pick(b, mean, high, use_max) for mean, high in zip(
        atlas_nodes.object_place(b, layer_nodes.SUMMARY_STREAMS[2]),
        atlas_nodes.object_place(b, layer_nodes.SUMMARY_STREAMS[1]))]
    summary, summary_invalid = atlas_nodes.add_stream_value(
        b, image, blocks, instance(layer_nodes.MAP_CELL_ATTRIBUTE), summary_place)
    mix = instance(layer_nodes.SUMMARY_MIX_ATTRIBUTE)
    value = _pick(b, value, summary, mix)
    invalid = m.op("MAXIMUM", m.mul(invalid, m.op("LESS_THAN", mix, 1.0)),
                   m.mul(summary_invalid, m.op("GREATER_THAN", mix, 0.0)))
    return value, invalid


def _attribute(b: TreeBuilder, attribute_type: str, name: str, output: str = "Fac"):
    """An Attribute node's output: ``name`` of the instancer, the geometry or the object."""
    return b.node("ShaderNodeAttribute", attribute_type=attribute_type,
                  attribute_name=name).outputs[output]


def _object_value(b: TreeBuilder, name: str):
    return _attribute(b, "OBJECT", name)


def _evidence_overlay(b: TreeBuilder, image, blocks, instance, maps: tuple[str, ...]):
    """A unit showing the class evidence overlay (core/evidence.py): its pixel's value (0..1) of
    each map it shows at the shown epoch, for the predicted class or the true label (the
    object's ``nnvis_gradcam_of_label``), and how much of the heat colour covers the cell: the
    object's ``nnvis_gradcam`` times ``GRADCAM_BASE + GRADCAM_GAIN * value`` times how much the
    chosen map is shown (:func:`_chosen_map`; 0 on other units, whose objects have none of
    these properties)."""
    m = FieldMath(b)
    b.section("Class evidence overlay: the maps at the epoch")
    of_label = _object_value(b, names.GRADCAM_OF_LABEL)
    read = {}
    for map_name in maps:
        streams = layer_nodes.OVERLAY_STREAMS[map_name]
        place = [_pick(b, predicted, label, of_label) for predicted, label in zip(
            atlas_nodes.object_place(b, streams["predicted"]),
            atlas_nodes.object_place(b, streams["label"]))]
        read[map_name] = atlas_nodes.add_stream_value(
            b, image, blocks, instance(layer_nodes.MAP_CELL_ATTRIBUTE), place)
    value, invalid, shown = _chosen_map(b, read)
    b.section("Class evidence overlay: its cover")
    cover = m.op("MULTIPLY_ADD", value, GRADCAM_GAIN, GRADCAM_BASE)
    strength = _object_value(b, names.GRADCAM_STRENGTH)
    if shown is not None:
        strength = m.mul(strength, shown)
    mix = m.mul(m.mul(strength, cover), m.sub(1.0, invalid))
    return value, mix


def _chosen_map(b: TreeBuilder, read: dict):
    """(value, invalid, shown) of the map the object's ``nnvis_evidence_map`` picks (0 Grad-CAM
    .. 1 saliency, fractions blend): the input, with both, shows the pick; the Grad-CAM layer's
    own unit fades its overlay out as saliency is picked (``shown`` 1 - pick; saliency has no
    meaning there); an input with saliency only (a model without Grad-CAM) shows it whatever
    the pick (``shown`` None: fully)."""
    if "gradcam" not in read:
        return (*read["saliency"], None)
    b.section("Class evidence overlay: the chosen map")
    pick = _object_value(b, names.EVIDENCE_MAP)
    if "saliency" not in read:
        return (*read["gradcam"], _pick(b, 1.0, 0.0, pick))
    m = FieldMath(b)
    (cam, cam_invalid), (saliency, saliency_invalid) = read["gradcam"], read["saliency"]
    invalid = m.op("MAXIMUM", m.mul(cam_invalid, m.op("LESS_THAN", pick, 1.0)),
                   m.mul(saliency_invalid, m.op("GREATER_THAN", pick, 0.0)))
    return _pick(b, cam, saliency, pick), invalid, None


def _pick(b: TreeBuilder, a, other, factor):
    """``a`` where factor is 0, ``other`` where it is 1 (exactly), a blend between."""
    return b.out(b.node("ShaderNodeMix", {"Factor": factor, "A": a, "B": other},
                        data_type="FLOAT", clamp_factor=True), "Result")


def ensure_legend_material() -> bpy.types.Material:
    """The colour legend's bar: each tile's normalised value (``nnvis_legend_norm``) through the
    cells' own viridis and glow (:func:`_viridis`, one home). A material of its own, so the
    cell material reads no legend attribute: every attribute a shader reads costs Blender a
    lookup per instance when it hands the cells to Cycles."""
    material = _find_current(LEGEND_MATERIAL)
    if material is not None:
        return material
    material, b = _new_material(LEGEND_MATERIAL)
    b.section("The tile's value")
    norm = b.node("ShaderNodeAttribute", attribute_type="INSTANCER",
                  attribute_name=legend_nodes.NORM_ATTRIBUTE).outputs["Fac"]
    colour, glow = _viridis(b, norm)
    _shade(b, colour, glow, picture=0.0)
    return material


def _viridis(b: TreeBuilder, norm):
    """(colour, glow) of a normalised value: viridis, and a glow that grows with it."""
    b.section("Viridis by activation")
    ramp = b.node("ShaderNodeValToRGB", {"Fac": norm})
    elements = ramp.color_ramp.elements
    while len(elements) < len(VIRIDIS_SRGB):
        elements.new(0.5)
    for index, (element, rgb) in enumerate(zip(elements, VIRIDIS_SRGB)):
        element.position = index / (len(VIRIDIS_SRGB) - 1)
        element.color = (*(srgb_to_linear(c) for c in rgb), 1.0)
    glow = b.node("ShaderNodeMapRange", {"Value": norm, "To Min": 0.15, "To Max": 2.5})
    return ramp.outputs["Color"], glow.outputs[0]


def _colour_cells(b: TreeBuilder, norm, invalid, instance, overlay, picture: bool) -> None:
    """Viridis and glow by the normalised value; a picture's pixel colours (``picture``);
    invalid magenta; the class evidence ``overlay`` (value, mix; None: none) over them."""
    colour, glow = _viridis(b, norm)
    b.section("Pictures and invalid cells")
    shows_picture = instance(picture_nodes.PICTURE_ATTRIBUTE) if picture else 0.0
    if picture:
        pixel = b.node("ShaderNodeAttribute", attribute_type="INSTANCER",
                       attribute_name=picture_nodes.PICTURE_COLOUR_ATTRIBUTE).outputs["Color"]
        colour = b.out(b.node("ShaderNodeMix", {"Factor": shows_picture, "A": colour,
                                                "B": pixel}, data_type="RGBA"), "Result")
        glow = b.out(b.node("ShaderNodeMix", {"Factor": shows_picture, "A": glow,
                                              "B": PICTURE_GLOW}, data_type="FLOAT"), "Result")
    colour = b.out(b.node("ShaderNodeMix", {"Factor": invalid, "A": colour,
                                            "B": INVALID_COLOUR}, data_type="RGBA"), "Result")
    glow = b.out(b.node("ShaderNodeMix", {"Factor": invalid, "A": glow,
                                          "B": INVALID_GLOW}, data_type="FLOAT"), "Result")
    if overlay is not None:
        colour, glow = _heat(b, colour, glow, *overlay)
    colour, glow = _trace_highlight(b, colour, glow)
    _shade(b, colour, glow, shows_picture)


def _shade(b: TreeBuilder, colour, glow, picture) -> None:
    """Emission of ``colour`` at ``glow`` over a dark, lit base; a picture's cell (``picture``
    1) shows its pixels as they are: emission only, no sunlight on top."""
    b.section("Shader")
    lit = b.out(b.node("ShaderNodeMath", {0: 1.0, 1: picture}, operation="SUBTRACT"), 0)
    base = b.out(b.node("ShaderNodeMix", {"Factor": lit, "A": (0.0, 0.0, 0.0, 1.0), "B": colour},
                        data_type="RGBA"), "Result")
    specular = b.out(b.node("ShaderNodeMath", {0: lit, 1: 0.5}, operation="MULTIPLY"), 0)
    shader = b.node("ShaderNodeBsdfPrincipled", {
        "Base Color": base, "Roughness": 0.45, "Specular IOR Level": specular,
        "Emission Color": colour, "Emission Strength": glow,
    })
    b.section(None)
    output = b.node("ShaderNodeOutputMaterial")
    b.link(shader.outputs[0], output.inputs["Surface"])
    b.arrange()


def _heat(b: TreeBuilder, colour, glow, value, mix):
    """The class evidence heat colour (jet) of ``value`` mixed over the cell's colour by
    ``mix``."""
    b.section("Class evidence heat colour")
    ramp = b.node("ShaderNodeValToRGB", {"Fac": value})
    elements = ramp.color_ramp.elements
    while len(elements) < len(JET_SRGB):
        elements.new(0.5)
    for element, (position, rgb) in zip(elements, JET_SRGB):
        element.position = position
        element.color = (*(srgb_to_linear(c) for c in rgb), 1.0)
    colour = b.out(b.node("ShaderNodeMix", {"Factor": mix, "A": colour,
                                            "B": ramp.outputs["Color"]}, data_type="RGBA"),
                   "Result")
    glow = b.out(b.node("ShaderNodeMix", {"Factor": mix, "A": glow, "B": GRADCAM_GLOW},
                        data_type="FLOAT"), "Result")
    return colour, glow


def _trace_factor(b: TreeBuilder, attribute_type: str, dim: float, highlight: float):
    """The trace's brightness factor: ``lerp(1, dim + (highlight - dim) * nnvis_trace,
    strength)``, ``strength`` the object's ``nnvis_trace_strength`` (0 when it has none)."""
    trace = b.node("ShaderNodeAttribute", attribute_type=attribute_type,
                   attribute_name=names.TRACE_ATTRIBUTE).outputs["Fac"]
    strength = b.node("ShaderNodeAttribute", attribute_type="OBJECT",
                      attribute_name=names.TRACE_STRENGTH).outputs["Fac"]
    level = b.node("ShaderNodeMapRange", {"Value": trace, "To Min": dim, "To Max": highlight})
    return b.out(b.node("ShaderNodeMix", {"Factor": strength, "A": 1.0, "B": level.outputs[0]},
                        data_type="FLOAT"), "Result")


def _trace_highlight(b: TreeBuilder, colour, glow):
    """Cells: the glow times the trace factor, the colour darkened where it is below 1."""
    b.section("Trace highlight")
    factor = _trace_factor(b, "INSTANCER", TRACE_DIM, TRACE_HIGHLIGHT)
    glow = b.out(b.node("ShaderNodeMath", {0: glow, 1: factor}, operation="MULTIPLY"), 0)
    darken = b.out(b.node("ShaderNodeMath", {0: factor, 1: 1.0}, operation="MINIMUM"), 0)
    colour = b.out(b.node("ShaderNodeMix", {"Factor": darken, "A": (0.0, 0.0, 0.0, 1.0),
                                            "B": colour}, data_type="RGBA"), "Result")
    return colour, glow


def ensure_label_material() -> bpy.types.Material:
    material = _find_current(LABEL_MATERIAL)
    if material is not None:
        return material
    material, b = _new_material(LABEL_MATERIAL)
    shader = b.node("ShaderNodeBsdfPrincipled", {
        "Base Color": (0.85, 0.87, 0.9, 1.0), "Roughness": 0.6,
        "Emission Color": (1.0, 1.0, 1.0, 1.0), "Emission Strength": 0.8,
    })
    b.section(None)
    output = b.node("ShaderNodeOutputMaterial")
    b.link(shader.outputs[0], output.inputs["Surface"])
    b.arrange()
    return material


CONNECTION_MATERIAL = "NNVis Connection"
NEGATIVE_COLOUR = (0.05, 0.25, 1.0, 1.0)
NEUTRAL_COLOUR = (0.16, 0.17, 0.2, 1.0)
POSITIVE_COLOUR = (1.0, 0.18, 0.06, 1.0)
STRUCTURAL_GLOW = 0.35     # structural links' emission and opacity, relative to a weighted edge's
STRUCTURAL_OPACITY = 0.3


def new_connection_material(name: str, image, height: int) -> bpy.types.Material:
    """Diverging colour by the signed weight at the shown epoch (blue negative, red positive),
    read from the network's atlas ``image``; weak edges fade, those under the threshold vanish."""
    material, b = _new_material(name)
    if hasattr(material, "surface_render_method"):
        material.surface_render_method = "BLENDED"
    m = FieldMath(b)
    blocks = atlas_nodes.add_epoch_blocks(b, height)  # weights: one sample, a block an epoch

    def attribute(name):
        return _attribute(b, "GEOMETRY", name)

    b.section("The edge's weight at the epoch")
    weight, invalid = atlas_nodes.add_stream_value(
        b, image, blocks, attribute(connection_nodes.EDGE_ATTRIBUTE),
        atlas_nodes.object_place(b, connection_nodes.WEIGHTS_STREAM))
    weight_norm = m.op("MINIMUM", m.op("MAXIMUM", m.div(
        weight, attribute(connection_nodes.WEIGHT_MAX_ATTRIBUTE)), -1.0), 1.0)
    strength = m.op("ABSOLUTE", weight_norm)
    # Under the threshold an edge is not drawn; an invalid one always is.
    shown = m.op("MAXIMUM", m.op("GREATER_THAN", m.add(strength, 1e-6),
                                 attribute(connection_nodes.THRESHOLD_ATTRIBUTE)), invalid)
    structural = attribute(connection_nodes.STRUCTURAL_ATTRIBUTE)
    b.section("Colour by weight")
    signed = b.node("ShaderNodeMapRange", {"Value": weight_norm, "From Min": -1.0, "From Max": 1.0})
    ramp = b.node("ShaderNodeValToRGB", {"Fac": signed.outputs[0]})
    elements = ramp.color_ramp.elements
    elements.new(0.5)
    for element, position, colour in zip(elements, (0.0, 0.5, 1.0),
                                         (NEGATIVE_COLOUR, NEUTRAL_COLOUR, POSITIVE_COLOUR)):
        element.position = position
        element.color = colour
    colour = b.node("ShaderNodeMix", {"Factor": structural,
                                      "A": ramp.outputs["Color"], "B": NEUTRAL_COLOUR},
                    data_type="RGBA")
    colour = b.node("ShaderNodeMix", {"Factor": invalid, "A": b.out(colour, "Result"),
                                      "B": INVALID_COLOUR}, data_type="RGBA")
    b.section("Glow and opacity")
    glow = b.node("ShaderNodeMapRange", {"Value": strength, "To Min": 0.4, "To Max": 3.0})
    # Structural links (pooling, merges) carry no weights: keep them quiet beside weighted ones.
    quiet = b.node("ShaderNodeMapRange", {"Value": structural,
                                          "To Min": 1.0, "To Max": STRUCTURAL_GLOW})
    glow = m.mul(glow.outputs[0], quiet.outputs[0])
    glow = _pick(b, glow, INVALID_GLOW, invalid)
    opacity = b.node("ShaderNodeMapRange", {"Value": strength, "To Min": 0.12, "To Max": 0.9})
    faint = b.node("ShaderNodeMapRange", {"Value": structural,
                                          "To Min": 1.0, "To Max": STRUCTURAL_OPACITY})
    opacity = m.mul(opacity.outputs[0], faint.outputs[0])
    # An invalid edge has no strength to fade by: drawn as opaque as the strongest.
    opacity = m.mul(_pick(b, opacity, 0.9, invalid), shown)
    b.section("Trace highlight")
    factor = _trace_factor(b, "GEOMETRY", EDGE_TRACE_DIM, EDGE_TRACE_HIGHLIGHT)
    opacity = m.op("MULTIPLY", opacity, factor, clamp=True)
    glow = m.mul(glow, factor)
    b.section("Shader")
    emission = b.node("ShaderNodeEmission", {"Color": b.out(colour, "Result"), "Strength": glow})
    transparent = b.node("ShaderNodeBsdfTransparent")
    mix = b.node("ShaderNodeMixShader", {"Fac": opacity})
    b.link(transparent.outputs[0], mix.inputs[1])
    b.link(emission.outputs[0], mix.inputs[2])
    b.section(None)
    output = b.node("ShaderNodeOutputMaterial")
    b.link(mix.outputs[0], output.inputs["Surface"])
    b.arrange()
    return material


ANSWER_MATERIAL = "NNVis Answer"
# The answer object's mesh attributes (core/evidence.py AnswerPanel) and its stream's prefix.
SLOT_ATTRIBUTE = "nnvis_slot"        # the class's place in the answer stream
BAR_U_ATTRIBUTE = "nnvis_bar_u"      # 0 at a bar's start .. 1 at its end
BAR_PART_ATTRIBUTE = "nnvis_bar_part"  # 0: the bar, 1: the true-class marker before it
ANSWER_STREAM = "nnvis_answer"       # per (sample, epoch): probabilities, true, predicted
ANSWER_SLOTS = "nnvis_answer_slots"  # on the answer object: how many classes it lists
TRACK_COLOUR, TRACK_GLOW = (0.05, 0.055, 0.07, 1.0), 0.3
BAR_COLOUR, PREDICTED_COLOUR, BAR_GLOW = (0.25, 0.45, 1.0, 1.0), (1.0, 0.55, 0.08, 1.0), 2.0
TRUE_COLOUR, TRUE_GLOW = (0.1, 1.0, 0.25, 1.0), 2.5


def new_answer_material(name: str, image, height: int) -> bpy.types.Material:
    """The answer's bars: each filled up to its class's probability at the shown sample and
    epoch (read from the network's atlas ``image``), orange for the predicted class, blue for the
    others; the marker before the true class's bar green. Emission only."""
    material, b = _new_material(name)
    m = FieldMath(b)
    blocks = atlas_nodes.add_epoch_blocks(b, height)

    def attribute(attribute_name):
        return _attribute(b, "GEOMETRY", attribute_name)

    b.section("The class's probability, true label and prediction at the epoch")
    place = atlas_nodes.object_place(b, ANSWER_STREAM)
    # Interpolated over its face, the slot is not exactly whole everywhere: rounded.
    slot, slots = m.op("ROUND", attribute(SLOT_ATTRIBUTE)), _object_value(b, ANSWER_SLOTS)
    probability, invalid = atlas_nodes.add_stream_value(b, image, blocks, slot, place)
    true = atlas_nodes.add_stream_value(b, image, blocks, m.add(slot, slots), place)[0]
    predicted = atlas_nodes.add_stream_value(
        b, image, blocks, m.op("MULTIPLY_ADD", slots, 2.0, slot), place)[0]
    b.section("Bar filled up to the probability; the true class's marker")
    filled = m.sub(1.0, m.op("GREATER_THAN", attribute(BAR_U_ATTRIBUTE), probability))
    bar = _pick_colour(b, BAR_COLOUR, PREDICTED_COLOUR, predicted)
    colour = _pick_colour(b, TRACK_COLOUR, bar, filled)
    glow = _pick(b, TRACK_GLOW, BAR_GLOW, filled)
    marker = _pick_colour(b, TRACK_COLOUR, TRUE_COLOUR, true)
    part = attribute(BAR_PART_ATTRIBUTE)
    colour = _pick_colour(b, colour, marker, part)
    glow = _pick(b, glow, _pick(b, TRACK_GLOW, TRUE_GLOW, true), part)
    colour = _pick_colour(b, colour, INVALID_COLOUR, invalid)
    b.section("Shader")
    emission = b.node("ShaderNodeEmission", {"Color": colour, "Strength": glow})
    b.section(None)
    output = b.node("ShaderNodeOutputMaterial")
    b.link(emission.outputs[0], output.inputs["Surface"])
    b.arrange()
    return material


def _pick_colour(b: TreeBuilder, a, other, factor):
    return b.out(b.node("ShaderNodeMix", {"Factor": factor, "A": a, "B": other},
                        data_type="RGBA", clamp_factor=True), "Result")


OPERATION_MATERIAL = "NNVis Operation"
WINDOW_MATERIAL = "NNVis Operation Window"
# The close-up's mesh attributes (core/operation.py CloseUp) and its stream's prefix.
OPERATION_STREAM = "nnvis_operation"   # per step: patch, kernel, products, part, total, output
VALUE_SCALE_ATTRIBUTE = "nnvis_value_scale"
# A close-up cell's colour: its value / scale from -1 (blue) through dark to 1 (orange).
OPERATION_COLOURS = ((0.1, 0.35, 1.0, 1.0), (0.03, 0.03, 0.04, 1.0), (1.0, 0.42, 0.04, 1.0))
OPERATION_GLOW = (0.3, 2.5)            # emission strength at |value / scale| 0 and 1
WINDOW_COLOUR, WINDOW_GLOW = (1.0, 0.85, 0.1, 1.0), 3.0


def new_operation_material(name: str, image, height: int) -> bpy.types.Material:
    """The close-up of one operation (blender/operation.py): each quad shows its slot of the
    step the object's ``nnvis_shown`` epoch slot says (keyframed, one atlas block a step),
    coloured by value / scale (the quad's ``nnvis_value_scale``) from blue through dark to
    orange, glowing with |value / scale|. Emission only."""
    material, b = _new_material(name)
    m = FieldMath(b)
    blocks = atlas_nodes.add_epoch_blocks(b, height)

    def attribute(attribute_name):
        return _attribute(b, "GEOMETRY", attribute_name)

    b.section("The quad's value at the shown step")
    slot = m.op("ROUND", attribute(SLOT_ATTRIBUTE))  # interpolated over the face: rounded
    value, invalid = atlas_nodes.add_stream_value(
        b, image, blocks, slot, atlas_nodes.object_place(b, OPERATION_STREAM))
    norm = m.op("MINIMUM", m.op("MAXIMUM", m.div(value, attribute(VALUE_SCALE_ATTRIBUTE)),
                                -1.0), 1.0)
    b.section("Colour and glow by value / scale")
    signed = b.node("ShaderNodeMapRange", {"Value": norm, "From Min": -1.0, "From Max": 1.0})
    ramp = b.node("ShaderNodeValToRGB", {"Fac": signed.outputs[0]})
    elements = ramp.color_ramp.elements
    elements.new(0.5)
    for element, position, colour in zip(elements, (0.0, 0.5, 1.0), OPERATION_COLOURS):
        element.position = position
        element.color = colour
    glow = b.node("ShaderNodeMapRange", {"Value": m.op("ABSOLUTE", norm),
                                         "To Min": OPERATION_GLOW[0], "To Max": OPERATION_GLOW[1]})
    colour = _pick_colour(b, ramp.outputs["Color"], INVALID_COLOUR, invalid)
    glow = _pick(b, glow.outputs[0], INVALID_GLOW, invalid)
    b.section("Shader")
    emission = b.node("ShaderNodeEmission", {"Color": colour, "Strength": glow})
    b.section(None)
    output = b.node("ShaderNodeOutputMaterial")
    b.link(emission.outputs[0], output.inputs["Surface"])
    b.arrange()
    return material


def ensure_window_material() -> bpy.types.Material:
    """The frame around the cells an operation reads and the cell it writes: flat glowing
    yellow."""
    material = _find_current(WINDOW_MATERIAL)
    if material is not None:
        return material
    material, b = _new_material(WINDOW_MATERIAL)
    emission = b.node("ShaderNodeEmission", {"Color": WINDOW_COLOUR, "Strength": WINDOW_GLOW})
    b.section(None)
    output = b.node("ShaderNodeOutputMaterial")
    b.link(emission.outputs[0], output.inputs["Surface"])
    b.arrange()
    return material
