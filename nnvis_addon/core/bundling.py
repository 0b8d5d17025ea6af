"""3D edge bundling by kernel density estimation (KDEEB-style), numpy only.

One call bundles the edges of one layer pair. The network's layer axis is X: every layer lies in a
plane ``x = const``, so a connection runs from a start point in one plane to an end point in the
next. The algorithm (after Hurter et al. 2012, "Graph bundling by kernel density estimation"):

1. resample every edge as a straight polyline of ``points_per_edge`` points (parameter ``t`` in
   ``[0, 1]``, evenly spaced);
2. splat every point into a 3D density grid, weighted by the edge's ``|weight|``
   (``np.bincount`` on flattened voxel indices);
3. blur the grid with a Gaussian of the current bandwidth and take its gradient. The blur is
   separable and uses dense per-axis matrices (Gaussian and derivative-of-Gaussian), so its cost
   does not depend on the kernel width and nothing wraps around at the grid border, unlike an FFT;
4. move every interior point ``strength * bandwidth`` up the normalised density gradient;
5. smooth every polyline (moving average, end points fixed);
6. shrink the bandwidth (``* bandwidth_decay``, not below ``min_bandwidth`` grid cells) and go to 2.

Points move only perpendicular to the layer axis (y and z). The x coordinate of every point keeps
its straight-line value, so a curve stays monotone along x between its two layers and can never
loop back through a layer; end points are returned exactly as given (bit-identical for float32
input). The result is deterministic: the same input gives the same output bits, whatever the
number of threads (every reduction runs in a fixed order).

Speed: points are stored as separate contiguous float32 arrays, one row per sample index, the
splat and the gradient look-up work row by row on cache-sized blocks, and the end points, which
never move, are splatted once. The loop is memory bound; see docs/performance.md
("Edge bundling") for measured figures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

__all__ = [
    "BundlingParams",
    "DEFAULT_PARAMS",
    "straight_curves",
    "bundle_edges",
    "ink",
    "ink_ratio",
]

ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class BundlingParams:
    """Parameters of :func:`bundle_edges`. Lengths are relative to the edges' bounding box, so
    one set of defaults works at any scene scale.

    The defaults give an ink ratio (see :func:`ink_ratio`) of about 0.24-0.32 on fully connected
    pairs of 256 x 128 to 1024 x 512 units: visible trunks, every curve still traceable. Ink
    ratios measured on the 256 x 128 test pair (tests/test_bundling.py) when changing one
    parameter: default 0.26; initial_bandwidth 0.04: 0.36, 0.12: 0.11 (few thick trunks);
    iterations 6: 0.43, 20: 0.16; smoothing_passes 1: 0.17, 12: 0.56; grid_resolution 32: 0.14,
    96: 0.32; points_per_edge 32: 0.18.

    points_per_edge: samples per curve, end points included (>= 2). 16 gives smooth curves
        between two adjacent layers and keeps big pairs fast; the cost is linear in it.
    iterations: bundling iterations (0 gives straight curves); the cost is linear in it.
    initial_bandwidth: Gaussian kernel bandwidth (sigma) of the first iteration, as a fraction
        of the larger y/z extent of the edges' bounding box ("box").
    bandwidth_decay: the bandwidth is multiplied by this after every iteration.
    min_bandwidth: lower bound of the bandwidth, in grid cells (the default schedule reaches it
        after about 6 iterations at grid_resolution 64).
    strength: an interior point moves ``strength * bandwidth`` per iteration up the normalised
        density gradient (0 gives straight curves).
    smoothing: weight of the neighbours' mean in one smoothing pass (0: none, 1: full moving
        average); end points never move.
    smoothing_passes: smoothing passes per iteration. All passes are applied together as one
        small precomputed (points x points) matrix, so their number costs nothing.
    grid_resolution: density grid cells along the larger y/z extent of the box (square cells in
        y and z, plus a margin). Along x the grid has one plane per sample index when all edges
        start in one plane and end in one plane (the layer-pair case); otherwise uniform cells,
        at most 2 * (points_per_edge - 1) + 1 of them. The grid work per iteration grows with
        ``grid_resolution ** 3 * points_per_edge`` (a fixed ~5-10 ms per iteration at 64, which
        is what small pairs cost); the minimum bandwidth, hence how thin bundles get, is tied to
        the cell size.
    threads: worker threads for the per-sample work (None: up to 2, or os.cpu_count() if
        smaller, and none for pairs under ~37,000 edges; 1: no threads). The result does not
        depend on it.
    """

    points_per_edge: int = 16
    iterations: int = 12
    initial_bandwidth: float = 0.07
    bandwidth_decay: float = 0.8
    min_bandwidth: float = 1.5
    strength: float = 1.0
    smoothing: float = 0.5
    smoothing_passes: int = 4
    grid_resolution: int = 64
    threads: int | None = None

    def validated(self) -> BundlingParams:
        if int(self.points_per_edge) < 2:
            raise ValueError(f"points_per_edge must be >= 2, got {self.points_per_edge}")
        if int(self.iterations) < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if int(self.grid_resolution) < 4:
            raise ValueError(f"grid_resolution must be >= 4, got {self.grid_resolution}")
        if int(self.smoothing_passes) < 0:
            raise ValueError(f"smoothing_passes must be >= 0, got {self.smoothing_passes}")
        for name in ("initial_bandwidth", "bandwidth_decay", "min_bandwidth", "strength",
                     "smoothing"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= float(self.smoothing) <= 1.0:
            raise ValueError(f"smoothing must lie in [0, 1], got {self.smoothing}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        return self


DEFAULT_PARAMS = BundlingParams()


# --------------------------------------------------------------------------------------------
# helpers


def _as_points(name: str, array, n: int | None = None) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name} must have shape (E, 3), got {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} rows, expected {n}")
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite coordinates")
    return a


def _sample_parameters(points: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, points)


def _lerp_rows(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(P, E) float32 rows a + t*(b - a), computed in float64; rows 0 and P-1 are a and b
    exactly. Monotone in t for every edge because rounding is monotone."""
    a64 = a.astype(np.float64)
    d64 = b.astype(np.float64) - a64
    out = np.empty((t.size, a.size), dtype=np.float32)
    for j, tj in enumerate(t):
        if j == 0:
            out[j] = a
        elif j == t.size - 1:
            out[j] = b
        else:
            out[j] = a64 + tj * d64
    return out


