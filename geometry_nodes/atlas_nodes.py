"""Shader nodes that read a value atlas (core/atlas.py): what a cell or edge shows at the epoch.

Playback moves only these numbers: the shaded object's shown epoch and sample follow the
network's root, and the shader finds the two recorded epochs around it in the atlas image, decodes
and mixes them. The geometry never changes with the epoch, so a frame change evaluates no geometry.

* "NNVis Atlas Pixel" (shader group): the atlas UV and the half of the pixel (0: R/G, 1: B/A)
  of value ``Index`` of block ``Block`` of a stream placed at (Row, Column, Block Rows, Block
  Pixels) in an atlas of ``Height`` rows: core/atlas.py ``pixel_indices`` as nodes;
* "NNVis Atlas Decode" (shader group): the 16-bit code in that half of the pixel's colour, as the
  value between Low and High, and 1 on ``Invalid`` for the NaN/Inf code (value 0 then).

:func:`add_epoch_blocks` reads the shaded object's shown sample and epoch (``nnvis_shown``, which
simple drivers copy from the root: a driven object property re-evaluates no geometry) and gives
the blocks and weight they select; :func:`add_stream_value` adds one stream's lookup at both
blocks (two Image Texture nodes on the atlas, Closest) and mixes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..nnvis_addon.core import atlas
from .builder import BUILDER_VERSION_KEY, FieldMath, TreeBuilder, find_current, new_tree

PIXEL_GROUP = "NNVis Atlas Pixel"
DECODE_GROUP = "NNVis Atlas Decode"
VERSION = 1

# Custom properties of the shaded object (a layer or connection) that say what to show:
# (sample, epoch, step epochs), driven by the network's root, so playback changes only them;
# and (samples, epochs) recorded in its stream.
SHOWN_PROPERTY = "nnvis_shown"
RECORDED_PROPERTY = "nnvis_recorded"
HEIGHT_NODE = "nnvis Atlas Height"  # the material's value node holding its atlas's rows


def _ensure(name, build):
    tree = find_current(name, VERSION)
    if tree is None:
        tree = new_tree(name, "ShaderNodeTree", VERSION)
        build(TreeBuilder(tree))
        tree[BUILDER_VERSION_KEY] = VERSION
    return tree


def _build_pixel(b: TreeBuilder) -> None:
    for name in ("Index", "Block", "Row", "Column", "Block Rows", "Block Pixels", "Height"):
        b.add_socket(name, "FLOAT")
    b.add_socket("UV", "VECTOR", output=True)
    b.add_socket("Half", "FLOAT", output=True)
    m = FieldMath(b)
    inp = b.node("NodeGroupInput").outputs
    b.section("Pixel of the value")
    in_block = m.op("FLOOR", m.mul(inp["Index"], 0.5))
    half = m.op("MULTIPLY_ADD", in_block, -2.0, inp["Index"])
    pixel = m.add(m.op("MULTIPLY_ADD", inp["Block"], inp["Block Pixels"], inp["Column"]), in_block)
    rows_on = m.op("FLOOR", m.div(pixel, float(atlas.WIDTH)))  # exact: WIDTH is a power of two
    col = m.op("MULTIPLY_ADD", rows_on, -float(atlas.WIDTH), pixel)
    row = m.add(m.op("MULTIPLY_ADD", inp["Block"], inp["Block Rows"], inp["Row"]), rows_on)
    b.section("Texture coordinates (pixel centres)")
    u = m.div(m.add(col, 0.5), float(atlas.WIDTH))
    v = m.div(m.add(row, 0.5), inp["Height"])
    uv = b.node("ShaderNodeCombineXYZ", {"X": u, "Y": v})
    b.section(None)
    out = b.node("NodeGroupOutput")
    b.link(uv.outputs[0], out.inputs["UV"])
    b.link(half, out.inputs["Half"])
    b.arrange()


def _build_decode(b: TreeBuilder) -> None:
    b.add_socket("Color", "COLOR")
    for name in ("Alpha", "Half", "Low", "High"):
        b.add_socket(name, "FLOAT")
    b.add_socket("Value", "FLOAT", output=True)
    b.add_socket("Invalid", "FLOAT", output=True)
    m = FieldMath(b)
    inp = b.node("NodeGroupInput").outputs
    b.section("16-bit code")
    rgb = b.node("ShaderNodeSeparateColor", {"Color": inp["Color"]}).outputs
    high = m.lerp(rgb[0], rgb[2], inp["Half"])   # R/G hold value 2k, B/A value 2k + 1
    low = m.lerp(rgb[1], inp["Alpha"], inp["Half"])
    code = m.op("MULTIPLY_ADD", m.op("ROUND", m.mul(high, 255.0)), 256.0,
                m.op("ROUND", m.mul(low, 255.0)))
    b.section("Value between Low and High")
    invalid = m.op("GREATER_THAN", code, atlas.LEVELS + 0.5)
    # Low and High mixed by code / LEVELS: no overflow even where High - Low would.
    t = m.div(code, float(atlas.LEVELS))
    value = m.add(m.mul(inp["Low"], m.sub(1.0, t)), m.mul(inp["High"], t))
    value = m.mul(value, m.sub(1.0, invalid))
    b.section(None)
    out = b.node("NodeGroupOutput")
    b.link(value, out.inputs["Value"])
    b.link(invalid, out.inputs["Invalid"])
    b.arrange()


def ensure_pixel_group():
    return _ensure(PIXEL_GROUP, _build_pixel)


def ensure_decode_group():
    return _ensure(DECODE_GROUP, _build_decode)


@dataclass
class EpochBlocks:
    """The blocks of the shown (sample, lower epoch) and (sample, upper epoch), the upper's
    weight, and the atlas height (sockets of the material)."""

    lower: Any
    upper: Any
    weight: Any
    height: Any


def add_epoch_blocks(b: TreeBuilder, height: int) -> EpochBlocks:
    """The shown sample and epoch (the object's ``nnvis_shown``), clamped to the recorded ones
    (its ``nnvis_recorded``), as atlas blocks: core/atlas.py ``blend_epochs`` as nodes."""
    m = FieldMath(b)
    b.section("Shown sample and epoch (the object's, driven by the network)")
    shown = b.node("ShaderNodeAttribute", attribute_type="OBJECT", attribute_name=SHOWN_PROPERTY)
    sample, epoch, step = b.node("ShaderNodeSeparateXYZ",
                                 {"Vector": shown.outputs["Vector"]}).outputs[:3]
    recorded = b.node("ShaderNodeAttribute", attribute_type="OBJECT",
                      attribute_name=RECORDED_PROPERTY)
    sample_count, epoch_count = b.node("ShaderNodeSeparateXYZ",
                                       {"Vector": recorded.outputs["Vector"]}).outputs[:2]
    rows = b.node("ShaderNodeValue", label="Atlas Height")
    rows.name = HEIGHT_NODE
    rows.outputs[0].default_value = float(height)
    b.section("Recorded epochs around it")
    last = m.op("MAXIMUM", m.sub(epoch_count, 1.0), 0.0)
    shown_epoch = m.op("MINIMUM", m.op("MAXIMUM", epoch, 0.0), last)
    lower = m.op("FLOOR", shown_epoch)
    upper = m.op("MINIMUM", m.add(lower, 1.0), last)
    weight = m.mul(m.sub(shown_epoch, lower), m.sub(1.0, m.op("GREATER_THAN", step, 0.5)))
    first_block = m.mul(m.op("MINIMUM", m.op("MAXIMUM", m.op("ROUND", sample), 0.0),
                             m.op("MAXIMUM", m.sub(sample_count, 1.0), 0.0)), epoch_count)
    return EpochBlocks(m.add(first_block, lower), m.add(first_block, upper), weight,
                       rows.outputs[0])


def object_place(b: TreeBuilder, prefix: str):
    """(row, col, block rows, block pixels, low, high) of a stream, read from the shaded
    object's custom properties ``<prefix>_place`` (4 numbers) and ``<prefix>_range`` (2)."""
    place = b.node("ShaderNodeAttribute", attribute_type="OBJECT", attribute_name=f"{prefix}_place")
    rgb = b.node("ShaderNodeSeparateColor", {"Color": place.outputs["Color"]}).outputs
    value_range = b.node("ShaderNodeAttribute", attribute_type="OBJECT",
                         attribute_name=f"{prefix}_range")
    xyz = b.node("ShaderNodeSeparateXYZ", {"Vector": value_range.outputs["Vector"]}).outputs
    return (rgb[0], rgb[1], rgb[2], place.outputs["Alpha"], xyz[0], xyz[1])


def add_stream_value(b: TreeBuilder, image, blocks: EpochBlocks, index, place) -> tuple[Any, Any]:
    """(value, invalid) of value ``index`` of the stream at ``place`` (``object_place``) at the
    shown epoch: both neighbouring epochs looked up and decoded, mixed by the epoch's fraction;
    invalid where an epoch that is mixed in is NaN/Inf."""
    pixel_group, decode_group = ensure_pixel_group(), ensure_decode_group()
    m = FieldMath(b)
    row, col, block_rows, block_pixels, low, high = place
    decoded = []
    for block in (blocks.lower, blocks.upper):
        pixel = b.node("ShaderNodeGroup", node_tree=pixel_group)
        for name, value in (("Index", index), ("Block", block), ("Row", row), ("Column", col),
                            ("Block Rows", block_rows), ("Block Pixels", block_pixels),
                            ("Height", blocks.height)):
            b.set_input(pixel, name, value)
        texture = b.node("ShaderNodeTexImage", {"Vector": pixel.outputs["UV"]}, image=image,
                         interpolation="Closest", extension="EXTEND")
        decode = b.node("ShaderNodeGroup", node_tree=decode_group)
        for name, value in (("Color", texture.outputs["Color"]), ("Alpha", texture.outputs["Alpha"]),
                            ("Half", pixel.outputs["Half"]), ("Low", low), ("High", high)):
            b.set_input(decode, name, value)
        decoded.append(decode.outputs)
    value = m.add(m.mul(decoded[0]["Value"], m.sub(1.0, blocks.weight)),
                  m.mul(decoded[1]["Value"], blocks.weight))
    below = m.op("LESS_THAN", blocks.weight, 1.0)
    above = m.op("GREATER_THAN", blocks.weight, 0.0)
    invalid = m.op("MAXIMUM", m.mul(decoded[0]["Invalid"], below),
                   m.mul(decoded[1]["Invalid"], above))
    return m.mul(value, m.sub(1.0, invalid)), invalid
