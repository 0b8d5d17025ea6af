"""A network's value atlases as Blender images (core/atlas.py has the layout and arithmetic).

:func:`build_atlases` takes groups of streams with a function that yields their values block by
block, has them laid out, quantised and encoded as PNG (core/atlas_images.py, one group's rows
held at a time) and packs each PNG into the .blend as it is (so a saved file renders anywhere,
without nnvis; no temporary file, no float copy of the pixels): 8-bit RGBA, "Non-Color", alpha
"Channel Packed", so Blender and Cycles hand the shader the stored bytes unchanged.

A streamed object (a layer, a connection) carries ``<prefix>_place`` (row, col, block rows,
block pixels) and ``<prefix>_range`` (low, high) custom properties, which the material reads
(geometry_nodes/atlas_nodes.py); :func:`shown_cells` and :func:`shown_edges` compute what the
shaders show, in numpy (for tests and scripts).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ...geometry_nodes import atlas_nodes, connection_nodes, layer_nodes, materials
from ..core import atlas, atlas_images, names


@dataclass
class Atlases:
    images: list[bpy.types.Image]
    heights: list[int]
    places: dict[str, atlas.Place]
    ranges: dict[str, tuple[float, float]]

    def set_properties(self, obj: bpy.types.ID, prefix: str, key: str) -> None:
        """Tell ``obj``'s material where stream ``key`` lies (its ``<prefix>_*`` properties)."""
        place = self.places[key]
        obj[f"{prefix}_place"] = place.as_vector()
        obj[f"{prefix}_range"] = self.ranges[key]
        obj[f"{prefix}_atlas"] = place.atlas


def build_atlases(name: str, groups: list[atlas_images.StreamGroup]) -> Atlases:
    encoded = atlas_images.encode_atlases(groups)
    images: list[bpy.types.Image] = []
    while encoded.pngs:  # each PNG's bytes freed once packed
        images.append(_packed_image(f"{name} values {len(images) + 1}", encoded.pngs.pop(0)))
    return Atlases(images, encoded.heights, encoded.places, encoded.ranges)


def _packed_image(name: str, data: bytes) -> bpy.types.Image:
    image = bpy.data.images.new(name, 1, 1, alpha=True)
    image.pack(data=data, data_len=len(data))
    image.source = "FILE"
    image.filepath_raw = f"//{bpy.path.clean_name(name)}.png"  # where Unpack would write it
    image.alpha_mode = "CHANNEL_PACKED"
    image.colorspace_settings.name = "Non-Color"
    image[names.ATLAS_MARKER] = 1  # ours: Remove Network takes it once no material uses it
    return image


def image_array(image: bpy.types.Image) -> np.ndarray:
    """The atlas bytes as Blender holds them (rows, width, 4), row 0 at the bottom."""
    width, height = (int(size) for size in list(image.size))  # type: ignore[call-overload]
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    return np.rint(pixels.reshape(height, width, 4) * 255.0).astype(np.uint8)


def stream_place(obj: bpy.types.ID, prefix: str) -> tuple[atlas.Place, float, float]:
    row, col, block_rows, block_pixels = (int(v) for v in obj[f"{prefix}_place"])
    lo, hi = (float(v) for v in obj[f"{prefix}_range"])
    return atlas.Place(int(obj[f"{prefix}_atlas"]), row, col, block_rows, block_pixels), lo, hi


def _atlas_image(material: bpy.types.Material | None) -> bpy.types.Image | None:
    if material is None or material.node_tree is None:
        return None
    for node in material.node_tree.nodes:
        if isinstance(node, bpy.types.ShaderNodeTexImage) and node.image is not None:
            return node.image
    return None


def _shown_control(obj: bpy.types.Object) -> tuple[int, float, bool, int]:
    """(sample, epoch, step, epochs) the object's material shows, clamped as the shader does."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    sample, epoch, step = (float(v) for v in evaluated[atlas_nodes.SHOWN_PROPERTY])
    samples, epochs = (int(v) for v in list(evaluated[atlas_nodes.RECORDED_PROPERTY])[:2])
    sample_index = int(min(max(round(sample), 0), max(samples - 1, 0)))
    return sample_index, epoch, step > 0.5, epochs


def _stream(obj, prefix: str, image, index, shown) -> tuple[np.ndarray, np.ndarray]:
    sample, epoch, step, epochs = shown
    place, lo, hi = stream_place(obj, prefix)
    return atlas.decode(image, place, lo, hi, sample, epoch, epochs,
                        np.asarray(index).astype(np.int64), step)


def _mix(a, b, factor):
    """Blender's Mix node (float, clamped factor)."""
    factor = np.clip(factor, 0.0, 1.0).astype(np.float32)
    return ((1.0 - factor) * a + factor * b).astype(np.float32)