def straight_curves(start, end, points_per_edge: int = 16) -> np.ndarray:
    """Straight polylines: (E, P, 3) float32, ``P = points_per_edge`` evenly spaced points from
    ``start[e]`` (first point, exactly) to ``end[e]`` (last point, exactly)."""
    points = int(points_per_edge)
    if points < 2:
        raise ValueError(f"points_per_edge must be >= 2, got {points_per_edge}")
    start = _as_points("start", start)
    end = _as_points("end", end, start.shape[0])
    t = _sample_parameters(points)
    out = np.empty((start.shape[0], points, 3), dtype=np.float32)
    for axis in range(3):
        out[:, :, axis] = _lerp_rows(start[:, axis], end[:, axis], t).T
    return out


def _smoothing_matrix(points: int, smoothing: float, passes: int) -> np.ndarray:
    """Rows 1..P-2 of M**passes, M = one moving-average pass with fixed end points."""
    m = np.eye(points)
    for i in range(1, points - 1):
        m[i, i - 1] = m[i, i + 1] = 0.5 * smoothing
        m[i, i] = 1.0 - smoothing
    s = np.linalg.matrix_power(m, passes) if passes > 0 else np.eye(points)
    return np.ascontiguousarray(s[1:-1], dtype=np.float32)


def _gauss_matrices(centers: np.ndarray, sigma: float, derivative: bool):
    """Gaussian (and derivative-of-Gaussian) matrices G[i, k] = g(c_i - c_k), float32.

    The derivative peaks near ``1 / sigma``; where that passes 2**64 (edges spread across less
    than ~1e-18 units) it is scaled down by a power of two so it stays inside float32's range.
    Both axes share ``sigma``, hence the scale, and the gradient is normalised afterwards, so
    the scale changes no direction; at any other bandwidth nothing is scaled."""
    d = centers[:, None] - centers[None, :]
    g = np.exp(-0.5 * (d / sigma) ** 2)
    if not derivative:
        return g.astype(np.float32)
    dg = (-d / (sigma * sigma)) * g
    excess = math.frexp(1.0 / sigma)[1] - 64
    if excess > 0:
        dg = np.ldexp(dg, -excess)
    return g.astype(np.float32), dg.astype(np.float32)


