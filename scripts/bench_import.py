#!/usr/bin/env python3
"""Import benchmark at scale: VGG16 and ResNet50 (224x224x3, random weights) into Blender.

For each model: build ``keras.applications.<Model>(weights=None)``, export one random sample
(float16 activations) with ``export_model`` to a temporary folder, then import it headless with
the working tree's scene API (``scene.import_network``, default options: connections bundled,
camera and light). Every export and every import runs in a **subprocess of its own** and the
parent imports neither TensorFlow nor bpy, so each import's peak memory (``ru_maxrss``, which
Linux carries over from a parent across fork + exec) is that model's alone. Prints, per model:

* export time and size; import time (wall and CPU) and peak memory of the import process
  (``ru_maxrss``, and the resident size before the import: bpy itself);
* issue 14, goal 2 (``bench_scrub.memory_text``, the same figures as ``bench_scrub.py``): the
  peak (VmHWM) after the import and the first evaluation *above bpy's own footprint* (measured
  in the same process right after ``import bpy``) as a ratio of the export's sidecar (its
  ``*.bin`` activation and weight data; goal <= 1.5x), and the size of the .blend saved into a
  temporary folder and its ratio to the sidecar;
* objects created, layer objects, connection objects; points: cells the layer meshes hold (what
  is drawn) next to the cells of the layers' outputs (the export), and the evaluated instances;
  connection edges (curves);
* viewport evaluation: the first ``evaluated_depsgraph_get()`` after the import (every layer's
  geometry nodes and every connection object), then a ``view_layer.update()`` after changing the
  epoch control (``scene.set_control``, which tags every layer and connection).

The bundled example is imported first, the baseline of the run. Targets on the 2-core
development VM: VGG16 import <= 15 s and <= 6 GB, ResNet50 <= 30 s and <= 8 GB, viewport
evaluation <= 1 s; peak above bpy <= 1.5x the sidecar.

    .venv/bin/python scripts/bench_import.py [--models vgg16 resnet50] [--keep DIR]
                                             [--profile 25] [--repeat-eval 3]
    .venv/bin/python scripts/bench_import.py --exports A.nnvis.json B.nnvis.json  # no export step
    .venv/bin/python scripts/bench_import.py --import-only EXPORT [--profile 25]   # one import, JSON

Not a test: it prints figures (recorded in docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_scrub
from working_tree import EXAMPLE, ROOT, import_extension_package

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = {"vgg16": "VGG16", "resnet50": "ResNet50"}  # --models key -> keras.applications name
TARGETS = {"vgg16": (15.0, 6.0), "resnet50": (30.0, 8.0)}  # import seconds, peak GB
VIEWPORT_TARGET = 1.0
RESULT_MARKER = "NNVIS_BENCH_RESULT "


def rss_gb() -> float:
    """Current resident set size (Linux /proc), in GB."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e9
    except OSError:  # pragma: no cover - not Linux
        return float("nan")


