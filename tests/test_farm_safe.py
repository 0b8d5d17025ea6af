"""Render-farm safety: an animated .blend renders the same on a Blender that never had nnvis.

The example is imported and its epochs animated with the installed extension, saved, and rendered
at three frames (epoch 0, a fractional epoch, the last epoch). A fresh Python process whose
Blender user folders are empty (no nnvis, no add-ons, Python auto-run off) opens the .blend and
renders the same frames; the pictures must match, and the three epochs must look different.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_utils import (
    ROOT,
    compare_images,
    configure_test_render,
    install_extension,
    installed_module,
    load_pixels,
    render_pixels,
    save_pixels,
)

WIDTH, HEIGHT, SAMPLES = 48, 27, 4
FPE = 4  # frames per epoch, no hold: epoch index k is at frame 1 + 4k
RECEIVED = ROOT / "tests" / "_received"


# Runs in a fresh interpreter: empty user folders, so nnvis cannot be found or enabled.
FRESH_RENDER = textwrap.dedent("""
    import json, sys
    import bpy
    blend, frames, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False
    bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
    # (the venv's editable nnvis-export install adds a finder module, which imports nothing)
    loaded = [n for n in sys.modules if {"nnvis", "nnvis_addon"} & set(n.split("."))]
    assert not loaded, loaded
    assert not any("nnvis" in addon.module for addon in bpy.context.preferences.addons)
    handlers = [h for name in dir(bpy.app.handlers)
                if isinstance(getattr(bpy.app.handlers, name), list)
                for h in getattr(bpy.app.handlers, name)]
    scene = bpy.context.scene
    epochs = []
    for frame in frames:
        scene.frame_set(frame)
        root = next(o for o in scene.objects if o.get("nnvis_network"))
        epochs.append(root["nnvis_epoch"])
        scene.render.filepath = f"{out}/fresh_{frame}.png"
        bpy.ops.render.render(write_still=True)
    print("RESULT " + json.dumps({"epochs": epochs,
                                  "handlers": [getattr(h, "__module__", "?") for h in handlers]}))
""")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    install_extension(tmp_path_factory)
    return (installed_module("nnvis_addon.blender.scene"),
            installed_module("nnvis_addon.blender.playback"))


def fresh_environment(tmp_path: Path) -> dict:
    env = dict(os.environ)
    for var in ("BLENDER_USER_EXTENSIONS", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS",
                "BLENDER_USER_DATAFILES", "BLENDER_USER_RESOURCES"):
        folder = tmp_path / "fresh-user" / var.lower()
        folder.mkdir(parents=True)
        env[var] = str(folder)
    env.pop("PYTHONPATH", None)
    return env


def fresh_renders(tmp_path: Path, frames: list[int], name: str) -> tuple[dict, dict]:
    """Save the open file (a copy, ``<name>.blend``) and render ``frames`` of it in a fresh
    Blender where nnvis cannot be found: ({frame: pixels}, the fresh process's report: the
    epoch shown at each frame and the handlers it found)."""
    blend = tmp_path / f"{name}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    result = subprocess.run([sys.executable, "-c", FRESH_RENDER, str(blend), json.dumps(frames),
                             str(tmp_path)], env=fresh_environment(tmp_path), cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(next(line for line in result.stdout.splitlines()
                             if line.startswith("RESULT "))[len("RESULT "):])
    return {frame: load_pixels(tmp_path / f"fresh_{frame}.png") for frame in frames}, report


def test_saved_animation_renders_the_same_without_nnvis(api, example_export, tmp_path):
    scene_api, playback = api
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT  # camera framing
    root = scene_api.import_network(example_export, scene_api.ImportOptions())
    last = len(root["nnvis_epoch_numbers"]) - 1
    playback.animate_epochs(root, frames_per_epoch=FPE, hold_frames=0)
    configure_test_render(scene, WIDTH, HEIGHT, SAMPLES)
    frames = [1, 1 + FPE * 5 + FPE // 2, 1 + FPE * last]  # epochs 0, 5.5 and the last
    assert playback.farm_safety_problems() == []
    for obj in bpy.data.objects:  # every driver in the file, stated plainly
        for fcurve in (obj.animation_data.drivers if obj.animation_data else ()):
            assert fcurve.driver.type != "SCRIPTED" or fcurve.driver.is_simple_expression, \
                (obj.name, fcurve.data_path, fcurve.driver.expression)

    with_nnvis, epochs = {}, []
    for frame in frames:
        scene.frame_set(frame)
        epochs.append(root["nnvis_epoch"])
        with_nnvis[frame] = render_pixels(scene, tmp_path / f"nnvis_{frame}.png")
    assert epochs == pytest.approx([0.0, 5.5, float(last)])

    fresh, report = fresh_renders(tmp_path, frames, "playback")
    assert report["epochs"] == pytest.approx(epochs)
    assert not any("nnvis" in module for module in report["handlers"])

    for frame in frames:
        ok, bad_fraction, diff = compare_images(fresh[frame], with_nnvis[frame])
        if not ok:
            RECEIVED.mkdir(exist_ok=True)
            save_pixels(fresh[frame], RECEIVED / f"farm_fresh_{frame}.png")
            save_pixels(with_nnvis[frame], RECEIVED / f"farm_nnvis_{frame}.png")
            save_pixels(diff, RECEIVED / f"farm_diff_{frame}.png")
        assert ok, f"frame {frame}: {bad_fraction:.1%} of pixels differ without nnvis"
        assert fresh[frame][..., :3].max() > 0.3, f"frame {frame} is (nearly) black"

    # The epochs change the picture, so matching renders mean the animation really played.
    first, middle, end = (with_nnvis[f] for f in frames)
    for a, b, what in ((first, end, "epoch 0 vs last"), (first, middle, "epoch 0 vs 5.5"),
                       (middle, end, "epoch 5.5 vs last")):
        assert not compare_images(a, b)[0], f"{what}: the frames look the same"
        assert float(np.abs(a[..., :3] - b[..., :3]).mean()) > 1e-3, what
