"""Explain a prediction: trace a cell of the active layer (or a class of the output), and
clear the trace. Thin wrappers around ``Network.trace`` / ``Network.clear_trace``."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import IntProperty, StringProperty

from ..blender import network
from ..blender.api import Network
from ..core import names
from ..core.export_format import NnvisError
from .network import act_on_active


def _optional(value: int) -> int | None:
    return None if value < 0 else value


class _OnALayer:
    """An operator on a layer of the active network: its ``layer`` property, else the active
    object's layer, asked for in a dialog. (No annotations here: Blender would take them for
    properties.)"""

    @classmethod
    def poll(cls, context):
        return network.active_network(context) is not None

    def invoke(self: Any, context, event):
        obj = context.active_object
        if not self.layer and obj is not None and obj.get(names.LAYER_MARKER):
            self.layer = str(obj[names.LAYER_MARKER])
        return context.window_manager.invoke_props_dialog(self)

    def chosen_layer(self: Any, context) -> str | None:
        layer = self.layer or None
        if layer is None and context.active_object is not None:
            layer = context.active_object.get(names.LAYER_MARKER)
        return layer


class NNVIS_OT_trace(_OnALayer, bpy.types.Operator):
    """Highlight the receptive field of a cell (or neuron, or class) and the paths that
    contribute most to it for the shown sample and epoch; dim the rest"""

    bl_idname = "nnvis.trace"
    bl_label = "Trace Cell"
    bl_options = {"REGISTER", "UNDO"}

    layer: StringProperty(name="Layer", default="", options={"SKIP_SAVE"},
                          description="Layer (unit) to trace, by its name in the export; empty: "
                                      "the active layer")
    channel: IntProperty(name="Channel", default=-1, min=-1,
                         description="Channel (map) of the cell; -1: every channel")
    row: IntProperty(name="Row", default=-1, min=-1, description="Row of the cell; -1: every row")
    col: IntProperty(name="Column", default=-1, min=-1,
                     description="Column of the cell; -1: every column")
    neuron: IntProperty(name="Neuron", default=-1, min=-1,
                        description="Neuron of a dense layer; -1: none")
    class_index: IntProperty(name="Class", default=-1, min=-1,
                             description="Class of the output layer to trace; -1: use the layer")
    top: IntProperty(name="Top Units", default=3, min=1, soft_max=16,
                     description="Channels or neurons per layer highlighted as contributing")


    def execute(self, context):
        target = Network.active(context)
        layer = self.chosen_layer(context)
        try:
            summary = target.trace(layer, _optional(self.channel), _optional(self.row),
                                   _optional(self.col), _optional(self.neuron),
                                   _optional(self.class_index), top=self.top)
        except (NnvisError, ValueError, KeyError, OSError) as exc:
            self.report({"ERROR"}, f"Nothing traced: {exc}")
            return {"CANCELLED"}
        cells = sum(summary.highlighted.values())
        self.report({"INFO"}, f"Traced {summary.unit!r}: {cells} cells in its field")
        return {"FINISHED"}


class NNVIS_OT_clear_trace(bpy.types.Operator):
    """Remove the active network's trace (its highlight and dimming)"""

    bl_idname = "nnvis.clear_trace"
    bl_label = "Clear Trace"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        root = network.active_network(context)
        return root is not None and names.TRACE_RECORD in root.keys()

    def execute(self, context):
        return act_on_active(self, context, Network.clear_trace)


class NNVIS_OT_show_operation(_OnALayer, bpy.types.Operator):
    """Show one output cell of a Conv2D, pooling or Dense layer computed step by step: the
    input patch, the kernel, their products and the result, the kernel sliding along the row
    (keyframes from the current frame)"""

    bl_idname = "nnvis.show_operation"
    bl_label = "Show Operation"
    bl_options = {"REGISTER", "UNDO"}

    layer: StringProperty(name="Layer", default="", options={"SKIP_SAVE"},
                          description="Conv2D, pooling or Dense layer (unit) by its name in the "
                                      "export; empty: the active layer")
    channel: IntProperty(name="Channel", default=0, min=0,
                         description="Output channel of the cell (the neuron of a Dense layer)")
    row: IntProperty(name="Row", default=0, min=0, description="Row the kernel slides along")
    col: IntProperty(name="Column", default=0, min=0,
                     description="Column of the chosen cell (the step shown now)")
    input_channel: IntProperty(name="Input Channel", default=-1, min=-1,
                               description="Input channel a convolution's step shows; -1: the "
                                           "one contributing most")
    frames_per_step: IntProperty(name="Frames per Step", default=6, min=1, soft_max=48)


    def execute(self, context):
        target = Network.active(context)
        layer = self.chosen_layer(context)
        if not layer:
            self.report({"ERROR"}, "No operation shown: choose a layer")
            return {"CANCELLED"}
        try:
            shown = target.show_operation(layer, self.channel, self.row, self.col,
                                          input_channel=_optional(self.input_channel),
                                          frames_per_step=self.frames_per_step)
        except (NnvisError, ValueError, KeyError, OSError) as exc:
            self.report({"ERROR"}, f"No operation shown: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Showing {shown.kind} of {shown.layer!r}: {shown.steps} steps")
        return {"FINISHED"}


class NNVIS_OT_clear_operation(bpy.types.Operator):
    """Remove the active network's operation close-up"""

    bl_idname = "nnvis.clear_operation"
    bl_label = "Clear Operation"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        root = network.active_network(context)
        return root is not None and bool(network.listed_parts(root, names.PART_OPERATION))

    def execute(self, context):
        return act_on_active(self, context, Network.clear_operation)


CLASSES = (NNVIS_OT_trace, NNVIS_OT_clear_trace, NNVIS_OT_show_operation,
           NNVIS_OT_clear_operation)
