"""Layout and wiring of DAG networks in the bpy-free core: columns, side-by-side branches, skip
links and their arcs, structural links of merges, downsampled maps, unknown layers as blocks."""

from __future__ import annotations

import numpy as np
import pytest
from export_factory import LayerDef, make_export

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.layout import (
    CellGrid,
    LayoutOptions,
    cell_centres,
    display_stride,
    downsample_maps,
    layer_columns,
    plan_network,
)
from nnvis_addon.core.links import depthwise_edges, plan_links, skip_arc, skip_route


def inception_residual_layers():
    """input -> conv -> three branches (1x1 conv / 3x3 conv / pool -> 1x1 conv) -> concat ->
    BN -> add(skip from conv) -> GAP -> dense, plus a custom layer on the side."""
    return [
        LayerDef("input", "InputLayer", (8, 8, 3), inbound=[]),
        LayerDef("stem", "Conv2D", (8, 8, 6), [("kernel", (3, 3, 3, 6)), ("bias", (6,))],
                 {"filters": 6}, inbound=["input"]),
        LayerDef("branch_a", "Conv2D", (8, 8, 2), [("kernel", (1, 1, 6, 2)), ("bias", (2,))],
                 {"filters": 2}, inbound=["stem"]),
        LayerDef("branch_b", "Conv2D", (8, 8, 2), [("kernel", (3, 3, 6, 2)), ("bias", (2,))],
                 {"filters": 2}, inbound=["stem"]),
        LayerDef("branch_c_pool", "MaxPooling2D", (8, 8, 6), inbound=["stem"]),
        LayerDef("branch_c", "Conv2D", (8, 8, 2), [("kernel", (1, 1, 6, 2)), ("bias", (2,))],
                 {"filters": 2}, inbound=["branch_c_pool"]),
        LayerDef("concat", "Concatenate", (8, 8, 6), config={"axis": -1},
                 inbound=["branch_a", "branch_b", "branch_c"]),
        LayerDef("bn", "BatchNormalization", (8, 8, 6),
                 [("gamma", (6,)), ("beta", (6,)), ("moving_mean", (6,)),
                  ("moving_variance", (6,))], inbound=["concat"]),
        LayerDef("add", "Add", (8, 8, 6), inbound=["bn", "stem"]),
        LayerDef("mystery", "MyCustomLayer", (8, 8, 6), inbound=["add"]),
        LayerDef("gap", "GlobalAveragePooling2D", (6,), inbound=["mystery"]),
        LayerDef("dense", "Dense", (4,), [("kernel", (6, 4)), ("bias", (4,))], {"units": 4},
                 inbound=["gap"]),
    ]


@pytest.fixture(scope="module")
def dag_export(tmp_path_factory):
    built = make_export(tmp_path_factory.mktemp("dag"), layers=inception_residual_layers(),
                        epochs=2)
    return read_export(built.path)


def test_columns_follow_the_longest_path(dag_export):
    columns = dict(zip((item.name for item in dag_export.layers), layer_columns(dag_export.layers)))
    assert columns["stem"] == 1
    assert columns["branch_a"] == columns["branch_b"] == columns["branch_c_pool"] == 2
    assert columns["branch_c"] == 3 and columns["concat"] == 4 and columns["add"] == 6


def test_parallel_branches_sit_side_by_side_without_overlap(dag_export):
    plan = plan_network(dag_export)
    column = [p for p in plan.layers if p.column == 2]
    assert len(column) == 3 and len({p.x for p in column}) == 1
    spans = sorted((p.y - p.extent(0.1)[0] / 2, p.y + p.extent(0.1)[0] / 2) for p in column)
    for (_, right), (left, _) in zip(spans, spans[1:]):
        assert left - right == pytest.approx(plan.options.branch_gap)
    assert spans[0][0] + spans[-1][1] == pytest.approx(0.0, abs=1e-9)  # the column is centred


def test_compact_layers_follow_closer(dag_export):
    # No room asked for wide neighbours: the spacing rule alone.
    plan = plan_network(dag_export, LayoutOptions(layer_spacing=2.0, view_overlap=0.0,
                                                  unit_margin=0.0))
    x = {p.layer.name: p.x for p in plan.layers}
    assert x["concat"] - x["branch_c"] == pytest.approx(2.0)
    assert x["bn"] - x["concat"] == pytest.approx(2.0 * plan.options.compact_spacing)


def test_unknown_layer_is_a_block_with_a_warning(dag_export):
    plan = plan_network(dag_export)
    mystery = plan.layer("mystery")
    assert mystery.block and mystery.grid == CellGrid(1, 1, 1)
    assert "not drawn" in mystery.label and "8x8x6" in mystery.label
    assert any("MyCustomLayer" in w for w in plan.warnings)
    values = mystery.display_values(dag_export.activations("mystery", 0))
    expected = dag_export.activations("mystery", 0).astype(np.float32).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(values[:, 0], expected, rtol=1e-5)


