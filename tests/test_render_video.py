"""scripts/render_video.py on the bundled example, tiny frames: --frames ranges, held frames copied
instead of rendered, gathering split frames into the MP4/GIF, --preview, bad ranges."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from blender_utils import ROOT, compare_images, load_pixels

SCRIPT = ROOT / "scripts" / "render_video.py"
# 13 recorded epochs, 2 frames per epoch and 2 held: epoch k arrives at 1 + 4k and is held to
# 3 + 4k, so frames 1-3 show epoch 0, 4 is halfway, 5-7 show epoch 1...; frames 1-51.
TINY = ["--width", "32", "--height", "18", "--samples", "2", "--frames-per-epoch", "2",
        "--hold-frames", "2", "--no-mp4"]
LAST = 51


def run(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(SCRIPT), *TINY, *map(str, args)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def names(folder):
    return sorted(path.name for path in folder.iterdir())


def test_frame_range_renders_changed_frames_and_copies_held_ones(tmp_path):
    out = tmp_path / "a"
    result = run("--out", out, "--frames", "1-8")
    frames = out / "frames"
    assert names(frames) == [f"frame_{f:04d}.png" for f in range(1, 9)]
    assert "4 of 8 frames repeat the frame before them" in result.stdout
    rendered = {int(line.split()[1].rstrip(":")) for line in result.stdout.splitlines()
                if line.startswith("frame ")}
    assert rendered == {1, 4, 5, 8}
    for held, source in ((2, 1), (3, 1), (6, 5), (7, 5)):
        assert (frames / f"frame_{held:04d}.png").read_bytes() == \
            (frames / f"frame_{source:04d}.png").read_bytes()
    assert (frames / "frame_0004.png").read_bytes() != (frames / "frame_0003.png").read_bytes()
    assert "no MP4 or GIF" in result.stdout and not list(out.glob("*.gif"))

    # The copy is the picture a render of that frame gives: frame 3 alone (its predecessor is
    # not rendered there, so it is drawn).
    alone = run("--out", tmp_path / "b", "--frames", "3")
    assert "0 of 1 frames repeat" in alone.stdout
    ok, bad, _ = compare_images(load_pixels(tmp_path / "b" / "frames" / "frame_0003.png"),
                                load_pixels(frames / "frame_0003.png"))
    assert ok, f"{bad:.1%} of the held frame's pixels differ from a render of it"

    # A second machine's frames gathered into the folder: --resume renders only what is missing
    # and writes the GIF of the whole animation.
    rest = run("--out", out, "--frames", f"9-{LAST}", "--resume")
    assert names(frames) == [f"frame_{f:04d}.png" for f in range(1, LAST + 1)]
    assert "frame 1:" not in rest.stdout
    assert (out / "digits_cnn.gif").stat().st_size > 0


def test_preview_renders_a_few_small_frames(tmp_path):
    out = tmp_path / "p"
    result = run("--out", out, "--preview", "--width", "128", "--height", "72")
    frames = sorted((out / "preview").iterdir())
    assert len(frames) == 6 and frames[0].name == "frame_0001.png" and \
        frames[-1].name == f"frame_{LAST:04d}.png"
    assert load_pixels(frames[0]).shape == (18, 32, 4)
    assert "(32x18, 2 samples)" in result.stdout
    assert (out / "digits_cnn_preview.gif").exists() and not (out / "frames").exists()


@pytest.mark.parametrize("frames,message", [("5-x", "is not N or N-M"),
                                            ("40-60", "outside the animation's frames 1-51")])
def test_bad_frame_ranges_fail_with_one_line(tmp_path, frames, message):
    result = run("--out", tmp_path, "--frames", frames, check=False)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "frames").exists()
