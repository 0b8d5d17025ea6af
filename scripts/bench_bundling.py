#!/usr/bin/env python3
"""Edge-bundling benchmark (prints figures; not a test). Run on demand:

    .venv/bin/python scripts/bench_bundling.py [--datashader-python PY] [--skip-big]
                                               [--skip-hammer] [--skip-fc6]

Rows, all with nnvis' default BundlingParams and layers as square grids 2 units wide, 1.5 units
apart along x, random normal weights (seed 0):

  (a) nn_vis' MNIST network [784, 81, 49, 10]: 67,963 edges, all three layer pairs (goal: <= 2 s);
  (b) a 1024 x 512 fully connected pair (524,288 edges), in a subprocess so its peak RSS is its
      own (goal: <= 4 s, <= 2 GB);
  (c) a 256 x 128 pair: nnvis (3D) against datashader's hammer_bundle (2D, same edges) in a
      subprocess (goal: nnvis >= 50x faster). datashader is not a project requirement; install
      it in a separate venv and point --datashader-python at it (or run this script with it):
          python3.11 -m venv /tmp/bench-venv
          /tmp/bench-venv/bin/pip install numpy==1.26.4 datashader dask scikit-image
  (d) reduce_edges on a VGG16 fc6-size Dense kernel (25,088 x 4,096 = 102.8M weights), in a
      subprocess.

Every row also prints the straight-edge baseline (straight_curves) for reference. nnvis timings
are medians of --repeat runs (default 3); the load average is printed at the start and the end,
since other jobs on a shared machine move single figures a lot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAYER_WIDTH = 2.0
LAYER_GAP = 1.5
INSTALL_HINT = ("python3.11 -m venv /tmp/bench-venv && "
                "/tmp/bench-venv/bin/pip install numpy==1.26.4 datashader dask scikit-image; then pass "
                "--datashader-python /tmp/bench-venv/bin/python")


def layer_grid(n: int, x: float, width: float = LAYER_WIDTH) -> np.ndarray:
    """n units on a square grid (row-major, last row partly filled) in the plane x = const."""
    side = int(np.ceil(np.sqrt(n)))
    row, col = np.divmod(np.arange(n), side)
    scale = width / (side - 1) if side > 1 else 0.0
    return np.stack([np.full(n, x), (row - (side - 1) / 2) * scale,
                     (col - (side - 1) / 2) * scale], axis=1).astype(np.float32)


def full_pair(n_src: int, n_tgt: int, seed: int = 0, x0: float = 0.0):
    from nnvis_addon.core.edges import dense_edges
    kernel = np.random.default_rng(seed).normal(size=(n_src, n_tgt)).astype(np.float32)
    edges = dense_edges(kernel)
    src = layer_grid(n_src, x0)
    tgt = layer_grid(n_tgt, x0 + LAYER_GAP)
    return src[edges.source], tgt[edges.target], edges.weight


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


REPEAT = 3  # timings are the median of REPEAT runs (set by --repeat)


CPU = {}  # id(result) -> CPU seconds of the call that made it (see timed)


def timed(fn, *args, **kwargs):
    """(result, wall seconds); the process CPU seconds (all threads) go to CPU[id(result)]."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    wall = time.perf_counter() - t0
    CPU[id(out)] = time.process_time() - c0
    return out, wall


def median_timed(fn, *args, **kwargs):
    """(result of the last run, median wall seconds over REPEAT runs); the median CPU seconds
    go to CPU[id(result)]."""
    times, cpu = [], []
    for _ in range(max(1, REPEAT)):
        out, seconds = timed(fn, *args, **kwargs)
        times.append(seconds)
        cpu.append(CPU.pop(id(out)))
    CPU[id(out)] = float(np.median(cpu))
    return out, float(np.median(times))


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


# ------------------------------------------------------------------------------------ rows


