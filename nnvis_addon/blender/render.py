"""Render settings for nnvis pictures: Cycles (on the CPU unless the scene says otherwise).

The render preset (:func:`apply_render_preset`, the panel's *Render Preset* button, used by
``scripts/demo.py`` and ``scripts/render_video.py``) suits nnvis's scenes: cells and
connections that glow, one sun and a dark world. What it sets, and why:

* **light paths**: one diffuse and one glossy bounce, no transmission, volume or caustics. Light
  here comes from the sun, the world and the glowing cells themselves; what a second bounce adds
  is too faint to see (a 512-sample render with none differs from the default 12 bounces by
  54 dB PSNR on the example), and it is where Cycles' paths spend their time. Transparency
  (faint connections over the maps) keeps its 8 layers;
* **adaptive sampling** (up to ``RenderPreset.samples``, each pixel stopping at a noise
  threshold): most of a frame is a dark, flat background that needs a few samples;
* **OpenImageDenoise** for few samples only (``denoise``: the ``--preview`` of
  ``render_video.py``, ``--samples`` below 16), with its fast prefilter: at 32 samples these
  scenes are clean enough, and the denoiser costs more than the samples it saves (on the example
  at 480x270: 32 samples without it 37 dB PSNR in 1.1 s CPU, 16 with it 35.7 dB in 3.5 s; see
  docs/performance.md);
* **persistent data**: an animation keeps Cycles' scene between frames (what did not change is
  not synchronised again);
* **no direct light sampling of nnvis's emissive materials** (``emission_sampling``): every glowing
  triangle would be a light in Cycles' light tree; the glow shows directly all the same;
* **connections as hair curves in final renders** (``Render Tubes`` off on every connection's
  modifier): Cycles draws curves with their radius, so the tube mesh is only needed in the
  viewport.

The preset's Cycles properties are the same on Blender 4.2-5.0 (they exist, with the same
names and meanings, on every supported version); the output settings that moved are in
:mod:`.compat`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import bpy

from ...geometry_nodes.builder import BUILDER_VERSION_KEY
from ..core import names
from . import compat, network

RENDER_TUBES_INPUT = "Render Tubes"


@dataclass(frozen=True)
class RenderPreset:
    samples: int = 32                 # at most, per pixel; adaptive sampling stops most earlier
    adaptive_threshold: float = 0.05  # noise level at which a pixel stops
    adaptive_min_samples: int = 8
    denoise: bool = False             # OpenImageDenoise (when the build has it): see below
    diffuse_bounces: int = 1
    glossy_bounces: int = 1
    transparent_bounces: int = 8      # faint connections over maps over connections...
    persistent_data: bool = True
    connections_as_curves: bool = True

    def cycles_settings(self, denoiser_available: bool = True) -> dict[str, object]:
        """The ``scene.cycles`` properties this preset sets, by name."""
        denoise = self.denoise and denoiser_available
        settings: dict[str, object] = {
            "samples": self.samples,
            "use_adaptive_sampling": True,
            "adaptive_threshold": self.adaptive_threshold,
            "adaptive_min_samples": min(self.adaptive_min_samples, self.samples),
            "use_denoising": denoise,
            "max_bounces": self.diffuse_bounces + self.glossy_bounces,
            "diffuse_bounces": self.diffuse_bounces,
            "glossy_bounces": self.glossy_bounces,
            "transmission_bounces": 0,
            "volume_bounces": 0,
            "transparent_max_bounces": self.transparent_bounces,
            "caustics_reflective": False,
            "caustics_refractive": False,
            "blur_glossy": 1.0,
        }
        if denoise:
            settings.update(denoiser="OPENIMAGEDENOISE", denoising_input_passes="RGB_ALBEDO_NORMAL",
                            denoising_prefilter="FAST")
        return settings


RENDER_PRESET = RenderPreset()


@dataclass
class PresetResult:
    settings: dict[str, object]   # the scene.cycles properties set
    materials: int                # nnvis materials whose emission is no longer sampled as light
    curves_in_render: int         # connections drawn as hair curves in final renders

    def summary(self) -> str:
        s = self.settings
        denoised = "OpenImageDenoise" if s["use_denoising"] else "no denoising"
        return (f"Cycles, up to {s['samples']} samples (adaptive, threshold "
                f"{s['adaptive_threshold']:g}), {denoised}, {s['max_bounces']} bounces, "
                f"persistent data; {self.curves_in_render} connection objects as curves in renders")


def apply_render_preset(scene: bpy.types.Scene,
                        preset: RenderPreset = RENDER_PRESET) -> PresetResult:
    """Set ``scene`` (and the nnvis networks in it) up for fast final renders, see the module
    docstring. The render engine becomes Cycles; device, resolution, output and colour
    management stay as they are."""
    scene.render.engine = "CYCLES"  # type: ignore[assignment]  # the Cycles add-on's engine
    settings = preset.cycles_settings(denoiser_available())
    cycles = scene.cycles  # type: ignore[attr-defined]  # registered by the Cycles add-on
    for name, value in settings.items():
        setattr(cycles, name, value)
    scene.render.use_persistent_data = preset.persistent_data
    materials = quiet_emission(nnvis_materials())
    curves = set_render_tubes(scene, not preset.connections_as_curves)
    return PresetResult(settings, materials, curves)


def nnvis_materials() -> list[bpy.types.Material]:
    """The materials nnvis built (cells, connections, labels), not the user's own."""
    return [m for m in bpy.data.materials if m.get(BUILDER_VERSION_KEY) is not None]


