#!/usr/bin/env python3
"""Playback benchmark (issue 14, goal 1): what a frame of an epoch animation costs. Prints figures
only (not a test).

The recorded values live in a value atlas that the materials read (two recorded epochs around the
shown one, mixed in the shader); a frame change evaluates no geometry, only the root's keyframes,
the drivers that copy the shown (sample, epoch, step) to the shaded objects, and the epoch
counter. Goals, median wall time of ``scene.frame_set`` on a frame between two recorded epochs
(2-core development VM): the bundled example <= 5 ms, VGG16 <= 40 ms, ResNet50 <= 60 ms; the cost
independent of the number of recorded epochs (60 recorded epochs within 1.2x of 6).

1. the bundled digits example, animated with ``playback.animate_epochs`` (default 24 frames per
   epoch, 12 hold frames); every frame of the animation is visited with ``scene.frame_set`` and
   timed (mean / median / max, wall and CPU); then the same frames with only the layers', only
   the connections', only the counter's geometry-nodes modifiers shown (and none), and what-ifs
   (no label objects, connections as hair curves), to show where the time goes;
2. recorded epochs, with ``bench_scrub``'s measurement (each import in a subprocess of its own,
   frames between two recorded epochs, viewport points and render tiles): the bundled example
   (the baseline of this run), a synthetic CNN at 48x48x3 with 6 and with 60 recorded epochs, and
   the ratio of their frame costs;
3. ``--models`` (default VGG16): keras.applications models (``weights=None``, one random sample,
   two recorded epochs: the random weights, then the same plus 1 % noise), exported by
   ``bench_scrub.two_epochs`` into ``--keep`` (an export already there is reused) or a temporary
   folder, imported with the default options, animated; ``--model-frames`` transition frames
   timed against the model's goal, with the same per-modifier breakdown.

    .venv/bin/python scripts/bench_playback.py [--frames-per-epoch 24] [--hold-frames 12]
        [--no-example] [--no-epochs] [--scrub-frames 24] [--models VGG16 ResNet50 | --no-vgg]
        [--model-frames 12] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_scrub import FRAME_GOALS_MS, peak_gb, recorded_epochs, two_epochs
from working_tree import EXAMPLE, ROOT, import_extension_package

sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_average() -> str:
    try:
        return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:
        return "load average n/a"


def step_frames(scene, frames) -> list[tuple[float, float]]:
    """(wall, process CPU) seconds per ``frame_set`` (full depsgraph evaluation of that frame).
    CPU time (all threads of this process) is the steadier figure on a shared, loaded machine."""
    scene.frame_set(frames[0] - 1 if frames[0] > scene.frame_start else frames[-1])
    times = []
    for frame in frames:
        wall, cpu = time.perf_counter(), time.process_time()
        scene.frame_set(frame)
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def summary(times: list[tuple[float, float]], goal_ms: float | None = None) -> str:
    wall = [t[0] * 1e3 for t in times]
    cpu = [t[1] * 1e3 for t in times]
    text = (f"wall mean {statistics.fmean(wall):6.1f} / median {statistics.median(wall):6.1f} / "
            f"max {max(wall):6.1f} ms; CPU mean {statistics.fmean(cpu):6.1f} / median "
            f"{statistics.median(cpu):6.1f} / max {max(cpu):6.1f} ms ({len(times)} frames)")
    if goal_ms is not None:
        met = statistics.median(wall) <= goal_ms
        text += f"; goal median <= {goal_ms:g} ms: {'met' if met else 'OVER'}"
    return text


def modifier_groups(root, scene_api, connections, playback):
    layers = [o.modifiers[0] for o in scene_api.network_layers(root)]
    links = [o.modifiers[0] for o in connections.network_connections(root)]
    counter = playback.find_counter(root)
    return {"layers": layers, "connections": links,
            "counter": [counter.modifiers[0]] if counter is not None else []}


def breakdown(scene, frames, groups) -> None:
    everything = [m for group in groups.values() for m in group]
    for name, group in groups.items():
        for modifier in everything:
            modifier.show_viewport = modifier in group
        for modifier in everything:
            modifier.id_data.update_tag()
        print(f"  only {name:12s} ({len(group)} modifiers): {summary(step_frames(scene, frames))}")
    for modifier in everything:
        modifier.show_viewport = True
        modifier.id_data.update_tag()
    for modifier in everything:
        modifier.show_viewport = False
        modifier.id_data.update_tag()
    print(f"  no modifiers (keyframes + drivers only): {summary(step_frames(scene, frames))}")
    for modifier in everything:
        modifier.show_viewport = True
        modifier.id_data.update_tag()


def what_if(scene, frames, root, scene_api, connections, compat) -> None:
    """Where the time goes: the same frames with the label objects hidden (static text: they
    should cost nothing a frame), then with connections as hair curves (none of these changes
    is saved anywhere)."""
    labels = [obj for obj in scene_api.network.network_labels(root) if not obj.hide_viewport]
    links = connections.network_connections(root)

    def set_all(objects, name, value):
        for obj in objects:
            compat.set_modifier_input(obj.modifiers[0], name, value)
            obj.update_tag()

    tubes = {obj.name: compat.get_modifier_input(obj.modifiers[0], "As Tubes") for obj in links}
    for obj in labels:
        obj.hide_viewport = True
    print(f"  what if no label objects ({len(labels)}):          "
          f"{summary(step_frames(scene, frames))}")
    for obj in labels:
        obj.hide_viewport = False
    set_all(links, "As Tubes", False)
    print(f"  what if connections as hair curves:        {summary(step_frames(scene, frames))}")
    for obj in links:
        compat.set_modifier_input(obj.modifiers[0], "As Tubes", tubes[obj.name])
        obj.update_tag()


def describe(root, scene_api, connections) -> str:
    layers = scene_api.network_layers(root)
    links = connections.network_connections(root)
    cells = sum(len(o.data.vertices) for o in layers)
    edges = sum(len(o.data.curves) for o in links)
    return (f"{len(layers)} layers, {cells:,} cells, {len(links)} connection objects, "
            f"{edges:,} edges, {len(root['nnvis_epoch_numbers'])} epochs")


def bench_example(args, bpy, scene_api, connections, playback, compat) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    root = scene_api.import_network(EXAMPLE, scene_api.ImportOptions())
    first, last = playback.animate_epochs(root, args.frames_per_epoch, args.hold_frames)
    print(f"\nexample: {describe(root, scene_api, connections)}; frames {first}-{last}")
    frames = list(range(first, last + 1))
    step_frames(scene, frames[:5])  # warm-up
    print(f"  every frame, everything:    "
          f"{summary(step_frames(scene, frames), FRAME_GOALS_MS['example'])}   [{load_average()}]")
    sample = frames[:: max(1, len(frames) // 60)]
    breakdown(scene, sample, modifier_groups(root, scene_api, connections, playback))
    what_if(scene, sample, root, scene_api, connections, compat)


def bench_model(name, args, bpy, scene_api, connections, playback) -> None:
    """One keras.applications model with two recorded epochs, in this process."""
    work = args.keep or Path(tempfile.mkdtemp(prefix="nnvis-bench-playback-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        reused = (work / name / f"{name}.nnvis.json").exists()
        path = two_epochs(name, work)
        size = sum(p.stat().st_size for p in path.parent.iterdir())
        made = "reused" if reused else f"{time.perf_counter() - start:.1f} s"
        print(f"\n{name} export (1 random sample, 2 epochs): {made}, {size / 1e6:.0f} MB")
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        start = time.perf_counter()
        root = scene_api.import_network(path, scene_api.ImportOptions())
        print(f"  import with connections: {time.perf_counter() - start:.1f} s; "
              f"{describe(root, scene_api, connections)}")
        start = time.perf_counter()
        first, last = playback.animate_epochs(root, args.frames_per_epoch, args.hold_frames)
        print(f"  animate_epochs (+ first frame): {time.perf_counter() - start:.1f} s; "
              f"frames {first}-{last}")
        transition = list(range(first + args.hold_frames, last - args.hold_frames + 1))
        frames = transition[:: max(1, len(transition) // args.model_frames)][: args.model_frames]
        print(f"  transition frames, everything: "
              f"{summary(step_frames(scene, frames), FRAME_GOALS_MS.get(name))}   "
              f"[{load_average()}]")
        breakdown(scene, frames[: max(3, len(frames) // 3)],
                  modifier_groups(root, scene_api, connections, playback))
        print(f"  peak resident memory of this process (all it did so far): {peak_gb():.1f} GB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames-per-epoch", type=int, default=24)
    parser.add_argument("--hold-frames", type=int, default=12)
    parser.add_argument("--no-example", action="store_true")
    parser.add_argument("--no-epochs", action="store_true",
                        help="skip the 6 / 60 recorded epochs comparison")
    parser.add_argument("--scrub-frames", type=int, default=24,
                        help="frames timed per export in the recorded epochs comparison")
    parser.add_argument("--models", nargs="*", default=["VGG16"], metavar="NAME",
                        help="keras.applications models with two recorded epochs (VGG16, ResNet50)")
    parser.add_argument("--no-vgg", action="store_true", help="same as --models with no name")
    parser.add_argument("--model-frames", "--vgg-frames", type=int, default=12)
    parser.add_argument("--keep", type=Path, help="write the model exports here (or reuse them)")
    args = parser.parse_args(argv)

    import bpy
    import_extension_package()
    from nnvis.nnvis_addon.blender import compat, connections, playback
    from nnvis.nnvis_addon.blender import scene as scene_api

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"Blender {bpy.app.version_string}; {load_average()}")
    if not args.no_example:
        bench_example(args, bpy, scene_api, connections, playback, compat)
    if not args.no_epochs:
        print("\nrecorded epochs (bench_scrub: each import in a subprocess of its own, frames "
              "between two recorded epochs):")
        recorded_epochs(args.scrub_frames)
    for name in [] if args.no_vgg else args.models:
        bench_model(name, args, bpy, scene_api, connections, playback)
    print(load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())
