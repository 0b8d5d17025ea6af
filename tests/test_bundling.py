"""3D KDE edge bundling (nnvis_addon.core.bundling; numpy only): invariants the Blender side relies
on (exact end points, monotone along the layer axis, deterministic, no NaN) and how much it
bundles (ink ratio)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnvis_addon.core.bundling import (
    DEFAULT_PARAMS,
    BundlingParams,
    bundle_edges,
    ink,
    ink_ratio,
    straight_curves,
)


def grid_layer(rows: int, cols: int, x: float, span: float = 2.0) -> np.ndarray:
    a, b = np.meshgrid(np.linspace(-span / 2, span / 2, rows),
                       np.linspace(-span / 2, span / 2, cols), indexing="ij")
    return np.stack([np.full(a.size, x), a.ravel(), b.ravel()], axis=1).astype(np.float32)


def fully_connected(src: np.ndarray, tgt: np.ndarray, seed: int = 0):
    start = np.repeat(src, len(tgt), axis=0)
    end = np.tile(tgt, (len(src), 1))
    weights = np.random.default_rng(seed).normal(size=len(start)).astype(np.float32)
    return start, end, weights


@pytest.fixture(scope="module")
def pair():
    """256 sources on a 16 x 16 grid at x = 0 (2 x 2 units), 128 targets on a 16 x 8 grid at
    x = 1.5, random normal weights (seed 0): 32,768 edges."""
    return fully_connected(grid_layer(16, 16, 0.0), grid_layer(16, 8, 1.5))


@pytest.fixture(scope="module")
def bundled(pair):
    return bundle_edges(*pair)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def check_invariants(curves, start, end, points):
    start = np.asarray(start, dtype=np.float32)
    end = np.asarray(end, dtype=np.float32)
    assert curves.dtype == np.float32 and curves.shape == (len(start), points, 3)
    assert np.all(np.isfinite(curves))
    assert same_bits(curves[:, 0], start) and same_bits(curves[:, -1], end)
    straight = straight_curves(start, end, points)
    assert same_bits(curves[..., 0], straight[..., 0])  # x never moves


# --------------------------------------------------------------------------- straight curves


def test_straight_curves_endpoints_and_spacing():
    start = np.array([[0, 0, 0], [1, 2, 3]], dtype=np.float32)
    end = np.array([[1.5, 1, -1], [2.5, 0.1, 0.3]], dtype=np.float32)
    curves = straight_curves(start, end, 5)
    assert curves.shape == (2, 5, 3) and curves.dtype == np.float32
    assert same_bits(curves[:, 0], start) and same_bits(curves[:, -1], end)
    expected = start[:, None, :] + np.linspace(0, 1, 5)[None, :, None] * (end - start)[:, None]
    np.testing.assert_allclose(curves, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        straight_curves(start, end, 1)


# --------------------------------------------------------------------------- bundling


def test_bundled_pair_invariants(pair, bundled):
    start, end, _ = pair
    check_invariants(bundled, start, end, DEFAULT_PARAMS.points_per_edge)
    assert np.all(np.diff(bundled[..., 0], axis=1) > 0)  # strictly monotone along x
    # and the curves really moved
    assert np.abs(bundled - straight_curves(start, end, 16)).max() > 0.1


def test_default_ink_ratio_is_bundled_but_traceable(pair, bundled):
    start, end, _ = pair
    ratio = ink_ratio(bundled, straight_curves(start, end, DEFAULT_PARAMS.points_per_edge))
    assert 0.15 <= ratio <= 0.5, ratio
    assert 0.2 <= ratio <= 0.4, ratio  # the documented aim


def test_deterministic_and_thread_independent(pair, bundled):
    start, end, weights = pair
    assert same_bits(bundle_edges(start, end, weights), bundled)
    assert same_bits(bundle_edges(start, end, weights, threads=1), bundled)
    assert same_bits(bundle_edges(start, end, weights, threads=2), bundled)
    assert same_bits(bundle_edges(start, end, weights, threads=3), bundled)


def test_params_object_and_keyword_overrides(pair):
    start, end, weights = pair
    sub = slice(0, 2048)
    params = BundlingParams(points_per_edge=8, iterations=5)
    a = bundle_edges(start[sub], end[sub], weights[sub], params=params)
    b = bundle_edges(start[sub], end[sub], weights[sub], points_per_edge=8, iterations=5)
    assert a.shape == (2048, 8, 3) and same_bits(a, b)
    c = bundle_edges(start[sub], end[sub], weights[sub], params=params, iterations=6)
    assert not same_bits(a, c)


@pytest.mark.parametrize("kwargs", [dict(strength=0.0), dict(iterations=0),
                                    dict(initial_bandwidth=0.0)])
def test_no_bundling_gives_straight_curves(pair, kwargs):
    start, end, weights = pair
    curves = bundle_edges(start[:500], end[:500], weights[:500], **kwargs)
    assert same_bits(curves, straight_curves(start[:500], end[:500], 16))


def test_reversed_direction_stays_monotone(pair):
    start, end, weights = pair
    curves = bundle_edges(end[:4096], start[:4096], weights[:4096])
    check_invariants(curves, end[:4096], start[:4096], 16)
    assert np.all(np.diff(curves[..., 0], axis=1) < 0)


def test_edges_between_different_planes(pair):
    """Not a single layer pair: start and end x vary per edge (generic grid along x)."""
    start, end, weights = (a[:3000].copy() for a in pair)
    start[::2, 0] = 0.5
    end[::3, 0] = 2.5
    curves = bundle_edges(start, end, weights)
    check_invariants(curves, start, end, 16)
    assert np.all(np.diff(curves[..., 0], axis=1) > 0)
    assert np.abs(curves - straight_curves(start, end, 16)).max() > 0.05
    assert same_bits(bundle_edges(start, end, weights, threads=1), curves)
    assert same_bits(bundle_edges(start, end, weights, threads=2), curves)


def test_progress_reports_fractions(pair):
    start, end, weights = pair
    seen = []
    bundle_edges(start[:300], end[:300], weights[:300], iterations=4, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 4
    assert all(0.0 <= f <= 1.0 for f in seen)
    seen.clear()
    bundle_edges(start[:0], end[:0], weights[:0], progress=seen.append)
    assert seen == [1.0]


def test_float64_input_and_no_weights(pair):
    start, end, _ = pair
    curves = bundle_edges(start[:1000].astype(np.float64), end[:1000].astype(np.float64))
    check_invariants(curves, start[:1000], end[:1000], 16)


# --------------------------------------------------------------------------- degenerate input


def test_zero_edges():
    curves = bundle_edges(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    assert curves.shape == (0, 16, 3) and curves.dtype == np.float32


def test_one_edge():
    start = np.array([[0.0, 0.2, -0.3]], dtype=np.float32)
    end = np.array([[1.5, -0.4, 0.7]], dtype=np.float32)
    curves = bundle_edges(start, end, np.array([0.8]))
    check_invariants(curves, start, end, 16)
    np.testing.assert_allclose(curves, straight_curves(start, end, 16), atol=0.05)


def test_all_start_points_equal():
    end = grid_layer(10, 10, 1.5)
    start = np.zeros_like(end)
    curves = bundle_edges(start, end, np.linspace(-1, 1, len(end)))
    check_invariants(curves, start, end, 16)


def test_all_points_equal_in_yz():
    start = np.zeros((50, 3), dtype=np.float32)
    end = np.tile(np.array([[1.5, 0.0, 0.0]], dtype=np.float32), (50, 1))
    curves = bundle_edges(start, end)
    assert same_bits(curves, straight_curves(start, end, 16))


def test_all_points_identical():
    start = np.ones((7, 3), dtype=np.float32)
    curves = bundle_edges(start, start.copy())
    assert np.all(curves == 1.0)


@pytest.mark.parametrize("spread", [1.1754944e-38, 1e-44, 1e-20])
def test_edges_spread_across_almost_nothing(spread):
    """A y/z spread near float32's smallest numbers: the derivative-of-Gaussian would overflow
    float32 (1 / bandwidth), which once gave NaN curves."""
    start = np.array([[0, 0, 0], [0, spread, 0]], dtype=np.float32)
    end = np.array([[1.5, 0, spread], [1.5, spread, spread]], dtype=np.float32)
    curves = bundle_edges(start, end, np.array([1.0, 0.5]), iterations=6, grid_resolution=24)
    check_invariants(curves, start, end, 16)


def test_zero_weights(pair):
    start, end, weights = (a[:2000] for a in pair)
    curves = bundle_edges(start, end, np.zeros(2000))
    assert same_bits(curves, straight_curves(start, end, 16))
    partly = weights.copy()
    partly[::2] = 0.0
    check_invariants(bundle_edges(start, end, partly), start, end, 16)


def test_two_points_per_edge(pair):
    start, end, weights = (a[:100] for a in pair)
    assert same_bits(bundle_edges(start, end, weights, points_per_edge=2),
                     straight_curves(start, end, 2))


@pytest.mark.parametrize("bad", [
    dict(start=np.zeros((3, 2))),
    dict(end=np.zeros((4, 3))),
    dict(weights=np.zeros(4)),
    dict(start=np.full((3, 3), np.nan)),
    dict(weights=np.array([1.0, np.inf, 0.0])),
    dict(points_per_edge=1),
    dict(iterations=-1),
    dict(smoothing=1.5),
    dict(grid_resolution=2),
])
def test_invalid_input(bad):
    kwargs = {"start": np.zeros((3, 3)), "end": np.ones((3, 3)), "weights": np.ones(3), **bad}
    with pytest.raises(ValueError):
        bundle_edges(kwargs.pop("start"), kwargs.pop("end"), kwargs.pop("weights"), **kwargs)


coordinate = st.floats(-3, 3, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 12), st.data())
def test_random_small_inputs(n_edges, data):
    def points(x):
        rows = data.draw(st.lists(st.tuples(coordinate, coordinate), min_size=n_edges,
                                  max_size=n_edges))
        out = np.zeros((n_edges, 3), dtype=np.float32)
        out[:, 0] = x
        if n_edges:
            out[:, 1:] = np.array(rows, dtype=np.float32)
        return out
    x1 = data.draw(st.sampled_from([1.5, -1.0, 0.25]))
    start, end = points(0.0), points(x1)
    weights = np.array(data.draw(st.lists(st.floats(-2, 2, width=32), min_size=n_edges,
                                          max_size=n_edges)), dtype=np.float32)
    curves = bundle_edges(start, end, weights, iterations=6, grid_resolution=24)
    check_invariants(curves, start, end, 16)
    steps = np.diff(curves[..., 0], axis=1)
    assert np.all(steps > 0) if x1 > 0 else np.all(steps < 0)


# --------------------------------------------------------------------------- ink


def test_ink_of_simple_lines():
    line = straight_curves(np.array([[0, 0, 0]]), np.array([[1, 0, 0]]), 4)
    # 10 voxels along x over [0, 1]; the far end point lands in an 11th one
    assert ink(line, grid=10) == 11
    assert ink(np.concatenate([line, line]), grid=10) == 11
    assert ink(line[:0], grid=10) == 0
    diagonal = straight_curves(np.array([[0, 0, 0]]), np.array([[1, 1, 0]]), 2)
    assert 11 <= ink(diagonal, grid=10) <= 21


def test_ink_ratio_identity_and_bundles(pair):
    start, end, _ = pair
    straight = straight_curves(start[:500], end[:500], 16)
    assert ink_ratio(straight, straight) == 1.0
    collapsed = np.repeat(straight[:1], 500, axis=0)
    assert ink_ratio(collapsed, straight) < 0.05
