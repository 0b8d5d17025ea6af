"""Unit labels a class can read: their size, their place, which ones show (numpy only).

A label is a flat text object of its own, one per labelled unit, turned to the orientation of
the network's camera (so it lies parallel to the image plane) and lifted above its unit's top
centre along world +Z. For a camera this module decides:

* **size**: capital letters ``cap_px`` pixels tall in a frame of :data:`REFERENCE_ROWS` rows
  (1080: a 1920x1080 render), never under :data:`MIN_CAP_PX`. A label parallel to the image
  plane at ``depth`` in front of the camera shows a text of world size ``s`` with capitals
  ``s * cap_height * focal_px / depth`` pixels tall, where ``cap_height`` is the font's capital
  height at size 1 and ``focal_px = rows / 2 / tan(fov_y / 2)``; so every label gets the size
  :func:`text_size` gives for its own depth, and all show capitals exactly ``cap_px`` tall.
  (12 px at 1080 rows is ``12 / 1080 * 2 * depth * tan(fov_y / 2)`` world units of capital.)
* **place**: labels are placed one by one, spread out first (:func:`spread_order`: the first
  and last unit, the middle one, the quarters...), each at the lowest place above its unit's
  box on screen where it keeps ``gap_px`` clear of every label placed before and of every other
  unit (over a unit it would hide it, or hide behind it) -- on its unit, or just above whatever
  is in its way, at most :data:`MAX_LIFT_ROWS` label heights higher. A label with no such place
  is hidden (in a crowded deep network the kept labels stay evenly spread). The largest of
  :data:`CAP_PX_CHOICES` with which every label shows is used, else the smallest.
* **framing**: :func:`frame_with_labels` fits the camera to the units and the labels together,
  a few rounds, since the labels' world size follows the camera's distance.

Screen coordinates here are pixels of the reference frame, x to the right and y *up* from the
frame's bottom-left corner; a box is ``(x0, x1, y0, y1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .layout import fit_camera, grid_columns

REFERENCE_ROWS = 1080        # label sizes are pixels of a frame this many rows tall
MIN_CAP_PX = 12.0            # capital letters at least this tall (pixels at REFERENCE_ROWS)
CAP_PX_CHOICES = (16.0, 14.0, 13.0)  # tried largest first; all above MIN_CAP_PX
MAX_LIFT_ROWS = 2.0          # a label stands at most this many label heights above its unit
MIN_TRIES = 24               # a crowded network stops trying after max(this, 2 x placed) misses
GAP_PX = 10.0                # clear space between labels, and between a unit and its label
FRAME_MARGIN = 0.06          # fraction of the frame left free around units and labels
FRAMING_TOLERANCE = 0.005    # reframing stops once the camera moves less than this x the network
UP = np.array((0.0, 0.0, 1.0))


@dataclass(frozen=True)
class CameraPose:
    """A perspective camera: where it is, its axes (unit vectors) and its fields of view."""

    location: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray
    fov_x: float
    fov_y: float

    @classmethod
    def looking(cls, location, forward, fov_x: float, fov_y: float) -> CameraPose:
        """A camera looking along ``forward`` with its up axis as close to world +Z as it can
        be (what Blender's ``to_track_quat("-Z", "Y")`` gives, as ``fit_camera`` assumes)."""
        forward = np.asarray(forward, np.float64)
        forward = forward / np.linalg.norm(forward)
        right = np.cross(forward, UP)
        right /= np.linalg.norm(right)
        return cls(np.asarray(location, np.float64), forward, right, np.cross(right, forward),
                   fov_x, fov_y)

    def focal_px(self, rows: int = REFERENCE_ROWS) -> float:
        return rows / 2 / math.tan(self.fov_y / 2)

    def frame_px(self, rows: int = REFERENCE_ROWS) -> tuple[float, float]:
        """(columns, rows) of the frame: the aspect ratio follows the fields of view."""
        return rows * math.tan(self.fov_x / 2) / math.tan(self.fov_y / 2), float(rows)

    def rotation(self) -> np.ndarray:
        """3x3 rotation whose columns are the camera's X (right), Y (up) and Z (backwards)."""
        return np.stack([self.right, self.up, -self.forward], axis=1)

    def to_screen(self, points, rows: int = REFERENCE_ROWS) -> tuple[np.ndarray, np.ndarray]:
        """((n, 2) pixel positions, (n,) depths) of world ``points``."""
        q = np.atleast_2d(np.asarray(points, np.float64)) - self.location
        depth = q @ self.forward
        focal = self.focal_px(rows)
        width, height = self.frame_px(rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = width / 2 + focal * (q @ self.right) / depth
            y = height / 2 + focal * (q @ self.up) / depth
        return np.stack([x, y], axis=1), depth


@dataclass(frozen=True)
class LabelSpec:
    """One label to place: the index of its unit among the units given with it, and its text's
    box at size 1 in the label's own plane (x to the right, y up, from the text's origin)."""

    unit: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class LabelPlacement:
    shown: bool
    anchor: tuple[float, float, float] = (0.0, 0.0, 0.0)  # its unit's top centre (world)
    size: float = 0.0         # world size of the text (the label object's scale)
    lift: float = 0.0         # the label's origin above its anchor, along world +Z
    cap_px: float = 0.0       # capital height on screen, pixels at REFERENCE_ROWS
    screen_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def origin(self) -> np.ndarray:
        return np.asarray(self.anchor, np.float64) + UP * self.lift


def unit_anchor(lo, hi) -> np.ndarray:
    """Top centre of a unit's box (its lowest and highest corners): where its label stands."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2]])


# A box's 12 edges, as pairs of its corners (box_corners' order: corner i differs from corner
# i ^ bit along one axis). On screen the box's outline is the convex hull of its corners, whose
# edges are projected box edges (a silhouette runs along edges), so these 12 give the
# separating axes and the upper edge.
_EDGES = np.array([(i, i ^ bit) for i in range(8) for bit in (1, 2, 4) if i < i ^ bit])


class ScreenOutlines:
    """The screen outlines of world boxes (units) for one camera: the convex hulls of their
    projected corners, kept as the corners and the projected box edges, so a label's candidate
    places are tested against all outlines at once."""

    def __init__(self, units, camera: CameraPose):
        corners, depth = camera.to_screen(box_corners(units))
        self.corners = corners.reshape(-1, 8, 2)
        self.in_front = np.all(depth.reshape(-1, 8) > 0, axis=1)
        self.boxes = np.concatenate([self.corners.min(axis=1), self.corners.max(axis=1)],
                                    axis=1)[:, [0, 2, 1, 3]]  # x0, x1, y0, y1
        self.start = self.corners[:, _EDGES[:, 0]]
        self.end = self.corners[:, _EDGES[:, 1]]
        direction = self.end - self.start
        axes = np.stack([direction[..., 1], -direction[..., 0]], axis=-1)  # (n, 12, 2)
        projected = np.einsum("npk,nck->npc", axes, self.corners)
        self.axes, self.low, self.high = axes, projected.min(axis=-1), projected.max(axis=-1)

    def __len__(self) -> int:
        return len(self.corners)

    def strip_top(self, xa: float, xb: float) -> np.ndarray:
        """The highest screen y of each outline between columns ``xa`` and ``xb``; -inf where
        an outline does not reach into them. The top of the hull at a column lies on one of
        the projected box edges, and none lies above it."""
        x, y = self.corners[..., 0], self.corners[..., 1]
        tops = np.where((x >= xa) & (x <= xb), y, -np.inf).max(axis=-1)
        ax, ay = self.start[..., 0], self.start[..., 1]
        bx, by = self.end[..., 0], self.end[..., 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            for column in (xa, xb):
                inside = (ax != bx) & (np.minimum(ax, bx) <= column) & \
                    (column <= np.maximum(ax, bx))
                at = ay + (by - ay) * (column - ax) / (bx - ax)
                tops = np.maximum(tops, np.where(inside, at, -np.inf).max(axis=-1))
        return tops

    def touching(self, boxes, gap: float) -> np.ndarray:
        """(k,) bool: which screen ``boxes`` ((k, 4): x0, x1, y0, y1) come closer than ``gap``
        to an outline in front of the camera: no separating axis among the boxes' own two and
        the normals of the outlines' projected box edges."""
        grown = np.asarray(boxes, np.float64).reshape(-1, 4) + (-gap, gap, -gap, gap)
        b = self.boxes
        box_index, outline_index = np.nonzero(
            self.in_front[None, :] & (b[None, :, 0] < grown[:, None, 1])
            & (grown[:, None, 0] < b[None, :, 1]) & (b[None, :, 2] < grown[:, None, 3])
            & (grown[:, None, 2] < b[None, :, 3]))
        x0, x1, y0, y1 = (v[:, None] for v in grown[box_index].T)
        nx, ny = self.axes[outline_index, :, 0], self.axes[outline_index, :, 1]  # (p, 12)
        lowest = np.minimum(nx * x0, nx * x1) + np.minimum(ny * y0, ny * y1)  # the box's
        highest = np.maximum(nx * x0, nx * x1) + np.maximum(ny * y0, ny * y1)  # projection
        separated = np.any((highest <= self.low[outline_index])
                           | (lowest >= self.high[outline_index]), axis=1)
        hit = np.zeros(len(grown), bool)
        hit[box_index[~separated]] = True
        return hit


def text_size(cap_px: float, depth: float, camera: CameraPose, cap_height: float) -> float:
    """World text size whose capitals are ``cap_px`` pixels tall at ``depth`` (see the module)."""
    return cap_px * depth / (camera.focal_px() * cap_height)


def spread_order(count: int) -> list[int]:
    """0..count-1 spread out: the ends, the middle, then the middles of the halves, and so on,
    so that labels dropped for lack of room leave the kept ones evenly spread."""
    if count <= 0:
        return []
    order, seen = [], set()

    def take(i):
        if i not in seen:
            seen.add(i)
            order.append(i)

    take(0)
    take(count - 1)
    spans = [(0, count - 1)]
    while spans:
        following = []
        for lo, hi in spans:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            take(mid)
            following += [(lo, mid), (mid, hi)]
        spans = following
    return order


def _lifts_to(anchor: np.ndarray, camera: CameraPose,
              target_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lifts, screen x): how far above ``anchor`` (along +Z) a point projects to each screen
    row of ``target_y``, and the screen column it projects to there; NaN where no point in
    front of the camera does."""
    width, height = camera.frame_px()
    focal = camera.focal_px()
    q = anchor - camera.location
    a, b = q @ camera.up, UP @ camera.up
    c, d = q @ camera.forward, UP @ camera.forward
    r, e = q @ camera.right, UP @ camera.right
    t = np.asarray(target_y, np.float64) - height / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = (t * c - focal * a) / (focal * b - t * d)
        depth = c + d * lift
        lift = np.where(np.isfinite(lift) & (depth > 1e-9), lift, np.nan)
        return lift, width / 2 + focal * (r + e * lift) / depth


@dataclass(frozen=True)
class _Pass:
    """What one placement round knows: the camera, the label scale and the spacing."""

    camera: CameraPose
    cap_height: float
    cap_px: float
    gap_px: float
    max_lift_px: float

    @property
    def scale(self) -> float:  # screen pixels per text unit of a label facing the camera
        return self.cap_px / self.cap_height


def _lowest_free(unit: int, anchor, text_box, labels: np.ndarray, outlines: ScreenOutlines,
                 job: _Pass) -> LabelPlacement | None:
    """The lowest place above its unit (index ``unit`` of ``outlines``) where a label keeps
    ``gap_px`` clear of the ``labels`` placed before (screen boxes) and of every unit's
    outline, at most ``max_lift_px`` higher than just clear of its own unit: there, or just
    above whatever is in its way."""
    x0, x1, y0, y1 = (v * job.scale for v in text_box)
    anchor_y = job.camera.to_screen(anchor)[0][0, 1]
    # The columns the label can take: lifted, it drifts sideways a little (perspective).
    reach = outlines.boxes[unit, 3] + job.gap_px + job.max_lift_px  # the highest it may go
    _, drift = _lifts_to(anchor, job.camera, np.array([anchor_y, reach]) - y0)
    xa, xb = np.nanmin(drift) + x0 - job.gap_px, np.nanmax(drift) + x1 + job.gap_px
    tops = outlines.strip_top(xa, xb)
    base = max(tops[unit], anchor_y)
    near = labels[(labels[:, 0] < xb) & (xa < labels[:, 1])]
    # Just clear of each (a hair more than the gap, so rounding cannot make it touch).
    bottoms = np.unique(np.concatenate([[base], tops[np.isfinite(tops) & outlines.in_front],
                                        near[:, 3]])) + job.gap_px + 0.01
    bottoms = bottoms[(bottoms >= base) & (bottoms <= base + job.gap_px + job.max_lift_px)]
    lifts, columns = _lifts_to(anchor, job.camera, bottoms - y0)
    boxes = np.stack([columns + x0, columns + x1, bottoms, bottoms - y0 + y1], axis=1)
    gap = job.gap_px
    box, other = boxes[:, None, :], near[None, :, :]
    free = np.isfinite(lifts) & ~np.any(  # clear of every label placed before
        (other[..., 0] < box[..., 1] + gap) & (box[..., 0] < other[..., 1] + gap)
        & (other[..., 2] < box[..., 3] + gap) & (box[..., 2] < other[..., 3] + gap), axis=1)
    free[free] = ~outlines.touching(boxes[free], gap)  # and clear of every unit
    if not free.any():
        return None
    first = int(np.argmax(free))
    depth = float((anchor + UP * lifts[first] - job.camera.location) @ job.camera.forward)
    left, right, bottom, top = (float(v) for v in boxes[first])
    return LabelPlacement(True, tuple(anchor),
                          text_size(job.cap_px, depth, job.camera, job.cap_height),
                          float(lifts[first]), job.cap_px, (left, right, bottom, top))


def _place_at(specs, units, outlines: ScreenOutlines, job: _Pass) -> list[LabelPlacement]:
    placements: list[LabelPlacement] = [LabelPlacement(False)] * len(specs)
    placed = np.empty((len(specs), 4))  # boxes of the labels placed so far
    count = misses = 0
    for index in spread_order(len(specs)):
        spec = specs[index]
        if misses > max(MIN_TRIES, 2 * count):
            break  # crowded: the spread order has been everywhere; the rest stay hidden
        placement = _lowest_free(spec.unit, unit_anchor(*units[spec.unit]), spec.box,
                                 placed[:count], outlines, job) \
            if outlines.in_front[spec.unit] else None
        if placement is None:  # over a unit it would hide it, or hide behind it
            misses += 1
            continue
        placements[index] = placement
        placed[count] = placement.screen_box
        count, misses = count + 1, 0
    return placements


def place_labels(specs: list[LabelSpec], units, camera: CameraPose, cap_height: float, *,
                 cap_px_choices=CAP_PX_CHOICES, max_lift_rows: float = MAX_LIFT_ROWS,
                 gap_px: float = GAP_PX) -> list[LabelPlacement]:
    """Size and place ``specs`` for ``camera`` (see the module) above their ``units`` (world
    boxes, (n, 2, 3): lowest and highest corner; every drawn unit, labelled or not): the
    largest capital height of ``cap_px_choices`` with which every label fits, else the
    smallest, hiding what does not."""
    if not specs:
        return []
    if min(cap_px_choices) < MIN_CAP_PX:
        raise ValueError(f"labels under {MIN_CAP_PX} px cannot be read: {cap_px_choices}")
    units = np.asarray(units, np.float64).reshape(-1, 2, 3)
    outlines = ScreenOutlines(units, camera)
    placements = []
    for cap_px in sorted(cap_px_choices, reverse=True):
        row_px = max(s.box[3] - s.box[2] for s in specs) * cap_px / cap_height + gap_px
        job = _Pass(camera, cap_height, cap_px, gap_px, max_lift_rows * row_px)
        placements = _place_at(specs, units, outlines, job)
        if all(p.shown for p in placements):
            break
    return placements


def label_corners(specs: list[LabelSpec], placements: list[LabelPlacement],
                  camera: CameraPose) -> np.ndarray:
    """(4 x shown, 3) world corners of the shown labels' text boxes (facing ``camera``)."""
    corners = []
    for spec, placement in zip(specs, placements):
        if not placement.shown:
            continue
        x0, x1, y0, y1 = (v * placement.size for v in spec.box)
        for x in (x0, x1):
            for y in (y0, y1):
                corners.append(placement.origin + camera.right * x + camera.up * y)
    return np.asarray(corners, np.float64).reshape(-1, 3)


_CORNER_PICKS = np.array([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)])


def box_corners(units) -> np.ndarray:
    """(8 n, 3) corners of world boxes ``units`` ((n, 2, 3): lowest and highest corner), eight
    to a box."""
    units = np.asarray(units, np.float64).reshape(-1, 2, 3)
    return np.stack([units[:, _CORNER_PICKS[:, axis], axis] for axis in range(3)],
                    axis=-1).reshape(-1, 3)


def frame_with_labels(units, specs: list[LabelSpec], view_direction, fov_x: float, fov_y: float,
                      cap_height: float, *, margin: float = FRAME_MARGIN,
                      rounds: int = 8) -> tuple[CameraPose, list[LabelPlacement]]:
    """A camera looking along ``-view_direction`` that frames the units (world boxes, (n, 2, 3))
    and their labels, and the labels placed for it. The labels are placed for the returned
    camera itself, so their pixel sizes hold exactly; the framing is right to within
    :data:`FRAMING_TOLERANCE` of the network's size (well inside the frame's margin)."""
    units = np.asarray(units, np.float64).reshape(-1, 2, 3)
    points = box_corners(units)
    span = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0))) or 1.0
    location, forward = fit_camera(points, view_direction, fov_x, fov_y, margin)
    camera = CameraPose.looking(location, forward, fov_x, fov_y)
    placements = place_labels(specs, units, camera, cap_height)
    sizes = {p.cap_px for p in placements if p.shown} or set(CAP_PX_CHOICES)
    for _ in range(rounds):  # the size chosen first stays: the rounds only reframe
        corners = label_corners(specs, placements, camera)
        location, forward = fit_camera(np.concatenate([points, corners]), view_direction,
                                       fov_x, fov_y, margin)
        moved = float(np.linalg.norm(location - camera.location))
        camera = CameraPose.looking(location, forward, fov_x, fov_y)
        placements = place_labels(specs, units, camera, cap_height, cap_px_choices=sizes)
        if moved < FRAMING_TOLERANCE * span:
            break
    return camera, placements