def _normalise(gy: np.ndarray, gz: np.ndarray, length) -> None:
    """In place: (gy, gz) *= length / |(gy, gz)|, with a floor on |(gy, gz)| (1e-4 of its
    maximum) so flat regions give ~0, never NaN."""
    mag = np.hypot(gy, gz)
    peak = float(mag.max()) if mag.size else 0.0
    np.maximum(mag, np.float32(peak * 1e-4 + 1e-30), out=mag)
    np.divide(length, mag, out=mag)
    gy *= mag
    gz *= mag


_THREADS_MIN_POINTS = 1 << 19


def _worker_count(threads: int | None) -> int:
    if threads is None:
        return max(1, min(2, os.cpu_count() or 1))
    return max(1, int(threads))


# --------------------------------------------------------------------------------------------
# bundling


def bundle_edges(start, end, weights=None, *, params: BundlingParams | None = None,
                 points_per_edge: int | None = None, iterations: int | None = None,
                 initial_bandwidth: float | None = None, bandwidth_decay: float | None = None,
                 min_bandwidth: float | None = None, strength: float | None = None,
                 smoothing: float | None = None, smoothing_passes: int | None = None,
                 grid_resolution: int | None = None, threads: int | None = None,
                 progress: ProgressCallback | None = None) -> np.ndarray:
    """Bundle the straight edges ``start[e] -> end[e]`` of one layer pair.

    start, end: (E, 3) positions (Blender units; x is the layer axis).
    weights: (E,) signed edge weights; the density is weighted by ``|weight|`` (None: all 1).
        Edges of weight 0 add no density but are still bundled; if every weight is 0 the curves
        stay straight.
    params: a :class:`BundlingParams` (default :data:`DEFAULT_PARAMS`); any other keyword that
        is not None overrides the matching field. See :class:`BundlingParams` for the meaning
        and the defaults.
    progress: called with a fraction in [0, 1] after every iteration (and with 1.0 at the end).

    Returns (E, P, 3) float32 curves: point 0 is ``start[e]`` and point P-1 is ``end[e]``
    exactly (after conversion to float32), the x coordinate of every point is its straight-line
    value (monotone along x), nothing is NaN, and the same input gives the same bits.
    """
    overrides: dict[str, Any] = {k: v for k, v in dict(
        points_per_edge=points_per_edge, iterations=iterations,
        initial_bandwidth=initial_bandwidth, bandwidth_decay=bandwidth_decay,
        min_bandwidth=min_bandwidth, strength=strength, smoothing=smoothing,
        smoothing_passes=smoothing_passes, grid_resolution=grid_resolution,
        threads=threads).items() if v is not None}
    p = replace(params or DEFAULT_PARAMS, **overrides).validated()

    start = _as_points("start", start)
    end = _as_points("end", end, start.shape[0])
    w64 = _density_weights(weights, start.shape[0])
    box = None if _stays_straight(p, w64) else _yz_box(start, end)
    if box is None:
        curves = straight_curves(start, end, int(p.points_per_edge))
        if progress is not None:
            progress(1.0)
        return curves

    t = _sample_parameters(int(p.points_per_edge))  # step 1: straight polylines
    xs = _lerp_rows(start[:, 0], end[:, 0], t)  # (P, E) rows: sample index j; fixed
    ys = _lerp_rows(start[:, 1], end[:, 1], t)
    zs = _lerp_rows(start[:, 2], end[:, 2], t)
    slice_mode = bool(np.all(start[:, 0] == start[0, 0]) and np.all(end[:, 0] == end[0, 0]))
    x_planes = (float(start[0, 0]), float(end[0, 0])) if slice_mode else None
    grid = _density_grid(box, p, t, xs, x_planes)
    _bundle_rows(ys, zs, w64, grid, p, progress)
    return _rows_to_curves((xs, ys, zs), progress)


def _density_weights(weights, n_edges: int) -> np.ndarray:
    """(E,) float64 ``|weight|`` per edge (None: all 1), scaled by a power of two so the largest
    lies in [0.5, 1). Only relative weights matter, and the scaling is exact (the same curves to
    the bit), so a diverging run's weights near float32's limit cannot overflow the float32
    density into Inf/NaN."""
    if weights is None:
        return np.ones(n_edges, dtype=np.float64)
    w = np.asarray(weights)
    if w.shape != (n_edges,):
        raise ValueError(f"weights must have shape ({n_edges},), got {w.shape}")
    w64 = np.abs(w.astype(np.float64))
    if not np.all(np.isfinite(w64)):
        raise ValueError("weights contain non-finite values")
    peak = float(w64.max()) if n_edges else 0.0
    if peak > 0:
        w64 = np.ldexp(w64, -math.frexp(peak)[1])
    return w64