def test_links_cover_every_inbound_edge_with_the_right_kind(dag_export):
    plan = plan_network(dag_export)
    all_links = plan_links(dag_export, plan=plan)
    links = {(item.source.name, item.target.name): item for item in all_links if item.kind != "block"}
    expected_pairs = {(src, layer.name) for layer in dag_export.layers for src in layer.inbound}
    assert set(links) == expected_pairs
    # Plus one link from each block's entry to its output (shown while the block is collapsed).
    blocks = {(b.entry, b.output) for b in plan.blocks}
    assert {(item.source.name, item.target.name) for item in all_links if item.kind == "block"} == blocks
    assert blocks == {("stem", "concat")}
    assert links[("stem", "branch_b")].kind == "conv"
    assert links[("stem", "branch_c_pool")].kind == "pool"
    assert links[("bn", "add")].kind == "channelwise" and links[("bn", "add")].structural
    assert links[("add", "mystery")].kind == "layer"      # into a block: one centre edge
    assert links[("gap", "dense")].kind == "dense" and not links[("gap", "dense")].structural
    # Concatenate: each branch's channels go to its own slice of the output.
    for source, offset in (("branch_a", 0), ("branch_b", 2), ("branch_c", 4)):
        link = links[(source, "concat")]
        np.testing.assert_array_equal(link.edges.target, link.edges.source + offset)
    # The residual Add skips the branch, concat and BN columns.
    assert links[("stem", "add")].skipped_columns == 4
    assert links[("bn", "add")].skipped_columns == 0


def test_skip_arc_clears_every_skipped_column():
    start_z = np.array([-1.5, 0.0, 0.7])
    end_z = np.array([0.4, -2.0, 0.7])
    for rise, fall in ((0.5, 0.5), (0.2, 0.9), (0.05, 0.97)):
        points = 48
        arc = skip_arc(points, rise, fall, 2.0, start_z, end_z)
        assert np.all(arc[:, 0] == 0) and np.all(arc[:, -1] == 0)
        t = np.linspace(0, 1, points)
        z = start_z[:, None] + (end_z - start_z)[:, None] * t[None, :] + arc
        # Every segment touching [rise, fall] stays above the clearance (no corner cutting).
        inner = (t >= rise - 1 / (points - 1)) & (t <= fall + 1 / (points - 1))
        assert np.all(z[:, inner] >= 2.0 - 1e-5)


def test_skip_route_spans_the_skipped_columns(dag_export):
    plan = plan_network(dag_export)
    link = next(item for item in plan_links(dag_export, plan=plan)
                if (item.source.name, item.target.name) == ("stem", "add"))
    route = skip_route(plan, link, label_height=0.5, points_per_edge=16)
    x = {p.layer.name: p.x for p in plan.layers}
    length = x["add"] - x["stem"]
    assert route.rise < (x["branch_a"] - x["stem"]) / length
    assert route.fall > (x["bn"] - x["stem"]) / length
    tallest = max(p.extent(0.1)[1] / 2 for p in plan.layers if 1 < p.column < 6)
    assert route.clearance > tallest + 0.5 and route.points >= 16


def test_depthwise_and_separable_edges_against_loops():
    rng = np.random.default_rng(3)
    depthwise = rng.normal(size=(3, 3, 4, 2))
    pointwise = rng.normal(size=(1, 1, 8, 5))
    edges = depthwise_edges(depthwise)
    for c in range(4):
        for m in range(2):
            index = np.flatnonzero((edges.source == c) & (edges.target == c * 2 + m))
            slab = depthwise[:, :, c, m]
            assert abs(edges.weight[index[0]]) == pytest.approx(np.linalg.norm(slab), rel=1e-5)
            assert np.sign(edges.weight[index[0]]) == (1 if slab.sum() >= 0 else -1)
    combined = depthwise_edges(depthwise, pointwise)
    for c in range(4):
        for o in range(5):
            terms = [np.sign(depthwise[:, :, c, m].sum() or 1) * np.linalg.norm(depthwise[:, :, c, m])
                     * pointwise[0, 0, c * 2 + m, o] for m in range(2)]
            weight = combined.weight[c * 5 + o]
            assert abs(weight) == pytest.approx(sum(abs(v) for v in terms), rel=1e-5)
            assert np.sign(weight) == (1 if sum(terms) >= 0 else -1)


def test_big_maps_are_downsampled_for_display():
    grid = CellGrid(224, 224, 64)
    stride = display_stride(grid, 250_000)
    assert stride == 4 and (-(-224 // stride)) ** 2 * 64 <= 250_000
    assert display_stride(grid, None) == 1 and display_stride(CellGrid(1, 1, 10**6), 10) == 1
    values = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    small = downsample_maps(values, 2)
    assert small.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(small[1, 0, 0], values[1, :2, :2].mean(axis=(0, 1)))
    np.testing.assert_allclose(small[0, 2, 2], values[0, 4, 4])  # partial edge block


def test_collapse_merge_keeps_maps_in_one_place():
    grid = CellGrid(4, 4, 3)
    stacked = cell_centres(grid, grid_layout=0.0, cell_size=0.1, channel_gap=0.2, collapse=1.0)
    merged = cell_centres(grid, grid_layout=0.0, cell_size=0.1, channel_gap=0.2, collapse=1.0,
                          merge=True)
    assert np.ptp(stacked[:, 0]) > 0 and np.ptp(merged[:, 0]) == 0
    np.testing.assert_allclose(stacked[:, 1:], merged[:, 1:])
