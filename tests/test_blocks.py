"""Blocks of deep networks (issue 11, item 3): found from names and from the graph, planned
collapsed for deep networks. Plain numpy, no Blender."""

from __future__ import annotations

from nnvis_addon.core.blocks import Block, find_blocks, immediate_dominators, name_scope
from nnvis_addon.core.export_format import Layer


def unit(index: int, name: str, type_: str, inbound: tuple[str, ...], shape=(8, 8, 4)) -> Layer:
    return Layer(index=index, name=name, type=type_, output_shape=shape, inbound=inbound,
                 config={}, weights=(), params=0)


def chain(spec: list[tuple[str, str, tuple[str, ...]]]) -> list[Layer]:
    return [unit(i, name, type_, inbound) for i, (name, type_, inbound) in enumerate(spec)]


def resnet_like(blocks: int, scoped: bool) -> list[Layer]:
    """input -> stem -> residual blocks (two convs + a shortcut conv in the first) -> head."""
    spec = [("input", "InputLayer", ()), ("stem", "Conv2D", ("input",))]
    previous = "stem"
    for b in range(1, blocks + 1):
        prefix = f"conv2_block{b}_" if scoped else f"b{b}"
        spec += [(f"{prefix}1_conv", "Conv2D", (previous,)),
                 (f"{prefix}2_conv", "Conv2D", (f"{prefix}1_conv",))]
        shortcut = previous
        if b == 1:
            spec.append((f"{prefix}0_conv", "Conv2D", (previous,)))
            shortcut = f"{prefix}0_conv"
        spec.append((f"{prefix}add", "Add", (f"{prefix}2_conv", shortcut)))
        previous = f"{prefix}add"
    spec += [("pool", "GlobalAveragePooling2D", (previous,)), ("out", "Dense", ("pool",))]
    return chain(spec)


def test_name_scopes():
    assert name_scope("conv3_block2_1_conv") == "conv3_block2"
    assert name_scope("block_14_depthwise") == "block_14"
    assert name_scope("block3_pool") == "block3"
    assert name_scope("expanded_conv_project") == "expanded_conv"
    assert name_scope("conv1_conv") is None and name_scope("predictions") is None


def test_residual_blocks_by_name_and_by_structure_agree():
    by_name = find_blocks(resnet_like(3, scoped=True))
    assert [b.name for b in by_name] == ["conv2_block1", "conv2_block2", "conv2_block3"]
    assert by_name[0] == Block("conv2_block1", ("conv2_block1_1_conv", "conv2_block1_2_conv",
                                                "conv2_block1_0_conv", "conv2_block1_add"), "stem")
    by_graph = find_blocks(resnet_like(3, scoped=False))
    assert [b.name for b in by_graph] == ["b1add", "b2add", "b3add"]
    assert [len(b.members) for b in by_graph] == [len(b.members) for b in by_name]
    assert [b.entry for b in by_graph] == ["stem", "b1add", "b2add"]
    assert by_graph[1].hidden_when_collapsed == ("b21_conv", "b22_conv")


def test_dominators_of_a_diamond_and_a_second_input():
    layers = chain([("a", "InputLayer", ()), ("b", "Conv2D", ("a",)), ("c", "Conv2D", ("a",)),
                    ("d", "Concatenate", ("b", "c")), ("e", "InputLayer", ()),
                    ("f", "Add", ("d", "e"))])
    idom = immediate_dominators(layers)
    assert idom == {"a": None, "b": "a", "c": "a", "d": "a", "e": None, "f": None}
    assert [(b.name, b.members, b.entry) for b in find_blocks(layers)] == [
        ("d", ("b", "c", "d"), "a")]


def test_a_scope_that_leaks_is_not_a_block():
    """An inner unit of the scope feeds a unit outside it: not single-exit, no block."""
    layers = chain([("input", "InputLayer", ()), ("block1_conv1", "Conv2D", ("input",)),
                    ("block1_conv2", "Conv2D", ("block1_conv1",)),
                    ("side", "Conv2D", ("block1_conv1",)),
                    ("merge", "Concatenate", ("block1_conv2", "side"))])
    blocks = find_blocks(layers)
    assert "block1" not in [b.name for b in blocks]
    assert [b.name for b in blocks] == ["merge"]


# -- planning: deep networks read as blocks, shapes that do not hide one another -----------------

import math  # noqa: E402

import pytest  # noqa: E402
from export_factory import LayerDef, make_export  # noqa: E402

