"""The Blender APIs that moved between 4.2 and 5.x, behind small helpers.

* Geometry-nodes modifier inputs are ID properties keyed by socket identifier up to 5.1
  (``mod["Socket_2"]``); 5.2 moves them to ``mod.properties.inputs``.
* ``Action.fcurves`` was removed in 5.0 (layered actions): F-curves live in channelbags.
* ``Curves.resize_curves`` exists from 4.3 on; 4.2 gets a new hair-curves data-block.
* Output formats: 5.0 adds ``ImageFormatSettings.media_type`` (image or video) before the format.

The modifier-input helpers take a ``NodesModifier``: :func:`nodes_modifier` and
:func:`add_nodes_modifier` give one (the API stubs type ``obj.modifiers`` as the base Modifier).
"""

from __future__ import annotations

from typing import cast

import bpy


def socket_identifier(tree: bpy.types.NodeTree, name: str, in_out: str = "INPUT") -> str:
    items = tree.interface.items_tree
    item = items.get(name)  # the first item of that name, found by Blender (fast)
    if item is not None and item.item_type == "SOCKET" and item.in_out == in_out:
        return item.identifier
    for item in items:  # another item (an output, a panel) of the same name comes first
        if item.item_type == "SOCKET" and item.in_out == in_out and item.name == name:
            return item.identifier
    raise KeyError(f"node group {tree.name!r} has no {in_out.lower()} {name!r}")


def nodes_modifier(obj: bpy.types.Object, name: str) -> bpy.types.NodesModifier:
    """``obj``'s geometry-nodes modifier called ``name`` (KeyError when it has none)."""
    return cast(bpy.types.NodesModifier, obj.modifiers[name])


def add_nodes_modifier(obj: bpy.types.Object, name: str,
                       group: bpy.types.NodeTree) -> bpy.types.NodesModifier:
    """A new geometry-nodes modifier called ``name`` on ``obj``, drawing ``group``."""
    modifier = cast(bpy.types.NodesModifier, obj.modifiers.new(name, "NODES"))
    modifier.node_group = group
    return modifier


def _node_group(modifier: bpy.types.NodesModifier) -> bpy.types.NodeTree:
    """The group a modifier draws; a modifier without one has no inputs (KeyError)."""
    group = modifier.node_group
    if group is None:
        raise KeyError(f"modifier {modifier.name!r} draws no node group")
    return group


def _modifier_inputs(modifier):
    """Blender 5.2+: the container of a modifier's input values, else None."""
    properties = getattr(modifier, "properties", None)
    return getattr(properties, "inputs", None) if properties is not None else None


def set_modifier_input(modifier: bpy.types.NodesModifier, name: str, value) -> None:
    identifier = socket_identifier(_node_group(modifier), name)
    inputs = _modifier_inputs(modifier)
    if inputs is not None:
        inputs[identifier].value = value
    else:
        modifier[identifier] = value


def get_modifier_input(modifier: bpy.types.NodesModifier, name: str):
    identifier = socket_identifier(_node_group(modifier), name)
    inputs = _modifier_inputs(modifier)
    if inputs is not None:
        return inputs[identifier].value
    return modifier[identifier]


def modifier_input_path(modifier: bpy.types.NodesModifier, name: str) -> str:
    """Data path (from the object) of a modifier input, for drivers and keyframes."""
    identifier = socket_identifier(_node_group(modifier), name)
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


# Attribute data type -> (foreach key, components, numpy dtype name)
_ATTRIBUTE_LAYOUT = {
    "FLOAT": ("value", 1, "float32"), "INT": ("value", 1, "int32"), "INT8": ("value", 1, "int32"),
    "BOOLEAN": ("value", 1, "bool"), "FLOAT2": ("vector", 2, "float32"),
    "INT32_2D": ("value", 2, "int32"), "FLOAT_VECTOR": ("vector", 3, "float32"),
    "FLOAT_COLOR": ("color", 4, "float32"), "BYTE_COLOR": ("color", 4, "float32"),
    "QUATERNION": ("value", 4, "float32"), "FLOAT4X4": ("value", 16, "float32"),
}


def resize_curves(obj: bpy.types.Object, sizes: list[int]):
    """Give every curve of ``obj``'s hair curves ``sizes[i]`` points; return the data-block.

    Curve-domain attributes are kept; point-domain ones (positions included) must be rewritten.
    Blender 4.3+ resizes in place (``Curves.resize_curves``); 4.2 has no such call, so a new
    data-block with the curve attributes copied replaces the old one, which is removed.
    """
    import numpy as np

    old = cast(bpy.types.Curves, obj.data)
    if hasattr(old, "resize_curves"):
        old.resize_curves(sizes)
        return old
    new = bpy.data.hair_curves.new(old.name)
    new.add_curves(sizes)
    count = len(old.curves)
    for attribute in old.attributes:
        if attribute.domain != "CURVE" or attribute.name.startswith(".") or \
                attribute.data_type not in _ATTRIBUTE_LAYOUT:
            continue
        key, components, dtype = _ATTRIBUTE_LAYOUT[attribute.data_type]
        values = np.zeros(count * components, dtype)
        # ``data`` belongs to each concrete attribute type (FloatAttribute, ...): the stubs type
        # the items as the base Attribute, which has none.
        attribute.data.foreach_get(key, values)  # type: ignore[attr-defined]
        target = new.attributes.get(attribute.name) or new.attributes.new(
            attribute.name, attribute.data_type, "CURVE")
        target.data.foreach_set(key, values)  # type: ignore[attr-defined]
    for material in old.materials:
        new.materials.append(material)
    name = old.name
    obj.data = new
    if old.users == 0:
        bpy.data.hair_curves.remove(old)
        new.name = name
    return new


def assign_action(id_data, action) -> None:
    """Animate ``id_data`` by ``action``; from 4.4 on (slotted actions) also by the action's
    first slot when none matched the data-block's name."""
    anim = id_data.animation_data or id_data.animation_data_create()
    anim.action = action
    if hasattr(anim, "action_slot") and anim.action_slot is None and len(action.slots):
        anim.action_slot = action.slots[0]


def set_image_format(settings: bpy.types.ImageFormatSettings, file_format: str) -> None:
    """An output's file format. Blender 5.0 splits image and video outputs: ``media_type``
    (IMAGE or VIDEO) comes first, and a video format is refused while it is IMAGE."""
    if "media_type" in settings.bl_rna.properties:
        settings.media_type = "VIDEO" if file_format == "FFMPEG" else "IMAGE"
    settings.file_format = file_format  # type: ignore[assignment]
