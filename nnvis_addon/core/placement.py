"""Where a new network goes in a scene that already holds things (bpy-free maths).

A network is built around its own origin; the user's scene may already have objects there (the
startup Cube) or earlier networks. :func:`place_beside` picks an offset for the new network's
box so that it overlaps nothing, preferring spots where the occupied space stays out of the view
of the camera that will be framed on the new network, then the shortest move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .layout import fit_camera

Box = tuple[np.ndarray, np.ndarray]  # (lower corner, upper corner), world space

PLACEMENT_MARGIN = 1.0  # free space between a new network and what is already there
NORMAL_LENS = 50.0      # mm: the camera of a compact network
LONG_LENS = 100.0       # mm: the longest lens, for long networks (flatter perspective: the far
LONG_FROM = 4.0         # end stays readable); networks longer than LONG_FROM x their size


@dataclass(frozen=True)
class View:
    """The camera a network is framed with: looking along -direction, field of view in radians."""

    direction: tuple[float, float, float]
    fov_x: float
    fov_y: float


def camera_lens(points: np.ndarray) -> float:
    """Focal length for a network with these extent points: longer for long networks, so that
    perspective does not shrink the far end to specks."""
    span = np.ptp(np.asarray(points, dtype=np.float64), axis=0)
    ratio = span[0] / max(span[1], span[2], 1e-9)
    return float(min(LONG_LENS, max(NORMAL_LENS, NORMAL_LENS * ratio / LONG_FROM)))


def boxes_overlap(a: Box, b: Box, margin: float = 0.0) -> bool:
    return bool(np.all(a[0] < b[1] + margin) and np.all(a[1] > b[0] - margin))


def box_corners(box: Box) -> np.ndarray:
    lo, hi = box
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                     for z in (lo[2], hi[2])], dtype=np.float64)


def union(boxes: list[Box]) -> Box:
    return (np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0))


VIEW_SLACK = 1.5  # "in view" is judged on a frame this much wider than the fitted one
FARTHER = (0.0, 0.5, 1.0)  # extra distance tried on each side, in network sizes along it


def _candidate_offsets(box: Box, occupied: Box, margin: float) -> list[np.ndarray]:
    """Moves that put ``box`` clear of ``occupied`` on each side -- the front (towards -y, where
    nnvis cameras look from) first, then the sides, behind and above -- just clear, and farther
    (out of the framed view, possibly)."""
    lo, hi = box
    olo, ohi = occupied
    moves = [(1, olo[1] - margin - hi[1], -1),   # in front
             (0, ohi[0] + margin - lo[0], 1),    # right
             (0, olo[0] - margin - hi[0], -1),   # left
             (1, ohi[1] + margin - lo[1], 1),    # behind
             (2, ohi[2] + margin - lo[2], 1)]    # above
    offsets = []
    for farther in FARTHER:
        for axis, distance, sign in moves:
            offset = np.zeros(3)
            offset[axis] = distance + sign * farther * (hi[axis] - lo[axis])
            offsets.append(offset)
    return offsets


def _depths(points: np.ndarray, location: np.ndarray, forward: np.ndarray) -> np.ndarray:
    return (points - location) @ forward


def _in_view(points: np.ndarray, location: np.ndarray, forward: np.ndarray, view: View) -> bool:
    """True when any of ``points`` lies inside the camera's frame."""
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    q = points - location
    depth = q @ forward
    ahead = depth > 1e-6
    if not np.any(ahead):
        return False
    x = np.abs(q[ahead] @ right) / depth[ahead]
    y = np.abs(q[ahead] @ up) / depth[ahead]
    # Generous: the camera nnvis frames in the end also takes in labels and a margin.
    slack = VIEW_SLACK
    return bool(np.any((x < slack * math.tan(view.fov_x / 2)) & (y < slack * math.tan(view.fov_y / 2))))


def place_beside(network_points: np.ndarray, occupied: list[Box], view: View,
                 margin: float = PLACEMENT_MARGIN) -> np.ndarray:
    """The offset to add to a network (given by points of its extent, at its own origin) so that
    it overlaps none of the ``occupied`` boxes: zero when it fits where it is; else the move to
    one side of everything occupied where the fewest occupied boxes stand in front of the network
    in the framed view (nearer the camera than its middle), then the fewest in view at all, then
    the shortest move."""
    points = np.asarray(network_points, dtype=np.float64)
    box = (points.min(axis=0), points.max(axis=0))
    if not any(boxes_overlap(box, other, margin) for other in occupied):
        return np.zeros(3)
    everything = union(occupied)
    corners = [box_corners(other) for other in occupied]
    best, best_key = np.zeros(3), None
    for order, offset in enumerate(_candidate_offsets(box, everything, margin)):
        placed = points + offset
        location, forward = fit_camera(placed, view.direction, view.fov_x, view.fov_y)
        middle = float(np.median(_depths(placed, location, forward)))
        seen = [c for c in corners if _in_view(c, location, forward, view)]
        in_front = sum(float(_depths(c, location, forward).min()) < middle for c in seen)
        key = (in_front, len(seen), float(np.linalg.norm(offset)), order)
        if best_key is None or key < best_key:
            best, best_key = offset, key
    return best
