"""The input as a picture in the bpy-free core (issue 11, item 5): which layers are pictures,
the display mapping of their pixels, their one-map layout and the connections that start at
them."""

from __future__ import annotations

import numpy as np
import pytest
from export_factory import LayerDef, cnn_layers, make_export, photo_export, sample_photos

from nnvis_addon.core.colour import srgb_to_linear
from nnvis_addon.core.edges import Edges, conv_edges
from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.layout import CellGrid, LayoutOptions, plan_network
from nnvis_addon.core.links import plan_links
from nnvis_addon.core.picture import display_colours, is_picture_layer, merge_picture_channels, robust_range


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Blender's linear -> sRGB display curve, written out independently of the code under test."""
    linear = np.asarray(linear, np.float64)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


@pytest.fixture(scope="module")
def photos():
    return np.stack(sample_photos(24, 36))  # china, flower: (2, 24, 36, 3), 0..255


def test_srgb_curve_round_trips_and_is_the_standard_one():
    values = np.linspace(0, 1, 101)
    np.testing.assert_allclose(to_srgb(srgb_to_linear(values)), values, atol=1e-9)
    assert srgb_to_linear(0.5) == pytest.approx(0.21404, abs=1e-5)
    assert srgb_to_linear(0.04) == pytest.approx(0.04 / 12.92)


def test_robust_range_is_the_1st_and_99th_percentile_of_each_sample(photos):
    low, high = robust_range(photos)
    for sample in range(len(photos)):
        values = np.sort(photos[sample].reshape(-1))
        one = 1.0 / values.size  # percentiles interpolate between neighbouring values
        assert np.mean(values < low[sample]) <= 0.01 + one
        assert np.mean(values > high[sample]) <= 0.01 + one
        assert values[0] <= low[sample] < high[sample] <= values[-1]


def test_display_colours_stretch_the_robust_range_and_stay_in_sRGB(photos):
    colours = display_colours(photos)
    assert colours.shape == photos.shape and colours.dtype == np.float32
    assert colours.min() >= 0.0 and colours.max() <= 1.0
    low, high = robust_range(photos)
    for sample in range(len(photos)):
        expected = np.clip((photos[sample] - low[sample]) / (high[sample] - low[sample]), 0, 1)
        np.testing.assert_allclose(to_srgb(colours[sample]), expected, atol=2e-6)
        assert colours[sample].min() == 0.0 and colours[sample].max() == 1.0  # the full range


@pytest.mark.parametrize("scaling", ["0..1", "standardised", "negated mean"])
def test_0_255_0_1_and_standardised_images_look_the_same(photos, scaling):
    reference = display_colours(photos)
    if scaling == "0..1":
        scaled = photos / 255.0
    elif scaling == "standardised":  # one mean and std per image, as Keras' Normalization
        mean = photos.mean(axis=(1, 2, 3), keepdims=True)
        std = photos.std(axis=(1, 2, 3), keepdims=True)
        scaled = (photos - mean) / std
    else:
        scaled = photos - 120.0
    np.testing.assert_allclose(display_colours(scaled), reference, atol=2e-5)


def test_the_photo_keeps_its_colours(photos):
    """The china photo's sky is bluer than its temple; the mapping keeps that (no per-channel
    stretching that would grey it out)."""
    china = display_colours(photos[:1])[0]
    original = photos[0] / 255.0
    for channel in range(3):
        correlation = np.corrcoef(to_srgb(china[..., channel]).ravel(),
                                  original[..., channel].ravel())[0, 1]
        assert correlation > 0.97, channel
    blue_minus_red = (original[..., 2] - original[..., 0]).ravel()
    shown = (to_srgb(china[..., 2]) - to_srgb(china[..., 0])).ravel()
    assert np.corrcoef(blue_minus_red, shown)[0, 1] > 0.97


def test_grey_flat_and_invalid_images():
    rng = np.random.default_rng(1)
    grey = rng.random((2, 5, 7, 1)).astype(np.float32)
    colours = display_colours(grey)
    assert colours.shape == (2, 5, 7, 3)
    assert np.array_equal(colours[..., 0], colours[..., 1])
    assert np.array_equal(colours[..., 0], colours[..., 2])
    flat = display_colours(np.full((1, 4, 4, 3), 7.0))
    np.testing.assert_allclose(flat, srgb_to_linear(0.5), rtol=1e-6)
    broken = rng.random((1, 6, 6, 3))
    broken[0, 2, 3, 1] = np.nan
    broken[0, 4, 4, 0] = np.inf
    colours = display_colours(broken)
    assert np.all(np.isfinite(colours))
    assert colours[0, 2, 3, 1] == 0.0 and colours[0, 4, 4, 0] == 0.0
    assert display_colours(np.full((1, 3, 3, 3), np.nan)).max() == 0.0
    with pytest.raises(ValueError, match="1 or 3"):
        display_colours(np.zeros((1, 4, 4, 2)))