def shown_cells(layer: bpy.types.Object, attributes: dict[str, np.ndarray],
                material: bpy.types.Material | None) -> dict[str, np.ndarray]:
    """What the cell material shows for a layer's evaluated instances (their float attributes):
    ``activation``, ``activation_invalid`` (1/0) and ``activation_norm`` (0..1), computed as the
    shader does from the atlas image the material reads."""
    image = _atlas_image(material)
    if image is None or f"{layer_nodes.CELLS_STREAM}_place" not in layer.keys():
        return {}
    pixels, shown = image_array(image), _shown_control(layer)
    value, invalid = _stream(layer, layer_nodes.CELLS_STREAM, pixels,
                             attributes[layer_nodes.CELL_ATTRIBUTE], shown)
    mix = attributes[layer_nodes.SUMMARY_MIX_ATTRIBUTE]
    if f"{layer_nodes.SUMMARY_STREAMS[1]}_place" in layer.keys() and np.any(mix > 0):
        map_cells = attributes[layer_nodes.MAP_CELL_ATTRIBUTE]
        maximum, max_invalid = _stream(layer, layer_nodes.SUMMARY_STREAMS[1], pixels, map_cells,
                                       shown)
        mean, mean_invalid = _stream(layer, layer_nodes.SUMMARY_STREAMS[2], pixels, map_cells,
                                     shown)
        use_max = attributes[layer_nodes.SUMMARY_MAX_ATTRIBUTE] > 0.5
        summary = np.where(use_max, maximum, mean)
        summary_invalid = np.where(use_max, max_invalid, mean_invalid)
        value = _mix(value, summary, mix)
        invalid = (invalid & (mix < 1.0)) | (summary_invalid & (mix > 0.0))
    low = attributes[layer_nodes.VALUE_MIN_ATTRIBUTE]
    high = attributes[layer_nodes.VALUE_MAX_ATTRIBUTE]
    span = high - low
    norm = np.where(span != 0, (value - low) / np.where(span != 0, span, 1.0), 0.0)
    return {"activation": np.where(invalid, 0.0, value).astype(np.float32),
            "activation_invalid": invalid.astype(np.float32),
            "activation_norm": np.clip(norm, 0.0, 1.0).astype(np.float32)}


def shown_overlay(layer: bpy.types.Object, attributes: dict[str, np.ndarray],
                  material: bpy.types.Material | None) -> dict[str, np.ndarray]:
    """What the cell material shows of the class evidence overlay on a layer's evaluated
    instances, computed as the shader does (geometry_nodes/materials.py ``_evidence_overlay``):
    ``overlay`` (the shown map's value, 0..1: Grad-CAM or saliency as the object's
    ``nnvis_evidence_map`` picks, blended between; of the predicted class or the true label as
    its ``nnvis_gradcam_of_label`` says), ``overlay_invalid`` and ``overlay_mix`` (how much of
    the heat colour covers the cell); empty for a unit without the overlay."""
    image = _atlas_image(material)
    maps = [name for name, streams in layer_nodes.OVERLAY_STREAMS.items()
            if f"{streams['predicted']}_place" in layer.keys()]
    if image is None or not maps:
        return {}
    evaluated = layer.evaluated_get(bpy.context.evaluated_depsgraph_get())
    kind = "label" if float(evaluated[names.GRADCAM_OF_LABEL]) > 0.5 else "predicted"
    pixels, shown = image_array(image), _shown_control(layer)
    read = {name: _stream(layer, layer_nodes.OVERLAY_STREAMS[name][kind], pixels,
                          attributes[layer_nodes.MAP_CELL_ATTRIBUTE], shown) for name in maps}
    pick = np.float32(evaluated[names.EVIDENCE_MAP])
    strength = np.float32(evaluated[names.GRADCAM_STRENGTH])
    if "gradcam" not in read:            # saliency only: shown whatever the pick
        value, invalid = read["saliency"]
    elif "saliency" not in read:         # the Grad-CAM layer's unit: fades out towards saliency
        value, invalid = read["gradcam"]
        strength = strength * _mix(np.float32(1.0), np.float32(0.0), pick)
    else:
        (cam, cam_invalid), (saliency, saliency_invalid) = read["gradcam"], read["saliency"]
        value = _mix(cam, saliency, pick)
        invalid = (cam_invalid & (pick < 1.0)) | (saliency_invalid & (pick > 0.0))
    cover = value * np.float32(materials.GRADCAM_GAIN) + np.float32(materials.GRADCAM_BASE)
    mix = strength * cover * (1.0 - invalid)
    return {"overlay": value, "overlay_invalid": invalid.astype(np.float32),
            "overlay_mix": mix.astype(np.float32)}


