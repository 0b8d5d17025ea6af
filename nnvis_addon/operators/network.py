"""Acting on a whole imported network: frame its camera, re-bundle its connections, unfold a
unit, remove it. Thin wrappers around ``blender/api.py``'s ``Network``; each reports one line
and changes nothing when the network cannot be acted on."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..blender import network
from ..blender.api import Network
from ..core import names
from ..core.export_format import NnvisError


def act_on_active(operator, context, action) -> set[str]:
    """Run ``action(Network)`` on the active network; a network nnvis cannot act on (a partial
    copy, a linked one) is reported as the operator's error and nothing changes."""
    try:
        action(Network.active(context))
    except network.NetworkError as exc:
        operator.report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    return {"FINISHED"}


class NNVIS_OT_frame_network(bpy.types.Operator):
    """Point the network's camera at the whole network as it is laid out now"""

    bl_idname = "nnvis.frame_network"
    bl_label = "Frame Network"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return network.active_network(context) is not None

    def execute(self, context):
        return act_on_active(self, context, lambda target: target.frame(context.scene))


class NNVIS_OT_rebundle_network(bpy.types.Operator):
    """Re-bundle every connection of the active network with its Bundling Strength"""

    bl_idname = "nnvis.rebundle_network"
    bl_label = "Re-bundle"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        root = network.active_network(context)
        return root is not None and bool(network.network_connections(root))

    def execute(self, context):
        target = Network.active(context)
        wm = context.window_manager
        wm.progress_begin(0, 1)
        try:
            count = target.rebundle(progress=lambda done, total: wm.progress_update(done / total))
        except network.NetworkError as exc:
            self.report({"ERROR"}, f"Nothing re-bundled: {exc}")
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        self.report({"INFO"}, f"Re-bundled {count} layer pairs "
                              f"(strength {target.get('bundle_strength'):g})")
        return {"FINISHED"}


class NNVIS_OT_unfold_unit(bpy.types.Operator):
    """Draw the layers folded into the active unit (its BatchNormalization, activation...) as
    units of their own: the network is imported again in place, keeping its controls"""

    bl_idname = "nnvis.unfold_unit"
    bl_label = "Unfold Unit"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and bool(obj.get(names.FOLDED)) and \
            network.network_of(obj) is not None

    def execute(self, context):
        unit = context.active_object.get(names.LAYER_MARKER)
        target = Network.of(context.active_object)
        try:
            unfolded = target.unfold(unit)
        except (network.NetworkError, ValueError, NnvisError, OSError) as exc:
            self.report({"ERROR"}, f"Nothing unfolded: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Unfolded {unit!r}: {len(unfolded.layers)} units")
        return {"FINISHED"}


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


CLASSES = (NNVIS_OT_frame_network, NNVIS_OT_rebundle_network, NNVIS_OT_unfold_unit,
           NNVIS_OT_remove_network)
