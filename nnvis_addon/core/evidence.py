"""Class evidence and the answer, as the scene shows them (bpy-free).

* **The class evidence overlay** (format 1.1 ``epochs[].explanations``): two kinds of map
  (:data:`MAPS`), each for the predicted class and the true label (:data:`KINDS`).
  *Grad-CAM* of the last convolution is shown on the unit holding that convolution (at its drawn
  resolution) and on the input picture (bilinearly resized to the input's size, the usual
  Grad-CAM overlay); *saliency* (input gradients, an input-space map) only on the input picture,
  also when the model has no Grad-CAM layer. Each map is scaled by its own
  :data:`SCALE_PERCENTILE` (Grad-CAM its maximum, saliency its 99th percentile, above which it
  saturates: :func:`normalised`), so 0..1. :func:`overlay_targets` says which units show which
  maps, :func:`overlay_maps` gives the values of one unit for one epoch, map and kind. Which map
  the input shows is the root's *Evidence Map* control (core/controls.py), read by the material.
* **The answer**: the output's class probabilities (:func:`class_probabilities`: the output
  vector itself when it already is a distribution, else its softmax, or for one sigmoid unit
  ``(1 - p, p)``) and which classes the answer panel lists (:func:`answer_classes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .export_format import NetworkExport
from .layout import LayerPlan, NetworkPlan, downsample_maps

KINDS = ("predicted", "label")       # evidence for the predicted class, for the true label
MAPS = ("gradcam", "saliency")       # the overlay's maps: the export's "<map>_<kind>" arrays
# Each map is divided by this percentile of its own finite values (100: its maximum); values
# above it saturate at 1. Input-gradient saliency is peaky: a few pixels would otherwise take the
# whole colour scale (SmoothGrad, Smilkov et al. 2017, caps its pictures the same way).
SCALE_PERCENTILE = {"gradcam": 100.0, "saliency": 99.0}
MAX_ANSWER_CLASSES = 12              # classes listed beside the output (the likeliest ones)
DISTRIBUTION_TOLERANCE = 1e-2        # |sum - 1| of an output that is taken as probabilities


def normalised(maps: np.ndarray, percentile: float = 100.0) -> np.ndarray:
    """(S, ...) maps, each divided by ``percentile`` of its own finite values (numpy's linear
    interpolation; 100: its maximum) and capped at 1 (0 where that scale is not positive);
    NaN/Inf stay invalid."""
    maps = np.asarray(maps, dtype=np.float32)
    flat = maps.reshape(len(maps), -1)
    finite = np.isfinite(flat)
    peak = np.array([np.percentile(row[ok], percentile) if ok.any() else 0.0
                     for row, ok in zip(flat, finite)], np.float64)
    scale = np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)
    scaled = flat * scale[:, None]
    return np.where(finite, np.minimum(scaled, 1.0), scaled).reshape(maps.shape)


def resize_bilinear(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """(S, h, w) maps resized to (S, height, width) by bilinear interpolation between pixel
    centres (half-pixel offsets, edges clamped: OpenCV's and TensorFlow's default resize)."""
    maps = np.asarray(maps, dtype=np.float32)
    _, h, w = maps.shape

    def axis(out: int, size: int):
        position = np.clip((np.arange(out) + 0.5) * (size / out) - 0.5, 0.0, size - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, size - 1)
        return low, high, (position - low).astype(np.float32)

    r0, r1, fr = axis(height, h)
    c0, c1, fc = axis(width, w)
    top = maps[:, r0][:, :, c0] * (1 - fc) + maps[:, r0][:, :, c1] * fc
    bottom = maps[:, r1][:, :, c0] * (1 - fc) + maps[:, r1][:, :, c1] * fc
    return (top * (1 - fr)[:, None] + bottom * fr[:, None]).astype(np.float32)


@dataclass(frozen=True)
class OverlayTarget:
    """A unit that shows the class evidence overlay: the Grad-CAM layer's own unit (Grad-CAM),
    or the input (Grad-CAM and/or saliency)."""

    unit: str
    picture: bool                    # the input: the map resized to the input's size
    maps: tuple[str, ...] = ("gradcam",)  # which of MAPS it shows, in MAPS order


def overlay_kinds(export: NetworkExport, map_name: str) -> list[str]:
    """The kinds (``predicted``, ``label``) of map ``map_name`` every epoch has."""
    return [kind for kind in KINDS if export.epochs
            and all(f"{map_name}_{kind}" in e.explanations for e in export.epochs)]


def _recorded(export: NetworkExport, map_name: str) -> list[np.ndarray]:
    return [e.explanations[f"{map_name}_{kind}"] for e in export.epochs
            for kind in overlay_kinds(export, map_name)]


def gradcam_unit(export: NetworkExport, plan: NetworkPlan) -> str | None:
    """The drawn unit that holds the export's Grad-CAM layer (itself or folded into one)."""
    layer = export.explain.gradcam_layer if export.explain is not None else None
    maps = _recorded(export, "gradcam")
    # Maps of a 2D convolution (samples, H, W) only: a Conv1D's maps are not overlaid.
    if layer is None or not maps or any(m.ndim != 3 for m in maps):
        return None
    for layer_plan in plan.layers:
        if layer_plan.layer.name == layer or layer in layer_plan.layer.folded:
            drawn_2d = len(layer_plan.layer.output_shape) == 3
            return layer_plan.layer.name if drawn_2d and not layer_plan.block else None
    return None


