"""Filling the value atlases (core/atlas.py) and encoding them as PNG images, one group at a time.

A network's atlas holds every recorded value it shows: about as many bytes as its activation data.
Holding the whole uint8 atlas before compressing it would make an import's peak memory the
atlas plus its PNG; instead the groups are filled **from the top row down**, the order in which
PNG stores rows (Blender's row 0 is the image's bottom), and every row no later group can touch
is compressed at once. Only the rows of the group being filled (and a row it shares with the
group below) are held uncompressed.

Steps of :func:`encode_atlases`:

1. the **ranges**: each stream's finite minimum and maximum over all its blocks (one pass);
2. the **layout**: :func:`atlas.plan` places every stream;
3. the **fill**: groups in reverse order; a group's rows are opened, its blocks quantised and
   written, then every row above its first one is encoded (its first row too, unless the group
   below ends in it);
4. each atlas's PNG: 8-bit RGBA, no filter, zlib at a fast level.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from . import atlas

# one block at a time: (block index, {stream key: that block's values})
Blocks = Callable[[], Iterator[tuple[int, dict[str, np.ndarray]]]]
PNG_ROWS_A_CHUNK = 32  # rows compressed at a time (a small temporary copy)
ZLIB_LEVEL = 1         # fast: the atlas of a big network is hundreds of MB before compression


@dataclass
class StreamGroup:
    """Streams read by one material (kept in one atlas) and the source of their values:
    ``blocks()`` yields (block index, {stream key: that block's values}) for every block."""

    streams: list[atlas.Stream]
    blocks: Blocks


@dataclass
class EncodedAtlases:
    """Where each stream lies, its value range, each atlas's height and its PNG bytes."""

    places: dict[str, atlas.Place]
    ranges: dict[str, tuple[float, float]]
    heights: list[int]
    pngs: list[bytes]


def encode_atlases(groups: list[StreamGroup], width: int = atlas.WIDTH,
                   max_height: int = atlas.MAX_HEIGHT) -> EncodedAtlases:
    ranges = value_ranges(groups)
    places, heights = atlas.plan([group.streams for group in groups], width, max_height)
    encoders = [PngRows(height, width) for height in heights]
    for group, group_places in reversed(list(zip(groups, places))):  # top rows first
        if group_places:
            _fill_group(group, group_places, ranges, encoders[group_places[0].atlas])
    by_key = {stream.key: place for group, group_places in zip(groups, places)
              for stream, place in zip(group.streams, group_places)}
    return EncodedAtlases(by_key, ranges, heights, [encoder.finish() for encoder in encoders])


def value_ranges(groups: list[StreamGroup]) -> dict[str, tuple[float, float]]:
    """Each stream's finite (lo, hi) over all its blocks."""
    seen = {s.key: atlas.ValueRange() for group in groups for s in group.streams}
    for group in groups:
        for _, values in group.blocks():
            for key, block_values in values.items():
                seen[key].add(block_values)
    return {key: value_range.bounds for key, value_range in seen.items()}


def _fill_group(group: StreamGroup, group_places: list[atlas.Place],
                ranges: dict[str, tuple[float, float]], encoder: PngRows) -> None:
    first = group_places[0]  # streams are placed upwards: the first is the lowest
    rows = encoder.open_down_to(first.row)
    shifted = {stream.key: dataclasses.replace(place, row=place.row - first.row)
               for stream, place in zip(group.streams, group_places)}
    for block, values in group.blocks():
        for key, block_values in values.items():
            lo, hi = ranges[key]
            atlas.write(rows, shifted[key], block, atlas.encode(np.ravel(block_values), lo, hi))
    shares_first_row = first.col > 0  # the group below ends in it
    encoder.encode_down_to(first.row + 1 if shares_first_row else first.row)


class PngRows:
    """An RGBA PNG of ``height`` rows encoded from the top row down (PNG order; row 0 is the
    bottom, as in Blender) while the rows below are still being written."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.low = height  # rows [low, top) are open (held, not yet encoded)
        self.top = height
        self.open = np.zeros((0, width, 4), np.uint8)
        self.compressor = zlib.compressobj(ZLIB_LEVEL)
        self.pieces: list[bytes] = []

    def open_down_to(self, row: int) -> np.ndarray:
        """The open rows, extended down to ``row``: an array whose index 0 is row ``row``."""
        if row < self.low:
            extended = np.zeros((self.top - row, self.width, 4), np.uint8)
            extended[self.low - row:] = self.open
            self.open, self.low = extended, row
        return self.open[row - self.low:]

    def encode_down_to(self, row: int) -> None:
        """Encode every open row at or above ``row``; later writes go below it."""
        row = max(row, self.low)
        for top in range(self.top, row, -PNG_ROWS_A_CHUNK):
            chunk = self.open[max(row, top - PNG_ROWS_A_CHUNK) - self.low:top - self.low][::-1]
            scanlines = np.zeros((len(chunk), 1 + self.width * 4), np.uint8)  # filter 0: none
            scanlines[:, 1:] = chunk.reshape(len(chunk), -1)
            self.pieces.append(self.compressor.compress(scanlines.data))
        self.open = self.open[:row - self.low].copy()  # the rest is freed
        self.top = row

    def finish(self) -> bytes:
        """The PNG file's bytes (every row still open encoded first)."""
        self.encode_down_to(0)
        self.pieces.append(self.compressor.flush())
        crc = zlib.crc32(b"IDAT")
        for piece in self.pieces:
            crc = zlib.crc32(piece, crc)
        header = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(
            ">IIBBBBB", self.width, self.height, 8, 6, 0, 0, 0))  # 8 bits, RGBA
        idat = struct.pack(">I", sum(len(piece) for piece in self.pieces)) + b"IDAT"
        data = b"".join([header, idat, *self.pieces, struct.pack(">I", crc & 0xFFFFFFFF),
                         _chunk(b"IEND", b"")])
        self.pieces.clear()
        return data


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
