"""Acting on selected connection objects: re-bundle them with every bundling parameter."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty

from ..blender import connections, network


class NNVIS_OT_rebundle(bpy.types.Operator):
    """Recompute the bundled curves of the selected connection objects with new parameters"""

    bl_idname = "object.nnvis_rebundle"
    bl_label = "Re-bundle Connections"
    bl_options = {"REGISTER", "UNDO"}

    bundle: BoolProperty(name="Bundle", default=True, description="Off: straight edges")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, soft_max=3.0)
    iterations: IntProperty(name="Iterations", default=12, min=0, soft_max=40)
    initial_bandwidth: FloatProperty(name="Initial Bandwidth", default=0.07, min=0.005, max=0.5,
                                     description="Kernel width of the first iteration, as a "
                                                 "fraction of the layer pair's extent")
    smoothing: FloatProperty(name="Smoothing", default=0.5, min=0.0, max=1.0)
    points_per_edge: IntProperty(name="Points per Edge", default=16, min=2, max=64)

    @classmethod
    def poll(cls, context):
        return any(obj.get(connections.CONNECTION_MARKER) for obj in context.selected_objects)

    def execute(self, context):
        params = connections.BundlingParams(
            points_per_edge=self.points_per_edge, iterations=self.iterations,
            initial_bandwidth=self.initial_bandwidth, strength=self.strength,
            smoothing=self.smoothing)
        targets = [obj for obj in context.selected_objects if obj.get(connections.CONNECTION_MARKER)]
        try:  # check every network first, so that an error changes nothing
            for obj in targets:
                root = network.network_of(obj)
                if root is None:
                    raise network.NetworkError(f"{obj.name!r} is not a connection of an nnvis "
                                               "network (a partial copy?)")
                network.require_whole(root)
        except network.NetworkError as exc:
            self.report({"ERROR"}, f"Nothing re-bundled: {exc}")
            return {"CANCELLED"}
        for obj in targets:
            connections.rebundle(obj, params, bundle=self.bundle)
        self.report({"INFO"}, f"Re-bundled {len(targets)} connection object(s)")
        return {"FINISHED"}


CLASSES = (NNVIS_OT_rebundle,)
