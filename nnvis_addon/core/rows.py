"""Long networks folded into rows: a serpentine instead of a line kilometres long (numpy only).

A network is laid out along +X, one column of units after another (``core/layout.py``). A deep
chain of a thousand layers would be a line thousands of units long and a few tall: no camera
shows it. When the straight layout is more than ``LayoutOptions.wrap_aspect`` times longer than
a row is tall, :func:`wrap_rows` cuts it into rows stacked downwards (-Z) like lines of text,
every other row running back (-X), so a row starts right under the end of the one above and the
link between them is a short U-turn (:func:`turn_bulge`) instead of a line across the picture.

* **Where a row may end**: only between two columns that no link jumps across (every link
  crossing that boundary joins the two columns next to it): a skip link, a block's link from
  its entry to its output, or a link drawn from a Flatten's feeder never spans two rows, so skip
  arcs stay over their own row and blocks stay whole.
* **How many rows**: enough that the folded network is about ``ROW_ASPECT`` times wider than
  tall; the cuts fall at the allowed boundaries nearest to equal row lengths.
* **The drivers**: a unit still sits one spacing after the previous column (blender/scene.py),
  towards its row's ``direction``; a row's first column sits right under the last column of
  the row above (its ``spacing_factor`` is 0) at the row's fixed height ``z``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

ROW_ASPECT = 2.0     # a folded network is about this many times wider than tall
VIEW_TILT = 0.4      # the default camera looks down at about 22 degrees: a unit's width (y)
                     # shows as this much height, which the row pitch leaves room for
TURN_SHARE = 0.5     # a turn's U reaches this many row pitches beyond the end of its row


@dataclass(frozen=True)
class Rows:
    """Columns cut into rows: ``starts[r]`` is the first column of row ``r`` (``starts[0]`` 0),
    ``pitch`` the height from one row to the next."""

    starts: tuple[int, ...]
    pitch: float

    @property
    def count(self) -> int:
        return len(self.starts)

    def row_of(self, columns: int) -> np.ndarray:
        """(columns,) row index of every column."""
        row = np.zeros(columns, np.int64)
        for index, start in enumerate(self.starts[1:], start=1):
            row[start:] = index
        return row


def allowed_breaks(columns: int, spans: Iterable[tuple[int, int]]) -> np.ndarray:
    """(columns,) bool: whether a row may start at each column, i.e. no link (source column,
    target column) jumps over the boundary before it. Column 0 starts the first row anyway and
    is False here. Linear in the columns and the links (a difference array)."""
    blocked = np.zeros(columns + 1, np.int64)
    for source, target in spans:
        low, high = min(source, target), max(source, target)
        if high - low >= 2:  # boundaries low+1 .. high are jumped over
            blocked[low + 1] += 1
            blocked[high + 1] -= 1
    allowed = np.cumsum(blocked)[:columns] == 0
    allowed[0] = False
    return allowed


def row_count(length: float, pitch: float, wrap_aspect: float) -> int:
    """Rows for a straight layout ``length`` long whose rows are ``pitch`` apart: 1 while it is at
    most ``wrap_aspect`` times longer than a row is tall, else enough rows that the folded
    network is about ``ROW_ASPECT`` times wider than tall."""
    if pitch <= 0 or length <= wrap_aspect * pitch:
        return 1
    return max(2, round(math.sqrt(length / (ROW_ASPECT * pitch))))


def choose_starts(x: np.ndarray, allowed: np.ndarray, rows: int) -> tuple[int, ...]:
    """First column of every row: for each cut, the allowed column whose straight-layout ``x``
    is nearest to an equal share of what is left (fewer rows when too few columns may start
    one). ``x`` is non-decreasing along the columns."""
    starts = [0]
    candidates = np.flatnonzero(allowed)
    for cut in range(1, rows):
        left = rows - cut + 1  # rows still to fill, this one included
        begin = x[starts[-1]]
        target = begin + (x[-1] - begin) / left
        later = candidates[candidates > starts[-1]]
        if not later.size:
            break
        choice = int(later[np.argmin(np.abs(x[later] - target))])
        if x[choice] <= begin:  # nothing gained: the rest stays in this row
            break
        starts.append(choice)
    return tuple(starts)


def fold_columns(x: np.ndarray, rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, z, direction) of every column once folded: row ``r`` runs along +X when ``r`` is
    even, -X when odd, starts under the end of row ``r - 1`` and lies ``r`` pitches down."""
    folded = np.empty_like(x, dtype=np.float64)
    row = rows.row_of(len(x))
    direction = np.where(row % 2 == 0, 1.0, -1.0)
    ends = [*rows.starts[1:], len(x)]
    origin = 0.0
    for index, (start, end) in enumerate(zip(rows.starts, ends)):
        sign = 1.0 if index % 2 == 0 else -1.0
        folded[start:end] = origin + sign * (x[start:end] - x[start])
        origin = folded[end - 1]
    return folded, -row * rows.pitch, direction


def row_pitch(heights: Sequence[float], widths: Sequence[float], label_height: float,
              margin: float) -> float:
    """Height from one row to the next: the tallest unit, room for two labels' height (its own,
    and clear space under the labels of the row below), the height the widest unit takes in
    the default view, and ``margin`` between rows."""
    tallest = max(heights, default=0.0)
    widest = max(widths, default=0.0)
    return tallest + 2 * label_height + VIEW_TILT * widest + margin


def turn_bulge(source_row: int, target_row: int, pitch: float, direction: float) -> float | None:
    """How far (along X, signed) the U-turn of a link from the end of one row to the start of
    the next reaches beyond the row's end; None for a link inside one row."""
    if source_row == target_row:
        return None
    return direction * TURN_SHARE * pitch * abs(target_row - source_row)


def turn_profile(points_per_edge: int) -> np.ndarray:
    """(P,) 0..1..0 shape of a turn: a half sine, so the curve leaves its row outwards and comes
    back into the next row's first unit."""
    return np.sin(np.pi * np.linspace(0.0, 1.0, points_per_edge)).astype(np.float32)