def _stays_straight(p: BundlingParams, w64: np.ndarray) -> bool:
    """True when the parameters or the weights leave nothing to bundle."""
    return (w64.size == 0 or int(p.points_per_edge) < 3 or int(p.iterations) == 0
            or float(p.strength) == 0.0 or float(p.initial_bandwidth) == 0.0
            or not np.any(w64 > 0))


@dataclass(frozen=True)
class _Box:
    """The edges' bounding box (float64 corners) and its larger y/z extent, which every length
    of the bundling is relative to."""

    lo: np.ndarray
    hi: np.ndarray
    extent: float


def _yz_box(start: np.ndarray, end: np.ndarray) -> _Box | None:
    """The bounding box of the edges, or None when it has no extent across the layer axis (every
    edge runs along x: nothing to bundle)."""
    lo = np.minimum(start.min(axis=0), end.min(axis=0)).astype(np.float64)
    hi = np.maximum(start.max(axis=0), end.max(axis=0)).astype(np.float64)
    extent = float(max(hi[1] - lo[1], hi[2] - lo[2]))
    if not extent > 0.0 or not math.isfinite(extent):
        return None
    return _Box(lo, hi, extent)


def _rows_to_curves(rows, progress) -> np.ndarray:
    """(P, E) rows per axis -> (E, P, 3), transposed in cache-sized blocks of edges."""
    P, E = rows[0].shape
    curves = np.empty((E, P, 3), dtype=np.float32)
    block = 8192
    for a in range(0, E, block):
        part = curves[a:a + block]
        for axis in range(3):
            part[:, :, axis] = rows[axis][:, a:a + block].T
    if progress is not None:
        progress(1.0)
    return curves


# --------------------------------------------------------------------------------------------
# the bundling loop (steps 2-6), one named function per step


def _bundle_rows(ys, zs, w64, grid: _Grid, p: BundlingParams, progress) -> None:
    """Steps 2-6 on (P, E) float32 rows ys, zs, modified in place (rows 0 and P-1, the end
    points, come back exactly as given)."""
    rows = _Rows(ys, zs, grid, smoothed=p.smoothing > 0 and p.smoothing_passes > 0)
    fixed = _splat_end_points(grid, rows, w64)
    smooth = _smoothing_matrix(rows.points, float(p.smoothing), int(p.smoothing_passes))
    iterations = int(p.iterations)
    with _RowBlocks(rows.points - 2, w64.size, p.threads) as blocks:
        for it in range(iterations):
            h = _bandwidth(p, grid.extent, grid.cell, it)                # step 6's schedule
            density = _splat_density(grid, rows, w64, fixed, blocks)            # step 2
            steps = _density_steps(grid, density, h, float(p.strength) * h)     # step 3
            blocks.run(partial(_move_rows, grid, rows, steps))                  # step 4
            if rows.spare is not None:
                rows.smooth(smooth)                                             # step 5
            if progress is not None:
                progress((it + 1) / iterations)
    rows.to_scene_units(grid)


def _bandwidth(p: BundlingParams, extent: float, cell: float, iteration: int) -> float:
    """Step 6: the kernel bandwidth (scene units) of iteration ``iteration``: the initial one
    times ``bandwidth_decay`` per iteration, never below ``min_bandwidth`` grid cells."""
    h0 = float(p.initial_bandwidth) * extent
    h_min = float(p.min_bandwidth) * cell
    return max(h0 * float(p.bandwidth_decay) ** iteration, h_min)


@dataclass(frozen=True)
class _Grid:
    """The density grid of one bundling run: square cells of side ``cell`` in y and z from the
    corner (y0, z0), ``ny * nz`` voxels per x cell. Along x one cell per sample index when all
    edges start in one plane and end in another ("slice mode": row j of the points lies in x
    cell j), otherwise uniform cells, and ``x_offsets[j]`` is the flat voxel offset of the x
    cell of every point of row j."""

    extent: float
    cell: float
    y0: float
    z0: float
    cx: np.ndarray  # x cell centres (nx)
    cy: np.ndarray  # y cell centres (ny)
    cz: np.ndarray  # z cell centres (nz)
    x_offsets: list[np.ndarray] | None  # None in slice mode

    @property
    def slice_mode(self) -> bool:
        return self.x_offsets is None

    @property
    def nx(self) -> int:
        return self.cx.size

    def x_offset(self, row: int) -> np.ndarray:
        """Outside slice mode: the flat voxel offset of the x cell of every point of row ``row``."""
        assert self.x_offsets is not None, "slice mode has no x offsets"
        return self.x_offsets[row]

    @property
    def plane(self) -> int:
        return self.cy.size * self.cz.size