def test_which_layers_are_pictures(tmp_path):
    layers = {layer.name: layer for layer in read_export(make_export(
        tmp_path, layers=cnn_layers((6, 6, 3))).path).layers}
    assert is_picture_layer(layers["input"])
    assert not any(is_picture_layer(layers[name]) for name in ("conv", "pool", "dense"))
    for shape, picture in (((6, 6, 1), True), ((6, 6, 2), False), ((6, 6, 4), False)):
        export = read_export(make_export(tmp_path / str(shape), layers=cnn_layers(shape)).path)
        assert is_picture_layer(export.layers[0]) == picture, shape
    vector = read_export(make_export(tmp_path / "dense", layers=[
        LayerDef("input", "InputLayer", (3,), inbound=[]),
        LayerDef("dense", "Dense", (2,), [("kernel", (3, 2)), ("bias", (2,))])]).path)
    assert not is_picture_layer(vector.layers[0])


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return read_export(photo_export(tmp_path_factory.mktemp("photo"), filters=4).path)


def test_a_picture_is_planned_as_one_map(photo):
    plan = plan_network(photo)
    inp = plan.layer("input")
    assert inp.picture and inp.grid == CellGrid(24, 36, 1)
    assert not any(p.picture for p in plan.layers[1:])
    # Its cells' values: each pixel's mean over the channels.
    values = inp.display_values(photo.epochs[-1].activations["input"])
    np.testing.assert_allclose(values, np.stack(sample_photos(24, 36)).mean(axis=3).reshape(2, -1),
                               rtol=1e-6)
    colours = inp.picture_colours(photo.epochs[-1].activations["input"])
    np.testing.assert_allclose(colours, display_colours(np.stack(sample_photos(24, 36)))
                               .reshape(2, -1, 3), atol=1e-6)
    # 0..255 pixels do not stretch the colour range of the other layers.
    others = [p for p in plan.layers if not p.picture]
    assert plan.global_max == max(p.value_max for p in others) < 200
    separate = plan_network(photo, LayoutOptions(input_as_picture=False))
    assert not separate.layer("input").picture
    assert separate.layer("input").grid == CellGrid(24, 36, 3)
    assert separate.global_max >= 250


def test_picture_is_downsampled_like_its_cells(photo):
    plan = plan_network(photo, LayoutOptions(max_layer_cells=24 * 36 // 4))
    inp = plan.layer("input")
    assert inp.stride == 2 and inp.grid == CellGrid(12, 18, 1)
    colours = inp.picture_colours(photo.epochs[-1].activations["input"])
    pixels = np.stack(sample_photos(24, 36)).reshape(2, 12, 2, 18, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(colours, display_colours(pixels).reshape(2, -1, 3), atol=1e-5)


def test_conv_edges_from_a_picture_start_at_its_one_map(photo):
    plan = plan_network(photo)
    link = next(item for item in plan_links(photo, plan=plan) if item.source.name == "input")
    kernel = photo.weights("conv")[0]  # (3, 3, 3 channels, 4 filters)
    per_channel = conv_edges(kernel)
    strength = np.abs(per_channel.weight).reshape(3, 4).sum(axis=0)
    signed = per_channel.weight.reshape(3, 4).sum(axis=0)
    assert link.kind == "conv" and link.edges.n_source == 1
    assert sorted(link.edges.target.tolist()) == [0, 1, 2, 3]
    order = np.argsort(link.edges.target)
    np.testing.assert_allclose(np.abs(link.edges.weight[order]), strength, rtol=1e-5)
    assert np.array_equal(np.sign(link.edges.weight[order]), np.where(signed < 0, -1, 1))
    cells = 24 * 36
    assert np.all(link.source_first == 0) and np.all(link.source_last == cells - 1)
    assert link.epoch_weights.shape == (len(photo.epochs), 4)
    # Drawn channel by channel, the same link has one edge per (input channel, filter).
    separate = plan_network(photo, LayoutOptions(input_as_picture=False))
    link = next(item for item in plan_links(photo, plan=separate) if item.source.name == "input")
    assert link.edges.n_source == 3 and len(link.edges) == 12


def test_merging_picture_channels_of_cells_and_links():
    # cells (pixel, channel) of a 2-pixel, 3-channel picture -> 2 neurons, identity-like
    edges = Edges(np.arange(6), np.array([0, 0, 0, 1, 1, 1]), np.array([1, -2, 0.5, 1, 1, -4.0]),
                  6, 2, "cell", "neuron")
    merged = merge_picture_channels(edges, 3)
    assert merged.n_source == 2 and merged.source_unit == "cell"
    assert merged.source.tolist() == [0, 1] and merged.target.tolist() == [0, 1]
    np.testing.assert_allclose(merged.weight, [-3.5, -6.0])
    assert not merged.dense  # 2 of the 2 x 2 pairs
    whole = Edges([0], [0], [1.0], 1, 1, "layer", "layer")
    assert merge_picture_channels(whole, 3) is whole
    grey = Edges([0, 0], [0, 1], [1.0, 2.0], 1, 2, "channel", "channel")
    assert merge_picture_channels(grey, 1) is grey
