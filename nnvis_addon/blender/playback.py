"""Epoch playback: keyframe a network's epoch control and show an on-screen epoch counter.

Everything here writes plain Blender data that plays and renders without nnvis (render-farm
safe): keyframes on the root's ``nnvis_epoch`` property, simple-expression drivers (evaluated by
Blender itself, never by Python) and geometry nodes. No frame-change handler is ever added.

* :func:`animate_epochs` keys ``nnvis_epoch`` through every recorded epoch index, holding each
  epoch for a while and interpolating linearly (or stepping) between them, sets the scene's frame
  range and adds or updates the counter.
* :func:`ensure_counter` builds the counter: an object with one mesh vertex per recorded epoch
  carrying the epoch number and up to two metrics (accuracy, loss) as attributes, drawn by the
  "NNVis Epoch Counter" group (geometry_nodes/counter_nodes.py), whose ``Epoch`` input is driven
  by the root's ``nnvis_epoch``. It is parented to the network's camera and kept in the lower-left
  corner of the frame by drivers on the camera's lens and the scene's resolution (an overlay,
  blender/overlay.py).
* :func:`farm_safety_problems` lists whatever in a file would need Python to play back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

from ...geometry_nodes import counter_nodes, materials
from ..core import controls, names
from ..core.export_format import read_export
from . import compat, network, overlay, writers

EPOCH_PROPERTY = controls.EPOCH
EPOCH_PATH = f'["{EPOCH_PROPERTY}"]'
COUNTER_MARKER = names.COUNTER_MARKER
COUNTER_MODIFIER = names.COUNTER_MODIFIER
PREFERRED_METRICS = ("accuracy", "loss")

# Counter size in units of half the frame height (its place: blender/overlay.py).
COUNTER_SIZE = 0.11       # height of the "Epoch N" letters (5.5 % of the frame height)


@dataclass(frozen=True)
class EpochTiming:
    """Where each recorded epoch sits on the timeline."""

    frames_per_epoch: int = 24   # frames of transition from one epoch to the next
    hold_frames: int = 12        # frames each epoch is held before moving on
    start_frame: int = 1

    def arrive(self, epoch_index: int) -> int:
        """First frame showing exactly ``epoch_index``."""
        return self.start_frame + epoch_index * (self.frames_per_epoch + self.hold_frames)

    def leave(self, epoch_index: int) -> int:
        """Last frame showing exactly ``epoch_index``."""
        return self.arrive(epoch_index) + self.hold_frames

    def frame_range(self, epoch_count: int) -> tuple[int, int]:
        return self.start_frame, self.leave(max(0, epoch_count - 1))


def epoch_count(root: bpy.types.Object) -> int:
    return len(root[names.EPOCH_NUMBERS])


def animate_epochs(root: bpy.types.Object, frames_per_epoch: int = 24, hold_frames: int = 12,
                   start_frame: int = 1, step: bool = False,
                   scene: bpy.types.Scene | None = None) -> tuple[int, int]:
    """Keyframe ``root["nnvis_epoch"]`` through every recorded epoch; return the frame range.

    Epoch index ``k`` is keyed at ``start + k * (frames_per_epoch + hold_frames)`` and again
    ``hold_frames`` later (one key when ``hold_frames`` is 0), with LINEAR interpolation between
    the keys (CONSTANT with ``step``: the epoch jumps at the next key). Earlier keys of
    ``nnvis_epoch`` are replaced. Sets the scene's frame range, adds or updates the counter and
    moves to the first frame.
    """
    network.require_whole(root)
    if frames_per_epoch < 1:
        raise ValueError(f"frames_per_epoch must be at least 1, got {frames_per_epoch}")
    if hold_frames < 0:
        raise ValueError(f"hold_frames must not be negative, got {hold_frames}")
    scene = scene or bpy.context.scene
    timing = EpochTiming(int(frames_per_epoch), int(hold_frames), int(start_frame))
    count = epoch_count(root)

    keys = []
    for index in range(count):
        keys.append((timing.arrive(index), float(index)))
        if hold_frames > 0:
            keys.append((timing.leave(index), float(index)))
    fcurve = epoch_fcurve(root, create=True)
    fcurve.keyframe_points.clear()
    fcurve.keyframe_points.add(len(keys))
    fcurve.keyframe_points.foreach_set("co", np.asarray(keys, np.float32).reshape(-1))
    interpolation = "CONSTANT" if step else "LINEAR"
    for point in fcurve.keyframe_points:
        point.interpolation = interpolation
        point.handle_left_type = point.handle_right_type = "AUTO_CLAMPED"
    fcurve.extrapolation = "CONSTANT"
    fcurve.update()

    first, last = timing.frame_range(count)
    scene.frame_start = first
    scene.frame_end = last
    root[names.PLAYBACK] = {"frames_per_epoch": timing.frames_per_epoch,
                              "hold_frames": timing.hold_frames, "start_frame": first,
                              "step": bool(step)}
    ensure_counter(root, scene)
    scene.frame_set(first)
    return first, last


def epoch_fcurve(root: bpy.types.Object, create: bool = False):
    """The F-curve keying ``root["nnvis_epoch"]`` (through the 4.2/5.x compat helper), or None."""
    fcurve = compat.find_fcurve(root, EPOCH_PATH)
    if fcurve is None and create:
        # keyframe_insert creates the action, its slot and channelbag on every version.
        root.keyframe_insert(EPOCH_PATH, frame=bpy.context.scene.frame_current)
        fcurve = compat.find_fcurve(root, EPOCH_PATH)
        if fcurve is None:
            raise RuntimeError(f"could not key {root.name}{EPOCH_PATH}")
    return fcurve


def epoch_timing(root: bpy.types.Object) -> EpochTiming | None:
    """The timing of the last :func:`animate_epochs` on ``root`` (None if never animated)."""
    settings = root.get(names.PLAYBACK)
    if settings is None:
        return None
    return EpochTiming(int(settings["frames_per_epoch"]), int(settings["hold_frames"]),
                       int(settings["start_frame"]))


# -- metrics --------------------------------------------------------------------------------


def epoch_metrics(root: bpy.types.Object) -> dict[str, list[float | None]]:
    """Metrics of every recorded epoch, read from the export at ``root["nnvis_source"]``:
    name -> one value per epoch (None where that epoch did not record it). Empty when the export
    is gone or recorded none."""
    source = root.get(names.SOURCE_PATH)
    if not source:
        return {}
    try:
        export = read_export(source, check_finite=False)
    except Exception:  # moved or deleted export: the counter shows epoch numbers only
        return {}
    if len(export.epochs) != epoch_count(root):
        return {}
    metric_names: list[str] = []
    for epoch in export.epochs:
        metric_names.extend(n for n in epoch.metrics if n not in metric_names)
    return {name: [_finite_or_none(epoch.metrics.get(name)) for epoch in export.epochs]
            for name in metric_names}


def _finite_or_none(value):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def choose_metrics(metrics: dict, wanted=PREFERRED_METRICS, slots: int = 2) -> list[str]:
    """The metrics the counter shows: ``wanted`` ones that were recorded, else the first ones."""
    chosen = [name for name in wanted if name in metrics][:slots]
    return chosen or list(metrics)[:slots]


def metric_format(name: str) -> tuple[float, int, str]:
    """(scale, decimals, suffix): accuracies as percentages, anything else with 3 decimals."""
    if "acc" in name.lower():
        return 100.0, 1, "%"
    return 1.0, 3, ""


# -- counter --------------------------------------------------------------------------------


def find_counter(root: bpy.types.Object):
    """The network's epoch counter, or None."""
    return network.part(root, names.PART_COUNTER)


