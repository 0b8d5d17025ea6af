"""A small helper for writing node trees as Python source.

Each ``node(...)`` call creates a node, sets its properties and connects or sets its inputs:
a socket argument is linked, anything else becomes the input's default value. Inputs are named
by their identifier, their name (first visible match) or their index.
"""

from __future__ import annotations

from typing import Any

import bpy

# Bump when a builder changes what it creates; stale groups in a .blend are rebuilt.
BUILDER_VERSION_KEY = "nnvis_builder_version"

_SOCKET_TYPES = {
    "GEOMETRY": "NodeSocketGeometry",
    "FLOAT": "NodeSocketFloat",
    "INT": "NodeSocketInt",
    "BOOLEAN": "NodeSocketBool",
    "VECTOR": "NodeSocketVector",
    "STRING": "NodeSocketString",
    "MATERIAL": "NodeSocketMaterial",
    "COLOR": "NodeSocketColor",
    "OBJECT": "NodeSocketObject",
}


def _socket(sockets, key):
    if isinstance(key, int):
        return sockets[key]
    for socket in sockets:
        if socket.identifier == key:
            return socket
    for socket in sockets:
        if socket.name == key and socket.enabled:
            return socket
    for socket in sockets:
        if socket.name == key:
            return socket
    raise KeyError(f"no socket {key!r} among {[s.name for s in sockets]}")


class TreeBuilder:
    def __init__(self, tree: bpy.types.NodeTree):
        self.tree = tree
        self._column = 0

    # -- interface ------------------------------------------------------------------------------

    def add_socket(self, name: str, kind: str, *, output: bool = False, default: Any = None,
                   min_value: float | None = None, max_value: float | None = None,
                   subtype: str | None = None, description: str = "") -> Any:
        item = self.tree.interface.new_socket(
            name, in_out="OUTPUT" if output else "INPUT", socket_type=_SOCKET_TYPES[kind])
        if subtype is not None:
            item.subtype = subtype
        if default is not None:
            item.default_value = default
        if min_value is not None:
            item.min_value = min_value
        if max_value is not None:
            item.max_value = max_value
        item.description = description
        return item

    # -- nodes ----------------------------------------------------------------------------------

    def node(self, bl_idname: str, inputs: dict | None = None, *, label: str = "", **props):
        node = self.tree.nodes.new(bl_idname)
        for key, value in props.items():
            setattr(node, key, value)
        if label:
            node.label = label
        node.location = (self._column * 40.0, -self._column * 10.0)
        self._column += 1
        for key, value in (inputs or {}).items():
            self.set_input(node, key, value)
        return node

    def set_input(self, node, key, value) -> None:
        socket = _socket(node.inputs, key)
        if isinstance(value, bpy.types.NodeSocket):
            self.tree.links.new(value, socket)
        else:
            socket.default_value = value

    def link(self, from_socket, to_socket) -> None:
        self.tree.links.new(from_socket, to_socket)

    def link_multi_input(self, sources, socket) -> None:
        """Link ``sources`` into a multi-input socket so they evaluate in the given order.

        A new link lands first in a multi-input socket's order, so link in reverse and check.
        """
        for source in reversed(sources):
            self.tree.links.new(source, socket)
        order = [link.from_socket for link in socket.links]
        if order != list(sources):
            raise RuntimeError(f"could not order the links of {socket.node.name}.{socket.name}")

    @staticmethod
    def out(node, key=0):
        return _socket(node.outputs, key)


def new_modifier_group(name: str, version: int, description: str, inputs) -> tuple:
    """A geometry-nodes modifier group with Geometry in and out and the ``inputs`` table
    (name, kind, default, min, max, subtype, description); returns (builder, math, the group
    input node's outputs)."""
    tree = new_tree(name, "GeometryNodeTree", version)
    tree.is_modifier = True
    tree.description = description
    b = TreeBuilder(tree)
    b.add_socket("Geometry", "GEOMETRY")
    for socket, kind, default, lo, hi, subtype, text in inputs:
        b.add_socket(socket, kind, default=default, min_value=lo, max_value=hi, subtype=subtype,
                     description=text)
    b.add_socket("Geometry", "GEOMETRY", output=True)
    return b, FieldMath(b), b.node("NodeGroupInput").outputs


def new_tree(name: str, tree_type: str, version: int) -> bpy.types.NodeTree:
    tree = bpy.data.node_groups.new(name, tree_type)
    tree[BUILDER_VERSION_KEY] = version
    return tree


