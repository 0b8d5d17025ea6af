"""The README's main job: build the scene from the bundled example, save a .blend, render a PNG.

    bash scripts/demo.sh [--out out/] [--samples 64] [--width 960 --height 540]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from console_progress import ConsoleProgress
from working_tree import EXAMPLE, ROOT, import_extension_package


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=EXAMPLE, metavar="EXPORT",
                        help="the .nnvis.json export to show (default: the bundled digits CNN)")
    parser.add_argument("--out", type=Path, default=ROOT / "out", metavar="DIR",
                        help="folder for digits_cnn.blend and digits_cnn.png (default: out/)")
    parser.add_argument("--width", type=int, default=960, help="render width in pixels")
    parser.add_argument("--height", type=int, default=540, help="render height in pixels")
    parser.add_argument("--samples", type=int, default=32,
                        help="Cycles samples per pixel at most (default 32; the render preset: "
                             "adaptive, denoised below 16)")
    parser.add_argument("--sample", type=int, default=0,
                        help="which of the export's input samples to show (0-based)")
    parser.add_argument("--layout", choices=("grid", "linear"), default="grid",
                        help="feature maps in a grid per layer or in one row")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import bpy
    import_extension_package()
    from nnvis.nnvis_addon.blender import render, scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    started = time.perf_counter()
    progress = ConsoleProgress()
    root = scene.import_network(args.export, scene.ImportOptions(sample=args.sample,
                                                                 map_layout=args.layout),
                                progress=progress)
    progress.close()
    built = time.perf_counter()
    layers = scene.network_layers(root)
    print(f"imported {root['nnvis_model']!r}: {len(layers)} layers, "
          f"{sum(len(o.data.vertices) for o in layers)} cells in {built - started:.2f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    blend = args.out / "digits_cnn.blend"
    png = args.out / "digits_cnn.png"
    preset = render.configure_cycles(bpy.context.scene, width=args.width, height=args.height,
                                     samples=args.samples)
    print(f"render preset: {preset.summary()}")
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.context.scene.render.filepath = str(png)
    bpy.ops.render.render(write_still=True)
    print(f"saved {blend}")
    print(f"rendered {png} ({args.width}x{args.height}, {args.samples} samples) "
          f"in {time.perf_counter() - built:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
