"""Label sizes and places (core/labels.py, bpy-free): capitals of at least 12 px in a 1080-row
frame, no two labels overlapping on screen, labels above their units and inside the frame."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnvis_addon.core import labels
from nnvis_addon.core.labels import (
    CameraPose,
    LabelSpec,
    ScreenOutlines,
    frame_with_labels,
    label_corners,
    layer_top,
    layer_top_expression,
    place_labels,
    spread_order,
    text_size,
)
from nnvis_addon.core.layout import CellGrid, fit_camera, layer_extent

VIEW = (-0.55, -0.76, 0.36)          # staging.VIEW_DIRECTION: front-left, above
FOV_X = 2 * math.atan(18 / 50)       # a 50 mm lens on a 36 mm sensor
FOV_Y = 2 * math.atan(math.tan(FOV_X / 2) * 1080 / 1920)
CAP = 0.682                          # Blender's built-in font: an "H" at size 1
TWO_LINES = (-3.0, 3.0, -0.03, 1.88)  # "conv1\nConv2D 16x16x8" at size 1


def row_of_units(count: int, spacing: float = 3.0, width: float = 2.0,
                 height: float = 1.5) -> np.ndarray:
    """(count, 2, 3) boxes of units along +X, like a linear network."""
    x = np.arange(count) * spacing
    lo = np.stack([x - 0.1, np.full(count, -width / 2), np.full(count, -height / 2)], axis=1)
    hi = np.stack([x + 0.1, np.full(count, width / 2), np.full(count, height / 2)], axis=1)
    return np.stack([lo, hi], axis=1)


def camera_on(units) -> CameraPose:
    corners = labels.box_corners(units)
    location, forward = fit_camera(corners, VIEW, FOV_X, FOV_Y)
    return CameraPose.looking(location, forward, FOV_X, FOV_Y)


def projected_boxes(specs, placements, camera) -> list[tuple]:
    """Screen boxes of the shown labels from their world corners (not from the placement)."""
    corners = label_corners(specs, placements, camera).reshape(-1, 4, 3)
    boxes = []
    for quad in corners:
        screen, depth = camera.to_screen(quad)
        assert np.all(depth > 0)
        boxes.append((screen[:, 0].min(), screen[:, 0].max(), screen[:, 1].min(),
                      screen[:, 1].max()))
    return boxes


def overlapping(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes[i + 1:], i + 1)
            if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]]


def test_text_size_gives_the_cap_height_in_pixels_at_any_depth():
    camera = CameraPose.looking((0.0, -20.0, 3.0), (0.0, 1.0, -0.15), FOV_X, FOV_Y)
    for point in ([0.0, 0.0, 0.0], [5.0, 30.0, 2.0], [-4.0, 80.0, -1.0]):
        point = np.asarray(point)
        depth = float((point - camera.location) @ camera.forward)
        size = text_size(12.0, depth, camera, CAP)
        # The brief's formula: 12 px of 1080 rows is this much world height at that depth.
        assert size * CAP == pytest.approx(12 / 1080 * 2 * depth * math.tan(FOV_Y / 2))
        # A capital letter facing the camera, projected: 12 px tall.
        bottom, top = point, point + camera.up * size * CAP
        screen, _ = camera.to_screen(np.stack([bottom, top]))
        assert screen[1, 1] - screen[0, 1] == pytest.approx(12.0, rel=1e-9)


def test_spread_order_is_a_permutation_that_starts_at_the_ends_and_the_middle():
    assert spread_order(0) == [] and spread_order(1) == [0] and spread_order(2) == [0, 1]
    order = spread_order(9)
    assert sorted(order) == list(range(9))
    assert order[:5] == [0, 8, 4, 2, 6]
    for count in (3, 17, 40, 101):
        assert sorted(spread_order(count)) == list(range(count))


def test_sparse_units_get_the_largest_labels_right_above_them():
    units = row_of_units(5, spacing=8.0)
    camera = camera_on(units)
    specs = [LabelSpec(i, TWO_LINES) for i in range(5)]
    placements = place_labels(specs, units, camera, CAP)
    assert all(p.shown for p in placements)
    assert {p.cap_px for p in placements} == {max(labels.CAP_PX_CHOICES)}
    for spec, placement in zip(specs, placements):
        assert placement.lift >= 0
        own = ScreenOutlines(units[spec.unit:spec.unit + 1], camera)
        assert not own.touching([placement.screen_box], labels.GAP_PX - 1e-6)[0]
        anchor_y = camera.to_screen(labels.unit_anchor(*units[spec.unit]))[0][0, 1]
        assert placement.screen_box[2] >= anchor_y  # above its unit on screen, centred on it
        x0, x1 = own.boxes[0, :2]
        assert abs((placement.screen_box[0] + placement.screen_box[1]) / 2 - (x0 + x1) / 2) \
            < (x1 - x0) / 2
    assert overlapping(projected_boxes(specs, placements, camera)) == []


@pytest.mark.parametrize("count", [12, 30, 60, 200])
def test_crowded_units_never_get_overlapping_or_small_labels(count):
    units = row_of_units(count)
    camera = camera_on(units)
    specs = [LabelSpec(i, TWO_LINES) for i in range(count)]
    placements = place_labels(specs, units, camera, CAP)
    shown = [p for p in placements if p.shown]
    assert len(shown) >= min(count, 6), "a crowded network still labels some units"
    boxes = projected_boxes(specs, placements, camera)
    assert overlapping(boxes) == []
    # the placement's own screen boxes agree with the projected corners
    for box, placement in zip(boxes, shown):
        assert np.allclose(box, placement.screen_box, atol=1e-6)
    outlines = ScreenOutlines(units, camera)  # no label covers a unit
    assert not outlines.touching([p.screen_box for p in shown], 0.0).any()
    for placement in shown:
        cap_px = placement.size * CAP * camera.focal_px() / \
            float((placement.origin - camera.location) @ camera.forward)
        assert cap_px >= labels.MIN_CAP_PX
        assert cap_px == pytest.approx(placement.cap_px)


def test_labels_that_do_not_fit_are_spread_evenly():
    count = 60
    units = row_of_units(count, spacing=1.0)
    camera = camera_on(units)
    placements = place_labels([LabelSpec(i, TWO_LINES) for i in range(count)], units, camera,
                              CAP)
    shown = [i for i, p in enumerate(placements) if p.shown]
    assert shown[0] == 0 and shown[-1] == count - 1
    assert 3 <= len(shown) < count
    assert max(np.diff(shown)) <= 4 * count / len(shown), shown


@pytest.mark.parametrize("count, spacing, height", [(10, 4.0, 1.5), (3, 2.0, 6.0)])
def test_framing_takes_the_labels_in(count, spacing, height):
    units = row_of_units(count, spacing=spacing, height=height)
    specs = [LabelSpec(i, TWO_LINES) for i in range(count)]
    camera, placements = frame_with_labels(units, specs, VIEW, FOV_X, FOV_Y, CAP)
    points = np.concatenate([labels.box_corners(units),
                             label_corners(specs, placements, camera)])
    screen, depth = camera.to_screen(points)
    assert np.all(depth > 0)
    assert np.all((screen >= 0) & (screen <= camera.frame_px()))
    assert sum(p.shown for p in placements) >= count / 2
    if height > 2:  # tall units fill the frame's height: framed on them alone, labels crop
        location, forward = fit_camera(labels.box_corners(units), VIEW, FOV_X, FOV_Y)
        bare = CameraPose.looking(location, forward, FOV_X, FOV_Y)
        screen, _ = bare.to_screen(label_corners(specs, placements, camera))
        assert np.any(screen[:, 1] > camera.frame_px()[1] * (1 - labels.FRAME_MARGIN) + 20)


def test_labels_under_12_px_are_refused():
    units = row_of_units(2)
    with pytest.raises(ValueError, match="cannot be read"):
        place_labels([LabelSpec(0, TWO_LINES)], units, camera_on(units), CAP,
                     cap_px_choices=(11.0,))


def test_units_behind_the_camera_get_no_label():
    units = row_of_units(3)
    camera = CameraPose.looking((3.0, 0.0, 0.0), (1.0, 0.0, 0.0), FOV_X, FOV_Y)
    placements = place_labels([LabelSpec(i, TWO_LINES) for i in range(3)], units, camera, CAP)
    assert [p.shown for p in placements] == [False, False, True]


@pytest.mark.parametrize("grid, channels, scale, layout, columns, gap", [
    ((16, 16), 8, 1.0, 1.0, 0, 0.25), ((16, 16), 8, 1.0, 0.0, 0, 0.25),
    ((8, 8), 16, 1.0, 0.5, 3, 0.4), ((1, 1), 32, 2.0, 0.0, 0, 0.05),
    ((1, 1), 300, 2.0, 1.0, 0, 0.05), ((4, 4), 5, 1.0, 1.0, 9, 0.0)])
def test_the_label_height_driver_follows_the_layer_top(grid, channels, scale, layout, columns,
                                                        gap):
    cell_size = 0.1
    top = layer_top(grid[0], channels, scale, cell_size=cell_size, grid_layout=layout,
                    requested_columns=columns, channel_gap=gap)
    extent = layer_extent(CellGrid(grid[0], grid[1], channels), grid_layout=layout,
                          cell_size=cell_size * scale, channel_gap=gap,
                          requested_columns=columns)
    assert top == pytest.approx(extent[1] / 2)
    expression = layer_top_expression(grid[0], channels, scale)
    # Blender's simple expressions: arithmetic, min, ceil and a conditional
    value = eval(expression, {"__builtins__": {}, "min": min, "ceil": math.ceil},
                 dict(zip(labels.TOP_VARIABLES, (cell_size, layout, columns, gap, 0.75))))
    assert value == pytest.approx(top + 0.75)


def test_a_box_outline_is_the_projected_shape_not_its_bounding_box():
    units = np.array([[[0.0, -1.0, -1.0], [0.2, 1.0, 1.0]]])
    camera = camera_on(units)
    outline = ScreenOutlines(units, camera)
    assert outline.in_front.tolist() == [True]
    corners, _ = camera.to_screen(labels.box_corners(units))
    assert np.allclose(outline.boxes[0], [corners[:, 0].min(), corners[:, 0].max(),
                                          corners[:, 1].min(), corners[:, 1].max()])
    x0, x1, y0, y1 = outline.boxes[0]
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    assert outline.touching([(centre[0] - 1, centre[0] + 1, centre[1] - 1, centre[1] + 1)],
                            0.0)[0]
    assert not outline.touching([(x1 + 5, x1 + 50, y0, y1)], 4.0)[0]
    assert outline.touching([(x1 + 5, x1 + 50, y0, y1)], 6.0)[0]
    # the top of the outline across its whole width is its highest corner
    assert outline.strip_top(x0 - 1, x1 + 1)[0] == pytest.approx(y1)
    assert outline.strip_top(x1 + 1, x1 + 9)[0] == -np.inf
    # seen at an angle, a slab leaves corners of its bounding box free: a label fits there
    ys = np.linspace(y0, y1, 400)
    step = (y1 - y0) / 399
    column_tops = []
    for x in np.linspace(x0 + 1, x1 - 1, 7):
        inside = [y for y in ys if outline.touching([(x, x, y, y)], 0.0)[0]]
        assert inside
        column_tops.append(max(inside))
        # the outline's top at a column is where the shape ends, not its bounding box
        assert outline.strip_top(x, x)[0] == pytest.approx(max(inside), abs=2 * step)
    assert min(column_tops) < y1 - 20, "the slab's top edge slopes on screen"