# -- the label's height above its layer, as a driver -------------------------------------------

# Variables of the driver that keeps a label on its layer's top (see layer_top_expression).
TOP_VARIABLES = ("cell_size", "grid", "columns", "gap", "lift")


def layer_top(map_height: int, channels: int, cell_scale: float, *, cell_size: float,
              grid_layout: float, requested_columns: int, channel_gap: float) -> float:
    """Height of a layer's top above its origin: half its cell area's height, as the layer's
    geometry nodes compute it (``layout.layer_extent``)."""
    step_v = map_height * cell_size * cell_scale + channel_gap
    rows = math.ceil(channels / grid_columns(channels, requested_columns))
    return (step_v + (rows * step_v - step_v) * grid_layout - channel_gap) / 2


def layer_top_expression(map_height: int, channels: int, cell_scale: float) -> str:
    """A simple (Python-free) driver expression for ``layer_top(...) + lift`` whose variables
    are :data:`TOP_VARIABLES`: the network's cell size, the layer's Grid Layout, Grid Columns
    and Channel Gap inputs and the label's lift. A label's height follows every layout control
    through it; placing the label again changes only its lift."""
    auto_columns = grid_columns(int(channels), 0)
    columns = f"(min(columns, {int(channels)}) if columns > 0.5 else {auto_columns})"
    step = f"({int(map_height)} * cell_size * {float(cell_scale)!r} + gap)"
    return f"({step} * (1 + (ceil({int(channels)} / {columns}) - 1) * grid) - gap) / 2 + lift"