def ensure_counter(root: bpy.types.Object, scene: bpy.types.Scene | None = None,
                   metrics=PREFERRED_METRICS) -> bpy.types.Object:
    """Add (or refresh) the network's on-screen epoch counter; return its object."""
    scene = scene or bpy.context.scene
    numbers = [float(n) for n in root[names.EPOCH_NUMBERS]]
    recorded = epoch_metrics(root)
    chosen = choose_metrics(recorded, metrics)

    counter = find_counter(root)
    name = f"{root.get(names.MODEL_NAME, root.name)} epoch counter"
    mesh = bpy.data.meshes.new(name)
    _fill_counter_mesh(mesh, numbers, [recorded[n] for n in chosen])
    if counter is None:
        counter = bpy.data.objects.new(name, mesh)
        counter[COUNTER_MARKER] = 1
        collection = network.network_collection(root) or scene.collection
        collection.objects.link(counter)
        network.record_part(root, names.PART_COUNTER, counter)
    else:
        old = counter.data
        counter.data = mesh
        if old.users == 0:
            bpy.data.meshes.remove(old)
    overlay.camera_only(counter)

    modifier = counter.modifiers.get(COUNTER_MODIFIER) or counter.modifiers.new(COUNTER_MODIFIER,
                                                                               "NODES")
    modifier.node_group = counter_nodes.ensure_counter_group()
    inputs = {"Epoch Count": len(numbers), "Size": COUNTER_SIZE,
              "Material": materials.ensure_label_material()}
    for slot in counter_nodes.SLOTS:
        metric = chosen[slot - 1] if slot <= len(chosen) else ""
        scale, decimals, suffix = metric_format(metric) if metric else (1.0, 3, "")
        inputs.update({f"Metric {slot} Label": metric, f"Metric {slot} Scale": scale,
                       f"Metric {slot} Decimals": decimals, f"Metric {slot} Suffix": suffix})
    for key, value in inputs.items():
        compat.set_modifier_input(modifier, key, value)
    counter[names.COUNTER_METRICS] = list(chosen)

    overlay.clear_drivers(counter)
    writers.add_driver(counter, compat.modifier_input_path(modifier, "Epoch"), "epoch",
               {"epoch": ("OBJECT", root, EPOCH_PATH)})
    overlay.place_in_camera(counter, network.network_camera(root) or scene.camera, "lower left")
    counter.update_tag()
    return counter


