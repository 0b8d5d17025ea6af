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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable

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

    def validated(self) -> "BundlingParams":
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
    """Gaussian (and derivative-of-Gaussian) matrices G[i, k] = g(c_i - c_k), float32."""
    d = centers[:, None] - centers[None, :]
    g = np.exp(-0.5 * (d / sigma) ** 2)
    if not derivative:
        return g.astype(np.float32)
    return g.astype(np.float32), ((-d / (sigma * sigma)) * g).astype(np.float32)


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
    overrides = {k: v for k, v in dict(
        points_per_edge=points_per_edge, iterations=iterations,
        initial_bandwidth=initial_bandwidth, bandwidth_decay=bandwidth_decay,
        min_bandwidth=min_bandwidth, strength=strength, smoothing=smoothing,
        smoothing_passes=smoothing_passes, grid_resolution=grid_resolution,
        threads=threads).items() if v is not None}
    p = replace(params or DEFAULT_PARAMS, **overrides).validated()

    start = _as_points("start", start)
    end = _as_points("end", end, start.shape[0])
    n_edges = start.shape[0]
    P = int(p.points_per_edge)
    if weights is None:
        w64 = np.ones(n_edges, dtype=np.float64)
    else:
        w = np.asarray(weights)
        if w.shape != (n_edges,):
            raise ValueError(f"weights must have shape ({n_edges},), got {w.shape}")
        w64 = np.abs(w.astype(np.float64))
        if not np.all(np.isfinite(w64)):
            raise ValueError("weights contain non-finite values")
        peak = float(w64.max()) if n_edges else 0.0
        if peak > 0:
            # Only relative weights matter. Scaled by a power of two (exact: the same curves to
            # the bit), so a diverging run's weights near float32's limit cannot overflow the
            # float32 density into Inf/NaN.
            w64 = np.ldexp(w64, -math.frexp(peak)[1])

    done = (n_edges == 0 or P < 3 or int(p.iterations) == 0 or float(p.strength) == 0.0
            or float(p.initial_bandwidth) == 0.0 or not np.any(w64 > 0))
    if not done:
        lo = np.minimum(start.min(axis=0), end.min(axis=0)).astype(np.float64)
        hi = np.maximum(start.max(axis=0), end.max(axis=0)).astype(np.float64)
        extent = float(max(hi[1] - lo[1], hi[2] - lo[2]))
        done = not extent > 0.0 or not math.isfinite(extent)
    if done:
        curves = straight_curves(start, end, P)
        if progress is not None:
            progress(1.0)
        return curves

    t = _sample_parameters(P)
    xs = _lerp_rows(start[:, 0], end[:, 0], t)  # (P, E) rows: sample index j; fixed
    ys = _lerp_rows(start[:, 1], end[:, 1], t)
    zs = _lerp_rows(start[:, 2], end[:, 2], t)
    slice_mode = bool(np.all(start[:, 0] == start[0, 0]) and np.all(end[:, 0] == end[0, 0]))
    _bundle_rows(ys, zs, None if slice_mode else xs, w64, t, lo, hi, extent, p, slice_mode,
                 float(start[0, 0]), float(end[0, 0]), progress)

    return _rows_to_curves((xs, ys, zs), progress)


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


