"""On-screen objects: text and bars that ride on a camera in a corner of its frame.

The epoch counter (lower left, blender/playback.py) and the colour legend (lower right,
blender/legend.py) are ordinary objects parented to the network's camera, in a plane facing the
lens at ``OVERLAY_DISTANCE`` in front of it. Drivers of plain arithmetic on the camera's lens
and sensor and the scene's resolution keep them in their corner and at a fixed fraction of the
frame height whatever the lens or resolution: Blender evaluates them itself, so a saved .blend
renders them right on a machine without nnvis (a render farm).

An overlay object's geometry uses the units of half the frame height (its scale is half the
frame height at that distance); it lies in its XY plane facing +Z, anchored at the corner
point: a lower-left overlay extends to +X and +Y, a lower-right one to -X and +Y.
"""

from __future__ import annotations

import bpy

from . import writers

OVERLAY_DISTANCE = 1.0   # in front of the camera (well beyond clip_start, before the network)
OVERLAY_MARGIN = 0.07    # from the frame's edges, in half frame heights
CORNERS = ("lower left", "lower right")

# Ray visibility an overlay turns off: it is seen by the camera only, so no shadows or
# reflections of text floating before the lens.
_HIDDEN_FROM = ("visible_shadow", "visible_diffuse", "visible_glossy", "visible_transmission",
                "visible_volume_scatter")


def camera_only(obj: bpy.types.Object) -> None:
    for visibility in _HIDDEN_FROM:
        if hasattr(obj, visibility):
            setattr(obj, visibility, False)


def clear_drivers(obj: bpy.types.Object) -> None:
    anim = obj.animation_data
    if anim is not None:
        for fcurve in list(anim.drivers):
            anim.drivers.remove(fcurve)


def place_in_camera(obj: bpy.types.Object, camera: bpy.types.Object | None, corner: str,
                    margin: float = OVERLAY_MARGIN) -> None:
    """Keep ``obj`` in ``corner`` of ``camera``'s frame (drivers); without a camera it stays
    at the origin, unparented."""
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}, got {corner!r}")
    if camera is None or camera.type != "CAMERA":
        obj.parent = None
        obj.location = (0.0, 0.0, 0.0)
        obj.scale = (1.0, 1.0, 1.0)
        return
    obj.parent = camera
    obj.matrix_parent_inverse.identity()
    obj.rotation_euler = (0.0, 0.0, 0.0)
    obj.location = (0.0, 0.0, -OVERLAY_DISTANCE)
    # Perspective camera with sensor fit AUTO: the sensor spans the frame's longer side, so at
    # distance d the half-width is d*s/(2l)*min(1, x/y) and the half-height d*s/(2l)*min(1, y/x).
    variables = {"s": ("CAMERA", camera.data, "sensor_width"),
                 "l": ("CAMERA", camera.data, "lens"),
                 "x": ("SCENE", None, "render.resolution_x"),
                 "y": ("SCENE", None, "render.resolution_y")}
    half = f"({OVERLAY_DISTANCE} * s / (2 * l))"
    half_width = f"{half} * min(1, x / y)"
    half_height = f"{half} * min(1, y / x)"
    side = -1 if corner == "lower left" else 1
    writers.add_driver(obj, "location", f"{side} * ({half_width} - {margin} * {half_height})",
                       variables, index=0)
    writers.add_driver(obj, "location", f"({margin} - 1) * {half_height}", variables, index=1)
    for axis in range(3):
        writers.add_driver(obj, "scale", half_height, variables, index=axis)
