"""Everything nnvis registers with Blender, and its clean removal."""

from __future__ import annotations

import bpy

from . import operators, panels

CLASSES = (*operators.CLASSES, *panels.CLASSES)


def _menu_import(self, context):
    self.layout.operator(operators.importing.NNVIS_OT_import_network.bl_idname,
                         text="Neural Network (nnvis) (.nnvis.json)")


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)
    panels.register_properties()


def unregister():
    panels.unregister_properties()
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
