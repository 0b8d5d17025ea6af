"""The View3D > Sidebar > NNVis panel.

What the panel shows is decided by :func:`panel_model` (plain data: which network, which
controls, each an owner and the data path of the real, animatable property), and the panel
classes only lay that model out. Every control is a custom property of the network's root or a
modifier input of a layer object, so the panel shows the keyframe dot and undo works; only
"Re-bundle" recomputes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy
from bpy.props import IntProperty, PointerProperty

from .blender import blocks, compat, connections, labels, scene
from .core import controls, names

CATEGORY = "NNVis"
FILTER_ITEM = 1 << 30  # UIList.bitflag_filter_item, readable only on a list being drawn


@dataclass
class Control:
    owner: bpy.types.ID | bpy.types.bpy_struct
    path: str                       # data path on owner, for layout.prop(owner, path)
    label: str


@dataclass
class PanelModel:
    networks: list = field(default_factory=list)
    root: bpy.types.Object | None = None
    network_controls: list[Control] = field(default_factory=list)
    range_warnings: list[str] = field(default_factory=list)  # see control_range_warnings
    edge_controls: list[Control] = field(default_factory=list)
    explain_controls: list[Control] = field(default_factory=list)
    traced: str = ""                      # what is traced ("" when nothing)
    no_evidence: bool = False             # the export has no class evidence maps to show
    layers: list = field(default_factory=list)
    active_layer: bpy.types.Object | None = None
    layer_controls: list[Control] = field(default_factory=list)
    block_control: Control | None = None  # collapse of the active unit's block
    folded: str = ""                      # layers folded into the active unit (Unfold offers)


NETWORK_CONTROL_LABELS = controls.panel_rows("network")
EDGE_CONTROL_LABELS = controls.panel_rows("edges")
EXPLAIN_CONTROL_LABELS = controls.panel_rows("explain")


def selected_layer(context, layers: list) -> bpy.types.Object | None:
    """The active object if it is one of ``layers``, else the one picked in the layer list
    (whose index counts in the scene's objects, the collection the list filters)."""
    if context.active_object in layers:
        return context.active_object
    index = context.scene.nnvis_layer_index
    objects = context.scene.objects
    picked = objects[index] if 0 <= index < len(objects) else None
    return picked if picked in layers else None


def control_range_warnings(root: bpy.types.Object) -> list[str]:
    """A line for the root's sample and one for its epoch when it lies outside what was
    recorded (a script, a keyframe or a driver can put it there): the layer, connection and
    counter nodes clamp it, and this says what they show instead."""
    recorded = []  # (root property, how many were recorded, how its value is written)
    layers = scene.network_layers(root)
    modifier = layers[0].modifiers.get(scene.MODIFIER_NAME) if layers else None
    if modifier is not None and modifier.node_group is not None:
        try:
            samples = compat.get_modifier_input(modifier, "Sample Count")
        except KeyError:  # a layer group built before it clamped the sample: nothing to say
            samples = None
        if samples is not None:
            recorded.append((controls.SAMPLE, samples, "{:g}"))
    if names.EPOCH_NUMBERS in root.keys():
        recorded.append((controls.EPOCH, len(root[names.EPOCH_NUMBERS]), "{:.1f}"))
    warnings = []
    for key, count, style in recorded:
        if key not in root.keys():
            continue
        label = controls.CONTROLS_BY_KEY[key].label
        value, last = float(root[key]), count - 1
        control, noun = f"{label} {style.format(value)}", label.lower()
        if value > last:
            warnings.append(f"{control} is past the last recorded {noun} ({last}): showing {last}")
        elif value < 0:
            warnings.append(f"{control} is before the first recorded {noun} (0): showing 0")
    return warnings


def _unused_evidence_controls(maps: list[str]) -> set[str]:
    """Class evidence controls that would change nothing: all of them without maps, the choice
    of map with only one kind."""
    if not maps:
        return {controls.GRADCAM, controls.EVIDENCE_MAP, controls.GRADCAM_OF_LABEL}
    return {controls.EVIDENCE_MAP} if len(maps) < 2 else set()


def panel_model(context) -> PanelModel:
    model = PanelModel(networks=scene.iter_networks(context.scene))
    root = scene.active_network(context)
    if root is None:
        return model
    model.root = root
    model.network_controls = [Control(root, f'["{key}"]', label)
                              for key, label in NETWORK_CONTROL_LABELS if key in root.keys()]
    model.range_warnings = control_range_warnings(root)
    if connections.network_connections(root):
        model.edge_controls = [Control(root, f'["{key}"]', label)
                               for key, label in EDGE_CONTROL_LABELS if key in root.keys()]
    model.layers = scene.network_layers(root)
    maps = scene.evidence_maps(model.layers)
    unused = _unused_evidence_controls(maps)
    model.explain_controls = [Control(root, f'["{key}"]', controls.choice_label(key, root[key]))
                              for key, _ in EXPLAIN_CONTROL_LABELS
                              if key in root.keys() and key not in unused]
    model.no_evidence = not maps
    record = root.get(names.TRACE_RECORD)
    if record is not None:
        model.traced = f"{record['unit']} (sample {record['sample']}, epoch index " \
                       f"{record['epoch_index']})"
    layer = selected_layer(context, model.layers)
    if layer is not None:
        model.active_layer = layer
        model.layer_controls = [Control(layer, scene.layer_control_path(layer, name), name)
                                for name in scene.LAYER_CONTROLS]
        model.layer_controls[:0] = [Control(layer, "hide_viewport", "Hide in Viewport"),
                                    Control(layer, "hide_render", "Hide in Render")]
        block = layer.get(names.BLOCK_NAME)
        owner = blocks.network_blocks(root).get(block) if block else None
        if owner is not None:
            model.block_control = Control(owner, blocks.CONTROL_PATH, f"Collapse Block {block}")
        model.folded = str(layer.get(names.FOLDED, ""))
        label = labels.label_of(layer)
        if label is not None:  # the unit's label, an object of its own
            model.layer_controls.append(Control(label, f'["{names.LABEL_SHOWN}"]',
                                                "Show Label"))
    return model


def _prop(layout, control: Control, **kwargs) -> None:
    layout.prop(control.owner, control.path, text=control.label, **kwargs)


class NNVIS_UL_layers(bpy.types.UIList):
    """The active network's layers, in network order (a filtered view of the scene's objects)."""

    bl_idname = "NNVIS_UL_layers"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        shape = "x".join(str(d) for d in item.get(names.OUTPUT_SHAPE, ()))
        row.label(text=f"{item.get(names.LAYER_MARKER, item.name)}  {shape}", icon="MESH_GRID")
        row.prop(item, "hide_viewport", text="", emboss=False)

    def filter_items(self, context, data, propname):
        objects = getattr(data, propname)
        root = scene.active_network(context)
        order = {obj.name: i for i, obj in enumerate(scene.network_layers(root))} if root else {}
        shown = getattr(self, "bitflag_filter_item", FILTER_ITEM)
        flags = [shown if obj.name in order else 0 for obj in objects]
        # New position of each item: layers first, in network order; everything else after.
        ranked = sorted(range(len(objects)),
                        key=lambda i: (objects[i].name not in order, order.get(objects[i].name, 0)))
        new_order = [0] * len(objects)
        for position, i in enumerate(ranked):
            new_order[i] = position
        return flags, new_order


class NNVIS_PT_network(bpy.types.Panel):
    bl_idname = "NNVIS_PT_network"
    bl_label = "Neural Network"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY

    def draw(self, context):
        layout = self.layout
        model = panel_model(context)
        if len(model.networks) > 1:
            layout.prop(context.scene, names.PANEL_NETWORK, text="Network")
        if model.root is None:
            layout.label(text="No network imported" if not model.networks else
                         "Pick a network or select one of its objects")
            layout.operator("nnvis.load_example", icon="IMPORT")
            layout.operator("import_scene.nnvis", text="Import Network...", icon="FILEBROWSER")
            return
        layout.label(text=model.root.get(names.MODEL_NAME, model.root.name), icon="OUTLINER_OB_EMPTY")
        column = layout.column(align=True)
        for control in model.network_controls:
            _prop(column, control)
        for warning in model.range_warnings:
            column.label(text=warning, icon="ERROR")
        if model.edge_controls:
            box = layout.box()
            box.label(text="Connections", icon="CURVES")
            for control in model.edge_controls:
                _prop(box, control)
            box.operator("nnvis.rebundle_network", icon="FILE_REFRESH")
        box = layout.box()
        box.label(text="Explain a Prediction", icon="VIEWZOOM")
        for control in model.explain_controls:
            _prop(box, control, slider=True)
        if model.no_evidence:
            box.label(text="No class evidence maps in this export", icon="INFO")
        if model.traced:
            box.label(text=f"Traced: {model.traced}")
        row = box.row(align=True)
        row.operator("nnvis.trace", icon="RESTRICT_SELECT_OFF")
        row.operator("nnvis.clear_trace", icon="X")
        row = box.row(align=True)
        row.operator("nnvis.show_operation", icon="MOD_LATTICE")
        row.operator("nnvis.clear_operation", icon="X")
        row = layout.row(align=True)
        row.operator("nnvis.frame_network", icon="CAMERA_DATA")
        if hasattr(bpy.types, "NNVIS_OT_animate_epochs"):
            row.operator("nnvis.animate_epochs", icon="PLAY")
        layout.operator("nnvis.render_preset", icon="RENDER_STILL")


class NNVIS_PT_layers(bpy.types.Panel):
    bl_idname = "NNVIS_PT_layers"
    bl_label = "Layers"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_parent_id = "NNVIS_PT_network"

    @classmethod
    def poll(cls, context):
        return scene.active_network(context) is not None

    def draw(self, context):
        layout = self.layout
        model = panel_model(context)
        layout.template_list(NNVIS_UL_layers.bl_idname, "", context.scene, "objects",
                             context.scene, names.PANEL_LAYER_INDEX, rows=6)
        if model.active_layer is None:
            layout.label(text="Select a layer in the list")
            return
        column = layout.column()
        for control in model.layer_controls:
            _prop(column, control)
        if model.block_control is not None:
            _prop(column, model.block_control, slider=True)
        if model.folded:
            row = column.row()
            row.label(text=f"Folded: {model.folded}")
            row.operator("nnvis.unfold_unit", text="Unfold")
        if model.edge_controls:
            # Connections follow a new layout at once but keep their bundled shape: offer to
            # bundle them again for it.
            layout.operator("nnvis.rebundle_network", text="Re-bundle for This Layout",
                            icon="FILE_REFRESH")


CLASSES = (NNVIS_UL_layers, NNVIS_PT_network, NNVIS_PT_layers)


def _is_network(_scene, obj) -> bool:
    return bool(obj.get(scene.ROOT_MARKER))


# Scene properties of the panel, added to bpy.types.Scene at registration (run-time attributes,
# unknown to the API stubs: hence setattr and delattr).
_SCENE_PROPERTIES = (names.PANEL_NETWORK, names.PANEL_LAYER_INDEX)


def register_properties() -> None:
    properties = {
        names.PANEL_NETWORK: PointerProperty(
            type=bpy.types.Object, name="Network", poll=_is_network,
            description="Network the NNVis panel controls when the active object is not part of one"),
        names.PANEL_LAYER_INDEX: IntProperty(
            name="Layer", default=-1, description="Layer shown in the NNVis panel"),
    }
    for name in _SCENE_PROPERTIES:
        setattr(bpy.types.Scene, name, properties[name])


def unregister_properties() -> None:
    for name in reversed(_SCENE_PROPERTIES):
        delattr(bpy.types.Scene, name)