def row_mnist() -> None:
    from nnvis_addon.core.bundling import bundle_edges, ink_ratio, straight_curves
    sizes = [784, 81, 49, 10]
    print(f"(a) nn_vis MNIST network {sizes}, every pair bundled with the defaults")
    total_e = total_b = total_s = total_c = 0.0
    for k in range(len(sizes) - 1):
        start, end, weight = full_pair(sizes[k], sizes[k + 1], seed=k, x0=k * LAYER_GAP)
        straight, ts = median_timed(straight_curves, start, end, 16)
        curves, tb = median_timed(bundle_edges, start, end, weight)
        ratio = ink_ratio(curves, straight)
        total_e += len(weight)
        total_b += tb
        total_s += ts
        cpu = CPU.pop(id(curves))
        total_c += cpu
        print(f"    {sizes[k]:>4} x {sizes[k + 1]:<3} {len(weight):>7,} edges  bundle {tb:6.3f} s"
              f" (cpu {cpu:6.3f} s)  straight {ts:6.3f} s  ink ratio {ratio:.3f}")
    print(f"    total  {int(total_e):>7,} edges  bundle {total_b:6.3f} s (cpu {total_c:6.3f} s)"
          f"  straight {total_s:6.3f} s   (goal <= 2 s; nn_vis README: 3-4 min on an RTX 3080)")


def child_big(n_src: int, n_tgt: int) -> dict:
    from nnvis_addon.core.bundling import bundle_edges, ink_ratio, straight_curves
    start, end, weight = full_pair(n_src, n_tgt)
    before = peak_rss_mb()
    curves, first = timed(bundle_edges, start, end, weight)
    peak = peak_rss_mb()  # one call's peak: inputs, working memory, the (E, 16, 3) result
    cpu = [CPU.pop(id(curves))]
    times = [first]
    for _ in range(REPEAT - 1):
        del curves
        curves, seconds = timed(bundle_edges, start, end, weight)
        times.append(seconds)
        cpu.append(CPU.pop(id(curves)))
    tb = float(np.median(times))
    CPU[id(curves)] = float(np.median(cpu))
    straight, ts = median_timed(straight_curves, start, end, 16)
    ratio = ink_ratio(curves, straight)
    return dict(edges=len(weight), bundle_s=tb, bundle_cpu_s=CPU.pop(id(curves)),
                straight_s=ts, peak_rss_mb=peak,
                rss_before_mb=before, ink_ratio=ratio)


def row_big() -> None:
    print("(b) 1024 x 512 fully connected pair, defaults, own subprocess")
    r = run_child(sys.executable, ["big", "1024", "512", str(REPEAT)])
    if r is None:
        return
    print(f"    {r['edges']:,} edges  bundle {r['bundle_s']:.3f} s (cpu {r['bundle_cpu_s']:.3f} s)"
          f"  straight {r['straight_s']:.3f} s"
          f"  peak RSS {r['peak_rss_mb']:.0f} MB (inputs built: {r['rss_before_mb']:.0f} MB)"
          f"  ink ratio {r['ink_ratio']:.3f}   (goal <= 4 s, <= 2 GB)")


def child_hammer() -> dict:
    import pandas as pd
    from datashader.bundling import hammer_bundle
    n_src, n_tgt = 256, 128
    weight = np.random.default_rng(0).normal(size=(n_src, n_tgt)).astype(np.float32).ravel()
    ys = np.r_[np.linspace(-1, 1, n_src), np.linspace(-1, 1, n_tgt)]
    xs = np.r_[np.zeros(n_src), np.full(n_tgt, LAYER_GAP)]
    nodes = pd.DataFrame({"x": xs, "y": ys})
    edges = pd.DataFrame({"source": np.repeat(np.arange(n_src), n_tgt),
                          "target": n_src + np.tile(np.arange(n_tgt), n_src),
                          "weight": np.abs(weight)})
    paths, seconds = timed(hammer_bundle, nodes, edges)
    import datashader
    return dict(edges=len(edges), hammer_s=seconds, hammer_cpu_s=CPU.pop(id(paths)),
                peak_rss_mb=peak_rss_mb(),
                datashader=datashader.__version__)


