"""Atlases filled group by group from the top row down and encoded as PNG (core/atlas_images.py):
the images are exactly the atlases written whole, and only one group's rows are held at a time."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nnvis_addon.core import atlas, atlas_images

WIDTH = 64


def _groups(rng, sizes):
    """Groups of streams ((lengths), blocks) with random values (some NaN), and their data."""
    groups, data = [], {}
    for g, (lengths, blocks) in enumerate(sizes):
        made = [atlas.Stream(f"g{g}/s{i}", length, blocks) for i, length in enumerate(lengths)]
        for stream in made:
            values = rng.normal(g, 1 + g, (stream.blocks, stream.length)).astype(np.float32)
            values[rng.random(values.shape) < 0.01] = np.nan
            data[stream.key] = values

        def blocks(made=made):
            for block in range(made[0].blocks):
                yield block, {s.key: data[s.key][block] for s in made}
        groups.append(atlas_images.StreamGroup(made, blocks))
    return groups, data


def _whole(groups, data, max_height):
    """The reference: every atlas held whole and written block by block."""
    places, heights = atlas.plan([g.streams for g in groups], WIDTH, max_height)
    images = [np.zeros((h, WIDTH, 4), np.uint8) for h in heights]
    for group, group_places in zip(groups, places):
        for stream, place in zip(group.streams, group_places):
            lo, hi = atlas.value_range(data[stream.key])
            for block in range(stream.blocks):
                atlas.write(images[place.atlas], place, block,
                            atlas.encode(data[stream.key][block], lo, hi))
    return images


def _decoded(png: bytes) -> np.ndarray:
    """A PNG's pixels with row 0 at the bottom, as Blender stores them."""
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGBA"
        return np.asarray(image)[::-1]


@pytest.mark.parametrize("seed", range(4))
def test_encoded_atlases_are_the_whole_atlases(monkeypatch, seed):
    monkeypatch.setattr(atlas, "PACKED_UP_TO", 300)  # so that some streams are row aligned
    rng = np.random.default_rng(seed)
    sizes = [([int(rng.integers(1, 400)) for _ in range(int(rng.integers(1, 4)))],
              int(rng.integers(1, 5))) for _ in range(12)]
    groups, data = _groups(rng, sizes)
    encoded = atlas_images.encode_atlases(groups, width=WIDTH, max_height=40)
    expected = _whole(groups, data, max_height=40)
    assert len(encoded.pngs) == len(expected) > 1
    kinds = {place.block_rows > 0 for place in encoded.places.values()}
    assert kinds == {True, False}  # both packed and row-aligned streams were tried
    for png, image, height in zip(encoded.pngs, expected, encoded.heights):
        assert _decoded(png).shape == (height, WIDTH, 4)
        np.testing.assert_array_equal(_decoded(png), image)
    for key, values in data.items():  # and what a shader decodes is the data
        place, (lo, hi) = encoded.places[key], encoded.ranges[key]
        image = _decoded(encoded.pngs[place.atlas])
        for block in range(values.shape[0]):
            shown, invalid = atlas.decode(image, place, lo, hi, sample=block, epoch=0, epochs=1,
                                          index=np.arange(values.shape[1]))
            np.testing.assert_array_equal(invalid, np.isnan(values[block]))
            assert np.allclose(shown[~invalid], values[block][~invalid],
                               atol=atlas.quantisation_step(lo, hi))


def test_only_the_rows_of_one_group_are_held(monkeypatch):
    """Filling a group opens its rows and no more: the held rows never exceed the biggest
    group's rows plus the row it shares with the group below."""
    rng = np.random.default_rng(7)
    groups, _ = _groups(rng, [([WIDTH * 2 * 10], 3) for _ in range(6)])  # 30 rows a group
    held = []
    open_down_to = atlas_images.PngRows.open_down_to

    def watching(self, row):
        rows = open_down_to(self, row)
        held.append(len(self.open))
        return rows
    monkeypatch.setattr(atlas_images.PngRows, "open_down_to", watching)
    encoded = atlas_images.encode_atlases(groups, width=WIDTH, max_height=1000)
    assert encoded.heights == [180] and len(held) == 6
    assert max(held) <= 31


def test_a_png_of_no_rows_and_an_empty_group():
    groups = [atlas_images.StreamGroup([], lambda: iter(())),
              atlas_images.StreamGroup([atlas.Stream("x", 3, 1)],
                                       lambda: iter([(0, {"x": np.array([1.0, 2.0, 3.0])})]))]
    encoded = atlas_images.encode_atlases(groups, width=WIDTH, max_height=10)
    assert encoded.heights == [1] and encoded.places["x"].row == 0
    assert _decoded(encoded.pngs[0]).shape == (1, WIDTH, 4)