def _bundle_rows(ys, zs, xs_rows, w64, t, lo, hi, extent, p: BundlingParams, slice_mode,
                 x_start, x_end, progress):
    """The bundling loop on (P, E) float32 rows ys, zs (modified in place; rows 0 and P-1 are
    never written)."""
    P, E = ys.shape
    interior = P - 2
    res = int(p.grid_resolution)
    cell = extent / res
    h0 = float(p.initial_bandwidth) * extent
    h_min = float(p.min_bandwidth) * cell
    step_scale = float(p.strength)
    # Pad the box so a point never leaves it in practice: density is 0 outside the edges'
    # box, so the gradient points inwards there and a point overshoots by at most one step.
    pad = max(2.0 * cell, step_scale * max(h0, h_min) + cell)
    y0 = lo[1] - pad
    z0 = lo[2] - pad
    ny = int(math.ceil((hi[1] - lo[1] + 2 * pad) / cell)) + 1
    nz = int(math.ceil((hi[2] - lo[2] + 2 * pad) / cell)) + 1
    plane = ny * nz
    cy = y0 + (np.arange(ny) + 0.5) * cell
    cz = z0 + (np.arange(nz) + 0.5) * cell
    ymax = np.int32(ny - 1)
    zmax = np.int32(nz - 1)
    # Inside the loop y and z are kept in grid units, u = (y - y0) / cell (so a voxel index is
    # a plain truncation); rows 0 and P-1 are restored bit-exactly at the end.
    ends = [(ys[0].copy(), ys[-1].copy()), (zs[0].copy(), zs[-1].copy())]
    for rows, origin in ((ys, y0), (zs, z0)):
        for j in range(P):
            rows[j] = (rows[j].astype(np.float64) - origin) / cell

    if slice_mode:
        nx = P
        cx = x_start + t * (x_end - x_start)
        x_rows_index = [np.int32(j) for j in range(1, P - 1)]  # x cell of row j: plane j
    else:
        x_lo = float(min(lo[0], hi[0]))
        x_ext = float(hi[0] - lo[0])
        # cells of the y/z size, but no finer than half a sample spacing (finer is wasted)
        nx = int(max(2, min(math.ceil(x_ext / cell), 2 * (P - 1)) + 1))
        cell_x = x_ext / (nx - 1) if x_ext > 0 else 1.0
        cx = x_lo + np.arange(nx) * cell_x

        def x_cell_offsets(row):
            ix = np.rint((row.astype(np.float64) - x_lo) / cell_x)
            return np.clip(ix, 0, nx - 1).astype(np.int32) * np.int32(ny * nz)

        x_rows_index = [x_cell_offsets(xs_rows[r + 1]) for r in range(interior)]
    nvox = nx * plane

    workers = min(_worker_count(p.threads), max(1, interior))
    if E * interior < _THREADS_MIN_POINTS and p.threads is None:
        workers = 1  # thread hand-over costs more than it saves on small pairs
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    # contiguous blocks of rows per worker (static: results do not depend on scheduling)
    bounds = np.linspace(0, interior, workers + 1).astype(int)
    blocks = [(int(bounds[k]), int(bounds[k + 1])) for k in range(workers)
              if bounds[k + 1] > bounds[k]]
    scratch = [(np.empty(E, np.complex64), np.empty(E, np.int32), np.empty(E, np.int32))
               for _ in blocks]
    idx = np.empty((interior, E), dtype=np.int32)

    def voxel_index(row_y, row_z, out, ibuf):
        """Flat (y, z) voxel index of grid-unit coordinates (truncated, then clamped to the
        grid: the padding keeps points inside anyway, the clamp only guards memory)."""
        np.copyto(out, row_y, casting="unsafe")
        np.clip(out, 0, ymax, out=out)
        np.multiply(out, np.int32(nz), out=out)
        np.copyto(ibuf, row_z, casting="unsafe")
        np.clip(ibuf, 0, zmax, out=ibuf)
        np.add(out, ibuf, out=out)

    # end points never move: splat them once
    fixed = np.zeros((nx, plane) if slice_mode else nvox, dtype=np.float64)
    _, i0, i1 = scratch[0]
    for j in (0, P - 1):
        voxel_index(ys[j], zs[j], i0, i1)
        if slice_mode:
            fixed[j] += np.bincount(i0, weights=w64, minlength=plane)
        else:
            i0 += x_cell_offsets(xs_rows[j])
            fixed += np.bincount(i0, weights=w64, minlength=nvox)
    hist_rows = np.empty((interior, plane), dtype=np.float64) if slice_mode else None

    def splat_rows(a, b, ibuf):
        """Slice mode: one histogram per row. Generic mode: the sum over rows a..b-1, added
        in row order."""
        total = None
        for r in range(a, b):
            voxel_index(ys[r + 1], zs[r + 1], idx[r], ibuf)
            if slice_mode:
                hist_rows[r] = np.bincount(idx[r], weights=w64, minlength=plane)
            else:
                idx[r] += x_rows_index[r]
                counts = np.bincount(idx[r], weights=w64, minlength=nvox)
                if total is None:
                    total = counts
                else:
                    total += counts
        return total

    def splat(block_no):
        a, b = blocks[block_no]
        return splat_rows(a, b, scratch[block_no][2])

    def move(block_no, grad):
        """grad: complex64 (y + i z) step vectors per voxel; one gather serves both axes."""
        a, b = blocks[block_no]
        cbuf = scratch[block_no][0]
        for r in range(a, b):
            j = r + 1
            np.take(grad[r] if slice_mode else grad, idx[r], out=cbuf)
            ys[j] += cbuf.real
            zs[j] += cbuf.imag

    smooth = _smoothing_matrix(P, float(p.smoothing), int(p.smoothing_passes))
    need_smooth = p.smoothing > 0 and p.smoothing_passes > 0
    # smoothing writes into a second buffer (same end rows), then the two swap
    spare = [ys.copy(), zs.copy()] if need_smooth else None
    result = [ys, zs]

    def run(fn, *args):
        if pool is None:
            return [fn(k, *args) for k in range(len(blocks))]
        return [f.result() for f in [pool.submit(fn, k, *args) for k in range(len(blocks))]]

    iterations = int(p.iterations)
    try:
        for it in range(iterations):
            h = max(h0 * float(p.bandwidth_decay) ** it, h_min)
            step = step_scale * h
            if slice_mode:
                run(splat)
            else:  # one pass in row order: the sum does not depend on the thread count
                splat_total = splat_rows(0, interior, scratch[0][2])
            gx = _gauss_matrices(cx, h, derivative=False)
            gyd = _gauss_matrices(cy, h, derivative=True)
            gzd = _gauss_matrices(cz, h, derivative=True)
            dens = fixed.copy()
            if slice_mode:
                dens[1:-1] += hist_rows
                dens = dens.astype(np.float32)
                dens = (gx[1:-1] @ dens).reshape(interior, ny, nz)  # blur along x
            else:
                dens += splat_total
                dens = dens.astype(np.float32)
                dens = (gx @ dens.reshape(nx, plane)).reshape(nx, ny, nz)
            flat = dens.reshape(-1, nz)               # one 2-D product per z operator
            gyz = (flat @ gzd[0].T).reshape(dens.shape)  # blur along z
            dzz = (flat @ gzd[1].T).reshape(dens.shape)  # derivative along z
            grad_y = np.matmul(gyd[1], gyz)           # d/dy (blur z)
            grad_z = np.matmul(gyd[0], dzz)           # blur y (d/dz)
            _normalise(grad_y, grad_z, np.float32(step / cell))  # step in grid units
            grad = np.empty(grad_y.shape, dtype=np.complex64)
            grad.real = grad_y
            grad.imag = grad_z
            run(move, grad.reshape(interior, plane) if slice_mode else grad.reshape(-1))
            if need_smooth:
                np.matmul(smooth, ys, out=spare[0][1:-1])
                np.matmul(smooth, zs, out=spare[1][1:-1])
                ys, zs, spare = spare[0], spare[1], [ys, zs]
            if progress is not None:
                progress((it + 1) / iterations)
    finally:
        if pool is not None:
            pool.shutdown()
    # back to scene units, into the caller's arrays; end rows exactly as they came in
    for out, rows, origin, (first, last) in ((result[0], ys, y0, ends[0]),
                                             (result[1], zs, z0, ends[1])):
        for j in range(1, P - 1):
            out[j] = rows[j].astype(np.float64) * cell + origin
        out[0] = first
        out[-1] = last


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
