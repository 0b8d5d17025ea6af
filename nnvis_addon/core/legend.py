"""What the colour legend says (bpy-free): its strings for both normalisation modes.

The legend (blender/legend.py, geometry_nodes/legend_nodes.py) is a colour bar with a value
at each end and a title. Per layer, every layer maps its own activation range onto the colour
map, so the ends are that layer's minimum and maximum; globally, one range for the network,
whose numbers the legend shows. Pictures (core/picture.py) show their own colours and take no
part in either range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIGNIFICANT_DIGITS = 3


@dataclass(frozen=True)
class LegendText:
    title: str
    low: str    # under the bar's left end (the colour map's start)
    high: str   # under its right end


def format_value(value: float) -> str:
    """A range end as people write it: 3 significant digits, no exponent ("0", "26.4",
    "-0.532", "1230")."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    text = np.format_float_positional(float(value), precision=SIGNIFICANT_DIGITS, unique=False,
                                      fractional=False, trim="-")
    return "0" if text in ("-0", "") else text


def legend_texts(global_min: float, global_max: float) -> dict[str, LegendText]:
    """The legend's strings: ``"layer"`` (per-layer normalisation) and ``"global"``."""
    low, high = format_value(global_min), format_value(global_max)
    return {
        "layer": LegendText("activation, per layer: each layer's own range", "layer min",
                            "layer max"),
        "global": LegendText(f"activation, global: {low}..{high}", low, high),
    }
