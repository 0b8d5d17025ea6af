"""bundle_edges against saved outputs: tests/data/bundling_reference.npz holds six fixed random
inputs (64 edges each) and the curves the implementation gave for them before `_bundle_rows` was
cut into named steps (bundling.py as of commit fae6272). Restructuring the loop must keep every
bit; a change that is meant to alter the curves has to say so by re-making that file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnvis_addon.core.bundling import bundle_edges, straight_curves

REFERENCE = Path(__file__).parent / "data" / "bundling_reference.npz"

# case name -> keyword arguments it was bundled with. Together they take every branch of the
# loop: one plane per sample index ("pair") and uniform x cells ("planes"), with and without
# worker threads, without smoothing, reversed along x, and weights near float32's limit (some 0).
CASES = {
    "pair": {},
    "pair_threads": dict(threads=3, iterations=5, grid_resolution=24),
    "reversed_unsmoothed": dict(smoothing=0.0, points_per_edge=9, grid_resolution=32),
    "planes": dict(iterations=6, grid_resolution=20),
    "planes_threads": dict(threads=2, smoothing_passes=0, grid_resolution=28),
    "huge_weights": dict(iterations=8, strength=1.5, initial_bandwidth=0.1, grid_resolution=40),
}


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {name: data[name] for name in data.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_curves_match_saved_outputs_bit_for_bit(reference, name):
    start, end = reference[f"{name}_start"], reference[f"{name}_end"]
    weights = reference.get(f"{name}_weights")
    expected = reference[f"{name}_curves"]
    # the saved case really bundles (a straight result would not test the loop)
    assert np.abs(expected - straight_curves(start, end, expected.shape[1])).max() > 0.1
    curves = bundle_edges(start, end, weights, **CASES[name])
    assert curves.dtype == expected.dtype and curves.shape == expected.shape
    assert curves.tobytes() == expected.tobytes()


def test_every_saved_case_is_checked(reference):
    saved = {key.rsplit("_", 1)[0] for key in reference if key.endswith("_curves")}
    assert saved == set(CASES)
