"""Long networks folded into rows (core/rows.py, core/layout.py): a serpentine of rows, in
order, without overlaps, never cut under a skip link, and only for networks whose line would be
too long. Plain numpy, no Blender."""

from __future__ import annotations

import numpy as np
import pytest
from export_factory import LayerDef, dense_layers, make_export

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.folding import fold_export
from nnvis_addon.core.layout import LayoutOptions, label_height, layer_corners, plan_network
from nnvis_addon.core.links import plan_links, skip_route
from nnvis_addon.core.rows import (
    ROW_ASPECT,
    Rows,
    allowed_breaks,
    choose_starts,
    fold_columns,
    row_count,
    turn_bulge,
)


def chain(folder, layers: int, name: str = "chain"):
    return read_export(make_export(folder, name=name, layers=dense_layers(4, [4] * (layers - 1)),
                                   samples=1, epochs=1).path)


def residual_layers(blocks: int) -> list[LayerDef]:
    """input -> dense -> blocks x (dense -> dense -> add(skip)): a skip link over every block."""
    layers = [LayerDef("input", "InputLayer", (4,), inbound=[]),
              LayerDef("stem", "Dense", (4,), [("kernel", (4, 4)), ("bias", (4,))])]
    previous = "stem"
    for index in range(blocks):
        a, b, add = f"unit{index}_a", f"unit{index}_b", f"unit{index}_add"
        layers += [LayerDef(a, "Dense", (4,), [("kernel", (4, 4)), ("bias", (4,))],
                            inbound=[previous]),
                   LayerDef(b, "Dense", (4,), [("kernel", (4, 4)), ("bias", (4,))], inbound=[a]),
                   LayerDef(add, "Add", (4,), inbound=[b, previous])]
        previous = add
    return layers


@pytest.fixture(scope="module")
def long_chain(tmp_path_factory):
    return chain(tmp_path_factory.mktemp("chain"), 400)


@pytest.fixture(scope="module")
def folded(long_chain):
    return plan_network(long_chain)


def test_a_long_chain_folds_into_a_serpentine_of_rows(folded):
    assert folded.rows is not None and folded.rows.count >= 4
    by_column = sorted(folded.layers, key=lambda p: p.column)
    rows = np.array([p.row for p in by_column])
    assert np.all(np.diff(rows) >= 0), "rows follow the layer order"
    assert sorted(set(rows)) == list(range(folded.rows.count))
    for row in range(folded.rows.count):
        members = [p for p in by_column if p.row == row]
        direction = 1.0 if row % 2 == 0 else -1.0  # every other row runs back
        assert {p.direction for p in members} == {direction}
        assert [p.z for p in members] == pytest.approx([-row * folded.rows.pitch] * len(members))
        along = np.array([p.x for p in members]) * direction
        assert np.all(np.diff(along) > 0), f"row {row} keeps the layer order along its direction"
    for start in folded.rows.starts[1:]:  # a row starts right under the end of the row above
        first = next(p for p in by_column if p.column == start)
        last = next(p for p in by_column if p.column == start - 1)
        assert first.x == pytest.approx(last.x) and first.row == last.row + 1
        assert first.spacing_factor == 0.0  # its location driver adds no spacing


def test_folded_units_and_labels_do_not_overlap(folded):
    options = folded.options
    lift = label_height(options.cell_size)
    boxes = []
    for plan in folded.layers:
        width, height = plan.extent(options.cell_size)
        depth = options.cell_size * plan.cell_scale
        boxes.append(((plan.x - depth, plan.y - width / 2, plan.z - height / 2),
                      (plan.x + depth, plan.y + width / 2, plan.z + height / 2 + lift)))
    lo, hi = np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes])
    overlap = np.all((lo[:, None] < hi[None]) & (hi[:, None] > lo[None]), axis=2)
    np.fill_diagonal(overlap, False)
    assert not overlap.any(), f"{int(overlap.sum()) // 2} pairs of units (with labels) overlap"


def test_the_folded_network_is_about_as_wide_as_the_row_aspect(folded, long_chain):
    span = np.ptp(layer_corners(folded, label_height(folded.options.cell_size)), axis=0)
    assert ROW_ASPECT / 2 < span[0] / span[2] < ROW_ASPECT * 2
    straight = plan_network(long_chain, LayoutOptions(wrap="off"))
    assert straight.rows is None and {p.z for p in straight.layers} == {0.0}
    assert np.ptp([p.x for p in straight.layers]) > 10 * span[0]


def test_short_networks_stay_one_line(tmp_path, example_export):
    assert plan_network(fold_export(read_export(example_export), frozenset())).rows is None
    assert plan_network(chain(tmp_path, 12)).rows is None


def test_rows_never_end_under_a_skip_link(tmp_path):
    export = read_export(make_export(tmp_path, name="residual", layers=residual_layers(60),
                                     samples=1, epochs=1).path)
    plan = plan_network(export, LayoutOptions(blocks="expanded"))
    assert plan.rows is not None and plan.rows.count >= 2
    for link in plan_links(export, plan=plan):
        source, target = plan.layer(link.source.name), plan.layer(link.target.name)
        if target.column - source.column >= 2:
            assert source.row == target.row, f"{link.name} spans two rows"
            if link.kind == "block":  # drawn straight, shown while the block is collapsed
                continue
            route = skip_route(plan, link, label_height(plan.options.cell_size), 16)
            assert route is not None and 0 < route.rise < route.fall < 1
            assert route.clearance > source.z  # over its own row
        elif source.row != target.row:
            assert target.row == source.row + 1


def test_allowed_breaks_skip_the_boundaries_a_link_jumps():
    allowed = allowed_breaks(8, [(0, 1), (1, 2), (2, 5), (5, 6), (6, 7), (4, 5)])
    assert allowed.tolist() == [False, True, True, False, False, False, True, True]


def test_row_count_and_cuts():
    assert row_count(100.0, 10.0, 12.0) == 1
    assert row_count(1000.0, 1.0, 12.0) == round(np.sqrt(1000 / ROW_ASPECT))
    assert row_count(12.5, 1.0, 12.0) >= 2  # just past the aspect: never a single row
    x = np.arange(11, dtype=float) * 2.0
    allowed = np.ones(11, bool)
    allowed[0] = False
    assert choose_starts(x, allowed, 2) == (0, 5)
    allowed[3:7] = False  # the allowed cut nearest to the middle
    assert choose_starts(x, allowed, 2) == (0, 7)
    assert choose_starts(x, np.zeros(11, bool), 3) == (0,)  # nowhere to cut: one row
    x = x[:10]
    folded, z, direction = fold_columns(x, Rows((0, 5), 3.0))
    assert folded.tolist() == [0, 2, 4, 6, 8, 8, 6, 4, 2, 0]
    assert z.tolist() == [0.0] * 5 + [-3.0] * 5 and direction.tolist() == [1.0] * 5 + [-1.0] * 5


def test_turns_reach_outwards_from_the_end_of_their_row():
    assert turn_bulge(0, 0, 2.0, 1.0) is None
    assert turn_bulge(0, 1, 2.0, 1.0) > 0 > turn_bulge(1, 2, 2.0, -1.0)


def test_wrap_mode_is_checked():
    with pytest.raises(ValueError, match="wrap must be one of"):
        LayoutOptions(wrap="sometimes")
