"""The value atlas: every recorded value a network shows, quantised into one image the shaders read.

Playback changes only values (an activation, a weight), never geometry. So the geometry of a
layer or connection is built once and the per-epoch values live in an image ("atlas"): a shader
finds a cell's value at the shown sample and epoch by arithmetic on a few numbers, and a frame
change re-evaluates no geometry at all (issue 14; the cost of a frame no longer depends on the
number of recorded epochs or cells).

Layout:

* a **stream** is the values of one thing (a layer's cells, its per-pixel max or mean over
  channels, a connection's edges) for each of its ``blocks`` (sample-major: block
  ``sample * epochs + epoch``), ``length`` values a block;
* values are **quantised** per stream to 16-bit codes: ``LEVELS + 1`` steps between the stream's
  finite minimum and maximum over all its blocks (step ``(hi - lo) / LEVELS``: a decoded value is
  within half a step of the recorded one), ``INVALID_CODE`` for NaN/Inf;
* a pixel (RGBA, 8 bits each) holds two codes: value ``2k`` in R (high byte) and G (low byte),
  value ``2k + 1`` in B and A; the image is stored "Non-Color", alpha "Channel Packed";
* pixels are addressed ``p = col0 + block * block_pixels + value_index // 2``,
  ``row = row0 + block * block_rows + floor(p / WIDTH)``, ``col = p mod WIDTH`` (row 0 at the
  bottom, as Blender stores images). A small stream is **packed** (``block_rows`` 0): its blocks
  follow each other; ``p`` stays below 2**24, so float32 shader arithmetic is exact. A big one is
  **row aligned** (``block_pixels`` 0): each block starts on a row of its own;
* streams are laid out in order, an atlas at most ``MAX_HEIGHT`` rows; when one is full, the next
  group of streams (those one material reads: a layer's values and summaries) starts another.

:func:`decode` is the shaders' arithmetic in numpy: what a cell shows is tested against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WIDTH = 16384           # pixels a row: a power of two, so p / WIDTH is exact in float32
MAX_HEIGHT = 16384      # rows an atlas (GPU texture limits)
LEVELS = 65534          # codes 0..LEVELS for finite values
INVALID_CODE = 65535    # NaN/Inf
EXACT = 2 ** 24         # float32 represents every integer below this
PACKED_UP_TO = 2 ** 23  # pixels of a stream packed block after block (plus col0 < WIDTH: < EXACT)


@dataclass(frozen=True)
class Stream:
    """``blocks`` arrays of ``length`` values each, to be placed in an atlas."""

    key: str
    length: int
    blocks: int

    @property
    def block_pixels(self) -> int:
        return (self.length + 1) // 2


@dataclass(frozen=True)
class Place:
    """Where a stream lies: the numbers a shader needs to find its values."""

    atlas: int
    row: int
    col: int
    block_rows: int
    block_pixels: int

    def as_vector(self) -> tuple[float, float, float, float]:
        """(row0, col0, block rows, block pixels): one custom property the shader reads."""
        return (float(self.row), float(self.col), float(self.block_rows), float(self.block_pixels))


class AtlasTooLarge(ValueError):
    """A single block has more values than an atlas row range can address."""


class ValueRange:
    """The finite minimum and maximum of values seen block by block."""

    def __init__(self) -> None:
        self.lo, self.hi = math.inf, -math.inf

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values)
        finite = values[np.isfinite(values)]
        if finite.size:
            self.lo = min(self.lo, float(finite.min()))
            self.hi = max(self.hi, float(finite.max()))

    @property
    def bounds(self) -> tuple[float, float]:
        """(lo, hi); (0, 0) when no value was finite."""
        return (self.lo, self.hi) if self.lo <= self.hi else (0.0, 0.0)


def value_range(blocks) -> tuple[float, float]:
    """(lo, hi): the finite minimum and maximum over an iterable of arrays (0, 0 if none)."""
    seen = ValueRange()
    for values in blocks:
        seen.add(values)
    return seen.bounds


def quantisation_step(lo: float, hi: float) -> float:
    """Decoded values are within half of this of the originals."""
    return (hi - lo) / LEVELS


def encode(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """16-bit codes of one block of values: ``LEVELS + 1`` steps from lo to hi, NaN/Inf invalid."""
    values = np.asarray(values, dtype=np.float64)  # hi - lo may overflow float32
    finite = np.isfinite(values)
    scale = LEVELS / (hi - lo) if hi > lo else 0.0
    scaled = (np.where(finite, values, lo) - lo) * scale
    codes = np.clip(np.rint(scaled), 0, LEVELS).astype(np.uint16)
    codes[~finite] = INVALID_CODE
    return codes


def dequantise(codes: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(values, invalid) of codes, as the shader decodes them (float32 arithmetic): a mix of
    lo and hi by code / LEVELS, which cannot overflow even where hi - lo would."""
    codes = np.asarray(codes)
    invalid = codes == INVALID_CODE
    t = codes.astype(np.float32) / np.float32(LEVELS)
    values = np.float32(lo) * (np.float32(1.0) - t) + np.float32(hi) * t
    return np.where(invalid, np.float32(0.0), values).astype(np.float32), invalid