def _density_grid(box: _Box, p: BundlingParams, t: np.ndarray, xs: np.ndarray,
                  x_planes: tuple[float, float] | None) -> _Grid:
    """The grid over the edges' box plus a margin. ``x_planes``: the start and end plane of
    every edge in slice mode, else None (x cells from the x rows ``xs``)."""
    cell = box.extent / int(p.grid_resolution)
    # Pad the box so a point never leaves it in practice: density is 0 outside the edges'
    # box, so the gradient points inwards there and a point overshoots by at most one step.
    pad = max(2.0 * cell, float(p.strength) * _bandwidth(p, box.extent, cell, 0) + cell)
    lo, hi = box.lo, box.hi
    y0 = lo[1] - pad
    z0 = lo[2] - pad
    ny = int(math.ceil((hi[1] - lo[1] + 2 * pad) / cell)) + 1
    nz = int(math.ceil((hi[2] - lo[2] + 2 * pad) / cell)) + 1
    cy = y0 + (np.arange(ny) + 0.5) * cell
    cz = z0 + (np.arange(nz) + 0.5) * cell
    if x_planes is not None:
        x_start, x_end = x_planes
        cx = x_start + t * (x_end - x_start)
        return _Grid(box.extent, cell, y0, z0, cx, cy, cz, None)
    x_lo = float(min(lo[0], hi[0]))
    x_ext = float(hi[0] - lo[0])
    # cells of the y/z size, but no finer than half a sample spacing (finer is wasted)
    nx = int(max(2, min(math.ceil(x_ext / cell), 2 * (t.size - 1)) + 1))
    cell_x = x_ext / (nx - 1) if x_ext > 0 else 1.0
    cx = x_lo + np.arange(nx) * cell_x
    offsets = []
    for row in xs:
        ix = np.rint((row.astype(np.float64) - x_lo) / cell_x)
        offsets.append(np.clip(ix, 0, nx - 1).astype(np.int32) * np.int32(ny * nz))
    return _Grid(box.extent, cell, y0, z0, cx, cy, cz, offsets)


def _voxel_index(grid: _Grid, row_y, row_z, out, ibuf) -> None:
    """Flat (y, z) voxel index of grid-unit coordinates into ``out`` (truncated, then clamped to
    the grid: the padding keeps points inside anyway, the clamp only guards memory)."""
    np.copyto(out, row_y, casting="unsafe")
    np.clip(out, 0, np.int32(grid.cy.size - 1), out=out)
    np.multiply(out, np.int32(grid.cz.size), out=out)
    np.copyto(ibuf, row_z, casting="unsafe")
    np.clip(ibuf, 0, np.int32(grid.cz.size - 1), out=ibuf)
    np.add(out, ibuf, out=out)


class _Rows:
    """The moving coordinates: (P, E) float32 rows of y and z in grid units,
    ``u = (y - y0) / cell`` (so a voxel index is a plain truncation), the flat voxel index of
    every interior point (written by the splat, read by the move), and, when smoothing, a second
    pair of rows that smoothing writes into before the two swap."""

    def __init__(self, ys: np.ndarray, zs: np.ndarray, grid: _Grid, smoothed: bool):
        self.caller = (ys, zs)
        self.ends = [(ys[0].copy(), ys[-1].copy()), (zs[0].copy(), zs[-1].copy())]
        for rows, origin in ((ys, grid.y0), (zs, grid.z0)):
            for j in range(rows.shape[0]):
                rows[j] = (rows[j].astype(np.float64) - origin) / grid.cell
        self.y, self.z = ys, zs
        self.spare = (ys.copy(), zs.copy()) if smoothed else None
        self.voxel = np.empty((ys.shape[0] - 2, ys.shape[1]), dtype=np.int32)
        self.density_rows = (np.empty((ys.shape[0] - 2, grid.plane), dtype=np.float64)
                             if grid.slice_mode else None)

    @property
    def points(self) -> int:
        return self.y.shape[0]

    def smooth(self, matrix: np.ndarray) -> None:
        """Step 5: every polyline smoothed (``matrix``: rows 1..P-2 of all passes together; end
        points fixed), written into the spare rows, which then become the current ones."""
        assert self.spare is not None, "rows made without smoothing"
        spare_y, spare_z = self.spare
        np.matmul(matrix, self.y, out=spare_y[1:-1])
        np.matmul(matrix, self.z, out=spare_z[1:-1])
        self.y, self.z, self.spare = spare_y, spare_z, (self.y, self.z)

    def to_scene_units(self, grid: _Grid) -> None:
        """Back to scene units, into the caller's arrays; end rows exactly as they came in."""
        for out, rows, origin, (first, last) in zip(self.caller, (self.y, self.z),
                                                    (grid.y0, grid.z0), self.ends):
            for j in range(1, self.points - 1):
                out[j] = rows[j].astype(np.float64) * grid.cell + origin
            out[0] = first
            out[-1] = last


