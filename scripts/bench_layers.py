#!/usr/bin/env python3
"""Many-layer benchmark: import, ``scene.frame_set`` and Remove Network of long chains of tiny
layers, beside the bundled example measured in the same run. Prints figures only (not a test).

Each case runs in a **subprocess of its own** (a fresh Blender, headless, the working tree's
add-on): the bundled digits example (the baseline), then synthetic chains made with
``tests/export_factory.py`` (no TensorFlow): ``Input(4) -> Dense(4) x (N - 1)`` ("dense", 16
edges a link) or ``Input(4x4x1) -> Conv2D(4x4x2, 3x3 same) x (N - 1)`` ("conv"), one sample, two
recorded epochs. For each case, ``--repeat`` times:

* **import**: ``scene.import_network`` with the default options (connections bundled, labels,
  camera, light, placed in the empty scene), wall and CPU seconds;
* **first evaluation**: the ``evaluated_depsgraph_get()`` after it (every modifier);
* **frame_set**: the epochs animated (``playback.animate_epochs``), then ``scene.frame_set`` on
  ``--frames`` frames between the two recorded epochs, median wall and CPU seconds a frame;
* **removal, headless**: ``lifecycle.remove_network`` (Remove Network) in the process that made
  the network, wall and CPU seconds, and the objects it removed. A headless ``bpy`` has no event
  loop, so the notifiers that making the objects queued are never handled, and Blender scans that
  queue for every removed data-block: this figure grows with the removed objects times the
  objects made in the session;
* **removal, reopened**: the same after the file was saved (before the removal above) and
  opened again in the same process, its root found again (``network.iter_networks``): what a
  click on Remove Network meets in Blender's interface, whose event loop handles the queue once
  the import returns.

Medians over the repeats are printed; CPU time (all threads of the process) is the steadier
figure on a shared machine. ``--profile N`` prints the top N functions of a cProfile of each
step of the first repeat.

    .venv/bin/python scripts/bench_layers.py [--layers 1000 5000] [--kind dense] [--repeat 3]
                                             [--frames 5] [--profile 25]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from working_tree import EXAMPLE, ROOT, import_extension_package

RESULT_MARKER = "NNVIS_BENCH_RESULT "
TARGETS = {"import_s": 5.0, "frame_s": 0.5}  # for 1,000 layers (issue 14, goal 3)


def chain_export(folder: Path, layers: int, kind: str) -> Path:
    """A chain of ``layers`` tiny layers (tests/export_factory.py), one sample, two epochs."""
    sys.path.insert(0, str(ROOT / "tests"))
    from export_factory import LayerDef, dense_layers, make_export

    if kind == "dense":
        defs = dense_layers(4, [4] * (layers - 1))
    else:
        defs = [LayerDef("input", "InputLayer", (4, 4, 1), inbound=[])]
        channels = 1
        for index in range(layers - 1):
            defs.append(LayerDef(f"conv_{index}", "Conv2D", (4, 4, 2),
                                 weights=[("kernel", (3, 3, channels, 2)), ("bias", (2,))],
                                 config={"filters": 2, "kernel_size": [3, 3], "padding": "same"}))
            channels = 2
    return make_export(folder, name=f"chain{layers}", layers=defs, samples=1, epochs=2).path


def _timed(step, profile: int, profiles: dict, name: str):
    """Run ``step()``; (its result, wall seconds, CPU seconds), its cProfile in ``profiles``."""
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile(time.process_time)  # CPU time: steadier on a shared machine
        profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler is not None:
        import io
        import pstats
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(profile)
        stats.sort_stats("tottime").print_stats(profile)
        profiles[name] = out.getvalue()
    return result, wall, cpu


def one_run(export_path: Path, frames: int, profile: int) -> dict:
    """Import, evaluate, step frames, save, remove; then reopen the saved file and remove again."""
    import bpy
    from nnvis.nnvis_addon.blender import network, playback, scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    profiles: dict[str, str] = {}
    objects_before = len(bpy.data.objects)
    root, t_import, c_import = _timed(
        lambda: scene.import_network(export_path, scene.ImportOptions()), profile, profiles,
        "import")
    objects = len(bpy.data.objects) - objects_before
    _, t_eval, c_eval = _timed(bpy.context.evaluated_depsgraph_get, 0, profiles, "")
    layers = network.network_layers(root)
    box = np.ptp(np.array([tuple(obj.matrix_world.translation) for obj in layers]), axis=0)
    playback.animate_epochs(root)
    bpy_scene = bpy.context.scene
    timing = playback.epoch_timing(root)
    start = timing.leave(0) if timing is not None else 2
    bpy_scene.frame_set(start)
    walls, cpus = [], []
    for number in range(frames):
        _, wall, cpu = _timed(lambda n=number: bpy_scene.frame_set(start + 1 + n),
                              profile if number == 0 else 0, profiles, "frame_set")
        walls.append(wall)
        cpus.append(cpu)
    blend = Path(tempfile.mkdtemp(prefix="nnvis-bench-blend-")) / "network.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    removal = _removal(lambda: root, profile, profiles, "remove")
    left = len(bpy.data.objects) - objects_before
    reopened = _removal(lambda: _reopen(blend), profile, profiles, "remove_reopened")
    return {"import_s": t_import, "import_cpu_s": c_import, "eval_s": t_eval, "eval_cpu_s": c_eval,
            "frame_s": statistics.median(walls), "frame_cpu_s": statistics.median(cpus),
            **removal, **{"reopened_" + key: value for key, value in reopened.items()},
            "objects": objects, "layer_objects": len(layers), "left": left,
            "extent": [float(v) for v in box], "profiles": profiles}


def _reopen(blend: Path):
    """Open the saved file (a fresh notifier queue) and find its one network's root."""
    import bpy
    from nnvis.nnvis_addon.blender import network

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    blend.unlink()
    (root,) = network.iter_networks()
    return root