def _fill_counter_mesh(mesh, numbers: list[float], metric_values: list[list]) -> None:
    count = len(numbers)
    mesh.vertices.add(count)
    mesh.vertices.foreach_set("co", np.zeros(count * 3, np.float32))

    def write(name, values):
        writers.write_attribute(mesh, name, "FLOAT", "POINT", values)

    write(counter_nodes.EPOCH_NUMBER_ATTRIBUTE, numbers)
    for slot in counter_nodes.SLOTS:
        values = metric_values[slot - 1] if slot <= len(metric_values) else [None] * count
        write(counter_nodes.metric_attribute(slot), [0.0 if v is None else v for v in values])
        write(counter_nodes.has_metric_attribute(slot), [0.0 if v is None else 1.0 for v in values])


# -- render-farm safety -----------------------------------------------------------------------

_FRAME_HANDLERS = ("frame_change_pre", "frame_change_post", "render_pre", "render_post",
                   "depsgraph_update_pre", "depsgraph_update_post", "load_post")


def _ids_with_animation(data):
    for name in dir(data):
        collection = getattr(data, name, None)
        if not isinstance(collection, bpy.types.bpy_prop_collection):
            continue
        for id_data in collection:
            if not isinstance(id_data, bpy.types.ID):
                break
            yield id_data
            tree = getattr(id_data, "node_tree", None)  # embedded trees of materials, worlds
            if isinstance(tree, bpy.types.ID):
                yield tree
            keys = getattr(id_data, "shape_keys", None)
            if isinstance(keys, bpy.types.ID):
                yield keys


def farm_safety_problems(data=None) -> list[str]:
    """What in ``data`` (default ``bpy.data``) needs Python to play back: drivers whose expression
    is not a simple expression, invalid drivers, text blocks registered as modules, and nnvis
    frame-change handlers. Empty when a machine without nnvis renders it the same."""
    data = data or bpy.data
    problems = []
    for id_data in _ids_with_animation(data):
        anim = getattr(id_data, "animation_data", None)
        if anim is None:
            continue
        for fcurve in anim.drivers:
            driver = fcurve.driver
            where = f"{id_data.name}: driver {fcurve.data_path}[{fcurve.array_index}]"
            if driver.type == "SCRIPTED" and not driver.is_simple_expression:
                problems.append(f"{where} needs Python ({driver.expression!r})")
            elif not driver.is_valid:
                problems.append(f"{where} is invalid")
    for text in getattr(data, "texts", ()):
        if text.use_module:
            problems.append(f"text {text.name!r} runs as a Python module on load")
    for name in _FRAME_HANDLERS:
        for handler in getattr(bpy.app.handlers, name, ()):
            if "nnvis" in (getattr(handler, "__module__", "") or ""):
                problems.append(f"handler {name}: {handler.__module__}.{handler.__name__}")
    return problems