class _RowBlocks:
    """The interior rows cut into contiguous blocks, one per worker thread (static, so results
    do not depend on scheduling), each with its own scratch buffers; a context manager that
    shuts the threads down."""

    def __init__(self, interior: int, n_edges: int, threads: int | None):
        workers = min(_worker_count(threads), max(1, interior))
        if n_edges * interior < _THREADS_MIN_POINTS and threads is None:
            workers = 1  # thread hand-over costs more than it saves on small pairs
        self.pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        bounds = np.linspace(0, interior, workers + 1).astype(int)
        self.blocks = [(int(bounds[k]), int(bounds[k + 1])) for k in range(workers)
                       if bounds[k + 1] > bounds[k]]
        self.scratch = [_Scratch(n_edges) for _ in self.blocks]

    def run(self, step: Callable[[int, int, _Scratch], object]) -> list:
        """``step(first_row, end_row, scratch)`` on every block, in threads when there are
        several; the results in block order."""
        jobs = [(a, b, scratch) for (a, b), scratch in zip(self.blocks, self.scratch)]
        if self.pool is None:
            return [step(*job) for job in jobs]
        return [f.result() for f in [self.pool.submit(step, *job) for job in jobs]]

    def __enter__(self) -> _RowBlocks:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown()


class _Scratch:
    """Per-block buffers of one row: gathered steps (complex64) and voxel-index parts (int32)."""

    def __init__(self, n_edges: int):
        self.steps = np.empty(n_edges, np.complex64)
        self.index = np.empty(n_edges, np.int32)


def _splat_end_points(grid: _Grid, rows: _Rows, w64: np.ndarray) -> np.ndarray:
    """Step 2 for the end points, once: they never move. (nx, ny * nz) float64 density."""
    fixed = np.zeros((grid.nx, grid.plane), dtype=np.float64)
    flat = fixed.reshape(-1)
    index, part = np.empty(w64.size, np.int32), np.empty(w64.size, np.int32)
    for j in (0, rows.points - 1):
        _voxel_index(grid, rows.y[j], rows.z[j], index, part)
        if grid.slice_mode:
            fixed[j] += np.bincount(index, weights=w64, minlength=grid.plane)
        else:
            index += grid.x_offset(j)
            flat += np.bincount(index, weights=w64, minlength=flat.size)
    return fixed


def _splat_density(grid: _Grid, rows: _Rows, w64: np.ndarray, fixed: np.ndarray,
                   blocks: _RowBlocks) -> np.ndarray:
    """Step 2: every point splatted into the density grid, weighted by its edge's ``|weight|``
    (``np.bincount`` on flat voxel indices), plus the end points' ``fixed`` density: (nx,
    ny * nz) float32. In slice mode one histogram per row (rows in threads); otherwise one sum
    in row order, so it does not depend on the thread count."""
    density = fixed.copy()
    if grid.slice_mode:
        blocks.run(partial(_splat_row_histograms, grid, rows, w64))
        assert rows.density_rows is not None  # made in slice mode
        density[1:-1] += rows.density_rows
    else:
        density += _splat_row_sum(grid, rows, w64, blocks.scratch[0]).reshape(density.shape)
    return density.astype(np.float32)


