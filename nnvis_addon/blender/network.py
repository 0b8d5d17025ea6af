"""What belongs to a network, known by reference: the ownership record and every lookup.

An import records what it made when it makes it: the root's ``nnvis_parts`` property holds
pointers to the network's collection, layer, connection and label objects, camera, light and
epoch counter, and each of those objects points back to the root (``nnvis_root``). A part is the
network's only when both pointers agree, so nothing is ever inferred from names, parents or
collections: a user's object moved into the network's collection, a network root moved into the
user's collection, a renamed camera or a half-duplicated network cannot make nnvis act on the
wrong objects. Blender remaps these pointers when a whole network is duplicated (Shift+D on all
its objects), so the copy is a network of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

import bpy

from ..core import names


class NetworkError(ValueError):
    """A network nnvis cannot act on (incomplete, linked from a library, a partial copy); the
    message is one line meant for the user."""


# -- the record ---------------------------------------------------------------------------------


def record_parts(root: bpy.types.Object, collection: bpy.types.Collection,
                 layers: Iterable[bpy.types.Object],
                 connections: Iterable[bpy.types.Object],
                 labels: Iterable[bpy.types.Object] = ()) -> None:
    """Record what an import made: ``root`` owns ``collection``, ``layers``, ``connections``
    and ``labels``."""
    layers, connections, labels = list(layers), list(connections), list(labels)
    root[names.PARTS] = {
        names.PART_COLLECTION: collection,
        names.PART_LAYERS: layers,
        names.PART_CONNECTIONS: connections,
        names.PART_LABELS: labels,
        # Names of the parts as made, so a message can say which one went missing.
        "layer_names": [obj.get(names.LAYER_MARKER, obj.name) for obj in layers] or [""],
    }
    for obj in (root, *layers, *connections, *labels):
        obj[names.ROOT_LINK] = root


def record_part(root: bpy.types.Object, key: str, obj: bpy.types.Object) -> None:
    """Record one more object the network owns (its camera, light or epoch counter)."""
    root[names.PARTS][key] = obj
    obj[names.ROOT_LINK] = root


def record_list(root: bpy.types.Object, key: str, objects: Iterable[bpy.types.Object]) -> None:
    """Record (or replace) a list of objects the network owns under ``key`` (names.EXTRA_PARTS:
    the answer, an operation close-up)."""
    objects = list(objects)
    root[names.PARTS][key] = objects
    for obj in objects:
        obj[names.ROOT_LINK] = root


def listed_parts(root: bpy.types.Object, key: str) -> list[bpy.types.Object]:
    """The objects recorded under ``key`` (see :func:`record_list`) that still belong to it."""
    return [obj for obj in _listed(root, key) if _claims(root, obj)]


def _claims(root: bpy.types.Object, obj) -> bool:
    return isinstance(obj, bpy.types.Object) and obj.get(names.ROOT_LINK) == root


def _record(root: bpy.types.Object):
    record = root.get(names.PARTS)
    return record if record is not None and hasattr(record, "get") else None


def _listed(root: bpy.types.Object, key: str) -> list:
    record = _record(root)
    if record is None:
        return []
    return list(record.get(key) or ())


def part(root: bpy.types.Object, key: str) -> bpy.types.Object | None:
    """The camera, light or counter the network owns (``names.PART_*``), or None."""
    record = _record(root)
    obj = record.get(key) if record is not None else None
    return obj if _claims(root, obj) else None


def network_layers(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The network's layer objects that still exist, in layer order."""
    return [obj for obj in _listed(root, names.PART_LAYERS) if _claims(root, obj)]


