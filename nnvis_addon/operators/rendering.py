"""Render settings: the render preset for nnvis's glowing scenes. A thin wrapper around
``blender/render.py``."""

from __future__ import annotations

import bpy

from ..blender import render


class NNVIS_OT_render_preset(bpy.types.Operator):
    """Set the scene up for fast Cycles renders of nnvis networks: few light bounces, adaptive
    sampling, denoising, persistent data, connections drawn as curves in renders"""

    bl_idname = "nnvis.render_preset"
    bl_label = "Render Preset"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return getattr(context, "scene", None) is not None

    def execute(self, context):
        result = render.apply_render_preset(context.scene)
        self.report({"INFO"}, f"Render preset: {result.summary()}")
        return {"FINISHED"}


CLASSES = (NNVIS_OT_render_preset,)
