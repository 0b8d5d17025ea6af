"""Render the pictures in README.md and docs/ from the bundled example (Cycles, CPU).

    python scripts/render_docs.py [--samples 32] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import EXAMPLE, ROOT, import_extension_package  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def collapsed_and_grid(scene_api, connections_api, root):
    """Linear maps, conv1 switched to a grid, conv2 collapsed into its max map; the connections
    re-bundled for the new layout (what the panel's Re-bundle button does)."""
    layers = {layer["nnvis_layer"]: layer for layer in scene_api.network_layers(root)}
    scene_api.set_layer_control(layers["conv1"], "Grid Layout", 1.0)
    scene_api.set_layer_control(layers["conv2"], "Collapse Summary", 1)
    scene_api.set_layer_control(layers["conv2"], "Collapse", 1.0)
    for obj in connections_api.network_connections(root):
        connections_api.rebundle(obj, connections_api.BundlingParams())
    scene_api.frame_network(root)


PICTURES = {
    # name: (import options, adjust function)
    "digits_cnn": ({}, None),
    "digits_cnn_collapsed": ({"map_layout": "linear"}, collapsed_and_grid),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--only", nargs="*", choices=sorted(PICTURES))
    args = parser.parse_args(argv)
    import bpy
    import_extension_package()
    from nnvis.nnvis_addon.blender import connections, render, scene

    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in args.only or PICTURES:
        options, adjust = PICTURES[name]
        bpy.ops.wm.read_factory_settings(use_empty=True)
        render.configure_cycles(bpy.context.scene, width=args.width, height=args.height,
                                samples=args.samples)
        root = scene.import_network(EXAMPLE, scene.ImportOptions(**options))
        if adjust is not None:
            adjust(scene, connections, root)
        bpy.context.scene.render.filepath = str(IMAGES / f"{name}.png")
        started = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        print(f"{name}.png in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
