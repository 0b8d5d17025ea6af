"""Shader materials, built from Python like the geometry-nodes groups.

* "NNVis Activation": colours a cell by its ``activation_norm`` instance attribute through a
  viridis colour ramp, with emission that grows with the activation so strong cells glow on a
  dark background; a picture's cell (``picture`` 1, the input as a picture) shows its
  ``picture_colour`` instead, as plain emission (strength 1, no diffuse or specular light), so
  under the "Standard" view transform it renders as the pixel's own sRGB value.
* "NNVis Label": flat, slightly emissive white for layer labels.
* "NNVis Connection": blue (negative) through grey to red (positive) by the signed weight;
  structural links (``structural`` 1: pooling, merges, no weights of their own) neutral grey,
  dimmer and mostly transparent, so the weighted connections and the maps read through them.

A traced cell (Explain a prediction, blender/trace.py) shows through one framed part of the cell
and connection materials, "Trace highlight": each cell's or edge's ``nnvis_trace`` (0..1) sets a
brightness between ``TRACE_DIM`` and ``TRACE_HIGHLIGHT``, applied as strongly as the object's
``nnvis_trace_strength`` property says (0: the material as without a trace). It reads nothing
of how activations are stored.

Values that are NaN/Inf in the export (a diverged training run) show in ``INVALID_COLOUR``,
magenta, Blender's own "something is missing" colour: viridis never has red and blue both high
with no green, nor does the blue-grey-red of connections. Cells and edges read the flags
``activation_invalid`` / ``weight_invalid`` that the geometry nodes store, so the shaders need
no Python either.
"""

from __future__ import annotations

import bpy

from ..nnvis_addon.core import names
from ..nnvis_addon.core.colour import srgb_to_linear
from . import connection_nodes, layer_nodes, picture_nodes
from .builder import BUILDER_VERSION_KEY, TreeBuilder

ACTIVATION_MATERIAL = "NNVis Activation"
LABEL_MATERIAL = "NNVis Label"
VERSION = 8

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


def ensure_activation_material() -> bpy.types.Material:
    material = _find_current(ACTIVATION_MATERIAL)
    if material is not None:
        return material
    material, b = _new_material(ACTIVATION_MATERIAL)
    b.section("Viridis by activation")
    attribute = b.node("ShaderNodeAttribute", attribute_type="INSTANCER",
                       attribute_name=layer_nodes.NORM_ATTRIBUTE)
    ramp = b.node("ShaderNodeValToRGB", {"Fac": attribute.outputs["Fac"]})
    elements = ramp.color_ramp.elements
    while len(elements) < len(VIRIDIS_SRGB):
        elements.new(0.5)
    for index, (element, rgb) in enumerate(zip(elements, VIRIDIS_SRGB)):
        element.position = index / (len(VIRIDIS_SRGB) - 1)
        element.color = (*(srgb_to_linear(c) for c in rgb), 1.0)
    glow = b.node("ShaderNodeMapRange", {"Value": attribute.outputs["Fac"], "To Min": 0.15,
                                         "To Max": 2.5})
    b.section("Pictures and invalid cells")
    invalid = b.node("ShaderNodeAttribute", attribute_type="INSTANCER",
                     attribute_name=layer_nodes.INVALID_ATTRIBUTE).outputs["Fac"]
    picture = b.node("ShaderNodeAttribute", attribute_type="INSTANCER",
                     attribute_name=picture_nodes.PICTURE_ATTRIBUTE).outputs["Fac"]
    pixel = b.node("ShaderNodeAttribute", attribute_type="INSTANCER",
                   attribute_name=picture_nodes.PICTURE_COLOUR_ATTRIBUTE).outputs["Color"]
    colour = b.out(b.node("ShaderNodeMix", {"Factor": picture, "A": ramp.outputs["Color"],
                                            "B": pixel}, data_type="RGBA"), "Result")
    glow = b.out(b.node("ShaderNodeMix", {"Factor": picture, "A": glow.outputs[0],
                                          "B": PICTURE_GLOW}, data_type="FLOAT"), "Result")
    colour = b.out(b.node("ShaderNodeMix", {"Factor": invalid, "A": colour,
                                            "B": INVALID_COLOUR}, data_type="RGBA"), "Result")
    glow = b.out(b.node("ShaderNodeMix", {"Factor": invalid, "A": glow,
                                          "B": INVALID_GLOW}, data_type="FLOAT"), "Result")
    colour, glow = _trace_highlight(b, colour, glow)
    b.section("Shader")
    # A picture shows its pixels as they are: emission only, no sunlight on top.
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
    return material


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