def network_connections(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The network's connection objects that still exist, in build order."""
    return [obj for obj in _listed(root, names.PART_CONNECTIONS) if _claims(root, obj)]


def network_labels(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The network's label objects that still exist, in layer order (a user may delete one: the
    network stays whole)."""
    return [obj for obj in _listed(root, names.PART_LABELS) if _claims(root, obj)]


def network_camera(root: bpy.types.Object) -> bpy.types.Object | None:
    """The camera staged with the network (whatever it is called now), or None."""
    camera = part(root, names.PART_CAMERA)
    return camera if camera is not None and camera.type == "CAMERA" else None


def network_collection(root: bpy.types.Object) -> bpy.types.Collection | None:
    record = _record(root)
    collection = record.get(names.PART_COLLECTION) if record is not None else None
    return collection if isinstance(collection, bpy.types.Collection) else None


def owned_objects(root: bpy.types.Object) -> list[bpy.types.Object]:
    """Every object the import of ``root`` made that still exists and still belongs to it."""
    objects = [root, *network_layers(root), *network_connections(root), *network_labels(root)]
    objects += [obj for key in names.EXTRA_PARTS for obj in listed_parts(root, key)]
    objects += [obj for key in (names.PART_CAMERA, names.PART_LIGHT, names.PART_COUNTER,
                                names.PART_LEGEND)
                if (obj := part(root, key)) is not None]
    return list({obj.as_pointer(): obj for obj in objects}.values())


# -- finding networks ---------------------------------------------------------------------------


def is_root(obj) -> bool:
    """True for a network root whose record points back at itself (not a stray copy)."""
    return isinstance(obj, bpy.types.Object) and bool(obj.get(names.ROOT_MARKER)) and \
        _record(obj) is not None and _claims(obj, obj)


def network_of(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The root of the network that owns ``obj`` (``obj`` itself for a root), else None."""
    if obj is None:
        return None
    if is_root(obj):
        return obj
    root = obj.get(names.ROOT_LINK)
    if not is_root(root):
        return None
    if any(obj == owned for owned in owned_objects(root)):
        return root
    return None


def iter_networks(scene: bpy.types.Scene | None = None) -> list[bpy.types.Object]:
    """Roots of the networks in ``scene`` (or in the whole file)."""
    objects = scene.objects if scene is not None else bpy.data.objects
    return [obj for obj in objects if is_root(obj)]


def active_network(context) -> bpy.types.Object | None:
    """The network the UI acts on: the active object's; else the one picked in the NNVis panel;
    else the scene's only network; else None."""
    root = network_of(getattr(context, "active_object", None))
    if root is not None:
        return root
    scene = getattr(context, "scene", None)
    picked = getattr(scene, names.PANEL_NETWORK, None)
    if is_root(picked) and picked.name in scene.objects:
        return picked
    networks = iter_networks(scene)
    return networks[0] if len(networks) == 1 else None


# -- can nnvis act on it? -----------------------------------------------------------------------


def display_name(root: bpy.types.Object) -> str:
    return str(root.get(names.MODEL_NAME, root.name))


# Kinds of problem (see :func:`diagnose`); Remove Network can still act on the last two.
NOT_A_NETWORK, LINKED, NO_RECORD, ROOT_COPY, PARTIAL_COPY, INCOMPLETE = (
    "not a network", "linked", "no record", "root copy", "partial copy", "incomplete")
REMOVABLE_PROBLEMS = frozenset({PARTIAL_COPY, INCOMPLETE})


def diagnose(root: bpy.types.Object) -> tuple[str, str] | None:
    """(kind, one-line message) of what keeps nnvis from acting on the network of ``root``;
    None when it is whole."""
    if root is None or not root.get(names.ROOT_MARKER):
        return NOT_A_NETWORK, f"{getattr(root, 'name', root)!r} is not an nnvis network"
    name = display_name(root)
    if root.library is not None:
        return LINKED, (f"network {name!r} is linked from {root.library.filepath!r}: nnvis does "
                        "not edit linked data (append it, or make it local, to change it)")
    if _record(root) is None:
        return NO_RECORD, (f"network {name!r} has no record of its parts (made by an older "
                           "nnvis): import it again")
    if not _claims(root, root):
        return ROOT_COPY, (f"{root.name!r} is a copy of the root of network {name!r} only: "
                           "duplicate all of the network's objects together, or import it again")
    listed = [obj for key in (names.PART_LAYERS, names.PART_CONNECTIONS, names.PART_LABELS)
              for obj in _listed(root, key)]
    foreign = sum(1 for obj in listed if obj is not None and not _claims(root, obj))
    if foreign:
        return PARTIAL_COPY, (f"{root.name!r} is a partial copy of network {name!r} ({foreign} "
                              "of its objects belong to the original): duplicate all of the "
                              "network's objects together, or remove this copy")
    layer_names = list(_record(root).get("layer_names") or ())
    missing = [layer_names[i] if i < len(layer_names) else f"#{i}"
               for i, obj in enumerate(_listed(root, names.PART_LAYERS)) if obj is None]
    found = []
    if missing:
        found.append(f"the layer object(s) of {', '.join(map(repr, missing[:3]))}"
                     f"{' and more' if len(missing) > 3 else ''} were deleted")
    lost = sum(1 for obj in _listed(root, names.PART_CONNECTIONS) if obj is None)
    if lost:
        found.append(f"{lost} connection object(s) were deleted")
    if found:
        return INCOMPLETE, (f"network {name!r} is incomplete: {'; '.join(found)} "
                            "(undo, or remove the network and import it again)")
    return None


def problems(root: bpy.types.Object) -> list[str]:
    """What keeps nnvis from acting on the network of ``root``; empty when it is whole."""
    found = diagnose(root)
    return [found[1]] if found is not None else []


def require_whole(root: bpy.types.Object) -> bpy.types.Object:
    """``root`` if nnvis can act on its network; else raise :class:`NetworkError`."""
    found = diagnose(root)
    if found is not None:
        raise NetworkError(found[1])
    return root


def require_editable(root: bpy.types.Object) -> bpy.types.Object:
    """Like :func:`require_whole` but refuses only what cannot be edited at all (not a network,
    linked from a library, a copy of the root alone): Remove Network also removes an incomplete
    network or a partial copy, taking exactly the objects that still belong to it."""
    found = diagnose(root)
    if found is not None and found[0] not in REMOVABLE_PROBLEMS:
        raise NetworkError(found[1])
    return root
