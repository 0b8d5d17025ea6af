"""Epoch playback: keyframe the epoch through every recorded epoch, with a counter. A thin
wrapper around ``blender/playback.py``."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, IntProperty

from ..blender import network, playback
from ..blender.api import Network
from ..core import names


class NNVIS_OT_animate_epochs(bpy.types.Operator):
    """Keyframe the active network's epoch through every recorded epoch, with an epoch counter"""

    bl_idname = "nnvis.animate_epochs"
    bl_label = "Animate Epochs"
    bl_options = {"REGISTER", "UNDO"}

    frames_per_epoch: IntProperty(name="Frames per Epoch", default=24, min=1, soft_max=240,
                                  description="Frames of transition from one epoch to the next")
    hold_frames: IntProperty(name="Hold Frames", default=12, min=0, soft_max=240,
                             description="Frames each recorded epoch is held")
    step: BoolProperty(name="Step", default=False,
                       description="Jump from epoch to epoch instead of interpolating")

    @classmethod
    def poll(cls, context):
        return network.network_of(context.active_object) is not None

    def execute(self, context):
        root = network.network_of(context.active_object)
        if root is None:
            self.report({"ERROR"}, "Select an nnvis network (its root or one of its layers)")
            return {"CANCELLED"}
        try:
            first, last = Network(root).animate_epochs(
                frames_per_epoch=self.frames_per_epoch, hold_frames=self.hold_frames,
                start_frame=context.scene.frame_start, step=self.step, scene=context.scene)
        except network.NetworkError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Animated {playback.epoch_count(root)} epochs of "
                              f"{root.get(names.MODEL_NAME, root.name)!r}: frames {first}-{last}")
        return {"FINISHED"}


CLASSES = (NNVIS_OT_animate_epochs,)
