"""The value atlas (core/atlas.py): quantisation, placement and the shaders' lookup in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from nnvis_addon.core import atlas


def _fill(streams, data, width=atlas.WIDTH, max_height=atlas.MAX_HEIGHT):
    groups, heights = atlas.plan([[stream] for stream in streams], width, max_height)
    places = [group[0] for group in groups]
    images = [np.zeros((h, width, 4), np.uint8) for h in heights]
    ranges = []
    for place, values in zip(places, data):
        lo, hi = atlas.value_range(values)
        ranges.append((lo, hi))
        for block, block_values in enumerate(values):
            atlas.write(images[place.atlas], place, block, atlas.encode(block_values, lo, hi))
    return places, images, ranges


def test_values_come_back_within_half_a_step_and_nan_is_invalid():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 3, (6, 1001)).astype(np.float32)
    values[2, 5] = np.nan
    values[4, 7] = -np.inf
    stream = atlas.Stream("layer", 1001, 6)
    (place,), (image,), ((lo, hi),) = _fill([stream], [values])
    step = atlas.quantisation_step(lo, hi)
    index = np.arange(1001)
    for block in range(6):
        decoded, invalid = atlas.dequantise(atlas.read(image, place, block, index), lo, hi)
        finite = np.isfinite(values[block])
        assert np.array_equal(invalid, ~finite)
        rounding = 4 * np.finfo(np.float32).eps * max(abs(lo), abs(hi))  # float32 arithmetic
        assert np.all(np.abs(decoded[finite] - values[block][finite]) <= step * 0.5 + rounding)
    assert lo == pytest.approx(np.nanmin(values[np.isfinite(values)]))


def test_constant_and_all_invalid_streams():
    codes = atlas.encode(np.full(4, 2.5, np.float32), 2.5, 2.5)
    assert np.all(codes == 0)
    assert atlas.dequantise(codes, 2.5, 2.5)[0].tolist() == [2.5] * 4
    assert atlas.value_range([np.array([np.nan, np.inf])]) == (0.0, 0.0)


def test_small_streams_pack_end_to_end_and_big_ones_start_on_rows():
    width = 64
    small = [atlas.Stream("a", 5, 3), atlas.Stream("b", 100, 2)]
    big = atlas.Stream("c", 2 * (atlas.PACKED_UP_TO // 3), 4)   # over PACKED_UP_TO pixels in all
    ((a, b, c),), heights = atlas.plan([[*small, big]], width, max_height=10 ** 7)
    assert (a.row, a.col, a.block_rows, a.block_pixels) == (0, 0, 0, 3)
    assert (b.row, b.col) == (0, 9)                      # right after a's 3 x 3 pixels
    assert (c.col, c.block_pixels) == (0, 0) and c.row == 2 and c.block_rows > 0  # b ends in row 1
    assert heights == [2 + 4 * c.block_rows]


def test_full_atlas_starts_another_and_lookups_stay_exact():
    rng = np.random.default_rng(1)
    streams = [atlas.Stream(f"s{i}", 300, 5) for i in range(8)]
    data = [rng.random((5, 300), np.float32) for _ in streams]
    places, images, ranges = _fill(streams, data, width=128, max_height=12)
    assert len(images) > 1 and {p.atlas for p in places} == set(range(len(images)))
    for place, values, (lo, hi) in zip(places, data, ranges):
        image = images[place.atlas]
        for epoch in (0.0, 1.25, 3.5, 4.0, 9.0, -2.0):
            shown, invalid = atlas.decode(image, place, lo, hi, sample=0, epoch=epoch, epochs=5,
                                          index=np.arange(300))
            lower, upper, weight = atlas.blend_epochs(epoch, 5, step=False)
            expected = values[lower] + weight * (values[upper] - values[lower])
            assert not invalid.any()
            assert np.allclose(shown, expected, atol=atlas.quantisation_step(lo, hi))


def test_samples_are_blocks_of_their_own_and_step_holds_the_epoch():
    values = np.arange(2 * 3 * 4, dtype=np.float32).reshape(6, 4)  # 2 samples x 3 epochs
    (place,), (image,), ((lo, hi),) = _fill([atlas.Stream("x", 4, 6)], [values])
    shown, _ = atlas.decode(image, place, lo, hi, sample=1, epoch=1.5, epochs=3,
                            index=np.arange(4), step=True)
    assert np.allclose(shown, values[3 + 1], atol=1e-3)
    shown, _ = atlas.decode(image, place, lo, hi, sample=1, epoch=1.5, epochs=3, index=np.arange(4))
    assert np.allclose(shown, (values[4] + values[5]) / 2, atol=1e-3)


def test_an_invalid_epoch_shows_only_while_mixed_in():
    values = np.array([[1.0, 2.0], [np.nan, 4.0]], np.float32)
    (place,), (image,), ((lo, hi),) = _fill([atlas.Stream("x", 2, 2)], [values])
    for epoch, expected in ((0.0, [False, False]), (0.5, [True, False]), (1.0, [True, False])):
        _, invalid = atlas.decode(image, place, lo, hi, 0, epoch, 2, np.arange(2))
        assert invalid.tolist() == expected


def test_a_block_too_big_for_any_atlas_is_refused():
    with pytest.raises(atlas.AtlasTooLarge, match="fewer epochs"):
        atlas.plan([[atlas.Stream("huge", 2 * 64 * 20, 1)]], width=64, max_height=10)


def test_a_group_stays_in_one_atlas():
    group = [atlas.Stream("cells", 64 * 2 * 3, 1), atlas.Stream("max", 64 * 2 * 3, 1)]
    ((first,), second_group), _ = atlas.plan([[atlas.Stream("a", 64 * 2 * 3, 1)], group],
                                             width=64, max_height=7)
    assert first.atlas == 0 and {p.atlas for p in second_group} == {1}
