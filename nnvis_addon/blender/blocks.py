"""Blocks in the scene: collapse a block (core/blocks.py) to its output unit and expand it again.

Each block's control is a custom property of its output unit's object, ``nnvis_block_collapsed``
(0..1, animatable). Simple-expression drivers carry it into the block's other units: their
``Hidden`` input (their cells shrink away), their share of the layer spacing (the units after
the block move closer) and, once fully collapsed, their visibility flags (so their labels and
connections hide with them: connections follow their layers' flags, blender/connections.py).
Collapsing animates, and a saved .blend plays without nnvis.
"""

from __future__ import annotations

import bpy

from ..core import names
from ..core.layout import NetworkPlan
from . import compat, connections, network, writers

CONTROL_PATH = f'["{names.BLOCK_COLLAPSED}"]'
FULLY_COLLAPSED = 0.999  # past this, a block's other units are hidden, not just shrunk


def block_owners(plan: NetworkPlan, layer_objects: dict) -> dict[str, bpy.types.Object]:
    """Unit name -> the object holding its block's control, for every unit hidden when its
    block collapses."""
    return {name: layer_objects[block.output] for block in plan.blocks
            for name in block.hidden_when_collapsed}


def init_block_controls(plan: NetworkPlan, layer_objects: dict, modifier_name: str) -> None:
    """Give every block's output unit its control and drive the block's other units by it."""
    for block in plan.blocks:
        owner = layer_objects[block.output]
        owner[names.BLOCK_COLLAPSED] = 1.0 if block.name in plan.collapsed_blocks else 0.0
        owner.id_properties_ui(names.BLOCK_COLLAPSED).update(
            min=0.0, max=1.0, soft_min=0.0, soft_max=1.0, subtype="FACTOR",
            description=f"Collapse block {block.name!r} into this unit (1) or show its "
                        f"{len(block.members)} units (0)")
        owner[names.BLOCK_NAME] = block.name
        owner[names.BLOCK_MEMBERS] = list(block.members)
        collapsed = float(owner[names.BLOCK_COLLAPSED])
        for name in block.hidden_when_collapsed:
            member = layer_objects[name]
            member[names.BLOCK_NAME] = block.name
            modifier = compat.nodes_modifier(member, modifier_name)
            control = {"block": ("OBJECT", owner, CONTROL_PATH)}
            writers.add_driver(member, compat.modifier_input_path(modifier, "Hidden"), "block",
                               control)
            # What the drivers compute, at once: the import frames its camera before the
            # scene is first evaluated.
            compat.set_modifier_input(modifier, "Hidden", collapsed)
            for flag in names.VISIBILITY_FLAGS:
                writers.add_driver(member, flag, f"block > {FULLY_COLLAPSED}", control)
                setattr(member, flag, collapsed > FULLY_COLLAPSED)


def show_block_links(connection_objects, layer_objects: dict) -> None:
    """A block's link from its entry to its output (core/links.py ``block_links``) shows while
    the block is fully collapsed and both its ends are shown: its visibility drivers also read
    the block's control."""
    for obj in connection_objects:
        if obj.get(names.LINK_KIND) != "block":
            continue
        source = layer_objects[obj[names.SOURCE_LAYER]]
        owner = layer_objects[obj[names.TARGET_LAYER]]
        connections.follow_layer_visibility(
            obj, source, owner, also_hidden=(f"block < {FULLY_COLLAPSED}",
                                             {"block": ("OBJECT", owner, CONTROL_PATH)}))


def network_blocks(root: bpy.types.Object) -> dict[str, bpy.types.Object]:
    """Block name -> the object holding its control (its output unit), in network order."""
    return {obj[names.BLOCK_NAME]: obj for obj in network.network_layers(root)
            if names.BLOCK_COLLAPSED in obj.keys()}


def set_block_collapsed(root: bpy.types.Object, block: str, collapsed: float) -> None:
    """Collapse (1), expand (0) or half-collapse a block from a script; keyframe
    ``owner["nnvis_block_collapsed"]`` to animate it."""
    network.require_editable(root)
    owners = network_blocks(root)
    if block not in owners:
        raise KeyError(f"network {network.display_name(root)!r} has no block {block!r} "
                       f"(blocks: {list(owners)})")
    owner = owners[block]
    owner[names.BLOCK_COLLAPSED] = float(collapsed)
    for obj in network.owned_objects(root):
        obj.update_tag()
