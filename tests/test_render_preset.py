"""The render preset (blender/render.py) and held frames (blender/video.py): what the preset
sets, its operator run from a script, a preset render beside a render with Blender's default
Cycles settings, and which frames of an epoch animation repeat the frame before them. The
installed extension, real bpy, real Cycles (tiny renders, fixed seed)."""

from __future__ import annotations

from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from blender_utils import (
    ROOT,
    compare_images,
    install_extension,
    installed_module,
    render_pixels,
    save_pixels,
)

RECEIVED = ROOT / "tests" / "_received"
FPE, HOLD = 3, 2  # frames per epoch, hold frames


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    install_extension(tmp_path_factory)
    return SimpleNamespace(**{name: installed_module(f"nnvis_addon.blender.{name}")
                              for name in ("scene", "render", "video", "playback", "compat",
                                           "connections")})


@pytest.fixture
def network(api, example_export):
    """The example imported into an empty scene, with a material of the user's own."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 96, 54
    root = api.scene.import_network(example_export, api.scene.ImportOptions())
    return SimpleNamespace(scene=scene, root=root,
                           links=api.connections.network_connections(root))


def modifier_input(api, obj, name):
    return api.compat.get_modifier_input(obj.modifiers["NNVis Connections"], name)


def test_preset_sets_light_paths_sampling_denoising_and_persistent_data(api, network):
    scene = network.scene
    user = bpy.data.materials.new("my lamp")  # not nnvis's: its emission stays a light
    scene.cycles.device = "CPU"
    tubes = {obj.name: modifier_input(api, obj, "As Tubes") for obj in network.links}
    assert any(tubes.values())

    result = api.render.apply_render_preset(scene)

    cycles = scene.cycles
    assert scene.render.engine == "CYCLES"
    assert (cycles.diffuse_bounces, cycles.glossy_bounces, cycles.transmission_bounces,
            cycles.volume_bounces) == (1, 1, 0, 0)
    assert cycles.max_bounces == 2
    assert cycles.transparent_max_bounces >= 4  # faint connections over the maps still show
    assert not cycles.caustics_reflective and not cycles.caustics_refractive
    assert cycles.use_adaptive_sampling and 0 < cycles.adaptive_threshold <= 0.1
    assert 8 <= cycles.samples <= 64 and cycles.adaptive_min_samples <= cycles.samples
    assert not cycles.use_denoising  # at 32 samples the denoiser costs more than it saves
    assert scene.render.use_persistent_data
    # The device, resolution and colour management are the user's.
    assert cycles.device == "CPU" and (scene.render.resolution_x, scene.render.resolution_y) == (96, 54)
    # What the result reports is what the scene has.
    assert {name: getattr(cycles, name) for name in result.settings} == pytest.approx(result.settings)
    nnvis_materials = [m for m in bpy.data.materials if m.name.startswith("NNVis")]
    assert len(nnvis_materials) >= 3 and result.materials == len(nnvis_materials)
    assert all(m.cycles.emission_sampling == "NONE" for m in nnvis_materials)
    assert user.cycles.emission_sampling == "AUTO"
    # Connections: curves in final renders, tubes still in the viewport.
    assert result.curves_in_render == len(network.links)
    assert not any(modifier_input(api, obj, "Render Tubes") for obj in network.links)
    assert {obj.name: modifier_input(api, obj, "As Tubes") for obj in network.links} == tubes
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in network.links:
        geometry = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(depsgraph))
        assert (geometry.mesh is not None) == tubes[obj.name], obj.name
    assert "samples" in result.summary() and "no denoising" in result.summary()
    # Few samples are denoised, with OpenImageDenoise.
    assert api.render.denoiser_available()
    few = api.render.apply_render_preset(scene, api.render.RenderPreset(samples=4, denoise=True))
    assert cycles.use_denoising and cycles.denoiser == "OPENIMAGEDENOISE" and cycles.samples == 4
    assert "OpenImageDenoise" in few.summary()


def test_render_preset_operator_runs_from_a_script(api, network):
    scene = network.scene
    scene.cycles.samples = 4096
    scene.render.use_persistent_data = False
    assert "UNDO" in bpy.types.NNVIS_OT_render_preset.bl_options
    assert bpy.ops.nnvis.render_preset() == {"FINISHED"}
    assert scene.cycles.samples == api.render.RENDER_PRESET.samples
    assert scene.render.use_persistent_data
    assert not modifier_input(api, network.links[0], "Render Tubes")


def psnr(a, b) -> float:
    return float(10 * np.log10(1 / np.mean((a[..., :3] - b[..., :3]) ** 2)))


def test_preset_render_matches_a_default_settings_reference(api, network, tmp_path):
    """Blender's default Cycles settings at 256 samples beside the preset: at 256 samples too,
    what the preset changes (bounces, connections as curves) does not show; at its own sample
    count the picture is within a pixel tolerance (what is left is noise, as with the default
    settings at that sample count)."""
    scene = network.scene
    scene.render.resolution_x, scene.render.resolution_y = 160, 90
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.seed = 0
    scene.cycles.samples = 256                   # everything else: Blender's defaults
    scene.render.use_compositing = scene.render.use_sequencer = False
    api.compat.set_image_format(scene.render.image_settings, "PNG")
    reference = render_pixels(scene, tmp_path / "reference.png")
    api.render.apply_render_preset(scene, api.render.RenderPreset(
        samples=256, adaptive_threshold=scene.cycles.adaptive_threshold, adaptive_min_samples=0))
    simplified = render_pixels(scene, tmp_path / "simplified.png")
    api.render.apply_render_preset(scene)
    preset = render_pixels(scene, tmp_path / "preset.png")
    ok, bad, diff = compare_images(preset, reference, pixel_threshold=24 / 255,
                                   max_bad_fraction=0.04)
    if not ok:
        RECEIVED.mkdir(exist_ok=True)
        save_pixels(preset, RECEIVED / "preset.png")
        save_pixels(reference, RECEIVED / "preset_reference.png")
        save_pixels(diff, RECEIVED / "preset_diff.png")
    assert psnr(simplified, reference) >= 42, "the preset's simplifications show"
    assert ok, f"{bad:.1%} of pixels differ from the default-settings reference"
    assert psnr(preset, reference) >= 31
    assert preset[..., :3].max() > 0.3  # a picture, not black


def expected_repeats(first, last, epochs):
    """From the timing alone: each epoch's arrival frame is drawn, the frames holding it repeat
    it, every transition frame is new."""
    repeats = {}
    for k in range(epochs):
        arrive = first + k * (FPE + HOLD)
        for frame in range(arrive + 1, min(arrive + HOLD, last) + 1):
            repeats[frame] = arrive
    return repeats


def test_held_epochs_are_found_from_the_animation(api, network):
    scene, root = network.scene, network.root
    first, last = api.playback.animate_epochs(root, FPE, HOLD, scene=scene)
    frames = list(range(first, last + 1))
    epochs = len(root["nnvis_epoch_numbers"])
    assert api.video.time_dependence(scene) is None
    assert api.video.held_frames(scene, frames) == expected_repeats(first, last, epochs)
    # Rendering only some frames: a frame whose predecessor is not rendered here is drawn.
    part = frames[2:9]
    assert api.video.held_frames(scene, part) == {
        frame: max(source, part[0]) for frame, source in expected_repeats(first, last, epochs).items()
        if part[0] < frame <= part[-1]}
    # Anything else animated makes a held epoch's frames new: the camera moving.
    camera = scene.camera
    camera.keyframe_insert("location", index=0, frame=first)
    camera.location.x += 1.0
    camera.keyframe_insert("location", index=0, frame=last)
    assert api.video.held_frames(scene, frames) == {}


def test_a_driver_reading_the_frame_switches_held_frames_off(api, network):
    scene, root = network.scene, network.root
    first, last = api.playback.animate_epochs(root, FPE, HOLD, scene=scene)
    assert api.video.held_frames(scene, list(range(first, last + 1)))
    driver = scene.camera.driver_add("location", 2).driver
    driver.expression = "frame * 0.01"
    reason = api.video.time_dependence(scene)
    assert reason is not None and "frame" in reason
    assert api.video.held_frames(scene, list(range(first, last + 1))) == {}