def row_hammer(datashader_python: str | None, skip: bool) -> None:
    from nnvis_addon.core.bundling import bundle_edges, ink_ratio, straight_curves
    print("(c) 256 x 128 pair: nnvis (3D) against datashader hammer_bundle (2D, same edges)")
    start, end, weight = full_pair(256, 128)
    straight, ts = median_timed(straight_curves, start, end, 16)
    curves, tb = median_timed(bundle_edges, start, end, weight)
    cpu = CPU.pop(id(curves))
    print(f"    nnvis          {len(weight):,} edges  bundle {tb:6.3f} s (cpu {cpu:6.3f} s)"
          f"  straight {ts:6.3f} s"
          f"  ink ratio {ink_ratio(curves, straight):.3f}")
    if skip:
        print("    hammer_bundle  skipped (--skip-hammer)")
        return
    python = datashader_python
    if python is None:
        try:  # hammer_bundle needs dask and scikit-image besides datashader
            import dask  # noqa: F401
            import datashader  # noqa: F401
            import skimage  # noqa: F401
            python = sys.executable
        except ImportError:
            print(f"    hammer_bundle  skipped: datashader (with dask, scikit-image) is not "
                  f"importable. Install it with: {INSTALL_HINT}")
            return
    r = run_child(python, ["hammer"])
    if r is None:
        return
    print(f"    hammer_bundle  {r['edges']:,} edges  {r['hammer_s']:6.1f} s (cpu "
          f"{r['hammer_cpu_s']:.1f} s)  peak RSS "
          f"{r['peak_rss_mb']:.0f} MB (datashader {r['datashader']})")
    print(f"    speed-up nnvis / hammer_bundle: {r['hammer_s'] / tb:,.0f}x wall, "
          f"{r['hammer_cpu_s'] / cpu:,.0f}x cpu   (goal >= 50x)")


def child_fc6() -> dict:
    from nnvis_addon.core.edges import dense_edges, reduce_edges, spatial_to_dense_edges
    kernel = np.random.default_rng(0).normal(size=(7 * 7 * 512, 4096)).astype(np.float32)
    out = {}
    channel, out["channel_sum_s"] = timed(spatial_to_dense_edges, kernel, (7, 7, 512))
    out["channel_edges"] = len(channel)
    edges, out["dense_edges_s"] = timed(dense_edges, kernel)
    del kernel
    reduced, out["top8_s"] = timed(reduce_edges, edges, cap=None, top_k=8)
    out["top8_edges"] = len(reduced)
    reduced, out["cap_s"] = timed(reduce_edges, edges, cap=200_000)
    out["cap_edges"] = len(reduced)
    reduced, out["all_s"] = timed(reduce_edges, edges, cap=200_000, top_k=64, threshold=1.0)
    out["all_edges"] = len(reduced)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def row_fc6() -> None:
    print("(d) reduce_edges on a VGG16 fc6-size kernel (25,088 x 4,096 = 102.8M weights)")
    r = run_child(sys.executable, ["fc6"], timeout=900)
    if r is None:
        return
    print(f"    channel sums (7x7x512 -> 512 x 4096 = {r['channel_edges']:,} edges) "
          f"{r['channel_sum_s']:.2f} s;  dense_edges {r['dense_edges_s']:.2f} s")
    print(f"    top_k=8: {r['top8_edges']:,} edges {r['top8_s']:.2f} s;  cap=200,000: "
          f"{r['cap_edges']:,} edges {r['cap_s']:.2f} s;  threshold=1 + top_k=64 + cap: "
          f"{r['all_edges']:,} edges {r['all_s']:.2f} s;  peak RSS {r['peak_rss_mb']:.0f} MB")


# ------------------------------------------------------------------------------ plumbing


def run_child(python: str, args: list[str], timeout: float = 1800) -> dict | None:
    cmd = [python, str(Path(__file__).resolve()), "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"    failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return None
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--datashader-python", default=os.environ.get("NNVIS_BENCH_DATASHADER_PYTHON"),
                    help="a Python with datashader installed, for row (c)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="nnvis timings are the median of this many runs (default 3)")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-hammer", action="store_true")
    ap.add_argument("--skip-fc6", action="store_true")
    args = ap.parse_args()
    global REPEAT
    REPEAT = args.repeat
    if args.child:
        kind, *rest = args.child
        if kind == "big":
            REPEAT = int(rest.pop())
        result = {"big": lambda: child_big(*map(int, rest)), "hammer": child_hammer,
                  "fc6": child_fc6}[kind]()
        print(json.dumps(result))
        return
    print(f"nnvis edge-bundling benchmark: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}, {load()}; "
          f"nnvis times: median of {REPEAT} runs")
    row_mnist()
    if not args.skip_big:
        row_big()
    row_hammer(args.datashader_python, args.skip_hammer)
    if not args.skip_fc6:
        row_fc6()
    print(f"done, {load()}")


if __name__ == "__main__":
    main()
