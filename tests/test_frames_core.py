"""Frame ranges and held frames (core/frames.py): numpy only, no Blender."""

from __future__ import annotations

import numpy as np
import pytest

from nnvis_addon.core.frames import parse_frame_ranges, repeated_frames


@pytest.mark.parametrize("text,expected", [
    ("5", [5]),
    ("1-4", [1, 2, 3, 4]),
    ("1-3, 7,9-10", [1, 2, 3, 7, 9, 10]),
    ("3-5,4-6", [3, 4, 5, 6]),          # overlapping ranges: each frame once
])
def test_frame_ranges_name_the_frames(text, expected):
    assert parse_frame_ranges(text, 1, 100) == expected


@pytest.mark.parametrize("text,message", [
    ("", "is not N or N-M"),
    ("1-", "is not N or N-M"),
    ("a-3", "is not N or N-M"),
    ("1-2-3", "is not N or N-M"),
    ("9-2", "runs backwards"),
    ("0-3", "outside the animation's frames 1-100"),
    ("95-101", "outside the animation's frames 1-100"),
])
def test_bad_frame_ranges_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_frame_ranges(text, 1, 100)


def test_frame_ranges_without_an_animation_check_only_the_syntax():
    assert parse_frame_ranges("0-2") == [0, 1, 2]
    with pytest.raises(ValueError):
        parse_frame_ranges("x")


def test_a_frame_repeats_its_predecessor_only_when_nothing_animated_changes():
    frames = [1, 2, 3, 4, 5, 6, 8, 9]
    # epoch and a camera value per frame: 1-3 the same, 4 moves, 5-6 the same, 8 the same
    # values as 6 but 7 is not rendered here, 9 the same as 8.
    values = np.array([[0, 1], [0, 1], [0, 1], [0.5, 1], [1, 1], [1, 1], [1, 1], [1, 1]])
    assert repeated_frames(frames, values) == {2: 1, 3: 1, 6: 5, 9: 8}
    # A change in any one channel makes the frame new.
    values[2, 1] = 1.0001
    assert repeated_frames(frames, values) == {2: 1, 6: 5, 9: 8}


def test_nothing_animated_makes_every_following_frame_a_repeat():
    assert repeated_frames([3, 4, 5], np.zeros((3, 0))) == {4: 3, 5: 3}
    assert repeated_frames([7], np.zeros((1, 2))) == {}


def test_nan_values_are_never_taken_for_a_repeat():
    assert repeated_frames([1, 2], np.array([[np.nan], [np.nan]])) == {}
