"""The colour legend: an on-screen colour bar of what the cells' colours mean.

Added at import with the network's camera (blender/staging.py), it is an overlay
(blender/overlay.py) in the lower-right corner of the frame, the epoch counter's opposite corner:
the colour map drawn by the cells' own material (geometry_nodes/legend_nodes.py), the value at
each end and whether colours are normalised per layer ("activation, per layer: each layer's own
range", ends "layer min"/"layer max") or globally ("activation, global: 0..26.4", ends the
global minimum and maximum; core/legend.py writes the strings). A simple driver ties the group's
``Global`` input to the root's ``nnvis_normalize_globally``, so the legend switches with the
control, animated or not, without Python. It is one of the network's parts
(``names.PART_LEGEND``): Remove Network removes it.
"""

from __future__ import annotations

from typing import cast

import bpy

from ...geometry_nodes import legend_nodes, materials
from ..core import controls, names
from ..core.legend import legend_texts
from . import compat, network, overlay, writers

# Sizes in half frame heights (overlay units): the bar spans 0.7 / 3.56 of a 16:9 frame's width.
BAR_WIDTH = 0.7
BAR_HEIGHT = 0.05
TEXT_SIZE = 0.055
BAR_STEPS = 64
NORMALIZE_PATH = f'["{controls.NORMALIZE_GLOBALLY}"]'


def find_legend(root: bpy.types.Object) -> bpy.types.Object | None:
    """The network's colour legend, or None."""
    return network.part(root, names.PART_LEGEND)


def ensure_legend(root: bpy.types.Object, camera: bpy.types.Object | None = None,
                  scene: bpy.types.Scene | None = None) -> bpy.types.Object:
    """Add (or refresh) the network's colour legend on ``camera`` (default: the network's own);
    return its object."""
    legend = find_legend(root)
    if legend is None:
        name = f"{network.display_name(root)} colour legend"
        legend = bpy.data.objects.new(name, bpy.data.meshes.new(name))  # the group draws it all
        legend[names.LEGEND_MARKER] = 1
        collection = network.network_collection(root) or (scene or bpy.context.scene).collection
        collection.objects.link(legend)
        network.record_part(root, names.PART_LEGEND, legend)
    overlay.camera_only(legend)

    modifier = cast(bpy.types.NodesModifier, legend.modifiers.get(names.LEGEND_MODIFIER)
                    or legend.modifiers.new(names.LEGEND_MODIFIER, "NODES"))
    modifier.node_group = legend_nodes.ensure_legend_group()
    texts = legend_texts(*root[names.GLOBAL_RANGE])
    inputs = {
        "Per Layer Title": texts["layer"].title, "Per Layer Low": texts["layer"].low,
        "Per Layer High": texts["layer"].high, "Global Title": texts["global"].title,
        "Global Low": texts["global"].low, "Global High": texts["global"].high,
        "Width": BAR_WIDTH, "Bar Height": BAR_HEIGHT, "Text Size": TEXT_SIZE,
        "Steps": BAR_STEPS, "Bar Material": materials.ensure_legend_material(),
        "Text Material": materials.ensure_label_material(),
    }
    for key, value in inputs.items():
        compat.set_modifier_input(modifier, key, value)

    overlay.clear_drivers(legend)
    writers.add_driver(legend, compat.modifier_input_path(modifier, "Global"), "normalize",
                       {"normalize": ("OBJECT", root, NORMALIZE_PATH)})
    overlay.place_in_camera(legend, camera or network.network_camera(root), "lower right")
    legend.update_tag()
    return legend
