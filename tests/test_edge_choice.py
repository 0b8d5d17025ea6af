"""Which edges a layer pair draws (core/links.py on core/edges.py; numpy only): at most
its display budget, every target keeping its strongest edge, ranked by |w| or by the
contribution |a * w| for the shown sample; checked against plain loops over the export's own
arrays."""

from __future__ import annotations

import numpy as np
import pytest
from export_factory import LayerDef, make_export
from test_edges import reference_reduce

from nnvis_addon.core.edges import conv_edges, dense_edges, display_budget
from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.folding import fold_export
from nnvis_addon.core.links import RANKINGS, WiringOptions, plan_links, unit_activity

WEIGHTED = ("dense", "channel_dense", "conv", "separable")  # the kinds a budget can cut


def deep_layers() -> list[LayerDef]:
    """Input(10,10,3) -> conv1(8,8,8) -> conv2(6,6,16) -> pool(3,3,16) -> flatten -> dense(40)
    -> output(6): conv1 -> conv2 has 128 edges, pool -> dense (per channel) 640, dense -> output
    240; the flatten folds into the dense by default."""
    return [
        LayerDef("input", "InputLayer", (10, 10, 3), inbound=[]),
        LayerDef("conv1", "Conv2D", (8, 8, 8),
                 weights=[("kernel", (3, 3, 3, 8)), ("bias", (8,))]),
        LayerDef("conv2", "Conv2D", (6, 6, 16),
                 weights=[("kernel", (3, 3, 8, 16)), ("bias", (16,))]),
        LayerDef("pool", "MaxPooling2D", (3, 3, 16), config={"pool_size": [2, 2]}),
        LayerDef("flatten", "Flatten", (144,)),
        LayerDef("dense", "Dense", (40,), weights=[("kernel", (144, 40)), ("bias", (40,))]),
        LayerDef("output", "Dense", (6,), weights=[("kernel", (40, 6)), ("bias", (6,))]),
    ]


NAN_CHANNEL = 5  # conv1's channel 5 is NaN at the last epoch for sample 1


def plant_nan(what: str, array: np.ndarray) -> np.ndarray:
    if what == "activations/2/conv1":
        array = array.astype(np.float32)
        array[1, ..., NAN_CHANNEL] = np.nan
    return array


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("deep"), name="deep", layers=deep_layers(),
                       samples=3, epochs=3, activation_dtype="float32", mutate_values=plant_nan)


@pytest.fixture(scope="module")
def export(built):
    with pytest.warns(UserWarning, match="64 NaN/Inf values"):
        return fold_export(read_export(built.path))


def links_of(export, **options):
    sample = options.pop("sample", 0)
    return {(item.source.name, item.target.name): item
            for item in plan_links(export, WiringOptions(**options), sample=sample)}


def kept_index(link) -> list[int]:
    return (link.edges.source.astype(np.int64) * link.edges.n_target + link.edges.target).tolist()


def test_each_pair_draws_its_display_budget_and_every_target(export):
    links = links_of(export)
    assert set(links) == {("input", "conv1"), ("conv1", "conv2"), ("conv2", "pool"),
                          ("pool", "dense"), ("dense", "output")}
    for link in links.values():
        n_source, n_target = link.edges.n_source, link.edges.n_target
        targets = np.unique(link.edges.target)
        assert targets.size == n_target, link.name  # no target left without an edge
        if link.kind in WEIGHTED:
            expected = min(n_source * n_target, max(display_budget(n_source, n_target), n_target))
            assert len(link.edges) == expected, link.name
    assert len(links[("conv1", "conv2")].edges) == display_budget(8, 16) == 34 < 128
    assert len(links[("pool", "dense")].edges) == display_budget(16, 40) == 76 < 640
    assert len(links[("input", "conv1")].edges) == 24  # 3 x 8: the whole pair, under budget
    # Without the budget every edge of these small pairs stays.
    every = links_of(export, display_budget=False)
    assert len(every[("conv1", "conv2")].edges) == 128
    assert len(every[("pool", "dense")].edges) == 640


def test_a_wide_pair_keeps_one_edge_per_target_beyond_its_budget(tmp_path):
    layers = [LayerDef("input", "InputLayer", (30,), inbound=[]),
              LayerDef("wide", "Dense", (500,), weights=[("kernel", (30, 500)), ("bias", (500,))])]
    built = make_export(tmp_path, name="wide", layers=layers, epochs=1)
    link = plan_links(read_export(built.path))[0]
    assert display_budget(30, 500) == 200
    assert len(link.edges) == 500 and np.unique(link.edges.target).size == 500
    strongest = np.abs(built.weights[0]["wide"][0]).argmax(axis=0)
    order = np.argsort(link.edges.target)
    np.testing.assert_array_equal(link.edges.source[order], strongest)


