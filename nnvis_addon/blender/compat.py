"""The Blender APIs that moved between 4.2 and 5.x, behind small helpers.

* Geometry-nodes modifier inputs are ID properties keyed by socket identifier up to 5.1
  (``mod["Socket_2"]``); 5.2 moves them to ``mod.properties.inputs``.
* ``Action.fcurves`` was removed in 5.0 (layered actions): F-curves live in channelbags.
"""

from __future__ import annotations

import bpy


def socket_identifier(tree: bpy.types.NodeTree, name: str, in_out: str = "INPUT") -> str:
    for item in tree.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == in_out and item.name == name:
            return item.identifier
    raise KeyError(f"node group {tree.name!r} has no {in_out.lower()} {name!r}")


def _modifier_inputs(modifier):
    """Blender 5.2+: the container of a modifier's input values, else None."""
    properties = getattr(modifier, "properties", None)
    return getattr(properties, "inputs", None) if properties is not None else None


def set_modifier_input(modifier: bpy.types.NodesModifier, name: str, value) -> None:
    identifier = socket_identifier(modifier.node_group, name)
    inputs = _modifier_inputs(modifier)
    if inputs is not None:
        inputs[identifier].value = value
    else:
        modifier[identifier] = value


def get_modifier_input(modifier: bpy.types.NodesModifier, name: str):
    identifier = socket_identifier(modifier.node_group, name)
    inputs = _modifier_inputs(modifier)
    if inputs is not None:
        return inputs[identifier].value
    return modifier[identifier]


def modifier_input_path(modifier: bpy.types.NodesModifier, name: str) -> str:
    """Data path (from the object) of a modifier input, for drivers and keyframes."""
    identifier = socket_identifier(modifier.node_group, name)
    base = f'modifiers["{bpy.utils.escape_identifier(modifier.name)}"]'
    if _modifier_inputs(modifier) is not None:
        return f'{base}.properties.inputs["{identifier}"].value'
    return f'{base}["{identifier}"]'


def action_fcurves(id_data) -> list:
    """The F-curves animating ``id_data`` (empty when it has no action)."""
    anim = id_data.animation_data
    if anim is None or anim.action is None:
        return []
    action = anim.action
    if hasattr(action, "layers") and hasattr(anim, "action_slot"):
        from bpy_extras import anim_utils
        channelbag = anim_utils.action_get_channelbag_for_slot(action, anim.action_slot)
        return list(channelbag.fcurves) if channelbag is not None else []
    return list(action.fcurves)


def find_fcurve(id_data, data_path: str, index: int = 0):
    for fcurve in action_fcurves(id_data):
        if fcurve.data_path == data_path and fcurve.array_index == index:
            return fcurve
    return None


def enable_nodes(id_data) -> None:
    """Materials and worlds always use nodes from 5.0 on (``use_nodes`` is deprecated there)."""
    if id_data.node_tree is None:
        id_data.use_nodes = True
