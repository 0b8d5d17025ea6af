"""All-or-nothing data creation: a failed import leaves ``bpy.data`` as it found it."""

from __future__ import annotations

import bpy

# Removal order matters: users (objects) before the data they use.
TRACKED = ("objects", "collections", "meshes", "hair_curves", "curves", "cameras", "lights",
           "materials", "node_groups", "worlds", "actions", "images", "texts", "pointclouds",
           "fonts")  # the label's String to Curves node loads the built-in font


def snapshot() -> dict[str, set[int]]:
    return {name: {block.as_pointer() for block in getattr(bpy.data, name)}
            for name in TRACKED if hasattr(bpy.data, name)}


def remove_new(before: dict[str, set[int]]) -> None:
    for name, known in before.items():
        blocks = getattr(bpy.data, name)
        for block in [b for b in blocks if b.as_pointer() not in known]:
            blocks.remove(block)


class DataTransaction:
    """``with DataTransaction(): ...`` removes every data-block created inside on an exception."""

    def __enter__(self):
        self.before = snapshot()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            remove_new(self.before)
        return False
