"""Edges from Keras weights and their reduction, checked against explicit loops over small
random arrays (nnvis_addon.core.edges; numpy only)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnvis_addon.core.edges import (
    Edges,
    cell_coordinates,
    conv_edges,
    dense_edges,
    display_budget,
    pool_edges,
    reduce_edges,
    spatial_to_dense_edges,
)


def as_dict(edges: Edges) -> dict[tuple[int, int], float]:
    out = {}
    for s, t, w in zip(edges.source.tolist(), edges.target.tolist(), edges.weight.tolist()):
        assert (s, t) not in out, "duplicate edge"
        out[(s, t)] = w
    return out


def check_types(edges: Edges) -> None:
    assert edges.source.dtype == np.int32 and edges.target.dtype == np.int32
    assert edges.weight.dtype == np.float32
    assert edges.source.shape == edges.target.shape == edges.weight.shape
    if len(edges):
        assert 0 <= edges.source.min() and edges.source.max() < edges.n_source
        assert 0 <= edges.target.min() and edges.target.max() < edges.n_target


# ------------------------------------------------------------------------------ builders


def test_dense_edges_match_kernel_entries():
    kernel = np.random.default_rng(1).normal(size=(5, 7)).astype(np.float32)
    edges = dense_edges(kernel)
    check_types(edges)
    assert len(edges) == 35 and (edges.n_source, edges.n_target) == (5, 7)
    assert edges.source_unit == edges.target_unit == "neuron" and edges.dense
    got = as_dict(edges)
    for i in range(5):
        for o in range(7):
            assert got[(i, o)] == kernel[i, o]
    # source-major order
    for e in range(len(edges)):
        assert (edges.source[e], edges.target[e]) == divmod(e, 7)


def test_dense_edges_float64_kernel_becomes_float32():
    kernel = np.random.default_rng(2).normal(size=(3, 4))
    edges = dense_edges(kernel)
    assert edges.weight.dtype == np.float32
    np.testing.assert_array_equal(edges.weight, kernel.astype(np.float32).ravel())


def test_dense_edges_rejects_other_shapes():
    with pytest.raises(ValueError):
        dense_edges(np.zeros((2, 3, 4)))


def reference_channel_sums(kernel, H, W, C):
    """Explicit loops: Keras Flatten index (h*W + w)*C + c."""
    units = kernel.shape[1]
    strength = np.zeros((C, units))
    total = np.zeros((C, units))
    for h in range(H):
        for w in range(W):
            for c in range(C):
                row = (h * W + w) * C + c
                for u in range(units):
                    strength[c, u] += abs(float(kernel[row, u]))
                    total[c, u] += float(kernel[row, u])
    return strength, total


def test_spatial_to_dense_aggregates_per_channel():
    H, W, C, U = 3, 4, 5, 6
    kernel = np.random.default_rng(3).normal(size=(H * W * C, U)).astype(np.float32)
    edges = spatial_to_dense_edges(kernel, (H, W, C))
    check_types(edges)
    assert len(edges) == C * U and (edges.n_source, edges.n_target) == (C, U)
    assert edges.source_unit == "channel" and edges.target_unit == "neuron"
    strength, total = reference_channel_sums(kernel, H, W, C)
    got = as_dict(edges)
    for c in range(C):
        for u in range(U):
            expected = strength[c, u] if total[c, u] >= 0 else -strength[c, u]
            assert got[(c, u)] == pytest.approx(expected, rel=1e-6)


def test_spatial_to_dense_zero_sum_is_positive():
    H, W, C = 1, 2, 2
    kernel = np.array([[1.0, 2.0], [3.0, -4.0],      # h=0 w=0: c=0, c=1
                       [-1.0, -2.0], [-3.0, 5.0]],   # h=0 w=1: c=0, c=1
                      dtype=np.float32)
    got = as_dict(spatial_to_dense_edges(kernel, (H, W, C)))
    assert got[(0, 0)] == 2.0     # 1 - 1 = 0 -> +
    assert got[(0, 1)] == 4.0     # 2 - 2 = 0 -> +
    assert got[(1, 0)] == 6.0     # 3 - 3 = 0 -> +
    assert got[(1, 1)] == 9.0     # -4 + 5 > 0


def test_spatial_to_dense_per_cell_uses_flatten_order():
    H, W, C, U = 2, 3, 4, 5
    kernel = np.random.default_rng(4).normal(size=(H * W * C, U)).astype(np.float32)
    edges = spatial_to_dense_edges(kernel, (H, W, C), per_cell=True)
    check_types(edges)
    assert len(edges) == H * W * C * U and edges.source_unit == "cell"
    got = as_dict(edges)
    for h in range(H):
        for w in range(W):
            for c in range(C):
                cell = (h * W + w) * C + c
                hh, ww, cc = cell_coordinates(cell, (H, W, C))
                assert (hh, ww, cc) == (h, w, c)
                for u in range(U):
                    assert got[(cell, u)] == kernel[cell, u]
    # the same order as numpy's (and Keras') flatten of a channels-last map
    fmap = np.arange(H * W * C).reshape(H, W, C)
    assert fmap.reshape(-1)[7] == 7 and tuple(cell_coordinates(7, (H, W, C))) == (0, 1, 3)


def test_spatial_to_dense_checks_feature_count():
    with pytest.raises(ValueError):
        spatial_to_dense_edges(np.zeros((10, 3)), (2, 2, 3))


def test_spatial_to_dense_accepts_1d_maps():
    L, C, U = 4, 3, 2
    kernel = np.random.default_rng(5).normal(size=(L * C, U)).astype(np.float32)
    strength, total = reference_channel_sums(kernel, 1, L, C)
    got = as_dict(spatial_to_dense_edges(kernel, (L, C)))
    for c in range(C):
        for u in range(U):
            assert abs(got[(c, u)]) == pytest.approx(strength[c, u], rel=1e-6)
            assert (got[(c, u)] < 0) == (total[c, u] < 0)


@pytest.mark.parametrize("shape", [(3, 3, 4, 5), (5, 4, 6), (2, 2, 2, 3, 4)])
def test_conv_edges_l2_norm_and_sign(shape):
    kernel = np.random.default_rng(6).normal(size=shape).astype(np.float32)
    edges = conv_edges(kernel)
    check_types(edges)
    n_in, n_out = shape[-2:]
    assert len(edges) == n_in * n_out and edges.source_unit == edges.target_unit == "channel"
    got = as_dict(edges)
    spatial = list(np.ndindex(*shape[:-2]))
    for i in range(n_in):
        for o in range(n_out):
            squares = sum(float(kernel[pos + (i, o)]) ** 2 for pos in spatial)
            total = sum(float(kernel[pos + (i, o)]) for pos in spatial)
            expected = np.sqrt(squares) * (1 if total >= 0 else -1)
            assert got[(i, o)] == pytest.approx(expected, rel=1e-6)


def test_conv_edges_zero_sum_positive_and_rejects_dense():
    kernel = np.zeros((2, 1, 1), dtype=np.float32)
    kernel[:, 0, 0] = [3.0, -3.0]
    assert conv_edges(kernel).weight[0] == pytest.approx(np.sqrt(18.0))
    with pytest.raises(ValueError):
        conv_edges(np.zeros((4, 5)))


def test_pool_edges():
    edges = pool_edges(4)
    check_types(edges)
    assert edges.source.tolist() == edges.target.tolist() == [0, 1, 2, 3]
    assert edges.weight.tolist() == [1.0] * 4 and edges.n_source == edges.n_target == 4
    assert edges.source_unit == "channel"
    assert len(pool_edges(0)) == 0


def test_edges_validation():
    with pytest.raises(ValueError):
        Edges(np.zeros(3), np.zeros(2), np.zeros(3), 1, 1)
    with pytest.raises(ValueError):
        Edges(np.zeros(1), np.zeros(1), np.zeros(1), 1, 1, source_unit="pixel")
    with pytest.raises(ValueError):
        Edges(np.zeros(2), np.zeros(2), np.zeros(2), 1, 1, dense=True)
    e = Edges([0, 1], [1, 0], [-2.0, 0.0], 2, 2)
    assert e.strength.tolist() == [2.0, 0.0] and e.sign.tolist() == [-1, 1]
    whole = Edges([0], [0], [1.0], 1, 1, "layer", "layer")  # a layer drawn as one unit
    assert whole.source.dtype == np.int32 and whole.source_unit == "layer"


def test_endpoints():
    e = Edges([0, 1, 1], [2, 0, 1], [1.0, 1.0, 1.0], 2, 3)
    src = np.array([[0, 0, 0], [0, 1, 0]], dtype=np.float32)
    tgt = np.array([[1.5, 0, 0], [1.5, 0, 1], [1.5, 1, 1]], dtype=np.float32)
    start, end = e.endpoints(src, tgt)
    assert start.tolist() == [[0, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert end.tolist() == [[1.5, 1, 1], [1.5, 0, 0], [1.5, 0, 1]]
    with pytest.raises(ValueError):
        e.endpoints(tgt, src)


# ------------------------------------------------------------------------------ reduction


def reference_reduce(edges: Edges, cap=None, top_k=None, threshold=None, score=None) -> list[int]:
    """Plain Python: the documented rules, ties to the lower edge index; ``score`` ranks the
    edges (default |w|), the threshold always compares |w|."""
    a = np.abs(edges.weight) if score is None else np.asarray(score, np.float32)
    w = np.abs(edges.weight)
    groups = defaultdict(list)
    for i, t in enumerate(edges.target.tolist()):
        groups[t].append(i)
    keep, strongest = set(), set()
    limit = None if threshold is None else np.float32(threshold)
    for members in groups.values():
        order = sorted(members, key=lambda i: (-a[i], i))
        strongest.add(order[0])
        for i in (order if top_k is None else order[:top_k]):
            if limit is None or w[i] >= limit:
                keep.add(i)
        keep.add(order[0])
    if cap is not None and len(keep) > cap:
        rest = sorted(keep - strongest, key=lambda i: (-a[i], i))
        keep = strongest | set(rest[:max(0, cap - len(strongest))])
    return sorted(keep)


def kept_indices(edges: Edges, reduced: Edges) -> list[int]:
    """Map kept edges back to input indices (edges are unique (source, target) pairs here)."""
    position = {(s, t): i for i, (s, t) in enumerate(zip(edges.source.tolist(),
                                                         edges.target.tolist()))}
    return [position[(s, t)] for s, t in zip(reduced.source.tolist(), reduced.target.tolist())]


def shuffled(edges: Edges, seed: int) -> Edges:
    order = np.random.default_rng(seed).permutation(len(edges))
    return Edges(edges.source[order], edges.target[order], edges.weight[order],
                 edges.n_source, edges.n_target)


def shuffled_with(edges: Edges, score: np.ndarray, seed: int) -> tuple[Edges, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(edges))
    return shuffled(edges, seed), score[order]


CASES = [dict(top_k=3), dict(threshold=1.0), dict(cap=100), dict(cap=5),
         dict(top_k=4, threshold=0.8), dict(top_k=6, threshold=0.5, cap=60),
         dict(threshold=10.0), dict(top_k=1), dict(top_k=1000), dict(cap=0),
         dict(threshold=0.0, cap=10_000)]


@pytest.mark.parametrize("kwargs", CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_reduce_matches_reference_dense_and_shuffled(kwargs, ties):
    rng = np.random.default_rng(7)
    weights = rng.integers(-3, 4, size=(40, 25)) if ties else rng.normal(size=(40, 25))
    edges = dense_edges(weights.astype(np.float32))
    kwargs = {"cap": None, **kwargs}
    for candidate in (edges, shuffled(edges, 8)):
        reduced = reduce_edges(candidate, **kwargs)
        check_types(reduced)
        assert kept_indices(candidate, reduced) == reference_reduce(candidate, **kwargs)
        assert (reduced.n_source, reduced.n_target) == (40, 25) and not reduced.dense


@pytest.mark.parametrize("kwargs", CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_reduce_by_score_matches_reference(kwargs, ties):
    """A score (a contribution |a * w|) ranks the edges; the threshold still compares |w|."""
    rng = np.random.default_rng(17)
    weights = rng.integers(-3, 4, size=(40, 25)) if ties else rng.normal(size=(40, 25))
    activity = rng.integers(0, 3, size=40) if ties else rng.random(40)
    edges = dense_edges(weights.astype(np.float32))
    score = (activity[:, None] * np.abs(weights)).reshape(-1).astype(np.float32)
    kwargs = {"cap": None, **kwargs}
    for candidate, ranks in ((edges, score), shuffled_with(edges, score, 8)):
        reduced = reduce_edges(candidate, score=ranks, **kwargs)
        check_types(reduced)
        assert kept_indices(candidate, reduced) == reference_reduce(candidate, score=ranks,
                                                                    **kwargs)


def test_score_changes_which_edges_a_cap_keeps():
    """Source 0 has the biggest weights but no activity: ranked by |a * w| its edges go."""
    kernel = np.array([[9.0, -9.0], [1.0, 2.0], [-3.0, 1.5]], np.float32)
    edges = dense_edges(kernel)
    activity = np.array([0.0, 1.0, 1.0], np.float32)
    by_weight = reduce_edges(edges, cap=2)
    by_score = reduce_edges(edges, cap=2, score=activity[edges.source] * edges.strength)
    assert list(zip(by_weight.source.tolist(), by_weight.target.tolist())) == [(0, 0), (0, 1)]
    assert list(zip(by_score.source.tolist(), by_score.target.tolist())) == [(1, 1), (2, 0)]
    with pytest.raises(ValueError, match="one value per edge"):
        reduce_edges(edges, score=np.ones(5))
    with pytest.raises(ValueError, match=">= 0"):
        reduce_edges(edges, score=np.full(6, np.nan))
    with pytest.raises(ValueError, match=">= 0"):
        reduce_edges(edges, score=-np.ones(6))


def test_display_budget_grows_with_the_pair_within_its_bounds():
    from nnvis_addon.core import edges
    assert display_budget(32, 10) == 54  # round(3 * sqrt(320))
    assert display_budget(1, 8) == edges.DISPLAY_MIN_EDGES
    assert display_budget(512, 2048) == edges.DISPLAY_MAX_EDGES
    sizes = [(1, 1), (8, 16), (16, 32), (64, 64), (128, 256), (2048, 1000)]
    budgets = [display_budget(a, b) for a, b in sizes]
    assert budgets == sorted(budgets)
    assert all(edges.DISPLAY_MIN_EDGES <= b <= edges.DISPLAY_MAX_EDGES
               for b in budgets)
    assert display_budget(16, 32) == display_budget(32, 16)


def test_top_k_keeps_every_target_connected():
    kernel = np.random.default_rng(9).normal(size=(300, 120)).astype(np.float32)
    edges = dense_edges(kernel)
    for k in (1, 2, 8):
        reduced = reduce_edges(edges, cap=None, top_k=k, threshold=2.5)
        counts = np.bincount(reduced.target, minlength=120)
        assert counts.min() >= 1 and counts.max() <= k
        # every target still holds its strongest edge
        best = np.abs(kernel).argmax(axis=0)
        assert set(zip(best.tolist(), range(120))) <= set(zip(reduced.source.tolist(),
                                                                reduced.target.tolist()))
        # below the threshold only where it is the target's strongest edge
        weak = np.abs(reduced.weight) < np.float32(2.5)
        assert np.all(reduced.source[weak] == best[reduced.target[weak]])


def test_threshold_alone_keeps_strongest_even_below_threshold():
    kernel = np.full((4, 3), 0.1, dtype=np.float32)
    kernel[2, 0] = -5.0
    reduced = reduce_edges(dense_edges(kernel), cap=None, threshold=1.0)
    assert list(zip(reduced.source.tolist(), reduced.target.tolist())) == [(0, 1), (0, 2),
                                                                          (2, 0)]
    assert reduced.weight.tolist() == pytest.approx([0.1, 0.1, -5.0])


def test_top_k_with_threshold_drops_weak_edges():
    kernel = np.random.default_rng(10).normal(size=(50, 20)).astype(np.float32)
    reduced = reduce_edges(dense_edges(kernel), cap=None, top_k=5, threshold=1.5)
    strength = np.abs(reduced.weight)
    best = np.abs(kernel).max(axis=0)
    for t in range(20):
        mine = strength[reduced.target == t]
        assert 1 <= mine.size <= 5
        assert np.all((mine >= np.float32(1.5)) | (mine == best[t]))


def test_cap_keeps_strongest_and_never_orphans():
    kernel = np.random.default_rng(11).normal(size=(200, 50)).astype(np.float32)
    kernel[:, 7] *= 1e-3  # a weak target: its best edge is far below the global cut
    edges = dense_edges(kernel)
    reduced = reduce_edges(edges, cap=500)
    assert len(reduced) == 500
    assert np.unique(reduced.target).size == 50
    dropped_max = np.delete(np.abs(edges.weight), kept_indices(edges, reduced)).max()
    strongest_only = {int(np.abs(kernel[:, t]).argmax()) * 50 + t for t in range(50)}
    others = [i for i in kept_indices(edges, reduced) if i not in strongest_only]
    assert np.abs(edges.weight[others]).min() >= dropped_max


def test_cap_below_target_count_gives_one_edge_per_target():
    kernel = np.random.default_rng(12).normal(size=(30, 40)).astype(np.float32)
    reduced = reduce_edges(dense_edges(kernel), cap=10)
    assert len(reduced) == 40 and sorted(reduced.target.tolist()) == list(range(40))


def test_reduce_keeps_order_and_is_deterministic():
    kernel = np.random.default_rng(13).integers(-2, 3, size=(60, 30)).astype(np.float32)
    edges = dense_edges(kernel)
    a = reduce_edges(edges, cap=200, top_k=10)
    b = reduce_edges(edges, cap=200, top_k=10)
    idx = kept_indices(edges, a)
    assert idx == sorted(idx)
    assert a.source.tobytes() == b.source.tobytes() and a.weight.tobytes() == b.weight.tobytes()


def test_reduce_handles_empty_pool_and_bad_arguments():
    empty = dense_edges(np.zeros((0, 4), dtype=np.float32))
    assert len(reduce_edges(empty, top_k=2)) == 0
    pooled = reduce_edges(pool_edges(5), cap=2)
    assert len(pooled) == 5  # every channel is a target with one edge
    with pytest.raises(ValueError):
        reduce_edges(pool_edges(2), top_k=0)
    with pytest.raises(ValueError):
        reduce_edges(pool_edges(2), threshold=-1.0)


def test_reduce_does_not_modify_its_input():
    kernel = np.array([[1.0], [0.0], [-3.0]], dtype=np.float32)  # one target: views are easy
    edges = dense_edges(kernel)
    reduced = reduce_edges(edges, cap=None, top_k=1)
    assert edges.weight.tolist() == [1.0, 0.0, -3.0]
    assert reduced.source.tolist() == [2]


def test_reduce_sparse_targets_without_edges():
    edges = Edges([0, 1, 1, 2], [0, 0, 3, 3], [0.5, -0.7, 0.2, 0.1], 3, 5)
    reduced = reduce_edges(edges, cap=None, top_k=1)
    assert list(zip(reduced.source.tolist(), reduced.target.tolist())) == [(1, 0), (1, 3)]


def test_reduce_large_dense_matrix_quickly():
    """A 4,000 x 1,000 matrix (4M edges) takes well under a few seconds; the fc6-size figure
    (102.8M) is in docs/performance.md (scripts/bench_bundling.py)."""
    kernel = np.random.default_rng(14).normal(size=(4000, 1000)).astype(np.float32)
    edges = dense_edges(kernel)
    reduced = reduce_edges(edges, cap=50_000, top_k=16, threshold=0.5)
    assert len(reduced) == 16_000  # top-16 per target, all above 0.5 for N(0,1) x 4000
    assert np.unique(reduced.target).size == 1000
    per_target = np.sort(np.abs(kernel), axis=0)[-16:]
    np.testing.assert_array_equal(np.sort(np.abs(reduced.weight)),
                                  np.sort(per_target.ravel()))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.data())
def test_reduce_property(n_source, n_target, data):
    weights = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=n_source * n_target,
                                          max_size=n_source * n_target)), dtype=np.float32)
    edges = dense_edges(weights.reshape(n_source, n_target))
    if data.draw(st.booleans()):
        edges = shuffled(edges, data.draw(st.integers(0, 10)))
    if data.draw(st.booleans()):  # drop some edges: targets without edges
        keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(edges),
                                           max_size=len(edges))), dtype=bool)
        edges = edges.subset(keep)
    kwargs = dict(cap=data.draw(st.one_of(st.none(), st.integers(0, 40))),
                  top_k=data.draw(st.one_of(st.none(), st.integers(1, 7))),
                  threshold=data.draw(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.5]))))
    if data.draw(st.booleans()):  # ranked by a score of its own
        kwargs["score"] = np.array(data.draw(st.lists(st.integers(0, 4), min_size=len(edges),
                                                      max_size=len(edges))), dtype=np.float32)
    reduced = reduce_edges(edges, **kwargs)
    assert kept_indices(edges, reduced) == reference_reduce(edges, **kwargs)
    connected = set(edges.target.tolist())
    assert set(reduced.target.tolist()) == connected
