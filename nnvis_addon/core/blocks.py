"""Blocks: the repeated pieces deep networks are built from, found in the layer graph.

ResNet50 is 16 residual blocks, MobileNetV2 17 inverted residuals, Inception a row of branch
groups. Drawn layer by layer they are a smear of 150 units; drawn as blocks, the stages and the
pyramid of shrinking maps read at a glance. A block is found two ways, on the (folded) units:

1. **by name scope**: units whose names share a ``...block<N>`` prefix (``conv3_block2_*`` in
   Keras' ResNets, ``block_5_*`` in MobileNetV2) and follow one another;
2. **by structure**: every merge (Add, Concatenate, Multiply...) closes a single-entry region:
   the units between the merge's immediate dominator (where the branches split) and the merge
   (a residual block, an Inception-style group, a squeeze-excite).

A block's **output** is its last unit (what the block hands on) and its **entry** the unit that
feeds it. Collapsing a block hides its other units and draws the output alone, with a link from
the entry to it; expanding shows every unit again (``blender/blocks.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .export_format import Layer

NAME_SCOPE = re.compile(r"^(.*?block_?\d+)(?:_|$)|^(expanded_conv)(?:_|$)")
MERGE_TYPES = frozenset({"Add", "Concatenate", "Multiply", "Average", "Maximum", "Minimum",
                         "Subtract"})
BLOCKS_ABOVE_UNITS = 40  # networks with more drawn units import with their blocks collapsed


@dataclass(frozen=True)
class Block:
    name: str
    members: tuple[str, ...]   # units in graph order; the last one is the output
    entry: str | None          # the unit feeding the block (None: it starts at an input)

    @property
    def output(self) -> str:
        return self.members[-1]

    @property
    def hidden_when_collapsed(self) -> tuple[str, ...]:
        return self.members[:-1]


def name_scope(name: str) -> str | None:
    match = NAME_SCOPE.match(name)
    return (match.group(1) or match.group(2)) if match else None


def immediate_dominators(layers: list[Layer]) -> dict[str, str | None]:
    """Immediate dominator of every unit of a DAG in topological order (Cooper, Harvey and
    Kennedy's intersection walk; one pass suffices on a DAG). Inputs have None."""
    index = {layer.name: i for i, layer in enumerate(layers)}
    idom: dict[str, str | None] = {}

    def intersect(a: str, b: str) -> str | None:
        while a != b:
            while index[a] > index[b]:
                up = idom[a]
                if up is None:
                    return None
                a = up
            while index[b] > index[a]:
                up = idom[b]
                if up is None:
                    return None
                b = up
        return a

    for layer in layers:
        if not layer.inbound:
            idom[layer.name] = None
            continue
        common: str | None = layer.inbound[0]
        for name in layer.inbound[1:]:
            common = intersect(common, name) if common is not None else None
        idom[layer.name] = common
    return idom


def _between(layers: list[Layer], entry: str, exit_: str) -> list[str]:
    """Units on paths from ``entry`` to ``exit_`` (excluding entry), in graph order."""
    by_name = {layer.name: layer for layer in layers}
    found, stack = {exit_}, [exit_]
    while stack:
        for name in by_name[stack.pop()].inbound:
            if name != entry and name not in found:
                found.add(name)
                stack.append(name)
    return [layer.name for layer in layers if layer.name in found]


def _single_exit(layers: list[Layer], members: list[str]) -> bool:
    """Only the last member feeds units outside the block."""
    inside = set(members)
    for layer in layers:
        if layer.name in inside:
            continue
        if any(name in inside and name != members[-1] for name in layer.inbound):
            return False
    return True


def _scoped_blocks(layers: list[Layer]) -> list[Block]:
    runs: list[tuple[str, list[str]]] = []
    for layer in layers:
        scope = name_scope(layer.name)
        if scope is not None and runs and runs[-1][0] == scope:
            runs[-1][1].append(layer.name)
        elif scope is not None:
            runs.append((scope, [layer.name]))
    blocks = []
    by_name = {layer.name: layer for layer in layers}
    for scope, members in runs:
        inside = set(members)
        entries = {name for m in members for name in by_name[m].inbound if name not in inside}
        if len(members) >= 2 and len(entries) <= 1 and _single_exit(layers, members):
            blocks.append(Block(scope, tuple(members), next(iter(entries), None)))
    return blocks


def _merge_blocks(layers: list[Layer], taken: set[str]) -> list[Block]:
    idom = immediate_dominators(layers)
    blocks = []
    for layer in layers:
        if layer.type not in MERGE_TYPES or len(layer.inbound) < 2 or layer.name in taken:
            continue
        entry = idom[layer.name]
        if entry is None:
            continue
        members = _between(layers, entry, layer.name)
        if len(members) < 2 or taken & set(members) or not _single_exit(layers, members):
            continue
        blocks.append(Block(layer.name, tuple(members), entry))
        taken |= set(members)
    return blocks


def find_blocks(layers: list[Layer]) -> list[Block]:
    """The blocks of a network of units (layers in topological order), in graph order; no unit
    is in two blocks."""
    scoped = _scoped_blocks(layers)
    taken = {name for block in scoped for name in block.members}
    blocks = scoped + _merge_blocks(layers, taken)
    order = {layer.name: i for i, layer in enumerate(layers)}
    return sorted(blocks, key=lambda block: order[block.members[0]])


def collapsed_by_default(unit_count: int, blocks: list[Block]) -> bool:
    """Deep networks open with their blocks collapsed, so the first picture reads."""
    return bool(blocks) and unit_count > BLOCKS_ABOVE_UNITS
