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
