"""A small helper for writing node trees as Python source, and the layout that makes them
readable in Blender's node editor.

Each ``node(...)`` call creates a node, sets its properties and connects or sets its inputs:
a socket argument is linked, anything else becomes the input's default value. Inputs are named
by their identifier, their name (first visible match) or their index. ``section(label)`` puts the
nodes made after it into a frame with that label, so a builder's sections read like headings.

``arrange(tree)``, the last step of every builder, places the nodes: columns by dependency (a
node's column is its longest path from the group input, then a value with slack moves right to
just before its nearest user in the same frame, constants and attribute reads included), rows
in each column ordered by the mean row of the nodes they connect to (fewer crossing links), and
each frame's nodes in a band of their own, bands stacked top to bottom, so no frame covers
another's nodes. Placement changes nothing a render shows.
"""

from __future__ import annotations

from typing import Any, Literal, cast

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
        self._frames: dict[str, bpy.types.Node] = {}
        self._frame: bpy.types.Node | None = None  # the frame new nodes go into

    def section(self, label: str | None) -> None:
        """Nodes made from here on go into the frame labelled ``label`` (made on first use, so a
        label used twice is one frame); None: into no frame."""
        if label is None:
            self._frame = None
            return
        if label not in self._frames:
            frame = self.tree.nodes.new("NodeFrame")
            frame.label = label
            frame.name = f"Frame {label}"
            self._frames[label] = frame
        self._frame = self._frames[label]

    def arrange(self) -> None:
        """Lay the tree out for the node editor (see :func:`arrange`)."""
        arrange(self.tree)

    # -- interface ------------------------------------------------------------------------------

    def add_socket(self, name: str, kind: str, *, output: bool = False, default: Any = None,
                   min_value: float | None = None, max_value: float | None = None,
                   subtype: str | None = None, description: str = "") -> Any:
        # socket_type takes any socket class name; the stubs list only "DEFAULT".
        item = self.tree.interface.new_socket(
            name, in_out="OUTPUT" if output else "INPUT",
            socket_type=_SOCKET_TYPES[kind])  # type: ignore[arg-type]
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
        if self._frame is not None:
            node.parent = self._frame
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
    tree = cast(bpy.types.GeometryNodeTree, new_tree(name, "GeometryNodeTree", version))
    tree.is_modifier = True
    tree.description = description
    b = TreeBuilder(tree)
    b.add_socket("Geometry", "GEOMETRY")
    for socket, kind, default, lo, hi, subtype, text in inputs:
        b.add_socket(socket, kind, default=default, min_value=lo, max_value=hi, subtype=subtype,
                     description=text)
    b.add_socket("Geometry", "GEOMETRY", output=True)
    return b, FieldMath(b), b.node("NodeGroupInput").outputs


def new_tree(name: str, tree_type: Literal["GeometryNodeTree", "ShaderNodeTree"],
             version: int) -> bpy.types.NodeTree:
    tree = bpy.data.node_groups.new(name, tree_type)
    assert tree is not None  # new() raises rather than give None
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

    def text(self, value, decimals=0):
        """A string socket: a literal, or a number written with ``decimals`` decimals (a number
        or a socket)."""
        if isinstance(value, str):
            return self.b.node("FunctionNodeInputString", string=value).outputs[0]
        return self.b.node("FunctionNodeValueToString",
                           {"Value": value, "Decimals": decimals}).outputs[0]

    def join(self, parts):
        """The concatenation of ``parts`` (str or string sockets), in order."""
        node = self.b.node("GeometryNodeStringJoin", {"Delimiter": ""})
        self.b.link_multi_input([self.text(p) if isinstance(p, str) else p for p in parts],
                                node.inputs["Strings"])
        return node.outputs[0]


# -- layout for the node editor --------------------------------------------------------------

COLUMN_GAP = 80.0  # between the widest node of a column and the next column
ROW_GAP = 30.0  # between two nodes of a column
SECTION_GAP = 100.0  # between two frames' bands: room for a frame's label and margin
ORDERING_SWEEPS = 4  # alternating passes of the row ordering (left to right, right to left)

_HEADER_HEIGHT = 40.0
_ROW_HEIGHT = 24.0
_VECTOR_ROWS = 3  # an unlinked vector input draws its three components below its name
# rows of properties drawn as widgets; any other property takes one row
_WIDGET_ROWS = {"ColorRamp": 6, "CurveMapping": 8}


def node_size(node) -> tuple[float, float]:
    """(width, height) a node takes in the editor. Without a window Blender leaves
    ``node.dimensions`` at zero, so the height is estimated generously from what the node
    draws: header, visible sockets, its own properties, unlinked vector inputs."""
    if node.dimensions[1] > 0:
        return float(node.dimensions[0]), float(node.dimensions[1])
    if node.hide:
        return float(node.width), _HEADER_HEIGHT
    rows = sum(1 for socket in node.outputs if socket.enabled and not socket.hide)
    for socket in node.inputs:
        if socket.enabled and not socket.hide:
            rows += 1
            if socket.type == "VECTOR" and not socket.is_linked and not socket.hide_value:
                rows += _VECTOR_ROWS
    inherited = {p.identifier for base in type(node).__mro__[1:]
                 if hasattr(base, "bl_rna") for p in base.bl_rna.properties}
    for prop in node.bl_rna.properties:
        if prop.identifier not in inherited:
            widget = prop.fixed_type.identifier if prop.type == "POINTER" else ""
            rows += _WIDGET_ROWS.get(widget, 1)
    return float(node.width), _HEADER_HEIGHT + rows * _ROW_HEIGHT