def _input_maps(export: NetworkExport, plan: NetworkPlan, cam_unit: str | None) -> tuple[str, ...]:
    """The maps the first unit shows: none unless it is the model's input drawn as maps of
    pixels (H x W x C, not in a block); Grad-CAM when a unit has it; saliency when recorded as
    (S, H, W) of the input's size."""
    first = plan.layers[0]
    shape = first.layer.output_shape
    if first.layer.type != "InputLayer" or len(shape) != 3 or first.block \
            or first.layer.name == cam_unit:
        return ()
    saliency = _recorded(export, "saliency")
    fits = bool(saliency) and all(m.shape[1:] == tuple(shape[:2]) for m in saliency)
    return tuple(name for name, shown in zip(MAPS, (cam_unit is not None, fits)) if shown)


def overlay_targets(export: NetworkExport, plan: NetworkPlan) -> list[OverlayTarget]:
    """The units that show the overlay: the Grad-CAM layer's unit (Grad-CAM) and an input drawn
    as a picture or as maps of the input's size (Grad-CAM resized to it, and saliency)."""
    unit = gradcam_unit(export, plan)
    targets = [OverlayTarget(unit, picture=False)] if unit is not None else []
    maps = _input_maps(export, plan, unit)
    if maps:
        targets.append(OverlayTarget(plan.layers[0].layer.name, picture=True, maps=maps))
    return targets


def overlay_maps(export: NetworkExport, layer_plan: LayerPlan, target: OverlayTarget,
                 epoch_index: int, map_name: str, kind: str) -> np.ndarray:
    """(S, drawn pixels) overlay values of one unit for one epoch: map ``map_name`` of ``kind``
    scaled (:func:`normalised` at the map's :data:`SCALE_PERCENTILE`), resized to the input for a
    picture (when it is not of its size already), downsampled as the unit's cells are."""
    maps = normalised(export.epochs[epoch_index].explanations[f"{map_name}_{kind}"],
                      SCALE_PERCENTILE[map_name])
    height, width = layer_plan.layer.output_shape[:2]
    if target.picture and maps.shape[1:] != (height, width):
        maps = resize_bilinear(maps, height, width)
    maps = maps[..., np.newaxis]
    if layer_plan.stride > 1:
        maps = downsample_maps(maps, layer_plan.stride)
    return maps.reshape(len(maps), -1)


