"""Removing an imported network: the plain function behind "Remove Network".

A network is its root empty, everything parented below it and everything in its collection
(``NNVis <model>``: layers, connections, camera, light, epoch counter). Removing it removes those
objects, the data only they used (meshes, hair curves, camera and light data, their actions) and
the collection. The shared pieces -- the "NNVis ..." node groups and materials and the
"NNVis World" -- are removed only once no other network (or anything else) uses them, so
``bpy.data`` after removing every imported network is what it was before the first import.
"""

from __future__ import annotations

import bpy

from ...geometry_nodes.builder import BUILDER_VERSION_KEY
from .scene import ROOT_LINK, ROOT_MARKER

WORLD_MARKER = "nnvis_world"
CAMERA_MARKER = "nnvis_camera"
BUILTIN_FONT = "<builtin>"


def network_collections(root: bpy.types.Object) -> list[bpy.types.Collection]:
    """The collections made for this network: those holding the root, except a scene's master
    collection and collections shared with another network's root."""
    masters = {scene.collection.as_pointer() for scene in bpy.data.scenes}
    result = []
    for collection in root.users_collection:
        if collection.as_pointer() in masters:
            continue
        if any(o.get(ROOT_MARKER) and o != root for o in collection.all_objects):
            continue
        result.append(collection)
    return result


def network_objects(root: bpy.types.Object) -> list[bpy.types.Object]:
    """Every object of the network: root, its descendants, its collections' objects and the
    objects linked to it through ``nnvis_root`` (the epoch counter), with their descendants."""
    objects = {root.as_pointer(): root}
    for child in root.children_recursive:
        objects[child.as_pointer()] = child
    for collection in network_collections(root):
        for obj in collection.all_objects:
            objects.setdefault(obj.as_pointer(), obj)
    for obj in bpy.data.objects:
        if obj.get(ROOT_LINK) == root:
            for linked in (obj, *obj.children_recursive):
                objects.setdefault(linked.as_pointer(), linked)
    return list(objects.values())


def _is_ours(block) -> bool:
    return block.get(BUILDER_VERSION_KEY) is not None or bool(block.get(WORLD_MARKER))


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


def _release_worlds(scenes) -> None:
    """Scenes with no network left give back the NNVis World, and get the world it replaced."""
    for scene in scenes:
        world = scene.world
        if world is not None and world.get(WORLD_MARKER) and not any(
                obj.get(ROOT_MARKER) for obj in scene.objects):
            replaced = world.get("nnvis_replaced_world")
            scene.world = replaced if isinstance(replaced, bpy.types.World) else None


def _repoint_cameras(scenes) -> None:
    """A scene whose camera went with the network uses another network's camera, if any."""
    for scene in scenes:
        if scene.camera is None:
            cameras = [obj for obj in scene.objects
                       if obj.get(CAMERA_MARKER) and obj.type == "CAMERA"]
            if cameras:
                scene.camera = cameras[0]


def _purge_shared() -> None:
    """Remove nnvis's own node groups, materials and world once nothing uses them (to a fixed
    point: a removed group may have been the last user of a material). The built-in font that
    the label's String to Curves node loaded goes with the last group that used it."""
    removed_groups = False
    while True:
        unused = [block for name in ("node_groups", "materials", "worlds")
                  for block in getattr(bpy.data, name) if _is_ours(block) and _unused(block)]
        if not unused:
            break
        removed_groups |= any(isinstance(block, bpy.types.NodeTree) for block in unused)
        _remove_blocks(unused)
    if removed_groups:
        _remove_blocks([font for font in bpy.data.fonts
                        if font.filepath == BUILTIN_FONT and _unused(font)])


def remove_network(root: bpy.types.Object) -> None:
    """Remove the network whose root is ``root`` and every data-block only it used.

    Shared node groups, materials and the world are removed only when no other network uses
    them. Raises ``ValueError`` when ``root`` is not a network root.
    """
    if root is None or not root.get(ROOT_MARKER):
        raise ValueError(f"{getattr(root, 'name', root)!r} is not an nnvis network root")
    objects = network_objects(root)
    collections = network_collections(root)
    # Nested collections inside the network's collections go too.
    for collection in list(collections):
        collections.extend(collection.children_recursive)
    scenes = [scene for scene in bpy.data.scenes
              if any(scene.objects.get(obj.name) == obj for obj in objects)]
    data = _used_by(objects)

    _remove_blocks(objects)
    _remove_blocks(list({c.as_pointer(): c for c in collections}.values()))
    _release_worlds(scenes)
    _repoint_cameras(scenes)

    # Object data, actions, materials and node groups that only the removed objects used, then
    # nnvis's shared groups, materials and world once nothing uses them.
    _remove_blocks([block for block in data if _unused(block) and not _is_ours(block)])
    _purge_shared()


def remove_all_networks(scene: bpy.types.Scene | None = None) -> int:
    """Remove every network in ``scene`` (or the whole file); returns how many."""
    objects = scene.objects if scene is not None else bpy.data.objects
    roots = [obj for obj in objects if obj.get(ROOT_MARKER)]
    for root in roots:
        remove_network(root)
    return len(roots)
