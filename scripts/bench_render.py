#!/usr/bin/env python3
"""Render benchmark: nnvis's render preset against Blender's default Cycles settings, at equal
quality. Prints figures only (not a test).

For the bundled example and the default import of VGG16 (``keras.applications.VGG16(weights=
None)``, sklearn's china.jpg, exported by scripts/make_zoo.py on first use):

1. a reference: Blender's default Cycles settings with 512 samples (cached in ``--keep``);
2. Blender's default Cycles settings as they are (4096 samples, noise threshold 0.01,
   OpenImageDenoise): time and PSNR against the reference (cached in ``--keep``);
3. the default settings with the fewest samples of 8, 16, 32, ... whose PSNR reaches 35 dB
   (the default settings "at equal quality");
4. the render preset (``render.apply_render_preset``): time and PSNR; goal >= 35 dB and >= 4x
   faster than (2);
5. (VGG16) one 1920x1080 frame with the preset, a fresh render (scene synchronised from
   scratch): goal <= 30 s.

PSNR and the times of 1-4 are at a reduced resolution (``--width``/``--height``, default 480x270,
a quarter of 1920x1080 each way) because the default settings take minutes a frame on 2 cores.
Every render is timed in wall and process CPU seconds (the machine is shared: CPU time is the
steadier figure) with the load average beside it.

    .venv/bin/python scripts/bench_render.py [--keep out/bench_render] [--only example vgg16]
        [--width 480 --height 270] [--zoo out/zoo] [--no-hd]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from working_tree import EXAMPLE, ROOT, import_extension_package

PSNR_GOAL = 35.0
SPEED_GOAL = 4.0
HD_GOAL_S = 30.0
LADDER = (8, 16, 32, 64, 128, 256)


def load_average() -> str:
    try:
        return f"load {os.getloadavg()[0]:.1f}"
    except OSError:
        return "load n/a"


def psnr(path: Path, reference: Path) -> float:
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"), np.float64)
    b = np.asarray(Image.open(reference).convert("RGB"), np.float64)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def zoo_export(zoo: Path, name: str) -> Path:
    document = zoo / name / f"{name}.nnvis.json"
    if not document.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_zoo.py"), "--out", str(zoo),
                        "--only", name], check=True)
    return document


class Bench:
    """One scene: imported once into a factory-settings scene; renders timed one by one."""

    def __init__(self, name: str, export: Path, keep: Path, width: int, height: int):
        import bpy
        from nnvis.nnvis_addon.blender import scene as nnvis_scene

        self.bpy, self.name, self.keep = bpy, name, keep
        self.width, self.height = width, height
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.scene = bpy.context.scene
        # The camera is framed at import for the aspect ratio: 16:9 like 1920x1080.
        self.scene.render.resolution_x, self.scene.render.resolution_y = width, height
        started = time.perf_counter()
        nnvis_scene.import_network(export, nnvis_scene.ImportOptions())
        print(f"\n{name}: imported in {time.perf_counter() - started:.1f} s")
        self.defaults = self.default_settings()

    def default_settings(self) -> dict:
        """Blender's default Cycles settings (a factory scene's), to restore before a render."""
        self.scene.render.engine = "CYCLES"
        cycles = self.scene.cycles
        return {prop.identifier: getattr(cycles, prop.identifier)
                for prop in cycles.bl_rna.properties
                if not prop.is_readonly and prop.identifier != "rna_type"
                and not prop.identifier.startswith(("preview", "debug"))}

    def use_defaults(self, samples: int) -> None:
        for key, value in self.defaults.items():
            setattr(self.scene.cycles, key, value)
        self.scene.cycles.samples = samples
        self.scene.render.use_persistent_data = False
        self.output()

    def output(self, width: int | None = None, height: int | None = None) -> None:
        render = self.scene.render
        render.resolution_x, render.resolution_y = width or self.width, height or self.height
        render.resolution_percentage = 100
        render.use_compositing = render.use_sequencer = False
        self.scene.cycles.device = "CPU"
        self.scene.cycles.seed = 0
        from nnvis.nnvis_addon.blender import compat
        compat.set_image_format(render.image_settings, "PNG")

    def render(self, tag: str) -> tuple[Path, float, float]:
        path = self.keep / f"{self.name}_{tag}_{self.scene.render.resolution_x}x" \
                           f"{self.scene.render.resolution_y}.png"
        self.scene.render.filepath = str(path)
        wall, cpu = time.perf_counter(), time.process_time()
        self.bpy.ops.render.render(write_still=True)
        return path, time.perf_counter() - wall, time.process_time() - cpu

    def cached(self, tag: str, samples: int) -> tuple[Path, float, float, str]:
        """A default-settings render, from ``--keep`` when it was made before (same Blender,
        resolution and samples)."""
        record = self.keep / f"{self.name}_{tag}_{self.width}x{self.height}.json"
        key = {"blender": self.bpy.app.version_string, "samples": samples}
        if record.exists():
            data = json.loads(record.read_text())
            path = Path(data["path"])
            if data["key"] == key and path.exists():
                return path, data["wall"], data["cpu"], f"cached, {data['load']}"
        self.use_defaults(samples)
        load = load_average()
        path, wall, cpu = self.render(tag)
        record.write_text(json.dumps({"key": key, "path": str(path), "wall": wall, "cpu": cpu,
                                      "load": load}))
        return path, wall, cpu, load


def line(label: str, wall: float, cpu: float, quality: str, note: str) -> None:
    print(f"  {label:44s} {wall:8.1f} s wall {cpu:8.1f} s CPU   {quality:18s} [{note}]",
          flush=True)


def default_at_equal_quality(bench: Bench, reference: Path):
    for samples in LADDER:
        bench.use_defaults(samples)
        load = load_average()
        path, wall, cpu = bench.render(f"default{samples}")
        value = psnr(path, reference)
        line(f"default settings, {samples} samples", wall, cpu, f"PSNR {value:5.1f} dB", load)
        if value >= PSNR_GOAL:
            return samples, wall, cpu
    return None


def compare(bench: Bench) -> None:
    from nnvis.nnvis_addon.blender import render

    print(f"  at {bench.width}x{bench.height} (PSNR against the 512-sample reference of the "
          "default settings):")
    reference, wall, cpu, note = bench.cached("reference512", 512)
    line("reference: default settings, 512 samples", wall, cpu, "", note)
    default, d_wall, d_cpu, note = bench.cached("default", 4096)
    line("baseline: default settings (4096 samples)", d_wall, d_cpu,
         f"PSNR {psnr(default, reference):5.1f} dB", note)
    equal = default_at_equal_quality(bench, reference)

    result = render.apply_render_preset(bench.scene)
    bench.output()
    load = load_average()
    path, p_wall, p_cpu = bench.render("preset")
    value = psnr(path, reference)
    line(f"render preset ({result.settings['samples']} samples)", p_wall, p_cpu,
         f"PSNR {value:5.1f} dB", load)
    print(f"  preset vs default settings: {d_wall / p_wall:.1f}x wall, {d_cpu / p_cpu:.1f}x CPU "
          f"(goal >= {SPEED_GOAL:g}x at PSNR >= {PSNR_GOAL:g} dB: "
          f"{'met' if value >= PSNR_GOAL and d_cpu / p_cpu >= SPEED_GOAL else 'NOT met'})")
    if equal is not None:
        samples, e_wall, e_cpu = equal
        print(f"  preset vs default settings at equal quality ({samples} samples): "
              f"{e_wall / p_wall:.1f}x wall, {e_cpu / p_cpu:.1f}x CPU")


def hd_frame(bench: Bench) -> None:
    """One 1920x1080 frame with the preset, synchronised from scratch (first render)."""
    from nnvis.nnvis_addon.blender import render

    result = render.apply_render_preset(bench.scene)
    bench.output(1920, 1080)
    load = load_average()
    _, wall, cpu = bench.render("preset_hd")
    line(f"1920x1080, render preset ({result.settings['samples']} samples)", wall, cpu,
         f"goal <= {HD_GOAL_S:g} s", load)
    bench.scene.render.use_persistent_data = False  # the next renders start from scratch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=ROOT / "out" / "bench_render",
                        help="folder for the renders; reference and default-settings renders "
                             "made before are reused (default out/bench_render)")
    parser.add_argument("--only", nargs="*", choices=("example", "vgg16"),
                        default=["example", "vgg16"])
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--zoo", type=Path, default=ROOT / "out" / "zoo",
                        help="folder of scripts/make_zoo.py's exports (VGG16 made when missing)")
    parser.add_argument("--no-hd", action="store_true", help="skip the 1920x1080 VGG16 frame")
    args = parser.parse_args(argv)
    args.keep.mkdir(parents=True, exist_ok=True)

    import bpy
    import_extension_package()
    print(f"Blender {bpy.app.version_string}, {os.cpu_count()} CPUs, Cycles on the CPU; "
          f"{load_average()}")
    for name in args.only:
        export = EXAMPLE if name == "example" else zoo_export(args.zoo, name)
        bench = Bench(name, export, args.keep, args.width, args.height)
        if name == "vgg16" and not args.no_hd:
            hd_frame(bench)
        compare(bench)
    return 0


if __name__ == "__main__":
    sys.exit(main())
