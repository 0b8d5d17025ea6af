"""Removing an imported network: the plain function behind "Remove Network".

A network is exactly what its import made, as recorded on its root (``blender/network.py``):
the root, its layer and connection objects, camera, light and epoch counter, and its collection.
Removing it removes those objects, the data only they used (meshes, hair curves, camera and
light data, their actions) and the collection, and gives the scene back the camera and world it
had. Nothing else is touched: a user's object moved into the network's collection stays (and so
does the collection, holding it), a user's collection the root was moved into stays. The shared
pieces -- the "NNVis ..." node groups and materials, the value atlas images and the "NNVis
World" -- are removed only
once no other network (or anything else) uses them, so ``bpy.data`` after removing every
imported network is what it was before the first import.
"""

from __future__ import annotations

import bpy

from ...geometry_nodes.builder import BUILDER_VERSION_KEY
from ..core import names
from . import network, staging

BUILTIN_FONT = "<builtin>"


def _is_ours(block) -> bool:
    return (block.get(BUILDER_VERSION_KEY) is not None or bool(block.get(names.WORLD_MARKER))
            or bool(block.get(names.ATLAS_MARKER)))


def _unused(block) -> bool:
    return block.users == 0 and not block.use_fake_user and block.library is None


def _used_by(objects) -> list:
    """Data-blocks the objects use directly: object data, actions, slot materials, node groups."""
    blocks = []
    for obj in objects:
        if obj.data is not None:
            blocks.append(obj.data)
            data_anim = getattr(obj.data, "animation_data", None)
            if data_anim is not None and data_anim.action is not None:
                blocks.append(data_anim.action)
        if obj.animation_data is not None and obj.animation_data.action is not None:
            blocks.append(obj.animation_data.action)
        for slot in obj.material_slots:
            if slot.material is not None:
                blocks.append(slot.material)
        for modifier in obj.modifiers:
            group = getattr(modifier, "node_group", None)
            if group is not None:
                blocks.append(group)
    return blocks


def _remove_blocks(blocks) -> None:
    unique = list({block.as_pointer(): block for block in blocks}.values())
    if unique:
        bpy.data.batch_remove(unique)


def _purge_shared() -> None:
    """Remove nnvis's own node groups, materials and world once nothing uses them (to a fixed
    point: a removed group may have been the last user of a material). The built-in font that
    the label's String to Curves node loaded goes with the last group that used it."""
    removed_groups = False
    while True:
        unused = [block for name in ("node_groups", "materials", "worlds", "images")
                  for block in getattr(bpy.data, name) if _is_ours(block) and _unused(block)]
        if not unused:
            break
        removed_groups |= any(isinstance(block, bpy.types.NodeTree) for block in unused)
        _remove_blocks(unused)
    if removed_groups:
        _remove_blocks([font for font in bpy.data.fonts
                        if font.filepath == BUILTIN_FONT and _unused(font)])


def _removable_collection(root: bpy.types.Object, objects) -> list[bpy.types.Collection]:
    """The network's own collection, unless it now also holds something of the user's (an
    object or a collection moved into it): then it stays, with only the user's things in it."""
    collection = network.network_collection(root)
    if collection is None or collection.library is not None:
        return []
    ours = {obj.as_pointer() for obj in objects}
    if collection.children or any(obj.as_pointer() not in ours for obj in collection.objects):
        return []
    return [collection]


def remove_objects(objects) -> None:
    """Remove ``objects`` (parts a network added after its import, such as an operation
    close-up) and what only they used, then nnvis's own blocks nothing uses any more."""
    data = _used_by(objects)
    _remove_blocks(objects)
    _remove_blocks([block for block in data if _unused(block) and not _is_ours(block)])
    _purge_shared()


def remove_network(root: bpy.types.Object) -> None:
    """Remove the network whose root is ``root`` and every data-block only it used.

    Shared node groups, materials and the world are removed only when no other network uses
    them. Raises ``network.NetworkError`` (a ``ValueError``) when ``root`` is not a network root
    nnvis can edit (linked from a library, a partial copy); an incomplete network (a layer
    deleted by hand) is removed.
    """
    network.require_editable(root)
    objects = network.owned_objects(root)
    collections = _removable_collection(root, objects)
    scenes = [scene for scene in bpy.data.scenes
              if any(scene.objects.get(obj.name) == obj for obj in objects)]
    for scene in scenes:
        staging.give_back_scene_camera(scene, objects)
    data = _used_by(objects)

    _remove_blocks(objects)
    _remove_blocks(collections)
    for scene in scenes:
        staging.give_back_world(scene)

    # Object data, actions, materials and node groups that only the removed objects used, then
    # nnvis's shared groups, materials and world once nothing uses them.
    _remove_blocks([block for block in data if _unused(block) and not _is_ours(block)])
    _purge_shared()


def remove_all_networks(scene: bpy.types.Scene | None = None) -> int:
    """Remove every network in ``scene`` (or the whole file); returns how many."""
    roots = network.iter_networks(scene)
    for root in roots:
        remove_network(root)
    return len(roots)
