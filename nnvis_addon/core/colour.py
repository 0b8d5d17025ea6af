"""Colour conversions shared by the materials and the input picture (numpy only).

Blender's colour attributes, colour-ramp stops and shader colours are scene-linear; pictures
and published colour maps (viridis) are sRGB-encoded. :func:`srgb_to_linear` converts one to
the other, so a value shown under the "Standard" view transform reads back as the sRGB value
it started from.
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(values):
    """sRGB-encoded 0..1 values (a number or an array) -> linear; the piecewise sRGB curve."""
    values = np.asarray(values, dtype=np.float64)
    linear = np.where(values <= 0.04045, values / 12.92,
                      ((np.maximum(values, 0.04045) + 0.055) / 1.055) ** 2.4)
    return float(linear) if linear.ndim == 0 else linear
