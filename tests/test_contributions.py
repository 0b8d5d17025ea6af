"""Contributions (core/contributions.py): a cell's ``a * w`` terms and the contribution flow,
against Keras's own numbers and explicit loops.

* A Dense neuron's terms, nothing cut, add up to its pre-activation minus its bias (the export's
  own activations of a Dense layer without activation, float16), per input neuron and per
  channel of the maps a folded Flatten feeds it; convolutions likewise (a dilated strided conv,
  a strided depthwise conv, float32).
* The flow through a convolution and a Dense layer of the bundled example equals an explicit
  loop over cells, taps and channels; the relevance is conserved down a chain and split by |a|
  at an Add.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

import model_zoo  # noqa: E402

from nnvis_addon.core.contributions import (  # noqa: E402
    contribution_flow,
    direct_contributions,
    per_channel,
    ranked,
    sample_values,
)
from nnvis_addon.core.export_format import read_export  # noqa: E402
from nnvis_addon.core.receptive_field import selection_mask  # noqa: E402
from nnvis_export import export_model  # noqa: E402

L = keras.layers


def logits_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((10, 9, 2), name="input")
    x = L.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(7, name="logits", bias_initializer="random_normal")(x)
    outputs = L.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="logits_model")


@pytest.fixture(scope="module")
def logits_export(tmp_path_factory):
    model = logits_model()
    samples = np.random.default_rng(0).random((3, 10, 9, 2), dtype=np.float32)
    path = export_model(model, samples, tmp_path_factory.mktemp("logits"),
                        activation_dtype="float16", verbose=False)
    return read_export(path)


def test_dense_terms_sum_to_pre_activation_minus_bias(logits_export):
    export = logits_export
    kernel, bias = export.weights("logits")
    logits = np.asarray(export.activations("logits"), np.float64)
    flat = np.asarray(export.activations("flatten"), np.float64)
    for sample in range(export.num_samples):
        for neuron in range(7):
            terms = direct_contributions(export, "logits", (neuron,), sample)
            order, kept = ranked(terms)  # nothing cut
            assert sorted(order) == list(range(terms.size))
            assert np.all(np.diff(np.abs(kept)) <= 0)
            # float16: the stored logit and the stored inputs each keep 11 significant bits
            tolerance = 2.0 ** -10 * (abs(logits[sample, neuron]) + np.abs(terms).sum())
            expected = logits[sample, neuron] - bias[neuron]
            assert abs(kept.sum() - expected) <= tolerance
            by_channel = per_channel(terms, export.layer("pool").output_shape)
            assert by_channel.shape == (6,)
            assert abs(by_channel.sum() - expected) <= tolerance
            np.testing.assert_allclose(terms, flat[sample] * kernel[:, neuron], rtol=1e-12)
    cut_order, cut = ranked(terms, keep=5)
    assert len(cut) == 5 and set(cut_order) <= set(order[:5])


def conv_model() -> keras.Model:
    keras.utils.set_random_seed(5)
    inputs = keras.Input((11, 10, 3), name="input")
    x = L.Conv2D(4, 3, strides=2, dilation_rate=1, padding="same", name="strided",
                 bias_initializer="random_normal")(inputs)
    y = L.Conv2D(5, 3, dilation_rate=2, padding="same", name="dilated",
                 bias_initializer="random_normal")(inputs)
    z = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="valid", name="depthwise",
                          bias_initializer="random_normal")(inputs)
    four = L.Concatenate(name="four")([inputs, L.Conv2D(1, 1, name="one")(inputs)])
    g = L.Conv2D(4, 3, groups=2, padding="valid", name="grouped")(four)
    return keras.Model(inputs, [L.Flatten(name="f")(x), y, z, g], name="conv_model")


def test_conv_terms_sum_to_the_cell_minus_bias(tmp_path):
    model = conv_model()
    samples = np.random.default_rng(1).normal(size=(2, 11, 10, 3)).astype(np.float32)
    export = read_export(export_model(model, samples, tmp_path, activation_dtype="float32",
                                      verbose=False))
    for name in ("strided", "dilated", "depthwise", "grouped"):
        values = np.asarray(export.activations(name), np.float64)
        weights = dict(zip((w.name for w in export.layer(name).weights), export.weights(name)))
        bias = weights.get("bias", np.zeros(values.shape[-1]))
        for sample in range(2):
            for cell in np.ndindex(values.shape[1:]):
                terms = direct_contributions(export, name, cell, sample)
                assert terms.shape == (export.layer(export.layer(name).inbound[0])
                                       .output_shape[-1],)
                assert terms.sum() + bias[cell[-1]] == pytest.approx(values[(sample, *cell)],
                                                                     abs=1e-4)


# -- the flow against explicit loops -----------------------------------------------------------


@pytest.fixture(scope="module")
def example(example_export):
    return read_export(example_export)


def _loop_conv_flow(x, kernel, relevance, pad):
    """Relevance of each input cell and the channel flow of a stride-1 conv, cell by cell."""
    height, width, channels = x.shape
    kh, kw, _, outs = kernel.shape
    found = np.zeros(x.shape)
    flow = np.zeros((channels, outs))
    for r, c, o in zip(*np.nonzero(relevance)):
        terms = {}
        for i in range(kh):
            for j in range(kw):
                for ch in range(channels):
                    rr, cc = r - pad + i, c - pad + j
                    if 0 <= rr < height and 0 <= cc < width:
                        terms[(rr, cc, ch)] = terms.get((rr, cc, ch), 0.0) + \
                            abs(x[rr, cc, ch] * kernel[i, j, ch, o])
        total = sum(terms.values())
        for (rr, cc, ch), term in terms.items():
            if total > 0:
                found[rr, cc, ch] += relevance[r, c, o] * term / total
                flow[ch, o] += relevance[r, c, o] * term / total
    return found, flow


def test_conv_and_dense_flow_equal_explicit_loops(example):
    selected = selection_mask((10,), neuron=4)
    flow = contribution_flow(example, "output", selected, sample=1)
    kernel = example.weights("output")[0].astype(np.float64)
    x = sample_values(example, "dense1", 1, -1)
    terms = np.abs(x * kernel[:, 4])
    np.testing.assert_allclose(flow.relevance["dense1"], terms / terms.sum(), rtol=1e-9)
    np.testing.assert_allclose(flow.flows["output"][:, 4], terms / terms.sum(), rtol=1e-9)
    conv = example.weights("conv2")[0].astype(np.float64)
    expected_found, expected_flow = _loop_conv_flow(sample_values(example, "pool1", 1, -1), conv,
                                                    flow.relevance["conv2"], pad=1)
    np.testing.assert_allclose(flow.passed[("conv2", "pool1")], expected_found, atol=1e-12)
    np.testing.assert_allclose(flow.flows["conv2"], expected_flow, atol=1e-12)


def test_relevance_is_conserved_down_a_chain(example):
    flow = contribution_flow(example, "conv2", selection_mask((8, 8, 16), row=3, col=3,
                                                              channel=5), sample=0)
    for name in ("conv2", "pool1", "conv1"):
        assert flow.relevance[name].sum() == pytest.approx(1.0)
    assert flow.flows["conv2"].sum() == pytest.approx(1.0)
    assert flow.relevance["dense1"].sum() == 0  # later layers take no part
    # max pooling: only the winners of each window receive
    winners = flow.passed[("pool1", "conv1")] > 0
    conv1 = sample_values(example, "conv1", 0, -1)
    pooled = sample_values(example, "pool1", 0, -1)
    assert np.all(conv1[winners] == np.repeat(np.repeat(pooled, 2, 0), 2, 1)[winners])


def test_add_splits_by_magnitude(tmp_path):
    model = model_zoo.residual_block()
    samples = model_zoo.samples(model, count=1)
    export = read_export(export_model(model, samples, tmp_path, activation_dtype="float32",
                                      verbose=False))
    flow = contribution_flow(export, "res1_add", selection_mask((16, 16, 8), channel=2), 0)
    skip, branch = flow.passed[("res1_add", "stem_relu")], flow.passed[("res1_add", "res1b_bn")]
    a = np.abs(sample_values(export, "stem_relu", 0, -1)[..., 2])
    b = np.abs(sample_values(export, "res1b_bn", 0, -1)[..., 2])
    np.testing.assert_allclose(skip[..., 2], np.where(a + b > 0, a / (a + b), 0.5), rtol=1e-9)
    np.testing.assert_allclose(skip + branch, flow.relevance["res1_add"], rtol=1e-12)
    assert flow.relevance["input"].sum() == pytest.approx(flow.relevance["res1_add"].sum(),
                                                          rel=1e-6)
