"""Render settings for nnvis pictures: Cycles on the CPU (works headless everywhere)."""

from __future__ import annotations

import bpy


def configure_cycles(scene: bpy.types.Scene, *, width: int, height: int, samples: int,
                     denoise: bool = True, seed: int = 0) -> None:
    # The Cycles add-on registers its engine and the scene's ``cycles`` settings at run time;
    # the API stubs know neither.
    scene.render.engine = "CYCLES"  # type: ignore[assignment]
    cycles = scene.cycles  # type: ignore[attr-defined]
    cycles.device = "CPU"
    cycles.samples = samples
    cycles.seed = seed
    cycles.use_adaptive_sampling = denoise
    cycles.use_denoising = denoise and _denoiser_available()
    if cycles.use_denoising:
        cycles.denoiser = "OPENIMAGEDENOISE"
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    # The compositor defaults to the GPU in 5.0; nnvis needs none of it.
    scene.render.use_compositing = False
    scene.render.use_sequencer = False
    scene.view_settings.view_transform = "AgX" if denoise else "Standard"
    scene.render.image_settings.file_format = "PNG"


def _denoiser_available() -> bool:
    return bool(getattr(bpy.app.build_options, "openimagedenoise", True))
