#!/usr/bin/env python3
"""Render a network's training playback: PNG frames, an MP4 (Blender's own FFmpeg) and a GIF.

    .venv/bin/python scripts/render_video.py [--export EXPORT] [--out out/video]
        [--width 480 --height 270] [--samples 8] [--no-denoise]
        [--frames-per-epoch 4] [--hold-frames 2] [--step] [--fps 12]
        [--gif PATH] [--gif-width 480] [--no-mp4] [--resume] [--blend PATH]

1. imports the export (default: the bundled digits example) with the working tree's nnvis,
   keyframes the epochs (``playback.animate_epochs``: epoch counter included) and configures
   Cycles on the CPU;
2. renders every frame to OUT/frames/frame_####.png (``--resume`` keeps frames already there);
3. encodes OUT/<model>.mp4 (H.264) from those frames with the sequencer and the FFmpeg built into
   Blender, when ``bpy.app.build_options.codec_ffmpeg`` says it is there and a written file reads
   back with the right frame count; otherwise says so and leaves the PNG sequence;
4. writes an animated GIF preview with Pillow (one shared palette; the last frame held).

Rendering cost here: emissive materials turn every emissive triangle into a light, and Cycles
spends most of a frame building the light tree over the connection tubes; the script switches
emission sampling off (emission still shows, it just does not light other surfaces by direct
light sampling), which makes frames 4-5x faster and looks the same at these sample counts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from working_tree import EXAMPLE, ROOT, import_extension_package


def fast_emission(materials) -> None:
    """No direct light sampling of emissive surfaces (see the module docstring)."""
    for material in materials:
        cycles = getattr(material, "cycles", None)
        if cycles is not None and hasattr(cycles, "emission_sampling"):
            cycles.emission_sampling = "NONE"


# -- MP4 ------------------------------------------------------------------------------------------


def ffmpeg_available() -> bool:
    import bpy
    return bool(getattr(bpy.app.build_options, "codec_ffmpeg", False))


def configure_mp4(scene) -> None:
    """H.264 in MP4. Blender 5.0 splits image and video outputs: media_type first."""
    settings = scene.render.image_settings
    if "media_type" in settings.bl_rna.properties:
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
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
    parser.add_argument("--samples", type=int, default=8,
                        help="Cycles render samples per pixel (default 8; denoised)")
    parser.add_argument("--no-denoise", action="store_true",
                        help="switch Cycles' denoiser off (needs more --samples)")
    parser.add_argument("--frames-per-epoch", type=int, default=4,
                        help="frames of transition from one recorded epoch to the next")
    parser.add_argument("--hold-frames", type=int, default=2,
                        help="frames each recorded epoch is held before the next transition")
    parser.add_argument("--step", action="store_true",
                        help="jump between epochs (constant keys) instead of interpolating")
    parser.add_argument("--fps", type=int, default=12, help="frames per second of MP4 and GIF")
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
                        help="also save the animated scene here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import bpy
    import_extension_package()
    from nnvis.nnvis_addon.blender import playback, render
    from nnvis.nnvis_addon.blender import scene as nnvis_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    # The camera is framed for the scene's aspect ratio at import: set the resolution first.
    scene.render.resolution_x, scene.render.resolution_y = args.width, args.height
    options = nnvis_scene.ImportOptions(sample=args.sample, map_layout=args.layout)
    options.connections.enabled = not args.no_connections
    root = nnvis_scene.import_network(args.export, options, scene=scene)
    first, last = playback.animate_epochs(root, args.frames_per_epoch, args.hold_frames,
                                          step=args.step, scene=scene)
    render.configure_cycles(scene, width=args.width, height=args.height, samples=args.samples,
                            denoise=not args.no_denoise)
    fast_emission(bpy.data.materials)
    scene.render.use_persistent_data = True
    scene.render.fps, scene.render.fps_base = args.fps, 1.0
    model = root["nnvis_model"]
    print(f"{model}: {len(root['nnvis_epoch_numbers'])} epochs, frames {first}-{last} "
          f"({args.width}x{args.height}, {args.samples} samples)", flush=True)
    if args.blend:
        args.blend.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(args.blend.resolve()), copy=True)

    frame_dir = args.out / "frames"
    frame_dir.mkdir(parents=True, exist_ok=True)
    frames, times = [], []
    for frame in range(first, last + 1):
        path = frame_dir / f"frame_{frame:04d}.png"
        frames.append(path)
        if args.resume and path.exists():
            continue
        start = time.perf_counter()
        scene.frame_set(frame)
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        times.append(time.perf_counter() - start)
        print(f"frame {frame}/{last}: {times[-1]:.1f} s (epoch index {root['nnvis_epoch']:.2f})",
              flush=True)
    if times:
        print(f"rendered {len(times)} frames in {sum(times):.0f} s "
              f"({sum(times) / len(times):.1f} s a frame)")

    if not args.no_mp4:
        mp4 = args.out / f"{model}.mp4"
        if not ffmpeg_available():
            print("this Blender build has no FFmpeg: PNG sequence only")
        elif encode_mp4(frames, args.fps, args.width, args.height, mp4):
            print(f"wrote {mp4} ({mp4.stat().st_size / 1e6:.2f} MB)")
        else:
            print(f"writing {mp4} failed: PNG sequence only ({frame_dir})")
    gif = args.gif or args.out / f"{model}.gif"
    write_gif(frames, args.fps, gif, width=args.gif_width, colours=args.gif_colours)
    print(f"wrote {gif} ({gif.stat().st_size / 1e6:.2f} MB, {len(frames)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
