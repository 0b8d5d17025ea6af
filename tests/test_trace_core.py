"""core/trace.py without Blender: a trace's values per cell and per edge on the bundled
example, and how unit values map onto drawn cells (downsampled maps, pictures, blocks),
against explicit loops."""

from __future__ import annotations

import numpy as np
import pytest

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.trace import FIELD_LEVEL, DrawnGrid, TraceError, drawn_cells, trace_cell


@pytest.fixture(scope="module")
def example(example_export):
    return read_export(example_export)


def test_drawn_cells_take_the_brightest_value_of_what_they_stand_for():
    values = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(drawn_cells(values, DrawnGrid((5, 7, 3))), values.reshape(-1))
    strided = drawn_cells(values, DrawnGrid((5, 7, 3), stride=2)).reshape(3, 4, 3)
    for r in range(3):
        for c in range(4):
            for ch in range(3):
                assert strided[r, c, ch] == values[2 * r:2 * r + 2, 2 * c:2 * c + 2, ch].max()
    picture = drawn_cells(values, DrawnGrid((5, 7, 3), picture=True))
    np.testing.assert_array_equal(picture, values.max(axis=2).reshape(-1))
    np.testing.assert_array_equal(drawn_cells(values, DrawnGrid((5, 7, 3), block=True)),
                                  [values.max()])
    np.testing.assert_array_equal(drawn_cells(np.arange(4.0), DrawnGrid((4,))), np.arange(4.0))


def test_unit_values(example):
    trace = trace_cell(example, "conv2", channel=3, row=2, col=5, sample=0)
    conv2 = trace.unit_values("conv2")
    assert conv2[2, 5, 3] == 1.0 and np.count_nonzero(conv2) == 1
    conv1 = trace.unit_values("conv1")
    field = trace.field.mask("conv1")
    assert np.all(conv1[~field] == 0) and np.all(conv1[field] >= FIELD_LEVEL)
    top = trace.top_units("conv1")
    assert 1 <= len(top) <= 3
    shares = trace.unit_shares("conv1")
    assert set(top) == set(np.argsort(-shares)[:len(top)])
    bright = conv1 > FIELD_LEVEL
    assert np.all(np.isin(np.nonzero(bright)[2], top))
    assert conv1.max() == 1.0  # the largest share in the layer
    assert not trace.unit_values("dense1").any()


def test_edge_values_follow_the_paths(example):
    trace = trace_cell(example, "output", neuron=4, sample=2, top=2)
    sources, targets = np.repeat(np.arange(32), 10), np.tile(np.arange(10), 32)
    values = trace.edge_values("dense", "dense1", "output", sources, targets)
    top = trace.top_units("dense1")
    on = np.isin(sources, top) & (targets == 4)
    assert np.all(values[~on] == 0) and np.all(values[on] > 0) and values.max() == 1.0
    flow = trace.flow.flows["output"][:, 4]
    np.testing.assert_allclose(values[on], np.sqrt(flow[sources[on]] / flow[top].max()))
    channels = trace.edge_values("channel_dense", "pool2", "dense1",
                                 np.repeat(np.arange(16), 32), np.tile(np.arange(32), 16))
    assert channels.max() == 1.0
    structural = trace.edge_values("pool", "conv2", "pool2", np.arange(16), np.arange(16))
    assert np.count_nonzero(structural) <= 2


def test_bad_selections(example):
    with pytest.raises(TraceError, match="no unit 'conv9'"):
        trace_cell(example, "conv9", channel=0)
    with pytest.raises(TraceError, match="channel 16 is outside"):
        trace_cell(example, "conv2", channel=16, row=0, col=0)
    with pytest.raises(TraceError, match="sample 9"):
        trace_cell(example, "output", neuron=0, sample=9)
