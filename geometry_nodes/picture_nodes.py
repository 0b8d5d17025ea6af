"""The input as a picture, in the "NNVis Layer" group: per-sample pixel colours onto the cells.

A picture layer's mesh (core/picture.py, blender/scene.py) holds one colour attribute per
recorded sample, ``nnvis_rgb_s{sample}`` (FLOAT_COLOR, point domain, linear RGB). With the
layer's ``Picture`` input on, :func:`store_picture` stores the shown sample's colours as
``picture_colour`` and ``picture`` = 1 on the cells; off, black and 0. The cells' instances
inherit both, and the "NNVis Activation" material shows ``picture_colour`` where ``picture``
is 1 instead of its viridis ramp. The sample is the layer's clamped ``Sample`` input, so
switching samples switches pictures without Python.
"""

from __future__ import annotations

PICTURE_COLOUR_PREFIX = "nnvis_rgb_"
PICTURE_ATTRIBUTE = "picture"                # 1 on a picture's cells, else 0
PICTURE_COLOUR_ATTRIBUTE = "picture_colour"  # the pixel's linear colour (black elsewhere)


def picture_colour_attribute_name(sample: int) -> str:
    return f"{PICTURE_COLOUR_PREFIX}s{sample}"


def store_picture(b, m, geometry, picture, sample_text):
    """Store ``picture`` (0/1) and ``picture_colour`` on the points of ``geometry``; ``picture``
    is the group's boolean input, ``sample_text`` the clamped sample number as a string socket.
    Returns the last Store Named Attribute node."""
    name = m.join([PICTURE_COLOUR_PREFIX + "s", sample_text])
    colour = b.node("GeometryNodeInputNamedAttribute", {"Name": name}, data_type="FLOAT_COLOR")
    # A single-value switch: layers that are no picture never look the attribute up.
    shown = m.switch("RGBA", picture, (0.0, 0.0, 0.0, 1.0), b.out(colour, "Attribute"))
    stored = b.node("GeometryNodeStoreNamedAttribute",
                    {"Geometry": geometry, "Name": PICTURE_COLOUR_ATTRIBUTE, "Value": shown},
                    data_type="FLOAT_COLOR", domain="POINT")
    return b.node("GeometryNodeStoreNamedAttribute",
                  {"Geometry": stored.outputs[0], "Name": PICTURE_ATTRIBUTE,
                   "Value": m.switch("FLOAT", picture, 0.0, 1.0)},
                  data_type="FLOAT", domain="POINT")
