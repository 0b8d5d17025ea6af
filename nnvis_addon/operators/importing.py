"""Getting a network in: File > Import (and drag-and-drop onto the viewport), the bundled
example. Thin wrappers around ``blender/api.py``'s ``Network.import_file``."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..blender.api import Network
from ..core import controls, names
from ..core.export_format import DOCUMENT_SUFFIX, NnvisError


class NNVIS_OT_import_network(bpy.types.Operator, ImportHelper):
    """Import a neural-network export (.nnvis.json) as feature maps and neurons"""

    bl_idname = "import_scene.nnvis"
    bl_label = "Import Neural Network (nnvis)"
    bl_options = {"REGISTER", "UNDO", "PRESET"}

    filename_ext = DOCUMENT_SUFFIX
    filter_glob: StringProperty(default="*" + DOCUMENT_SUFFIX, options={"HIDDEN"})
    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    sample: IntProperty(name="Sample", default=0, min=0,
                        description="Input sample whose activations are shown first")
    epoch: IntProperty(name="Epoch", default=-1, min=-1,
                       description="Recorded epoch index shown first; -1 is the last one")
    layer_spacing: FloatProperty(name="Layer Spacing", default=controls.default(controls.LAYER_SPACING),
                                 min=0.05, soft_max=20.0, subtype="DISTANCE",
                                 description=controls.CONTROLS_BY_KEY[controls.LAYER_SPACING].description)
    cell_size: FloatProperty(name="Cell Size", default=controls.default(controls.CELL_SIZE),
                             min=0.001, soft_max=1.0, subtype="DISTANCE",
                             description=controls.CONTROLS_BY_KEY[controls.CELL_SIZE].description)
    map_layout: EnumProperty(
        name="Feature Maps",
        items=(("grid", "Grid", "Each layer's feature maps in a grid"),
               ("linear", "Linear", "Each layer's feature maps in a row")),
        default="grid")
    normalize: EnumProperty(
        name="Colour Range",
        items=(("layer", "Per Layer", "Normalise activations per layer"),
               ("global", "Global", "One activation range for the whole network")),
        default="layer")
    stage: BoolProperty(name="Camera and Lights", default=True,
                        description="Add a framed camera, a light and a dark world")
    use_network_camera: BoolProperty(
        name="Use Network Camera", default=True,
        description="Render through the network's camera (F12); Remove Network gives the scene "
                    "back the camera it had")
    fold: BoolProperty(
        name="Fold Shape-Keeping Layers", default=True,
        description="Draw BatchNormalization, activations and Dropout as part of the layer they "
                    "follow (one unit, e.g. \"conv1 + BN + ReLU\"), and a Flatten as part of the "
                    "Dense layer it feeds")
    edge_ranking: EnumProperty(
        name="Connections",
        items=(("weight", "Strongest Weights", "Each layer pair draws its strongest edges by |w|"),
               ("contribution", "Strongest Contributions",
                "Each layer pair draws the edges that carry the most into the shown sample's "
                "result: |activation x weight|")),
        default="weight")
    place_beside: BoolProperty(
        name="Place Beside Scene Objects", default=True,
        description="Move the network clear of the objects and networks already in the scene "
                    "(theirs never move)")
    wrap: BoolProperty(
        name="Fold Long Networks into Rows", default=True,
        description="Lay out a network whose line of layers would be very long (hundreds of "
                    "layers) in rows, every other one running back, instead of one line")
    input_as_picture: BoolProperty(
        name="Input as Picture", default=True,
        description="Draw an image input as one map in the image's own colours (grey for one "
                    "channel); off: one map per channel, coloured by value like other layers")

    def invoke(self, context, event):
        if self.filepath:  # dropped on the window: ask for the options only
            return context.window_manager.invoke_props_dialog(self)
        return super().invoke(context, event)

    def execute(self, context):
        if not (self.filepath.endswith(DOCUMENT_SUFFIX) or os.path.isdir(self.filepath)):
            self.report({"ERROR"}, f"Not an nnvis export (expected *{DOCUMENT_SUFFIX}): {self.filepath}")
            return {"CANCELLED"}
        options = dict(
            sample=self.sample, epoch=None if self.epoch < 0 else self.epoch,
            layer_spacing=self.layer_spacing, cell_size=self.cell_size, map_layout=self.map_layout,
            normalize=self.normalize, stage=self.stage,
            use_network_camera=self.use_network_camera, place_beside=self.place_beside,
            fold=self.fold, input_as_picture=self.input_as_picture,
            edge_ranking=self.edge_ranking, wrap="auto" if self.wrap else "off")
        wm = context.window_manager
        wm.progress_begin(0, 100)

        def progress(fraction, message):
            wm.progress_update(int(fraction * 100))
            if context.workspace is not None:
                context.workspace.status_text_set(f"nnvis: {message}")

        try:
            imported = Network.import_file(self.filepath, scene_=context.scene,
                                           progress=progress, **options)
        except (NnvisError, ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            wm.progress_end()
            if context.workspace is not None:
                context.workspace.status_text_set(None)
        root = imported.root
        context.view_layer.update()  # new objects join the view layer's object list
        for obj in context.view_layer.objects.selected:
            obj.select_set(False)
        if root.name in context.view_layer.objects:
            root.select_set(True)
            context.view_layer.objects.active = root
        for warning in root.get(names.WARNINGS, ()):
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Imported network {imported.name!r} "
                              f"({len(imported.layers)} layers)")
        return {"FINISHED"}


class NNVIS_FH_import_network(bpy.types.FileHandler):
    bl_idname = "NNVIS_FH_import_network"
    bl_label = "Neural Network (nnvis)"
    bl_import_operator = NNVIS_OT_import_network.bl_idname
    bl_file_extensions = ".json"

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type in {"VIEW_3D", "OUTLINER"}


EXAMPLE_EXPORT = Path(__file__).resolve().parents[2] / "examples" / "digits" / "digits_cnn.nnvis.json"


class NNVIS_OT_load_example(bpy.types.Operator):
    """Import the bundled example network (a small CNN trained on handwritten digits)"""

    bl_idname = "nnvis.load_example"
    bl_label = "Load Example Network"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        return bpy.ops.import_scene.nnvis("EXEC_DEFAULT", filepath=str(EXAMPLE_EXPORT))


CLASSES = (NNVIS_OT_import_network, NNVIS_FH_import_network, NNVIS_OT_load_example)