def _splat_row_sum(grid: _Grid, rows: _Rows, w64: np.ndarray, scratch: _Scratch) -> np.ndarray:
    """Generic mode: the histograms of all interior rows, summed in row order (flat float64)."""
    total: np.ndarray | None = None
    for r in range(rows.points - 2):
        _index_row(grid, rows, r, scratch.index)
        counts = np.bincount(rows.voxel[r], weights=w64, minlength=grid.nx * grid.plane)
        if total is None:
            total = counts
        else:
            total += counts
    assert total is not None, "bundling needs interior rows"
    return total


def _index_row(grid: _Grid, rows: _Rows, r: int, part: np.ndarray) -> None:
    """Flat voxel index of every point of interior row ``r`` (points row ``r + 1``)."""
    _voxel_index(grid, rows.y[r + 1], rows.z[r + 1], rows.voxel[r], part)
    if not grid.slice_mode:
        rows.voxel[r] += grid.x_offset(r + 1)


# A block of rows holding at most this many points is handled in one go (small pairs: numpy
# call overhead, not memory, is their cost); bigger blocks row by row, in cache.
_WHOLE_BLOCK_POINTS = 1 << 15


def _whole_block(first: int, end: int, n_edges: int) -> bool:
    return (end - first) * n_edges <= _WHOLE_BLOCK_POINTS


def _row_offsets(first: int, end: int, size: int) -> np.ndarray:
    """(rows, 1) int32 offsets of rows first..end-1 in a flat array of ``size`` per row."""
    return (np.arange(end - first, dtype=np.int32) * np.int32(size))[:, None]


def _splat_row_histograms(grid: _Grid, rows: _Rows, w64: np.ndarray, first: int, end: int,
                          scratch: _Scratch) -> None:
    """Slice mode, interior rows first..end-1: one (ny * nz) histogram per row. A small block
    in one ``bincount`` over row-offset indices: every bin still sums its points in edge order,
    so the histograms are the same to the bit."""
    histograms = rows.density_rows
    assert histograms is not None  # made in slice mode
    if _whole_block(first, end, w64.size):
        part = np.empty((end - first, w64.size), np.int32)
        _voxel_index(grid, rows.y[first + 1:end + 1], rows.z[first + 1:end + 1],
                     rows.voxel[first:end], part)
        flat = (rows.voxel[first:end] + _row_offsets(first, end, grid.plane)).reshape(-1)
        histograms[first:end] = np.bincount(
            flat, weights=np.tile(w64, end - first),
            minlength=(end - first) * grid.plane).reshape(end - first, grid.plane)
        return
    for r in range(first, end):
        _index_row(grid, rows, r, scratch.index)
        histograms[r] = np.bincount(rows.voxel[r], weights=w64, minlength=grid.plane)


def _density_steps(grid: _Grid, density: np.ndarray, h: float, step: float) -> np.ndarray:
    """Step 3: blur the density with a Gaussian of bandwidth ``h`` and take its gradient,
    normalised to ``step`` (scene units): complex64 ``y + i z`` steps in grid units per voxel
    ((P-2, ny * nz) in slice mode: the interior rows' planes; flat otherwise). The blur is
    separable, with dense per-axis matrices."""
    ny, nz = grid.cy.size, grid.cz.size
    gx = _gauss_matrices(grid.cx, h, derivative=False)
    gyd = _gauss_matrices(grid.cy, h, derivative=True)
    gzd = _gauss_matrices(grid.cz, h, derivative=True)
    if grid.slice_mode:
        blurred = (gx[1:-1] @ density).reshape(-1, ny, nz)  # blur along x
    else:
        blurred = (gx @ density).reshape(grid.nx, ny, nz)
    flat = blurred.reshape(-1, nz)                   # one 2-D product per z operator
    gyz = (flat @ gzd[0].T).reshape(blurred.shape)   # blur along z
    dzz = (flat @ gzd[1].T).reshape(blurred.shape)   # derivative along z
    grad_y = np.matmul(gyd[1], gyz)                  # d/dy (blur z)
    grad_z = np.matmul(gyd[0], dzz)                  # blur y (d/dz)
    _normalise(grad_y, grad_z, np.float32(step / grid.cell))  # step in grid units
    steps = np.empty(grad_y.shape, dtype=np.complex64)
    steps.real = grad_y
    steps.imag = grad_z
    return steps.reshape(-1, grid.plane) if grid.slice_mode else steps.reshape(-1)