def arrange(tree: bpy.types.NodeTree) -> None:
    """Place every node of ``tree`` (see the module docstring); frames stay at the origin and
    take their size from their nodes."""
    nodes = {node.name: node for node in tree.nodes if node.bl_idname != "NodeFrame"}
    inputs, users = _dependencies(tree, nodes)
    band = {name: node.parent.name if node.parent else "" for name, node in nodes.items()}
    column = _columns(nodes, inputs, users, band)
    cells = _cells(nodes, column, band)
    _order_rows(cells, inputs, users, band)
    _place(nodes, cells, column)


def _dependencies(tree, nodes) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each node's input nodes and user nodes (by name, each once, in link order)."""
    inputs: dict[str, list[str]] = {name: [] for name in nodes}
    users: dict[str, list[str]] = {name: [] for name in nodes}
    for link in tree.links:
        source, target = link.from_node.name, link.to_node.name
        if source in nodes and target in nodes and source not in inputs[target]:
            inputs[target].append(source)
            users[source].append(target)
    return inputs, users


def _columns(nodes, inputs, users, band) -> dict[str, int]:
    """Column of every node: its longest path from a node without inputs (the group input),
    in topological order. Then, from the last node back, every node but the group input that
    has a user in its own frame moves right to just left of its nearest user, so a value sits
    beside what reads it (constants and attribute reads too) without stretching its frame
    towards another section; links still run left to right."""
    order: list[str] = []
    column: dict[str, int] = {}
    waiting = {name: len(inputs[name]) for name in nodes}
    ready = [name for name in nodes if not waiting[name]]
    while ready:
        name = ready.pop(0)
        order.append(name)
        column[name] = max((column[source] + 1 for source in inputs[name]), default=0)
        for user in users[name]:
            waiting[user] -= 1
            if not waiting[user]:
                ready.append(user)
    for name in nodes:  # only in a cycle, which node trees do not allow: keep them visible
        column.setdefault(name, 0)
    for name in reversed(order):
        same_frame = [user for user in users[name] if band[user] == band[name]]
        if same_frame and nodes[name].bl_idname != "NodeGroupInput":
            column[name] = max(column[name], min(column[user] for user in users[name]) - 1)
    return column


def _cells(nodes, column, band) -> dict[tuple[int, str], list[str]]:
    """(column, band) -> the nodes there, in creation order. A band is a frame's name ("" for
    nodes in no frame)."""
    cells: dict[tuple[int, str], list[str]] = {}
    for name in nodes:
        cells.setdefault((column[name], band[name]), []).append(name)
    return cells


def _order_rows(cells, inputs, users, band) -> None:
    """Reorder each cell's nodes, in place, by the mean row of the nodes they connect to in the
    same band: inputs on passes from left to right, users on passes back (the barycentre
    heuristic for fewer crossings). A node with no such neighbours keeps its row."""
    row = {name: index for names in cells.values() for index, name in enumerate(names)}
    keys = sorted(cells)
    for sweep in range(ORDERING_SWEEPS):
        neighbours = inputs if sweep % 2 == 0 else users
        for key in keys if sweep % 2 == 0 else reversed(keys):
            names = cells[key]
            mean = {name: _mean_row(name, neighbours[name], row, band) for name in names}
            names.sort(key=lambda name: (mean[name], row[name]))
            for index, name in enumerate(names):
                row[name] = index


def _mean_row(name, neighbours, row, band) -> float:
    """The mean row of ``name``'s neighbours in its own band, or its own row if it has none."""
    rows = [row[other] for other in neighbours if band[other] == band[name]]
    return sum(rows) / len(rows) if rows else row[name]


def _place(nodes, cells, column) -> None:
    """Columns left to right, each as wide as its widest node; bands top to bottom, each as
    tall as its tallest column; nodes stacked down from the top of their band."""
    size = {name: node_size(node) for name, node in nodes.items()}
    widths: dict[int, float] = {}
    for name, col in column.items():
        widths[col] = max(widths.get(col, 0.0), size[name][0])
    x, left = 0.0, {}
    for col in sorted(widths):
        left[col] = x
        x += widths[col] + COLUMN_GAP
    band_height: dict[str, float] = {}
    for (_col, band), names in cells.items():
        stack = sum(size[name][1] for name in names) + ROW_GAP * (len(names) - 1)
        band_height[band] = max(band_height.get(band, 0.0), stack)
    top, y = {}, 0.0
    for band in sorted(band_height, key=_band_order(nodes)):
        top[band] = y
        y -= band_height[band] + SECTION_GAP
    for (col, band), names in cells.items():
        y = top[band]
        for name in names:
            nodes[name].location = (left[col], y)
            y -= size[name][1] + ROW_GAP


def _band_order(nodes):
    """Bands in the order their first nodes were made, nodes in no frame first."""
    first_node = {}
    for index, node in enumerate(nodes.values()):
        first_node.setdefault(node.parent.name if node.parent else "", index)
    return lambda band: (band != "", first_node[band])