def maxrss_gb() -> float:
    """ru_maxrss of this process (kB on Linux), in GB.

    Linux carries the high-water mark across fork + exec (a child starts from its parent's
    resident size), so the benchmark's parent process stays small: TensorFlow runs in its own
    export subprocess. ``bench_scrub.peak_gb`` (VmHWM) is this process's own since exec."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------
# The child: one import in a fresh Blender


def run_import(export_path: Path, profile: int, repeat_eval: int) -> dict:
    # Blender's user folders point at empty temporary ones, so an installed nnvis never shadows
    # the working tree.
    user = Path(tempfile.mkdtemp(prefix="nnvis-bench-blender-user-"))
    for var in ("BLENDER_USER_EXTENSIONS", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS"):
        os.environ[var] = str(user / var.lower())
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    import bpy

    bpy_alone = bench_scrub.peak_gb()  # bpy's own footprint, as bench_scrub.measure takes it
    sys.path.insert(0, str(ROOT))
    import_extension_package()
    from nnvis.nnvis_addon.blender import scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rss_before = rss_gb()
    objects_before = len(bpy.data.objects)
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
    steps: list[tuple[float, str]] = []
    started = time.perf_counter()
    cpu_started = cpu_seconds()

    def progress(fraction, message):
        steps.append((time.perf_counter() - started, message))

    if profiler:
        profiler.enable()
    root = scene.import_network(export_path, scene.ImportOptions(), progress=progress)
    if profiler:
        profiler.disable()
    result = {"export": str(export_path), "import_s": time.perf_counter() - started,
              "import_cpu_s": cpu_seconds() - cpu_started, "peak_after_import_gb": maxrss_gb(),
              "rss_before_gb": rss_before, "bpy_gb": bpy_alone, "steps": steps,
              "objects": len(bpy.data.objects) - objects_before}
    result.update(evaluations(root, repeat_eval))
    result.update(contents(root, export_path, result.pop("depsgraph")))
    result.update(layers_only(root, repeat_eval))
    result.update({"peak_gb": maxrss_gb(), "hwm_gb": bench_scrub.peak_gb(),
                   "sidecar_mb": bench_scrub.sidecar_mb(export_path),
                   "blend_mb": bench_scrub.saved_blend_mb(),
                   "warnings": list(root.get("nnvis_warnings", []))})
    if profiler:
        import io
        import pstats
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(profile)
        stats.sort_stats("tottime").print_stats(profile)
        result["profile"] = out.getvalue()
    return result


def evaluations(root, repeat_eval: int) -> dict:
    """Viewport evaluation: the first one (every modifier; the peak after it is goal 2's), then
    after changing the epoch and the cell size."""
    import bpy

    start = time.perf_counter()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    figures = {"first_eval_s": time.perf_counter() - start, "peak_eval_gb": bench_scrub.peak_gb(),
               "depsgraph": depsgraph}
    epoch_evals = timed_updates(root, "nnvis_epoch", [0.0] * repeat_eval)
    cell_size = root["nnvis_cell_size"]
    cell_evals = timed_updates(root, "nnvis_cell_size",
                               [cell_size * (1.1 if i % 2 == 0 else 1.0) for i in range(repeat_eval)])
    figures.update({
        "epoch_eval_s": statistics.median(epoch_evals) if epoch_evals else None,
        "epoch_evals_s": epoch_evals,
        "cell_size_eval_s": statistics.median(cell_evals) if cell_evals else None})
    return figures


def layers_only(root, repeat_eval: int) -> dict:
    """The layers' share of the viewport evaluation: an epoch change, connections hidden."""
    import bpy

    connections = connection_objects(root)
    for obj in connections:
        obj.hide_viewport = True
    bpy.context.view_layer.update()
    layer_evals = timed_updates(root, "nnvis_epoch", [0.0] * repeat_eval)
    for obj in connections:
        obj.hide_viewport = False
    return {"layers_only_eval_s": statistics.median(layer_evals) if layer_evals else None}


def timed_updates(root, control: str, values) -> list[float]:
    """Seconds of ``view_layer.update()`` after setting ``control`` to each value in turn."""
    import bpy
    from nnvis.nnvis_addon.blender import scene

    times = []
    for value in values:
        scene.set_control(root, control, value)  # tags every layer and connection
        start = time.perf_counter()
        bpy.context.view_layer.update()
        times.append(time.perf_counter() - start)
    return times


def connection_objects(root) -> list:
    return [o for o in root.users_collection[0].objects if o.get("nnvis_connection")
            or o.get("nnvis_source_layer") is not None]


def contents(root, export_path: Path, depsgraph) -> dict:
    """What the import made: objects, drawn and evaluated cells, connection edges."""
    import bpy
    from nnvis.nnvis_addon.blender import scene
    from nnvis.nnvis_addon.core.export_format import read_export

    export = read_export(export_path, check_finite=False)
    layers = scene.network_layers(root)
    connections = connection_objects(root)
    # Layers with few cells are drawn as instanced tiles, big ones as points (level of detail).
    instances = points = 0
    for obj in layers:
        geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
        cloud = geometry.instances_pointcloud()
        instances += len(cloud.points) if cloud is not None else 0
        points += len(geometry.pointcloud.points) if geometry.pointcloud is not None else 0
    curves = [o for o in connections if o.type == "CURVES"]
    return {
        "layer_objects": len(layers), "connection_objects": len(connections),
        "drawn_cells": int(sum(len(o.data.vertices) for o in layers)),
        "output_cells": int(sum(layer.cells for layer in export.layers)),
        "evaluated_instances": int(instances), "evaluated_points": int(points),
        "edges": int(sum(len(o.data.curves) for o in curves)),
        "curve_points": int(sum(len(o.data.points) for o in curves)),
        "downsampled": [(o["nnvis_layer"], int(o.get("nnvis_display_stride", 1)))
                        for o in layers if int(o.get("nnvis_display_stride", 1)) > 1]}


# --------------------------------------------------------------------------------------------
# The parent: export, then one subprocess per import


def export_one(key: str, work: Path) -> tuple[Path, dict]:
    """Build and export one model (in the export subprocess)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from nnvis_export import export_model

    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = getattr(keras.applications, MODELS[key])(weights=None, input_shape=(224, 224, 3))
    t_build = time.perf_counter() - start
    sample = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32) * 255.0
    start = time.perf_counter()
    path = export_model(model, sample, work / key, name=key, activation_dtype="float16",
                        verbose=False)
    t_export = time.perf_counter() - start
    size = sum(p.stat().st_size for p in path.parent.iterdir())
    info = {"layers": len(model.layers), "params": model.count_params(), "build_s": t_build,
            "export_s": t_export, "size_mb": size / 1e6, "path": str(path),
            "versions": f"TensorFlow {tf.__version__}, Keras {keras.__version__}",
            "export_peak_gb": maxrss_gb()}
    return path, info


def in_subprocess(*arguments: str) -> dict:
    """Run this script with ``arguments`` in a fresh Python; return the JSON it prints."""
    command = [sys.executable, str(Path(__file__).resolve()), *arguments]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-8000:])
        return {"error": f"{arguments[0]} process exited with status {completed.returncode}",
                "stderr": completed.stderr[-8000:]}
    result = json.loads(lines[-1][len(RESULT_MARKER):])
    result["process_s"] = wall
    return result


def memory_line(result: dict, baseline: bool = False) -> str:
    """Issue 14, goal 2: the peak after the import and the first evaluation, above bpy's own
    footprint, against the sidecar; the saved .blend against the sidecar."""
    return "memory (goal 2): " + bench_scrub.memory_text(
        result["peak_eval_gb"], result["bpy_gb"], result["sidecar_mb"], result["blend_mb"],
        baseline=baseline)


def report(name: str, info: dict | None, result: dict) -> None:
    """Print one model's figures; ``info`` is None for an export made elsewhere (--exports)."""
    if info is None:
        print(f"\n== {name} (existing export {result.get('export', '')})")
    else:
        print(f"\n== {name}: {info['layers']} layers, {info['params']:,} parameters "
              f"({info['versions']})")
        print(f"export (1 sample, float16 activations, float32 weights): {info['export_s']:.2f} s,"
              f" {info['size_mb']:.0f} MB  (model built in {info['build_s']:.1f} s; export "
              f"process peak {info['export_peak_gb']:.2f} GB)")
    if "error" in result:
        print(f"IMPORT FAILED: {result['error']}\n{result['stderr']}")
        return
    seconds, gigabytes = TARGETS.get(name.lower(), (float("inf"), float("inf")))

    def verdict(value, limit):
        return "ok" if value <= limit else "OVER"

    print(f"import: {result['import_s']:.2f} s wall, {result['import_cpu_s']:.2f} s CPU  "
          f"(target <= {seconds:g} s: {verdict(result['import_s'], seconds)}); whole process "
          f"{result['process_s']:.1f} s")
    print(f"peak memory of the import process (ru_maxrss): {result['peak_gb']:.2f} GB (VmHWM "
          f"{result['hwm_gb']:.2f} GB), of which after the import "
          f"{result['peak_after_import_gb']:.2f} GB, the rest in the evaluations; bpy "
          f"before the import "
          f"{result['rss_before_gb']:.2f} GB  (target <= {gigabytes:g} GB: "
          f"{verdict(result['peak_gb'], gigabytes)})")
    print(memory_line(result))
    report_contents(result)
    print(f"viewport: first evaluation {result['first_eval_s']:.2f} s; after changing the epoch "
          f"{result['epoch_eval_s']:.2f} s (median of "
          f"{[round(t, 2) for t in result['epoch_evals_s']]})"
          f" (target <= {VIEWPORT_TARGET:g} s: "
          f"{verdict(max(result['first_eval_s'], result['epoch_eval_s']), VIEWPORT_TARGET)}); "
          f"after changing the cell size {result['cell_size_eval_s']:.2f} s; epoch change with "
          f"the connections hidden (layers only) {result['layers_only_eval_s']:.2f} s")
    steps = result["steps"]
    slow = sorted(((b[0] - a[0], a[1]) for a, b in zip(steps, steps[1:])), reverse=True)[:6]
    print("slowest import steps (from a progress message to the next; after the last layer's "
          "message comes the wiring plan): " + "; ".join(f"{m} {t:.2f} s" for t, m in slow))
    if result.get("warnings"):
        print(f"import warnings: {len(result['warnings'])}, e.g. {result['warnings'][0]}")
    if result.get("profile"):
        print(result["profile"])


def report_contents(result: dict) -> None:
    print(f"objects: {result['objects']} ({result['layer_objects']} layers, "
          f"{result['connection_objects']} connection objects)")
    print(f"points: {result['drawn_cells']:,} drawn cells (evaluated: "
          f"{result['evaluated_instances']:,} instanced tiles + {result['evaluated_points']:,} "
          f"points) for {result['output_cells']:,} output cells")
    if result["downsampled"]:
        print("downsampled layers (stride): " + ", ".join(f"{n} x{s}" for n, s in
                                                          result["downsampled"]))
    print(f"connections: {result['edges']:,} edges ({result['curve_points']:,} curve points)")


def import_report(export: Path, args, name: str, info: dict | None = None) -> None:
    result = in_subprocess("--import-only", str(export), "--profile", str(args.profile),
                           "--repeat-eval", str(args.repeat_eval))
    report(name, info, result)


def report_example(repeat_eval: int) -> None:
    """The bundled example first: the baseline the big models compare against."""
    example = in_subprocess("--import-only", str(EXAMPLE), "--profile", "0",
                            "--repeat-eval", str(repeat_eval))
    if "error" in example:
        print(f"\n== bundled example: IMPORT FAILED: {example['error']}\n{example['stderr']}")
        return
    print(f"\n== bundled example (digits_cnn, {example['layer_objects']} layers, 4 samples x "
          f"13 epochs): import {example['import_s']:.2f} s wall, peak memory "
          f"{example['peak_gb']:.2f} GB (bpy alone {example['rss_before_gb']:.2f} GB), "
          f"{example['drawn_cells']:,} cells, {example['edges']:,} edges; viewport after an "
          f"epoch change {example['epoch_eval_s'] * 1000:.0f} ms")
    print(memory_line(example, baseline=True))


def export_and_import(args) -> None:
    work = args.keep or Path(tempfile.mkdtemp(prefix="nnvis-bench-import-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for key in args.models:
            info = in_subprocess("--export-only", key, str(work))
            if "error" in info:
                print(f"\n== {MODELS[key]}: EXPORT FAILED: {info['error']}\n{info['stderr']}")
                continue
            import_report(Path(info["path"]), args, MODELS[key], info)
            if not args.keep:
                shutil.rmtree(Path(info["path"]).parent, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--exports", nargs="+", type=Path, metavar="EXPORT",
                        help="import these existing exports (.nnvis.json) instead of exporting "
                             "--models")
    parser.add_argument("--keep", type=Path, help="write the exports here and keep them")
    parser.add_argument("--profile", type=int, default=0,
                        help="print the top N functions of a cProfile of each import")
    parser.add_argument("--repeat-eval", type=int, default=3)
    parser.add_argument("--import-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--export-only", nargs=2, metavar=("MODEL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.import_only:
        result = run_import(args.import_only, args.profile, args.repeat_eval)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    if args.export_only:
        sys.path.insert(0, str(ROOT))
        _, info = export_one(args.export_only[0], Path(args.export_only[1]))
        print(RESULT_MARKER + json.dumps(info), flush=True)
        return 0

    # This process stays small (no TensorFlow, no bpy): each export and each import runs in a
    # subprocess of its own, whose ru_maxrss is then that step's alone.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"average {load:.1f}")
    report_example(args.repeat_eval)
    if args.exports:
        for export in args.exports:
            import_report(export, args, export.name.split(".")[0])
    else:
        export_and_import(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
