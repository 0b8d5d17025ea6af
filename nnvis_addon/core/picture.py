"""The input drawn as a picture: one map in the image's own colours (numpy only).

An image input (the model's ``InputLayer`` with output H x W x 3, or H x W x 1) is drawn as ONE
map of H x W cells instead of one viridis map per channel; each cell carries its pixel's colour
(``blender/scene.py`` writes it per sample as a colour attribute, the layer nodes pass it on and
the "NNVis Activation" material shows it). The import option ``input_as_picture`` (on by
default) chooses this; off, the channels are drawn separately like any other layer.

**Display mapping.** Exported images come as 0..255, as 0..1 or standardised (mean/std); all
must look like the photo. Each sample is mapped on its own:

1. its robust range: the 1st and 99th percentiles of its finite values, over all pixels and
   channels together (one range for the three channels, so hues stay as they are: any
   ``a * pixels + b`` maps to the same colours);
2. ``(value - p1) / (p99 - p1)`` clipped to 0..1, read as sRGB (what a photo's values are);
3. converted to linear (:func:`colour.srgb_to_linear`): Blender's colour attributes are
   scene-linear, so under the "Standard" view transform the render shows the sRGB value again.

A 1-channel image is grey (the same value in R, G and B). A sample whose values are all equal
is mid-grey; NaN/Inf pixels are black here and flagged invalid by the layer nodes. A per-channel
standardisation with different means per channel (ImageNet's) shifts the colours slightly,
since the mapping cannot know the means; the picture stays recognisable.

**Connections.** The drawn picture has one map where the layer has C channels: edges that
start at a channel of the input start at the picture, merged per target
(:func:`merge_picture_channels`).
"""

from __future__ import annotations

import warnings

import numpy as np

from .colour import srgb_to_linear
from .edges import Edges
from .export_format import Layer

PICTURE_CHANNELS = (1, 3)     # grey and RGB images
LOW_PERCENTILE = 1.0          # the robust range of each sample (see the module docstring)
HIGH_PERCENTILE = 99.0
FLAT_GREY = 0.5               # an image with a single value shows this sRGB grey


def is_picture_layer(layer: Layer) -> bool:
    """True for an input that is an image: an ``InputLayer`` of H x W x 1 or H x W x 3 maps."""
    shape = tuple(layer.output_shape)
    return (layer.type == "InputLayer" and len(shape) == 3 and shape[0] > 1 and shape[1] > 1
            and shape[2] in PICTURE_CHANNELS)


def robust_range(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per sample of (S, ...) values: their 1st and 99th percentiles over the finite
    values; (0, 1) for a sample without finite values."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    finite = np.where(np.isfinite(flat), flat, np.nan)
    with warnings.catch_warnings():  # a sample without finite values: "All-NaN slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(finite, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=1)
    empty = np.isnan(low)
    return np.where(empty, 0.0, low), np.where(empty, 1.0, high)


def display_colours(images: np.ndarray) -> np.ndarray:
    """(S, H, W, 3) float32 linear RGB in 0..1 for (S, H, W, C) image values, C = 1 or 3, by the
    mapping in the module docstring."""
    values = np.asarray(images, dtype=np.float64)
    if values.ndim != 4 or values.shape[-1] not in PICTURE_CHANNELS:
        raise ValueError(f"expected (samples, H, W, 1 or 3) images, got shape {values.shape}")
    low, high = robust_range(values)
    span = (high - low)[:, None, None, None]
    flat = span <= 0
    with np.errstate(all="ignore"):
        shown = np.clip((values - low[:, None, None, None]) / np.where(flat, 1.0, span), 0.0, 1.0)
    shown = np.where(flat, FLAT_GREY, shown)
    shown = np.where(np.isfinite(values), shown, 0.0)
    if shown.shape[-1] == 1:
        shown = np.repeat(shown, 3, axis=-1)
    return srgb_to_linear(shown).astype(np.float32)


def merge_picture_channels(edges: Edges, channels: int) -> Edges:
    """The edges of a link that starts at a picture of ``channels`` channels, drawn as one map:
    channel units become the map (unit 0), cells ``(pixel, c)`` become the pixel's cell, and
    edges that now share both ends merge into one (strength: the sum of their |w|; sign: the
    sign of their sum). Links from the whole layer are kept as they are."""
    if channels == 1 or edges.source_unit in ("layer", "neuron"):
        return edges
    if edges.source_unit == "channel":
        source, n_source = np.zeros_like(edges.source), 1
    else:  # "cell": Keras flatten order, index = pixel * channels + channel
        source, n_source = edges.source // channels, edges.n_source // channels
    key = source.astype(np.int64) * edges.n_target + edges.target
    merged, inverse = np.unique(key, return_inverse=True)
    weight = edges.weight.astype(np.float64)
    strength = np.bincount(inverse, np.abs(weight), minlength=merged.size)
    signed = np.bincount(inverse, weight, minlength=merged.size)
    return Edges(merged // edges.n_target, merged % edges.n_target,
                 np.where(signed < 0, -strength, strength), n_source, edges.n_target,
                 edges.source_unit, edges.target_unit,
                 dense=merged.size == n_source * edges.n_target)