def quiet_emission(materials: list[bpy.types.Material]) -> int:
    """No direct light sampling of these materials' emission (their glow still shows)."""
    for material in materials:
        material.cycles.emission_sampling = "NONE"  # type: ignore[attr-defined]
    return len(materials)


def set_render_tubes(scene: bpy.types.Scene, tubes: bool) -> int:
    """``Render Tubes`` on every connection of the scene's networks; returns how many were set
    (connections built before the input existed keep their tubes)."""
    count = 0
    for root in network.iter_networks(scene):
        for obj in network.network_connections(root):
            modifier = compat.nodes_modifier(obj, names.CONNECTION_MODIFIER)
            try:
                compat.set_modifier_input(modifier, RENDER_TUBES_INPUT, tubes)
            except KeyError:
                continue
            obj.update_tag()
            count += 1
    return count


DENOISE_BELOW = 16  # samples: fewer than these are denoised by configure_cycles


def configure_cycles(scene: bpy.types.Scene, *, width: int, height: int,
                     samples: int = RENDER_PRESET.samples, denoise: bool | None = None,
                     seed: int = 0) -> PresetResult:
    """The render preset with ``samples`` on the CPU (denoised when ``denoise``; by default when
    they are fewer than ``DENOISE_BELOW``), plus the output of nnvis's scripts: a PNG of
    ``width`` x ``height`` (AgX), fixed seed, no compositor or sequencer."""
    if denoise is None:
        denoise = samples < DENOISE_BELOW
    result = apply_render_preset(scene, RenderPreset(samples=samples, denoise=denoise))
    cycles = scene.cycles  # type: ignore[attr-defined]
    cycles.device = "CPU"
    cycles.seed = seed
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    # The compositor defaults to the GPU in 5.0; nnvis needs none of it.
    scene.render.use_compositing = False
    scene.render.use_sequencer = False
    scene.view_settings.view_transform = "AgX"
    compat.set_image_format(scene.render.image_settings, "PNG")
    return result


def denoiser_available() -> bool:
    """Whether this Blender's Cycles was built with OpenImageDenoise (the Cycles add-on's
    ``_cycles`` module says so on 4.2-5.0; ``bpy.app.build_options`` does not)."""
    try:
        cycles = importlib.import_module("_cycles")
    except ImportError:
        return False
    return bool(getattr(cycles, "with_openimagedenoise", False))