def ensure_connection_material() -> bpy.types.Material:
    """Diverging colour by signed weight (blue negative, red positive); weak edges transparent."""
    material = _find_current(CONNECTION_MATERIAL)
    if material is not None:
        return material
    material, b = _new_material(CONNECTION_MATERIAL)
    if hasattr(material, "surface_render_method"):
        material.surface_render_method = "BLENDED"

    def attribute(name):
        return b.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=name)

    b.section("Colour by weight")
    signed = b.node("ShaderNodeMapRange", {"Value": attribute("weight_norm").outputs["Fac"],
                                           "From Min": -1.0, "From Max": 1.0})
    ramp = b.node("ShaderNodeValToRGB", {"Fac": signed.outputs[0]})
    elements = ramp.color_ramp.elements
    elements.new(0.5)
    for element, position, colour in zip(elements, (0.0, 0.5, 1.0),
                                         (NEGATIVE_COLOUR, NEUTRAL_COLOUR, POSITIVE_COLOUR)):
        element.position = position
        element.color = colour
    structural = attribute(connection_nodes.STRUCTURAL_ATTRIBUTE).outputs["Fac"]
    colour = b.node("ShaderNodeMix", {"Factor": structural,
                                      "A": ramp.outputs["Color"], "B": NEUTRAL_COLOUR},
                    data_type="RGBA")
    invalid = attribute(connection_nodes.INVALID_ATTRIBUTE).outputs["Fac"]
    colour = b.node("ShaderNodeMix", {"Factor": invalid, "A": b.out(colour, "Result"),
                                      "B": INVALID_COLOUR}, data_type="RGBA")
    b.section("Glow and opacity")
    strength = attribute("strength_norm").outputs["Fac"]
    glow = b.node("ShaderNodeMapRange", {"Value": strength, "To Min": 0.4, "To Max": 3.0})
    # Structural links (pooling, merges) carry no weights: keep them quiet beside weighted ones.
    quiet = b.node("ShaderNodeMapRange", {"Value": structural,
                                          "To Min": 1.0, "To Max": STRUCTURAL_GLOW})
    glow = b.node("ShaderNodeMath", {0: glow.outputs[0], 1: quiet.outputs[0]}, operation="MULTIPLY")
    glow = b.node("ShaderNodeMix", {"Factor": invalid, "A": glow.outputs[0], "B": INVALID_GLOW},
                  data_type="FLOAT")
    opacity = b.node("ShaderNodeMapRange", {"Value": strength, "To Min": 0.12, "To Max": 0.9})
    faint = b.node("ShaderNodeMapRange", {"Value": structural,
                                          "To Min": 1.0, "To Max": STRUCTURAL_OPACITY})
    opacity = b.node("ShaderNodeMath", {0: opacity.outputs[0], 1: faint.outputs[0]},
                     operation="MULTIPLY")
    # An invalid edge has no strength to fade by: drawn as opaque as the strongest.
    opacity = b.node("ShaderNodeMix", {"Factor": invalid, "A": opacity.outputs[0], "B": 0.9},
                     data_type="FLOAT")
    b.section("Trace highlight")
    factor = _trace_factor(b, "GEOMETRY", EDGE_TRACE_DIM, EDGE_TRACE_HIGHLIGHT)
    opacity = b.node("ShaderNodeMath", {0: b.out(opacity, "Result"), 1: factor},
                     operation="MULTIPLY", use_clamp=True)
    glow = b.node("ShaderNodeMath", {0: b.out(glow, "Result"), 1: factor}, operation="MULTIPLY")
    b.section("Shader")
    emission = b.node("ShaderNodeEmission", {"Color": b.out(colour, "Result"),
                                             "Strength": glow.outputs[0]})
    transparent = b.node("ShaderNodeBsdfTransparent")
    mix = b.node("ShaderNodeMixShader", {"Fac": opacity.outputs[0]})
    b.link(transparent.outputs[0], mix.inputs[1])
    b.link(emission.outputs[0], mix.inputs[2])
    b.section(None)
    output = b.node("ShaderNodeOutputMaterial")
    b.link(mix.outputs[0], output.inputs["Surface"])
    b.arrange()
    return material
