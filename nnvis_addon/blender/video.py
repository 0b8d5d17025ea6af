"""Rendering an animation: which frames show something new.

A frame repeats the one before it when nothing animated changes between them: every F-curve of
every animated data-block has the same value at both frames (an epoch held still by
``playback.animate_epochs``). ``scripts/render_video.py`` copies such a frame's picture instead of
rendering it again. Things that change a picture with time but not through F-curves (a driver or
node reading the frame, simulations, particles, movie textures, NLA strips) switch the check off:
:func:`time_dependence` names the first one found, and then every frame is rendered.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.frames import repeated_frames
from . import compat

# bpy.data collections whose data-blocks can be animated (those missing in a version are skipped).
ANIMATABLE = ("objects", "meshes", "curves", "hair_curves", "pointclouds", "volumes", "materials",
              "node_groups", "worlds", "scenes", "cameras", "lights", "shape_keys", "textures",
              "grease_pencils", "armatures", "lattices", "metaballs", "speakers", "lightprobes",
              "particles", "masks", "cache_files", "movieclips")
# Modifiers that change with time by themselves.
TIME_MODIFIERS = {"CLOTH", "SOFT_BODY", "FLUID", "DYNAMIC_PAINT", "OCEAN", "WAVE", "EXPLODE",
                  "PARTICLE_SYSTEM", "COLLISION", "MESH_CACHE", "MESH_SEQUENCE_CACHE"}
# Nodes whose output depends on the frame (scene time, simulation zones).
TIME_NODES = {"GeometryNodeInputSceneTime", "GeometryNodeSimulationInput",
              "GeometryNodeSimulationOutput"}


def animated_blocks() -> list:
    """Every data-block with animation data (objects, materials, node groups, worlds...)."""
    blocks = []
    for name in ANIMATABLE:
        for block in getattr(bpy.data, name, ()):
            if getattr(block, "animation_data", None) is not None:
                blocks.append(block)
    return blocks


def _driver_reason(block) -> str | None:
    for fcurve in block.animation_data.drivers:
        driver = fcurve.driver
        if fcurve.mute or driver is None:
            continue
        where = f"a driver of {block.name!r} ({fcurve.data_path})"
        if driver.type == "SCRIPTED" and (not driver.is_simple_expression
                                          or "frame" in driver.expression):
            return f"{where} reads the frame or runs Python"
        for variable in driver.variables:
            for target in variable.targets:
                if "frame" in (target.data_path or ""):
                    return f"{where} reads the frame"
    return None


def _block_reason(block) -> str | None:
    anim = block.animation_data
    if anim is not None and any(not track.mute and len(track.strips) for track in anim.nla_tracks):
        return f"{block.name!r} is animated by NLA strips"
    if anim is not None:
        reason = _driver_reason(block)
        if reason:
            return reason
    return None


def time_dependence(scene: bpy.types.Scene) -> str | None:
    """Why frames cannot be compared by their F-curves alone, or None when they can."""
    for block in animated_blocks():
        reason = _block_reason(block)
        if reason:
            return reason
    for obj in scene.objects:
        for modifier in obj.modifiers:
            if modifier.type in TIME_MODIFIERS:
                return f"{obj.name!r} has a {modifier.type.lower()} modifier"
        if len(getattr(obj, "particle_systems", ())):
            return f"{obj.name!r} has particles"
    for tree in bpy.data.node_groups:
        for node in tree.nodes:
            if node.bl_idname in TIME_NODES:
                return f"node group {tree.name!r} reads the scene time ({node.name})"
    for image in bpy.data.images:
        if image.source in {"MOVIE", "SEQUENCE"} and image.users:
            return f"image {image.name!r} is a movie or an image sequence"
    if scene.rigidbody_world is not None:
        return "the scene has a rigid-body world"
    return None


def animated_values(frames: list[int]) -> np.ndarray:
    """(frames, F-curves): the value of every unmuted F-curve of every animated data-block at
    each of ``frames``."""
    fcurves = [fcurve for block in animated_blocks() for fcurve in compat.action_fcurves(block)
               if not fcurve.mute]
    values = np.zeros((len(frames), len(fcurves)), np.float64)
    for column, fcurve in enumerate(fcurves):
        values[:, column] = [fcurve.evaluate(frame) for frame in frames]
    return values


def held_frames(scene: bpy.types.Scene, frames: list[int]) -> dict[int, int]:
    """Each frame of ``frames`` that repeats the frame before it, mapped to the first frame of
    its run (see :func:`core.frames.repeated_frames`); empty when :func:`time_dependence`
    finds something that changes with time by itself."""
    if time_dependence(scene) is not None:
        return {}
    return repeated_frames(frames, animated_values(frames))