from nnvis_addon.core.export_format import read_export  # noqa: E402
from nnvis_addon.core.layout import LayoutOptions, plan_network  # noqa: E402


def deep_resnet_layers(blocks: int = 14) -> list[LayerDef]:
    """A ResNet-like export: 32x32x3 input, a stem, ``blocks`` residual blocks of two convs
    (64 channels, more than the 16 drawn as a grid), global pooling and a 100-way Dense."""
    layers = [LayerDef("input", "InputLayer", (32, 32, 3), inbound=[]),
              LayerDef("stem", "Conv2D", (16, 16, 64), weights=[("kernel", (3, 3, 3, 64))])]
    previous = "stem"
    for b in range(1, blocks + 1):
        p = f"stage_block{b}_"
        layers += [LayerDef(p + "1_conv", "Conv2D", (16, 16, 64), inbound=[previous],
                            weights=[("kernel", (3, 3, 64, 64))]),
                   LayerDef(p + "2_conv", "Conv2D", (16, 16, 64),
                            weights=[("kernel", (3, 3, 64, 64))]),
                   LayerDef(p + "add", "Add", (16, 16, 64), inbound=[p + "2_conv", previous])]
        previous = p + "add"
    layers += [LayerDef("pool", "GlobalAveragePooling2D", (64,), inbound=[previous]),
               LayerDef("out", "Dense", (100,), weights=[("kernel", (64, 100))])]
    return layers


@pytest.fixture(scope="module")
def deep_export(tmp_path_factory):
    built = make_export(tmp_path_factory.mktemp("deep"), name="deep",
                        layers=deep_resnet_layers(), samples=1, epochs=1)
    return read_export(built.path)


def shown(plan):
    return [p for p in plan.layers if not p.hidden]


def test_deep_networks_open_with_blocks_collapsed(deep_export):
    plan = plan_network(deep_export)
    assert len(plan.layers) == 46 and len(plan.blocks) == 14
    assert plan.collapsed_blocks == frozenset(b.name for b in plan.blocks)
    units = shown(plan)
    assert len(units) <= 40
    assert [p.layer.name for p in units][:3] == ["input", "stem", "stage_block1_add"]
    assert units[2].label.startswith("stage_block1 (3 units)\n")
    xs = [p.x for p in units]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), "shown units one after another"
    for p in plan.layers:
        if p.hidden:  # hidden units stand where the block starts, taking no room
            assert p.x == max(u.x for u in units if u.x <= p.x)
    expanded = plan_network(deep_export, LayoutOptions(blocks="expanded"))
    assert not expanded.collapsed_blocks and len(shown(expanded)) == 46


def test_shapes_that_read(deep_export, tmp_path):
    plan = plan_network(deep_export)
    stem = plan.layer("stem")
    assert stem.summarised, "64 maps open as their max map"
    width, height = stem.extent(plan.options.cell_size)
    assert width == pytest.approx(height) and width < 3.3, "one 16x16 map, not an 8x8 grid"
    out = plan.layer("out")
    width, height = out.extent(plan.options.cell_size)
    assert out.grid_columns and height >= 4 * width, "a slim column of neurons, not a square"
    # No shown unit can hide the next from the default camera: the gap between two units is at
    # least view_overlap times their mean width.
    units = shown(plan)
    for a, b in zip(units, units[1:]):
        needed = plan.options.view_overlap * (a.extent(0.1)[0] + b.extent(0.1)[0]) / 2
        assert b.x - a.x >= needed - 1e-9, (a.layer.name, b.layer.name)
    # The bundled-example sizes: maps at true relative size, a network with 224-pixel inputs
    # compresses the range so that 7x7 maps are no specks.
    layers = [LayerDef("input", "InputLayer", (224, 224, 3), inbound=[]),
              LayerDef("c1", "Conv2D", (112, 112, 8), weights=[("kernel", (3, 3, 3, 8))]),
              LayerDef("c2", "Conv2D", (7, 7, 8), weights=[("kernel", (3, 3, 8, 8))])]
    big = plan_network(read_export(make_export(tmp_path, name="big", layers=layers,
                                               samples=1, epochs=1).path))
    heights = {p.layer.name: p.extent(0.1)[1] for p in big.layers}
    single = {name: h / (1 if name == "input" else math.ceil(math.sqrt(8))) for name, h in
              heights.items()}
    assert single["input"] > single["c1"] > single["c2"] > 0.15 * single["input"]