def plan(groups: list[list[Stream]], width: int = WIDTH,
         max_height: int = MAX_HEIGHT) -> tuple[list[list[Place]], list[int]]:
    """A place for every stream of every group, in order, the streams of a group in one atlas
    (a material reads one atlas); and each atlas's height in rows."""
    places: list[list[Place]] = []
    heights: list[int] = []
    atlas, row, col = 0, 0, 0
    for group in groups:
        placed = _fit_group(group, atlas, row, col, width, max_height)
        if placed is None:  # the current atlas is full: start the next one
            heights.append(row + (col > 0))
            atlas, row, col = atlas + 1, 0, 0
            placed = _fit_group(group, atlas, 0, 0, width, max_height)
            if placed is None:
                keys = ", ".join(stream.key for stream in group)
                raise AtlasTooLarge(
                    f"{keys}: {sum(s.length * s.blocks for s in group):,} values (all samples "
                    f"and epochs) do not fit one {width} x {max_height} atlas; import fewer "
                    f"epochs or samples")
        places.append(placed)
        row, col = _end(group[-1], placed[-1], width) if group else (row, col)
    heights.append(row + (col > 0))
    return places, heights


def _fit_group(group: list[Stream], atlas: int, row: int, col: int, width: int,
               max_height: int) -> list[Place] | None:
    placed = []
    for stream in group:
        place = _fit(stream, atlas, row, col, width, max_height)
        if place is None:
            return None
        placed.append(place)
        row, col = _end(stream, place, width)
    return placed


def _fit(stream: Stream, atlas: int, row: int, col: int, width: int,
         max_height: int) -> Place | None:
    pixels = stream.block_pixels * stream.blocks
    if pixels + col <= PACKED_UP_TO:
        rows = math.ceil((col + pixels) / width)
        if row + rows > max_height:
            return None
        return Place(atlas, row, col, 0, stream.block_pixels)
    if stream.block_pixels >= EXACT:
        raise AtlasTooLarge(f"{stream.key}: {stream.length:,} values a block are more than a "
                            f"shader can address exactly")
    row += col > 0  # row aligned: start on a fresh row
    block_rows = math.ceil(stream.block_pixels / width)
    if row + block_rows * stream.blocks > max_height:
        return None
    return Place(atlas, row, 0, block_rows, 0)


def _end(stream: Stream, place: Place, width: int) -> tuple[int, int]:
    """The (row, col) just after a placed stream."""
    if place.block_rows:
        return place.row + place.block_rows * stream.blocks, 0
    end = place.col + stream.block_pixels * stream.blocks
    return place.row + end // width, end % width


def pixel_indices(place: Place, block: int | np.ndarray, index: np.ndarray,
                  width: int = WIDTH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, half) of values ``index`` of ``block``: the shader's arithmetic."""
    index = np.asarray(index, dtype=np.int64)
    block = np.asarray(block, dtype=np.int64)
    p = place.col + block * place.block_pixels + index // 2
    return place.row + block * place.block_rows + p // width, p % width, index % 2


def write(atlas: np.ndarray, place: Place, block: int, codes: np.ndarray) -> None:
    """Write one block's codes into ``atlas`` (rows, width, 4) uint8."""
    width = atlas.shape[1]
    flat = atlas.reshape(-1, 4)
    row, col, half = pixel_indices(place, block, np.arange(codes.size), width)
    pixel = row * width + col
    for value_half in (0, 1):
        chosen = half == value_half
        flat[pixel[chosen], 2 * value_half] = codes[chosen] >> 8
        flat[pixel[chosen], 2 * value_half + 1] = codes[chosen] & 0xFF


def read(atlas: np.ndarray, place: Place, block: int | np.ndarray,
         index: np.ndarray) -> np.ndarray:
    """The codes at values ``index`` of ``block`` (the shader's lookup, in numpy)."""
    width = atlas.shape[1]
    row, col, half = pixel_indices(place, block, index, width)
    pixel = atlas[row, col].astype(np.uint16)
    high = np.where(half == 0, pixel[..., 0], pixel[..., 2])
    low = np.where(half == 0, pixel[..., 1], pixel[..., 3])
    return (high << 8) | low


def blend_epochs(epoch: float, epochs: int, step: bool) -> tuple[int, int, float]:
    """(lower epoch index, upper epoch index, weight of the upper) of a fractional epoch,
    clamped to the recorded ones; ``step`` holds the lower one. The shader does the same."""
    last = max(0, epochs - 1)
    shown = min(max(float(epoch), 0.0), float(last))
    lower = int(math.floor(shown))
    upper = min(lower + 1, last)
    weight = 0.0 if step else shown - lower
    return lower, upper, weight


def decode(atlas: np.ndarray, place: Place, lo: float, hi: float, sample: int, epoch: float,
           epochs: int, index: np.ndarray, step: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(values, invalid) a shader shows for values ``index`` of a stream at (sample, epoch):
    the two neighbouring epochs decoded and mixed; invalid where a mixed-in epoch is."""
    lower, upper, weight = blend_epochs(epoch, epochs, step)
    values_lo, invalid_lo = dequantise(read(atlas, place, sample * epochs + lower, index), lo, hi)
    values_hi, invalid_hi = dequantise(read(atlas, place, sample * epochs + upper, index), lo, hi)
    weight32 = np.float32(weight)  # mixed as Blender's Mix node does: no overflow
    values = values_lo * (np.float32(1.0) - weight32) + values_hi * weight32
    invalid = (invalid_lo & (weight < 1.0)) | (invalid_hi & (weight > 0.0))
    return np.where(invalid, np.float32(0.0), values).astype(np.float32), invalid