def _move_rows(grid: _Grid, rows: _Rows, steps: np.ndarray, first: int, end: int,
               scratch: _Scratch) -> None:
    """Step 4, interior rows first..end-1: every point moves by the step of its voxel (one
    gather of the complex steps serves both axes)."""
    gathered = scratch.steps
    if grid.slice_mode and _whole_block(first, end, gathered.size):
        flat = rows.voxel[first:end] + _row_offsets(first, end, grid.plane)
        moved = np.take(steps[first:end].reshape(-1), flat)
        rows.y[first + 1:end + 1] += moved.real
        rows.z[first + 1:end + 1] += moved.imag
        return
    for r in range(first, end):
        np.take(steps[r] if grid.slice_mode else steps, rows.voxel[r], out=gathered)
        rows.y[r + 1] += gathered.real
        rows.z[r + 1] += gathered.imag


# --------------------------------------------------------------------------------------------
# ink: how much space the curves cover


def _bounds_of(curves: np.ndarray):
    flat = curves.reshape(-1, 3)
    return flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)


def ink(curves, grid: int = 128, bounds=None, samples_per_voxel: float = 2.0,
        chunk_points: int = 1 << 22) -> int:
    """Number of distinct voxels the polylines touch.

    The grid: cubic voxels of side ``max(extent) / grid`` over ``bounds`` (a ``(lo, hi)`` pair of
    3-vectors; default: the bounding box of ``curves``), i.e. ``grid`` voxels along the longest
    side of the box and proportionally fewer along the others. Every segment is sampled at
    ``samples_per_voxel`` points per voxel side (the same count for all segments, from the longest
    one), so a curve touches every voxel it passes through (up to corner cuts). Points outside
    ``bounds`` count in the nearest border voxel.

    Use it to measure bundling as ``ink(bundled) / ink(straight)`` on the *same* grid:
    :func:`ink_ratio` does that. 1 means no bundling; 0.2-0.4 looks bundled but traceable.
    """
    curves = np.asarray(curves, dtype=np.float32)
    if curves.ndim != 3 or curves.shape[2] != 3:
        raise ValueError(f"curves must have shape (E, P, 3), got {curves.shape}")
    n_edges, points, _ = curves.shape
    if n_edges == 0:
        return 0
    grid = int(grid)
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    lo, hi = _bounds_of(curves) if bounds is None else (
        np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64))
    side = float(np.max(hi - lo)) / grid
    if not side > 0.0:
        return 1
    dims = np.maximum(1, np.floor((hi - lo) / side).astype(np.int64) + 1)
    occupied = np.zeros(int(np.prod(dims)), dtype=bool)
    index_type = np.int32 if occupied.size < 2**31 else np.int64
    # points in voxel units, one contiguous (E, P) array per axis
    cells = [((curves[:, :, axis].astype(np.float64) - lo[axis]) / side).astype(np.float32)
             for axis in range(3)]
    if points == 1:
        sub = 1
    else:
        length = np.zeros((n_edges, points - 1), dtype=np.float32)
        for c in cells:
            d = np.diff(c, axis=1)
            length += d * d
        sub = max(1, int(math.ceil(math.sqrt(float(length.max())) * samples_per_voxel)))
        del length
    edges_per_chunk = max(1, chunk_points // max(1, points - 1))
    limits = [np.float32(d - 1) for d in dims]

    def mark(coordinates):
        index = None
        for axis, c in enumerate(coordinates):
            np.clip(c, 0, limits[axis], out=c)
            i = c.astype(index_type)
            index = i if index is None else index * index_type(dims[axis]) + i
        occupied[index.ravel()] = True

    for a in range(0, n_edges, edges_per_chunk):
        block = [c[a:a + edges_per_chunk] for c in cells]
        mark([c[:, -1].copy() for c in block])  # last points
        if points == 1:
            mark([c[:, 0].copy() for c in block])
            continue
        starts = [c[:, :-1] for c in block]
        deltas = [np.diff(c, axis=1) for c in block]
        for k in range(sub):
            f = np.float32(k / sub)
            mark([s0 + f * d for s0, d in zip(starts, deltas)])
    return int(np.count_nonzero(occupied))


def ink_ratio(curves, reference, grid: int = 128) -> float:
    """``ink(curves) / ink(reference)`` on one grid, the bounding box of ``reference`` (usually
    the straight curves of the same edges)."""
    reference = np.asarray(reference, dtype=np.float32)
    if reference.shape[0] == 0:
        return 1.0
    bounds = _bounds_of(reference)
    base = ink(reference, grid=grid, bounds=bounds)
    return ink(curves, grid=grid, bounds=bounds) / base if base else 1.0