def shown_answer(bars: bpy.types.Object) -> dict[str, np.ndarray]:
    """What the answer material shows per listed class at the object's shown sample and epoch
    (blender/answer.py): ``probability``, ``true`` and ``predicted`` (0..1), and ``invalid``."""
    image = _atlas_image(bars.data.materials[0])
    assert image is not None  # the answer material reads the atlas
    slots = int(bars[materials.ANSWER_SLOTS])
    decoded, invalid = _stream(bars, materials.ANSWER_STREAM, image_array(image),
                               np.arange(3 * slots), _shown_control(bars))
    return {"probability": decoded[:slots], "invalid": invalid[:slots],
            "true": decoded[slots:2 * slots], "predicted": decoded[2 * slots:]}


def shown_operation(close_up: bpy.types.Object) -> dict[str, np.ndarray]:
    """What the operation material shows on each quad of a close-up (blender/operation.py) at
    the object's shown step: ``value`` per slot (patch, kernel, products, part, total, output),
    ``invalid``, and ``norm`` (value / scale, -1..1) per quad."""
    image = _atlas_image(close_up.data.materials[0])
    assert image is not None  # the operation material reads its atlas
    mesh = close_up.data
    slots, scales = (np.empty(len(mesh.vertices), np.float32) for _ in range(2))
    mesh.attributes[materials.SLOT_ATTRIBUTE].data.foreach_get("value", slots)
    mesh.attributes[materials.VALUE_SCALE_ATTRIBUTE].data.foreach_get("value", scales)
    quad_slots, quad_scales = np.rint(slots[::4]).astype(np.int64), scales[::4]
    value, invalid = _stream(close_up, materials.OPERATION_STREAM, image_array(image),
                             np.arange(int(quad_slots.max()) + 1), _shown_control(close_up))
    norm = np.clip(value[quad_slots] / quad_scales, -1.0, 1.0)
    return {"value": value, "invalid": invalid, "norm": norm.astype(np.float32)}


def shown_edges(connection: bpy.types.Object, attributes: dict[str, np.ndarray],
                material: bpy.types.Material | None) -> dict[str, np.ndarray]:
    """What the connection material shows for a connection's evaluated curves (their float
    attributes): ``weight``, ``weight_invalid``, ``weight_norm`` (-1..1), ``strength_norm`` and
    ``drawn`` (False where the threshold hides the edge)."""
    image = _atlas_image(material)
    if image is None or f"{connection_nodes.WEIGHTS_STREAM}_place" not in connection.keys():
        return {}
    weight, invalid = _stream(connection, connection_nodes.WEIGHTS_STREAM, image_array(image),
                              attributes[connection_nodes.EDGE_ATTRIBUTE],
                              _shown_control(connection))
    norm = np.clip(weight / attributes[connection_nodes.WEIGHT_MAX_ATTRIBUTE], -1.0, 1.0)
    strength = np.abs(norm)
    drawn = (strength + 1e-6 > attributes[connection_nodes.THRESHOLD_ATTRIBUTE]) | invalid
    return {"weight": weight, "weight_invalid": invalid.astype(np.float32),
            "weight_norm": norm.astype(np.float32), "strength_norm": strength.astype(np.float32),
            "drawn": drawn}


def tolerance(obj: bpy.types.ID, prefix: str) -> float:
    """How far a shown value may be from the recorded one: half a quantisation step of the
    stream, plus float32 rounding of the shader's arithmetic."""
    _, lo, hi = stream_place(obj, prefix)
    rounding = 8 * float(np.finfo(np.float32).eps) * max(abs(lo), abs(hi))
    return atlas.quantisation_step(lo, hi) * 0.5 + rounding