def test_weight_ranking_keeps_the_strongest_weights(export, built):
    link = links_of(export)[("dense", "output")]
    kernel = built.weights[-1]["output"][0]
    edges = dense_edges(kernel)
    assert kept_index(link) == reference_reduce(edges, cap=display_budget(40, 6))
    np.testing.assert_array_equal(link.edges.weight, kernel.reshape(-1)[kept_index(link)])
    assert links_of(export, sample=2)[("dense", "output")].edges.source.tolist() == \
        link.edges.source.tolist()  # |w| does not depend on the sample


def test_unit_activity_is_the_mean_magnitude_per_unit(export, built):
    conv2 = export.layer("conv2")
    for sample in range(3):
        maps = built.activations[-1]["conv2"][sample]  # (6, 6, 16)
        expected = [np.abs(maps[..., c].astype(np.float64)).mean() for c in range(16)]
        np.testing.assert_allclose(unit_activity(export, conv2, "channel", 16, sample), expected,
                                   rtol=1e-6)
        dense = built.activations[-1]["dense"][sample]
        np.testing.assert_allclose(unit_activity(export, export.layer("dense"), "neuron", 40,
                                                 sample), np.abs(dense), rtol=1e-6)
    np.testing.assert_array_equal(unit_activity(export, conv2, "layer", 1, 0), [1.0])


def test_unit_activity_of_a_nan_unit_comes_from_its_latest_finite_epoch(export, built):
    activity = unit_activity(export, export.layer("conv1"), "channel", 8, 1)
    last, before = built.activations[2]["conv1"][1], built.activations[1]["conv1"][1]
    for channel in range(8):
        maps = before if channel == NAN_CHANNEL else last
        assert activity[channel] == pytest.approx(np.abs(maps[..., channel]).mean(), rel=1e-6)


@pytest.mark.parametrize("sample", [0, 1, 2])
def test_contribution_ranking_keeps_the_largest_activation_times_weight(export, built, sample):
    links = links_of(export, ranking="contribution", sample=sample)
    # conv1 -> conv2: each input channel's mean |a| for this sample times the kernel slice norm
    kernel = built.weights[-1]["conv2"][0]
    maps = built.activations[-1]["conv1"][sample].astype(np.float64)
    if sample == 1:  # the NaN channel ranks by its latest finite epoch
        maps[..., NAN_CHANNEL] = built.activations[1]["conv1"][1][..., NAN_CHANNEL]
    activity = np.abs(maps).reshape(-1, 8).mean(axis=0)
    edges = conv_edges(kernel)
    score = (activity[edges.source] * edges.strength).astype(np.float32)
    link = links[("conv1", "conv2")]
    assert kept_index(link) == reference_reduce(edges, cap=display_budget(8, 16), score=score)
    # pool -> dense (the folded Flatten): per channel of the pooled maps
    pooled = np.abs(built.activations[-1]["pool"][sample].astype(np.float64))
    activity = pooled.reshape(-1, 16).mean(axis=0)
    kernel = built.weights[-1]["dense"][0].reshape(9, 16, 40)
    channel_edges = dense_edges(np.abs(kernel).sum(axis=0))
    score = (activity[channel_edges.source] * channel_edges.strength).astype(np.float32)
    link = links[("pool", "dense")]
    assert kept_index(link) == reference_reduce(channel_edges, cap=display_budget(16, 40),
                                                score=score)


def test_contribution_picks_other_edges_than_weight_and_per_sample(export):
    by_weight = links_of(export)[("pool", "dense")]
    chosen = [kept_index(links_of(export, ranking="contribution", sample=s)[("pool", "dense")])
              for s in range(3)]
    assert all(c != kept_index(by_weight) for c in chosen)
    assert chosen[0] != chosen[1] != chosen[2]
    # the same edges keep every epoch's own weights
    link = links_of(export, ranking="contribution", sample=0)[("pool", "dense")]
    assert link.epoch_weights.shape == (3, len(link.edges))
    np.testing.assert_array_equal(link.epoch_weights[-1], link.edges.weight)


def test_an_unknown_ranking_is_refused():
    with pytest.raises(ValueError, match="edge ranking must be one of"):
        WiringOptions(ranking="activation")
    assert RANKINGS == ("weight", "contribution")
