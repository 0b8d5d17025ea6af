"""The answer itself: the output's class probabilities as bars under the output unit.

One mesh object (static quads, core/evidence.py ``answer_panel``) parented to the output unit,
and one text object per listed class with its name (the export's ``class_names``, else its
number). The probabilities, the true label and the prediction of every (sample, epoch) are one
stream of the network's value atlas; the "NNVis Answer" material reads it at the object's shown
sample and epoch (driven by the root like a layer's) and fills each bar up to its probability,
so a frame change evaluates no geometry and a saved file plays without nnvis. The objects are
the network's (``names.PART_ANSWER``): Remove Network removes them.
"""

from __future__ import annotations

from typing import cast

import bpy
from mathutils import Matrix

from ...geometry_nodes import atlas_nodes, materials
from ..core import atlas, atlas_images, evidence, names
from ..core.export_format import NetworkExport
from ..core.layout import NetworkPlan
from . import network, value_atlas, writers

# The answer lies in its unit's plane (right is -Y, up +Z) and faces -X, as the maps do.
FACING = Matrix(((0.0, 0.0, -1.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0))).to_euler()


def answer_stream(export: NetworkExport) -> tuple[atlas_images.StreamGroup, list[int]] | None:
    """The answer's stream group and the classes it lists; None when the model's output is not
    a vector of classes."""
    output = export.layers[-1]
    if len(output.output_shape) != 1 or not export.epochs:
        return None
    labels = [sample.label for sample in export.samples]
    classes = evidence.answer_classes(evidence.answer_probabilities(export), labels)
    stream = atlas.Stream(f"{output.name}/{materials.ANSWER_STREAM}", 3 * len(classes),
                          export.num_samples * len(export.epochs))

    def blocks():
        for block, values in evidence.answer_blocks(export, classes):
            yield block, {stream.key: values}

    return atlas_images.StreamGroup([stream], blocks), classes


def build_answer(export: NetworkExport, plan: NetworkPlan, output: bpy.types.Object,
                 collection: bpy.types.Collection, values: value_atlas.Atlases,
                 classes: list[int]) -> list[bpy.types.Object]:
    """The bars object and its class names under ``output`` (the output unit's object)."""
    unit = plan.layers[-1]
    panel = evidence.answer_panel(len(classes), plan.options.cell_size * unit.cell_scale,
                                  unit.extent(plan.options.cell_size)[1])
    key = f"{unit.layer.name}/{materials.ANSWER_STREAM}"
    place = values.places[key]
    material = materials.new_answer_material(
        f"{materials.ANSWER_MATERIAL} {export.name}", values.images[place.atlas],
        values.heights[place.atlas])
    mesh = bpy.data.meshes.new(f"{export.name} answer")
    mesh.from_pydata(panel.vertices.tolist(), [], panel.faces.tolist())
    for name, data in ((materials.SLOT_ATTRIBUTE, panel.slot),
                       (materials.BAR_U_ATTRIBUTE, panel.u),
                       (materials.BAR_PART_ATTRIBUTE, panel.part)):
        writers.write_attribute(mesh, name, "FLOAT", "POINT", data)
    mesh.materials.append(material)
    bars = bpy.data.objects.new(mesh.name, mesh)
    values.set_properties(bars, materials.ANSWER_STREAM, key)
    bars[materials.ANSWER_SLOTS] = float(len(classes))
    bars[atlas_nodes.RECORDED_PROPERTY] = (float(export.num_samples), float(len(export.epochs)),
                                           0.0)
    bars[names.ANSWER_MARKER] = 1
    made = [bars]
    text_material = materials.ensure_label_material()
    for end, index in zip(panel.text_ends, classes):
        text = cast(bpy.types.TextCurve, bpy.data.curves.new(
            f"{export.name} class {index}", "FONT"))
        text.body = evidence.class_name(export.class_names, index)
        text.size, text.align_x, text.align_y = panel.text_size, "RIGHT", "CENTER"
        text.materials.append(text_material)
        label = bpy.data.objects.new(text.name, text)
        label.location = (float(end[0]), float(end[1]), float(end[2]))
        label.rotation_euler = FACING
        label[names.ANSWER_MARKER] = int(index)
        label.parent = bars
        made.append(label)
    for obj in made:
        collection.objects.link(obj)
        for flag in names.VISIBILITY_FLAGS:  # hidden with the output unit
            writers.add_driver(obj, flag, "var", {"var": ("OBJECT", output, flag)})
    bars.parent = output
    return made


def answer_objects(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The network's answer objects (bars first, then the class names), if it has them."""
    return network.listed_parts(root, names.PART_ANSWER)