def _removal(find_root, profile: int, profiles: dict, name: str) -> dict:
    """Time ``lifecycle.remove_network`` on ``find_root()``; wall, CPU, objects removed."""
    import bpy
    from nnvis.nnvis_addon.blender import lifecycle

    root = find_root()
    before = len(bpy.data.objects)
    _, wall, cpu = _timed(lambda: lifecycle.remove_network(root), profile, profiles, name)
    return {"remove_s": wall, "remove_cpu_s": cpu, "removed": before - len(bpy.data.objects)}


def child(export: str, layers: int, kind: str, repeat: int, frames: int, profile: int) -> dict:
    user = Path(tempfile.mkdtemp(prefix="nnvis-bench-blender-user-"))
    for var in ("BLENDER_USER_EXTENSIONS", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS"):
        os.environ[var] = str(user / var.lower())
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    import bpy  # noqa: F401  (before the extension package, which needs it)

    sys.path.insert(0, str(ROOT))
    import_extension_package()
    path = Path(export) if export else chain_export(
        Path(tempfile.mkdtemp(prefix="nnvis-bench-layers-")), layers, kind)
    runs = [one_run(path, frames, profile if index == 0 else 0) for index in range(repeat)]
    result = {key: statistics.median(run[key] for run in runs)
              for key in runs[0] if key.endswith("_s")}
    for key in ("objects", "layer_objects", "left", "extent", "removed", "reopened_removed"):
        result[key] = runs[0][key]
    result["profiles"] = runs[0]["profiles"]
    result["runs"] = [{k: v for k, v in run.items() if k.endswith("_s")} for run in runs]
    return result


def in_subprocess(*arguments: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), *arguments]
    completed = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        return {"error": f"exited with status {completed.returncode}",
                "stderr": (completed.stdout[-2000:] + completed.stderr[-6000:])}
    return json.loads(lines[-1][len(RESULT_MARKER):])


def report(title: str, result: dict, targets: bool) -> None:
    print(f"\n== {title}")
    if "error" in result:
        print(f"FAILED: {result['error']}\n{result['stderr']}")
        return

    def verdict(key):
        return f" (target <= {TARGETS[key]:g} s: " \
            f"{'ok' if result[key] <= TARGETS[key] else 'OVER'})" if targets else ""

    extent = " x ".join(f"{v:.0f}" for v in result["extent"])
    print(f"objects: {result['objects']} ({result['layer_objects']} layers); layer origins span "
          f"{extent} (x, y, z)")
    print(f"import:      {result['import_s']:7.2f} s wall, {result['import_cpu_s']:7.2f} s CPU"
          f"{verdict('import_s')}")
    print(f"first eval:  {result['eval_s']:7.2f} s wall, {result['eval_cpu_s']:7.2f} s CPU")
    print(f"frame_set:   {result['frame_s']:7.3f} s wall, {result['frame_cpu_s']:7.3f} s CPU "
          f"(median a frame){verdict('frame_s')}")
    for label, prefix in (("removal, headless (no event loop)", ""),
                          ("removal, after save + reopen", "reopened_")):
        removed = result[prefix + "removed"]
        per_object = 1e6 * result[prefix + "remove_cpu_s"] / max(removed, 1)
        print(f"{label + ':':<35} {result[prefix + 'remove_s']:7.3f} s wall, "
              f"{result[prefix + 'remove_cpu_s']:7.3f} s CPU; {removed} objects removed, "
              f"{per_object:.0f} us CPU an object")
    print(f"objects left after the headless removal: {result['left']}")
    print("runs: " + "; ".join(", ".join(f"{k} {v:.2f}" for k, v in run.items())
                               for run in result["runs"]))
    for name, text in result["profiles"].items():
        print(f"-- profile: {name}\n{text}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--kind", choices=("dense", "conv"), default="dense")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--no-example", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("EXPORT", "LAYERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(args.child[0], int(args.child[1]), args.kind, args.repeat, args.frames,
                       args.profile)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    common = ["--kind", args.kind, "--repeat", str(args.repeat), "--frames", str(args.frames),
              "--profile", str(args.profile)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"average {load:.1f}; {args.repeat} runs each, medians")
    if not args.no_example:
        report("bundled example (digits_cnn), the baseline",
               in_subprocess("--child", str(EXAMPLE), "0", *common), False)
    for layers in args.layers:
        report(f"chain of {layers:,} {args.kind} layers",
               in_subprocess("--child", "", str(layers), *common), layers <= 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
