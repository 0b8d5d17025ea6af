#!/usr/bin/env python3
"""Scrubbing benchmark (issue 14, goals 1 and 2): the cost of a frame between two recorded epochs
and the memory of an import, per export, each in a subprocess of its own (so each peak is its
own). Prints figures only (not a test).

For every export: import with the default options, ``animate_epochs``, then ``scene.frame_set``
on frames between two recorded epochs (median wall and CPU of each frame, ``--frames`` of them),
first as imported (big layers draw points in the viewport), then with every layer drawing its
render tiles (``Viewport Points`` off: what a final render evaluates); the peak resident memory
(``ru_maxrss``) after import against the export's sidecar (the activation and weight data it
holds) and bpy's own footprint measured in the same subprocess before the import; the size of
the saved .blend.

    .venv/bin/python scripts/bench_scrub.py [--vgg EXPORT.nnvis.json] [--frames 24]
        [--models ResNet50 MobileNetV2] [--keep DIR]

Runs: the bundled example (baseline), a synthetic CNN at 48x48x3 (conv 46x46x32) with 6 and with
60 recorded epochs (2 samples; tests/export_factory.py, no TensorFlow), and a VGG16 export if
given, and ``--models``: keras.applications models exported here with two epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from working_tree import EXAMPLE, ROOT, import_extension_package

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def measure(export: Path, frames: int) -> dict:
    """Runs in the subprocess: import, animate, step frames; return the figures."""
    import bpy

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    import_extension_package()
    from nnvis.nnvis_addon.blender import network, playback
    from nnvis.nnvis_addon.blender import scene as scene_api

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    start = time.perf_counter()
    root = scene_api.import_network(export)
    imported = time.perf_counter() - start
    bpy.context.evaluated_depsgraph_get()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    first, last = playback.animate_epochs(root)
    fcurve = playback.epoch_fcurve(root)
    between = [f for f in range(first, last + 1) if fcurve.evaluate(f) % 1.0 > 1e-6][:frames]

    def step() -> tuple[float, float]:
        scene.frame_set(between[0] - 1)
        walls, cpus = [], []
        for frame in between:
            wall, cpu = time.perf_counter(), time.process_time()
            scene.frame_set(frame)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3

    viewport = step()
    layers = network.network_layers(root)
    for obj in layers:
        scene_api.compat.set_modifier_input(obj.modifiers[scene_api.MODIFIER_NAME],
                                            "Viewport Points", False)
        obj.update_tag()
    bpy.context.evaluated_depsgraph_get()
    tiles = step()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scrub.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path))
        blend = path.stat().st_size / 1e6
    sidecar = sum(p.stat().st_size for p in export.parent.glob(f"{export.name.split('.')[0]}*.bin"))
    cells = sum(len(o.data.vertices) for o in layers)
    return {"import_s": imported, "peak_gb": peak, "bpy_gb": baseline, "sidecar_mb": sidecar / 1e6,
            "blend_mb": blend, "viewport_ms": viewport, "tiles_ms": tiles, "frames": len(between),
            "epochs": len(root[playback.names.EPOCH_NUMBERS]), "cells": cells}


def two_epochs(model_name: str, folder: Path) -> Path:
    """A keras.applications model (weights=None), one random 224x224 sample, two recorded
    epochs: the random weights, then the same plus 1 % noise (as bench_playback's VGG16)."""
    import keras
    import numpy as np

    from nnvis_export.session import ExportSession

    path = folder / model_name / f"{model_name}.nnvis.json"
    if path.exists():
        return path
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, model_name)(weights=None, input_shape=(224, 224, 3))
    sample = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32) * 255.0
    session = ExportSession(model, sample, folder / model_name, name=model_name, verbose=False)
    try:
        session.record(0, None)
        rng = np.random.default_rng(1)
        model.set_weights([w + 0.01 * np.std(w) * rng.standard_normal(w.shape).astype(w.dtype)
                           for w in model.get_weights()])
        session.record(1, None)
    except BaseException:
        session.abort()
        raise
    return session.finish()


def synthetic(folder: Path, epochs: int) -> Path:
    from export_factory import cnn_layers, make_export

    built = make_export(folder / f"cnn{epochs}", name=f"cnn{epochs}",
                        layers=cnn_layers((48, 48, 3), filters=32, units=10), samples=2,
                        epochs=epochs)
    return built.path


def run(label: str, export: Path, frames: int) -> None:
    out = subprocess.run([sys.executable, __file__, "--measure", str(export), "--frames",
                          str(frames)], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"{label}: failed\n{out.stderr[-2000:]}")
        return
    r = json.loads(lines[-1])
    data = r["sidecar_mb"]
    print(f"{label:28s} {r['epochs']:3d} epochs {r['cells']:>10,} cells | frame (median of "
          f"{r['frames']}) viewport {r['viewport_ms'][0]:6.2f} ms wall / {r['viewport_ms'][1]:6.2f}"
          f" ms CPU, tiles {r['tiles_ms'][0]:6.2f} / {r['tiles_ms'][1]:6.2f} ms | import "
          f"{r['import_s']:.2f} s, peak {r['peak_gb']:.2f} GB (bpy {r['bpy_gb']:.2f} GB: +"
          f"{(r['peak_gb'] - r['bpy_gb']) * 1e3:.0f} MB = {(r['peak_gb'] - r['bpy_gb']) * 1e3 / data:.2f}"
          f"x the {data:.0f} MB sidecar) | .blend {r['blend_mb']:.0f} MB "
          f"({r['blend_mb'] / data:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vgg", type=Path, help="a VGG16 export (.nnvis.json)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--models", nargs="*", default=[], metavar="NAME",
                        help="keras.applications models to export with two epochs (e.g. ResNet50)")
    parser.add_argument("--keep", type=Path, help="folder for (and reuse of) those exports")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--export-model", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_model:
        two_epochs(args.export_model[0], Path(args.export_model[1]))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.frames)))
        return
    load = "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs; {load}")
    run("bundled example (baseline)", EXAMPLE, args.frames)
    with tempfile.TemporaryDirectory() as folder:
        for epochs in (6, 60):
            run(f"CNN 48x48, {epochs} epochs", synthetic(Path(folder), epochs), args.frames)
    if args.vgg:
        run("VGG16", args.vgg, args.frames)
    if args.models:
        keep = args.keep or Path(tempfile.mkdtemp(prefix="nnvis-bench-scrub-"))
        for name in args.models:  # exported in a subprocess: its memory is not the import's
            subprocess.run([sys.executable, __file__, "--export-model", name, str(keep)],
                           check=True)
            run(name, keep / name / f"{name}.nnvis.json", args.frames)
    print("load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
