"""Operators on a whole imported network: thin wrappers around ``blender/lifecycle.py``."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from .blender import network
from .blender.api import Network


def _target_root(context, name: str):
    if name:
        obj = bpy.data.objects.get(name)
        return obj if network.is_root(obj) else None
    return network.active_network(context)


class NNVIS_OT_remove_network(bpy.types.Operator):
    """Remove the active network: its collection, objects and the data only it uses (shared
    node groups and materials stay while another network uses them)"""

    bl_idname = "nnvis.remove_network"
    bl_label = "Remove Network"
    bl_options = {"REGISTER", "UNDO"}

    network: StringProperty(name="Network", default="", options={"SKIP_SAVE"},
                            description="Root object of the network to remove; empty: the "
                                        "network of the active object")

    @classmethod
    def poll(cls, context):
        # The active network; or, for scripts passing ``network``, any network at all.
        if network.active_network(context) is not None or \
                network.iter_networks(getattr(context, "scene", None)):
            return True
        cls.poll_message_set("No nnvis network in the scene")
        return False

    def execute(self, context):
        root = _target_root(context, self.network)
        if root is None:
            what = (f"{self.network!r} is not an nnvis network root" if self.network else
                    "no active network (select an object of the network to remove)")
            self.report({"ERROR"}, f"Nothing removed: {what}")
            return {"CANCELLED"}
        name = network.display_name(root)
        try:
            Network(root).remove()
        except network.NetworkError as exc:
            self.report({"ERROR"}, f"Nothing removed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Removed network {name!r}")
        return {"FINISHED"}


CLASSES = (NNVIS_OT_remove_network,)
