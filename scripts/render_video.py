#!/usr/bin/env python3
"""Render a network's training playback: PNG frames, an MP4 (Blender's own FFmpeg) and a GIF.

    .venv/bin/python scripts/render_video.py [--export EXPORT] [--out out/video]
        [--width 480 --height 270] [--samples 32] [--no-denoise]
        [--frames-per-epoch 4] [--hold-frames 2] [--step] [--fps 12]
        [--frames 1-100] [--preview] [--gif PATH] [--gif-width 480] [--no-mp4] [--resume]
        [--blend PATH]

1. imports the export (default: the bundled digits example) with the working tree's nnvis,
   keyframes the epochs (``playback.animate_epochs``: epoch counter included) and applies the
   render preset (``render.configure_cycles``: Cycles on the CPU, few bounces, adaptive
   sampling, denoising, persistent data, connections as curves in the render);
2. renders the frames to OUT/frames/frame_####.png: all of them, or those of ``--frames``
   (ranges such as ``1-100,120``, so the frames of one video can be split over machines);
   ``--resume`` keeps frames already there. A frame whose animation repeats the frame before it
   (an epoch held still: every F-curve has the same value, ``video.held_frames``) is a copy of
   that frame's file, not rendered again;
3. once every frame of the animation is in OUT/frames (frames rendered elsewhere can be copied
   in; then run again with ``--resume``), encodes OUT/<model>.mp4 (H.264) with the sequencer and
   the FFmpeg built into Blender, when ``bpy.app.build_options.codec_ffmpeg`` says it is there
   and a written file reads back with the right frame count; otherwise says so and leaves the
   PNG sequence;
4. writes an animated GIF with Pillow (one shared palette; the last frame held).

``--preview`` renders a few frames spread over the animation at a quarter of the resolution and
few samples into OUT/preview/, with a GIF of them: a look at the video before the long render.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from working_tree import EXAMPLE, ROOT, import_extension_package

PREVIEW_FRAMES = 6      # frames of a --preview, spread over the animation
PREVIEW_SCALE = 4       # --preview renders at 1/4 of the width and height
PREVIEW_SAMPLES = 4


# -- MP4 ------------------------------------------------------------------------------------------


def ffmpeg_available() -> bool:
    import bpy
    return bool(getattr(bpy.app.build_options, "codec_ffmpeg", False))


def configure_mp4(scene) -> None:
    """H.264 in MP4 (Blender 5.0 splits image and video outputs: compat sets the media type)."""
    from nnvis.nnvis_addon.blender import compat
    compat.set_image_format(scene.render.image_settings, "FFMPEG")
    ffmpeg = scene.render.ffmpeg
    ffmpeg.format = "MPEG4"
    ffmpeg.codec = "H264"
    ffmpeg.constant_rate_factor = "HIGH"
    ffmpeg.ffmpeg_preset = "GOOD"
    ffmpeg.audio_codec = "NONE"


def encode_mp4(frames: list[Path], fps: int, width: int, height: int, output: Path) -> bool:
    """Encode PNG ``frames`` to ``output`` through a temporary sequencer scene; True when the file
    reads back with every frame."""
    import bpy
    if not frames:
        return False
    scene = bpy.data.scenes.new("nnvis video encode")
    try:
        editor = scene.sequence_editor_create()
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 4.2
        strip = strips.new_image("frames", str(frames[0]), 1, 1)
        for frame in frames[1:]:
            strip.elements.append(frame.name)
        scene.frame_start, scene.frame_end = 1, len(frames)
        scene.render.fps, scene.render.fps_base = fps, 1.0
        scene.render.resolution_x, scene.render.resolution_y = width, height
        scene.render.resolution_percentage = 100
        scene.render.use_sequencer = True
        scene.render.use_compositing = False
        configure_mp4(scene)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
        scene.render.filepath = str(output)
        scene.render.use_file_extension = False
        bpy.ops.render.render(animation=True, scene=scene.name)
    except Exception as exc:  # an FFmpeg-less or broken build: keep the PNGs
        print(f"MP4 encoding failed: {exc}")
        return False
    finally:
        bpy.data.scenes.remove(scene)
    if not output.exists() or output.stat().st_size == 0:
        return False
    clip = bpy.data.movieclips.load(str(output))
    try:
        return clip.frame_duration == len(frames)
    finally:
        bpy.data.movieclips.remove(clip)


# -- GIF ------------------------------------------------------------------------------------------


def write_gif(frames: list[Path], fps: int, output: Path, width: int | None = None,
              colours: int = 128, end_hold_s: float = 1.5) -> None:
    """Animated GIF from PNG frames: one palette for all frames (no flicker), no dithering
    (smaller), the last frame shown ``end_hold_s`` longer."""
    from PIL import Image

    images = []
    for path in frames:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if width and image.width != width:
                image = image.resize((width, round(image.height * width / image.width)),
                                     Image.Resampling.LANCZOS)
            images.append(image)
    # The palette from a strip of frames across the whole animation.
    picks = images[:: max(1, len(images) // 8)]
    strip = Image.new("RGB", (picks[0].width, picks[0].height * len(picks)))
    for row, image in enumerate(picks):
        strip.paste(image, (0, row * image.height))
    palette = strip.quantize(colours, method=Image.Quantize.MEDIANCUT)
    quantised = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    step_ms = round(1000 / fps)
    durations = [step_ms] * len(quantised)
    durations[-1] += round(end_hold_s * 1000)
    output.parent.mkdir(parents=True, exist_ok=True)
    quantised[0].save(output, save_all=True, append_images=quantised[1:], duration=durations,
                      loop=0, optimize=True, disposal=1)


# -- main -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=EXAMPLE, metavar="EXPORT",
                        help="the .nnvis.json export to animate (default: the bundled digits CNN)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "video", metavar="DIR",
                        help="folder for frames/, <model>.mp4 and <model>.gif "
                             "(default: out/video)")
    parser.add_argument("--width", type=int, default=480, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=270, help="frame height in pixels")
    parser.add_argument("--samples", type=int, default=32,
                        help="Cycles samples per pixel at most (default 32, the render preset's; "
                             "adaptive; denoised below 16)")
    parser.add_argument("--no-denoise", action="store_true",
                        help="never denoise, even below 16 samples")
    parser.add_argument("--frames-per-epoch", type=int, default=4,
                        help="frames of transition from one recorded epoch to the next")
    parser.add_argument("--hold-frames", type=int, default=2,
                        help="frames each recorded epoch is held before the next transition")
    parser.add_argument("--step", action="store_true",
                        help="jump between epochs (constant keys) instead of interpolating")
    parser.add_argument("--fps", type=int, default=12, help="frames per second of MP4 and GIF")
    parser.add_argument("--frames", metavar="RANGES",
                        help="render only these frames, e.g. 1-100 or 1-10,20-30 (split one "
                             "video over machines; the MP4 and GIF need them all in OUT/frames)")
    parser.add_argument("--preview", action="store_true",
                        help=f"{PREVIEW_FRAMES} frames spread over the animation at 1/"
                             f"{PREVIEW_SCALE} of the resolution, {PREVIEW_SAMPLES} samples, into "
                             "OUT/preview with a GIF")
    parser.add_argument("--sample", type=int, default=0,
                        help="which of the export's input samples to show (0-based)")
    parser.add_argument("--layout", choices=("grid", "linear"), default="grid",
                        help="feature maps in a grid per layer or in one row")
    parser.add_argument("--no-connections", action="store_true",
                        help="leave the connections between layers out (faster frames)")
    parser.add_argument("--gif", type=Path, metavar="PATH",
                        help="GIF path (default OUT/<model>.gif)")
    parser.add_argument("--gif-width", type=int, help="GIF width (default: the render's)")
    parser.add_argument("--gif-colours", type=int, default=128,
                        help="colours in the GIF's shared palette (default 128)")
    parser.add_argument("--no-mp4", action="store_true",
                        help="write no MP4, only the PNG frames and the GIF")
    parser.add_argument("--resume", action="store_true", help="keep frames already rendered")
    parser.add_argument("--blend", type=Path, metavar="PATH",
                        help="also save the animated scene here (for a render farm: see README)")
    return parser


def frame_path(folder: Path, frame: int) -> Path:
    return folder / f"frame_{frame:04d}.png"


def chosen_frames(args, parser, first: int, last: int) -> list[int]:
    """The frames this run draws: --frames (checked against the animation), thinned out to a
    few for --preview."""
    from nnvis.nnvis_addon.core.frames import parse_frame_ranges
    try:
        frames = parse_frame_ranges(args.frames, first, last) if args.frames else \
            list(range(first, last + 1))
    except ValueError as exc:
        parser.error(str(exc))
    if args.preview:
        step = (len(frames) - 1) / max(1, PREVIEW_FRAMES - 1)
        frames = sorted({frames[round(i * step)] for i in range(min(PREVIEW_FRAMES, len(frames)))})
    return frames


def render_frames(scene, root, frames: list[int], folder: Path, resume: bool) -> None:
    """Render ``frames`` into ``folder``; a frame that repeats the one before it (nothing
    animated changes) is a copy of that frame's picture."""
    import bpy
    from nnvis.nnvis_addon.blender import video

    reason = video.time_dependence(scene)
    held = video.held_frames(scene, frames)
    print(f"{len(held)} of {len(frames)} frames repeat the frame before them (copied, not "
          "rendered)" if reason is None else f"every frame is rendered: {reason}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    times, copied = [], 0
    for frame in frames:
        path = frame_path(folder, frame)
        if resume and path.exists():
            continue
        source = held.get(frame)
        if source is not None and frame_path(folder, source).exists():
            shutil.copyfile(frame_path(folder, source), path)
            copied += 1
            continue
        start = time.perf_counter()
        scene.frame_set(frame)
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        times.append(time.perf_counter() - start)
        print(f"frame {frame}: {times[-1]:.1f} s (epoch index {root['nnvis_epoch']:.2f})",
              flush=True)
    if times:
        print(f"rendered {len(times)} frames in {sum(times):.0f} s "
              f"({sum(times) / len(times):.1f} s a frame); {copied} held frames copied")


def encode(args, model: str, frames: list[Path], folder: Path, width: int, height: int) -> None:
    """The MP4 (unless --no-mp4 or --preview) and the GIF of ``frames``."""
    if not args.no_mp4 and not args.preview:
        mp4 = args.out / f"{model}.mp4"
        if not ffmpeg_available():
            print("this Blender build has no FFmpeg: PNG sequence only")
        elif encode_mp4(frames, args.fps, width, height, mp4):
            print(f"wrote {mp4} ({mp4.stat().st_size / 1e6:.2f} MB)")
        else:
            print(f"writing {mp4} failed: PNG sequence only ({folder})")
    gif = args.out / f"{model}_preview.gif" if args.preview else \
        args.gif or args.out / f"{model}.gif"
    write_gif(frames, args.fps, gif, width=args.gif_width, colours=args.gif_colours)
    print(f"wrote {gif} ({gif.stat().st_size / 1e6:.2f} MB, {len(frames)} frames)")


def build_scene(args, width: int, height: int, samples: int):
    """Import the export, animate its epochs and apply the render preset; (root, first, last)."""
    import bpy
    from nnvis.nnvis_addon.blender import playback, render
    from nnvis.nnvis_addon.blender import scene as nnvis_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    # The camera is framed for the scene's aspect ratio at import: set the resolution first.
    scene.render.resolution_x, scene.render.resolution_y = width, height
    options = nnvis_scene.ImportOptions(sample=args.sample, map_layout=args.layout)
    options.connections.enabled = not args.no_connections
    root = nnvis_scene.import_network(args.export, options, scene=scene)
    first, last = playback.animate_epochs(root, args.frames_per_epoch, args.hold_frames,
                                          step=args.step, scene=scene)
    render.configure_cycles(scene, width=width, height=height, samples=samples,
                            denoise=False if args.no_denoise else None)
    scene.render.fps, scene.render.fps_base = args.fps, 1.0
    return root, first, last


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    import bpy
    import_extension_package()
    from nnvis.nnvis_addon.core.frames import parse_frame_ranges
    if args.frames:
        try:  # the syntax now, the frames against the animation once it is built
            parse_frame_ranges(args.frames)
        except ValueError as exc:
            parser.error(str(exc))

    width, height, samples = args.width, args.height, args.samples
    if args.preview:
        width, height = max(16, width // PREVIEW_SCALE), max(16, height // PREVIEW_SCALE)
        samples = min(samples, PREVIEW_SAMPLES)
    root, first, last = build_scene(args, width, height, samples)
    frames = chosen_frames(args, parser, first, last)
    model = root["nnvis_model"]
    print(f"{model}: {len(root['nnvis_epoch_numbers'])} epochs, frames {first}-{last}, "
          f"rendering {len(frames)} ({width}x{height}, {samples} samples)", flush=True)
    if args.blend:
        args.blend.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(args.blend.resolve()), copy=True)

    folder = args.out / ("preview" if args.preview else "frames")
    render_frames(bpy.context.scene, root, frames, folder, args.resume)
    wanted = frames if args.preview else list(range(first, last + 1))
    paths = [frame_path(folder, frame) for frame in wanted]
    missing = [path for path in paths if not path.exists()]
    if missing:
        print(f"{len(missing)} of the animation's {len(paths)} frames are not in {folder} yet: "
              "no MP4 or GIF (gather every frame there and run again with --resume)")
        return 0
    encode(args, model, paths, folder, width, height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