# -- the answer ---------------------------------------------------------------------------------


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """(S, classes) probabilities of (S, units) outputs: as they are when each row is already a
    distribution; ``(1 - p, p)`` for a single unit in 0..1 (sigmoid); else a softmax."""
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    finite = np.isfinite(outputs).all()
    if outputs.shape[1] == 1:
        p = outputs[:, 0] if finite and ((outputs >= 0) & (outputs <= 1)).all() \
            else 1.0 / (1.0 + np.exp(-outputs[:, 0]))
        return np.stack([1.0 - p, p], axis=1).astype(np.float32)
    if finite and (outputs >= 0).all() and \
            np.all(np.abs(outputs.sum(axis=1) - 1.0) <= DISTRIBUTION_TOLERANCE):
        return outputs.astype(np.float32)
    shifted = np.exp(outputs - np.nanmax(outputs, axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def answer_probabilities(export: NetworkExport) -> list[np.ndarray]:
    """Per recorded epoch, (S, classes) probabilities of the model's output layer."""
    output = export.layers[-1].name
    return [class_probabilities(epoch.activations[output]) for epoch in export.epochs]


def answer_classes(probabilities: list[np.ndarray], labels: list[int | None],
                   limit: int = MAX_ANSWER_CLASSES) -> list[int]:
    """The classes the answer lists, in class order: all of them when there are at most
    ``limit``; else the true labels and the classes most likely at some sample and epoch."""
    classes = probabilities[0].shape[1]
    if classes <= limit:
        return list(range(classes))
    chosen = {label for label in labels if label is not None and 0 <= label < classes}
    peak = np.max(np.stack([np.nan_to_num(p, nan=0.0) for p in probabilities]), axis=(0, 1))
    for index in np.argsort(-peak, kind="stable"):
        if len(chosen) >= limit:
            break
        chosen.add(int(index))
    return sorted(chosen)


def class_name(names: list[str] | None, index: int) -> str:
    return names[index] if names is not None and 0 <= index < len(names) else str(index)


@dataclass(frozen=True)
class AnswerPanel:
    """The answer's geometry in the output unit's space (right is -Y, down is -Z, like its maps):
    per listed class a bar (``part`` 0; ``u`` 0 at its start .. 1 at its end, filled up to the
    class's probability by the material) and a marker before it (``part`` 1, lit for the true
    class), and where its name ends (right-aligned text, ``text_size`` high)."""

    vertices: np.ndarray                 # (4 * 2 * slots, 3)
    faces: np.ndarray                    # (2 * slots, 4) vertex indices
    slot: np.ndarray                     # per vertex: the class's place in the answer stream
    u: np.ndarray
    part: np.ndarray
    text_ends: np.ndarray                # (slots, 3): right end, vertical centre of each name
    text_size: float


ANSWER_PITCH = 1.5       # rows of the answer, in cells
ANSWER_BAR = 10.0        # a full bar (probability 1), in cells
ANSWER_GAP = 2.0         # between the output unit's cells and the first row, in cells


def answer_panel(slots: int, cell_size: float, unit_height: float) -> AnswerPanel:
    """The answer's quads under an output unit ``unit_height`` high (centred on its origin)."""
    pitch, bar_height, marker = ANSWER_PITCH * cell_size, cell_size, 0.8 * cell_size
    centres = -unit_height / 2 - ANSWER_GAP * cell_size - (np.arange(slots) + 0.5) * pitch
    start = -0.3 * ANSWER_BAR * cell_size               # screen x of a bar's start
    marker_left = start - 0.4 * cell_size - marker
    # (screen x of its left and right edge, half its height, part) of a row's two quads
    quads = ((start, start + ANSWER_BAR * cell_size, bar_height / 2, 0),
             (marker_left, marker_left + marker, marker / 2, 1))
    vertices: list[tuple[float, float, float]] = []
    slot: list[int] = []
    u: list[float] = []
    part: list[int] = []
    for index, centre in enumerate(centres):
        for left, right, half, kind in quads:
            for screen_x, z, along in ((left, centre - half, 0.0), (right, centre - half, 1.0),
                                       (right, centre + half, 1.0), (left, centre + half, 0.0)):
                vertices.append((0.0, -screen_x, float(z)))
                slot.append(index)
                u.append(along)
                part.append(kind)
    faces = np.arange(len(vertices), dtype=np.int32).reshape(-1, 4)
    ends = np.stack([np.zeros(slots), np.full(slots, -(marker_left - 0.5 * cell_size)),
                     centres], axis=1)
    return AnswerPanel(np.asarray(vertices, np.float32), faces, np.asarray(slot, np.float32),
                       np.asarray(u, np.float32), np.asarray(part, np.float32),
                       text_ends=ends.astype(np.float32), text_size=cell_size)


def answer_blocks(export: NetworkExport, classes: list[int]):
    """Per (sample, epoch) block of the answer stream: the listed classes' probabilities, then
    1 for the true label's, then 1 for the predicted class's (0 elsewhere)."""
    probabilities = answer_probabilities(export)
    labels = np.array([-1 if s.label is None else s.label for s in export.samples])
    chosen = np.asarray(classes)
    epochs = len(export.epochs)
    for epoch_index, (epoch, shown) in enumerate(zip(export.epochs, probabilities)):
        predicted = np.asarray(epoch.predictions) if epoch.predictions is not None \
            else np.argmax(np.nan_to_num(shown, nan=-1.0), axis=1)
        for sample in range(export.num_samples):
            block = np.concatenate([shown[sample, chosen], chosen == labels[sample],
                                    chosen == predicted[sample]]).astype(np.float32)
            yield sample * epochs + epoch_index, block