def find_current(name: str, version: int):
    """An existing group built by the same builder version, or None."""
    tree = bpy.data.node_groups.get(name)
    if tree is not None and tree.get(BUILDER_VERSION_KEY) == version and tree.library is None:
        return tree
    return None


class FieldMath:
    """Arithmetic shorthands on top of a TreeBuilder (Math/Vector Math/Switch nodes)."""

    def __init__(self, builder: TreeBuilder):
        self.b = builder

    def op(self, operation: str, a, b=None, c=None, *, clamp: bool = False):
        inputs = {0: a}
        if b is not None:
            inputs[1] = b
        if c is not None:
            inputs[2] = c
        node = self.b.node("ShaderNodeMath", inputs, operation=operation, use_clamp=clamp)
        return node.outputs[0]

    def add(self, a, b):
        return self.op("ADD", a, b)

    def sub(self, a, b):
        return self.op("SUBTRACT", a, b)

    def mul(self, a, b):
        return self.op("MULTIPLY", a, b)

    def div(self, a, b):
        return self.op("DIVIDE", a, b)

    def lerp(self, a, b, t):
        """a + (b - a) * t"""
        return self.op("MULTIPLY_ADD", self.sub(b, a), t, a)

    def switch(self, kind: str, condition, if_false, if_true):
        node = self.b.node("GeometryNodeSwitch", {0: condition}, input_type=kind)
        self.b.set_input(node, "False", if_false)
        self.b.set_input(node, "True", if_true)
        return node.outputs[0]

    def combine(self, x, y, z):
        return self.b.node("ShaderNodeCombineXYZ", {"X": x, "Y": y, "Z": z}).outputs[0]

    def text(self, value):
        """A string socket: a literal, or a number written without decimals."""
        if isinstance(value, str):
            return self.b.node("FunctionNodeInputString", string=value).outputs[0]
        return self.b.node("FunctionNodeValueToString", {"Value": value, "Decimals": 0}).outputs[0]

    def named_float(self, parts):
        """Float attribute whose name is the concatenation of ``parts`` (str or string sockets)."""
        join = self.b.node("GeometryNodeStringJoin", {"Delimiter": ""})
        self.b.link_multi_input([self.text(p) if isinstance(p, str) else p for p in parts],
                                join.inputs["Strings"])
        return self.b.node("GeometryNodeInputNamedAttribute", {"Name": join.outputs[0]},
                           data_type="FLOAT").outputs[0]

    def finite(self, value):
        """True where ``value`` is a finite number: comparisons are false for NaN, and
        |+-Inf| is not below the largest float."""
        return self.b.node("FunctionNodeCompare", {0: self.op("ABSOLUTE", value), 1: 3.0e38},
                           data_type="FLOAT", operation="LESS_THAN").outputs[0]

    def epoch_attribute(self, prefix_parts, epoch, epoch_count, step_epochs):
        """(value, valid) of the attribute ``<prefix><epoch index>`` at a fractional ``epoch``,
        clamped to the recorded epochs: linear between the two neighbouring recorded epochs
        (held at the lower one with ``step_epochs``). ``valid`` is false where a recorded value
        it needs is NaN/Inf (a diverged epoch); the value reads 0 there, so it stays NaN-free."""
        last = self.sub(epoch_count, 1)
        epoch = self.op("MINIMUM", self.op("MAXIMUM", epoch, 0.0), last)
        lower = self.op("FLOOR", epoch)
        upper = self.op("MINIMUM", self.add(lower, 1.0), last)
        blend = self.mul(self.sub(epoch, lower), self.switch("FLOAT", step_epochs, 1.0, 0.0))
        held = self.named_float([*prefix_parts, self.text(lower)])
        between = self.lerp(held, self.named_float([*prefix_parts, self.text(upper)]), blend)
        # On a recorded epoch only that epoch's value counts (a NaN in the next one must not
        # leak in through 0 x NaN); the switch's condition is a single value, so the next
        # epoch's attribute is not even read there.
        moving = self.b.node("FunctionNodeCompare", {0: blend, 1: 0.0}, data_type="FLOAT",
                             operation="GREATER_THAN").outputs[0]
        value = self.switch("FLOAT", moving, held, between)
        valid = self.finite(value)
        return self.switch("FLOAT", valid, 0.0, value), valid
