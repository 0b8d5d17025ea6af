"""Which frames of an animation a render job draws: frame ranges (``"1-100,120"``, so one video's
frames can be split over machines) and frames that repeat the frame before them (an epoch held
still), found from the animated values at each frame rather than by comparing pictures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def parse_frame_ranges(text: str, first: int | None = None, last: int | None = None) -> list[int]:
    """The frames named by ``text`` ("12", "1-100", "1-10,20-30"), sorted, without repeats;
    each must lie in ``first``..``last`` (the animation) when they are given. ValueError with
    one line otherwise."""
    frames: set[int] = set()
    for part in text.replace(" ", "").split(","):
        bounds = part.split("-")
        try:
            if not part or len(bounds) > 2:
                raise ValueError
            low, high = int(bounds[0]), int(bounds[-1])
        except ValueError:
            raise ValueError(f"frame range {part!r} of {text!r} is not N or N-M "
                             "(for example 1-100,120)") from None
        if low > high:
            raise ValueError(f"frame range {part!r} runs backwards (write {high}-{low})")
        if first is not None and last is not None and (low < first or high > last):
            raise ValueError(f"frame range {part!r} is outside the animation's frames "
                             f"{first}-{last}")
        frames.update(range(low, high + 1))
    return sorted(frames)


def repeated_frames(frames: Sequence[int], values: np.ndarray) -> dict[int, int]:
    """For each frame that shows what the frame before it shows, the first frame of that run:
    ``values`` has a row per frame of ``frames`` (everything animated, sampled there); a frame
    repeats its predecessor when that frame is in ``frames`` too and their rows are equal.
    Frames not in the result are drawn."""
    values = np.asarray(values, dtype=np.float64).reshape(len(frames), -1)
    sources: dict[int, int] = {}
    for row in range(1, len(frames)):
        frame, previous = frames[row], frames[row - 1]
        if previous == frame - 1 and np.array_equal(values[row], values[row - 1]):
            sources[frame] = sources.get(previous, previous)
    return sources
