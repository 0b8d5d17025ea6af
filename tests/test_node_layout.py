"""The node trees nnvis builds are readable in Blender's node editor (geometry_nodes/builder.py,
``arrange``): no two nodes overlap, every link runs left to right, each section of a builder sits
in its own frame whose area holds no other node, and rows are ordered so links cross less.
Real bpy; sizes are builder.node_size (Blender computes node.dimensions only when it draws)."""

from __future__ import annotations

import importlib
import itertools
import pkgutil

import bpy
import pytest
from conftest import import_extension_package


def find_builders() -> dict:
    """Every ``ensure_*`` function of the working tree's geometry_nodes package (each makes, or
    finds, one node group or material), by "module.function"."""
    package = importlib.import_module(f"{import_extension_package().__name__}.geometry_nodes")
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, function in vars(module).items():
            if name.startswith("ensure_") and getattr(function, "__module__", "") == module.__name__:
                found[f"{info.name}.{name}"] = function
    return found


def per_network_builders() -> dict:
    """The materials made per network atlas, on a stand-in atlas image."""
    package = import_extension_package().__name__
    materials = importlib.import_module(f"{package}.geometry_nodes.materials")

    def atlas_image():
        return bpy.data.images.get("layout test atlas") or bpy.data.images.new(
            "layout test atlas", 4, 4)

    return {"materials.new_activation_material":
            lambda: materials.new_activation_material(
                "layout test", atlas_image(), 4, picture=True, overlay=("gradcam", "saliency"),
                summary=True),
            # the Grad-CAM layer's unit: its overlay fades as the input's Evidence Map goes to 1
            "materials.new_activation_material (Grad-CAM only)":
            lambda: materials.new_activation_material("layout test", atlas_image(), 4,
                                                      overlay=("gradcam",)),
            "materials.new_connection_material":
            lambda: materials.new_connection_material("layout test", atlas_image(), 4),
            "materials.new_answer_material":
            lambda: materials.new_answer_material("layout test", atlas_image(), 4),
            "materials.new_operation_material":
            lambda: materials.new_operation_material("layout test", atlas_image(), 4)}


BUILDERS = {**find_builders(), **per_network_builders()}


@pytest.fixture(scope="module")
def builder_module():
    return importlib.import_module(f"{import_extension_package().__name__}.geometry_nodes.builder")


# builder -> {frame label: node types that section makes}: every frame of its tree
SECTIONS = {
    "layer_nodes.ensure_layer_group": {
        "Map layout": {"FunctionNodeCompare", "FunctionNodeBooleanMath"},
        "Cell positions": {"GeometryNodeSetPosition", "ShaderNodeCombineXYZ"},
        "Shading: the cell's values in the atlas, colour range": {
            "GeometryNodeStoreNamedAttribute", "GeometryNodeInputIndex",
            "GeometryNodeRemoveAttribute"},
        "Cells": {"GeometryNodeMeshCube", "GeometryNodeInstanceOnPoints",
                  "GeometryNodeMeshToPoints", "GeometryNodeIsViewport"},
    },
    "connection_nodes.ensure_connection_group": {
        "Curves between the cells": {"GeometryNodeObjectInfo", "GeometryNodeSetPosition"},
        "For the material: the edge's index, scale and threshold": {
            "GeometryNodeStoreNamedAttribute", "GeometryNodeInputIndex"},
        "Radius by the edge's strongest weight over the epochs": {
            "GeometryNodeSetCurveRadius", "GeometryNodeCurveToMesh"},
    },
    "counter_nodes.ensure_counter_group": {
        "Shown epoch": {"ShaderNodeMath"},
        "Epoch line": {"GeometryNodeSampleIndex", "FunctionNodeValueToString"},
        "Metric line": {"GeometryNodeSampleIndex", "FunctionNodeBooleanMath"},
        "Text": {"GeometryNodeStringToCurves", "GeometryNodeJoinGeometry"},
        "What it shows, for tests and tools": {"GeometryNodeStoreNamedAttribute",
                                               "FunctionNodeStringLength"},
    },
    "atlas_nodes.ensure_pixel_group": {
        "Pixel of the value": {"ShaderNodeMath"},
        "Texture coordinates (pixel centres)": {"ShaderNodeCombineXYZ"},
    },
    "atlas_nodes.ensure_decode_group": {
        "16-bit code": {"ShaderNodeSeparateColor"},
        "Value between Low and High": {"ShaderNodeMath"},
    },
    "materials.new_activation_material": {
        "Shown sample and epoch (the object's, driven by the network)": {"ShaderNodeAttribute"},
        "Recorded epochs around it": {"ShaderNodeMath"},
        "The cell's value at the epoch": {"ShaderNodeTexImage", "ShaderNodeGroup"},
        "Its pixel's max or mean over channels (collapsed maps)": {"ShaderNodeTexImage"},
        "Colour range": {"ShaderNodeMapRange"},
        "Viridis by activation": {"ShaderNodeValToRGB"},
        "Pictures and invalid cells": {"ShaderNodeMix"},
        "Class evidence overlay: the maps at the epoch": {"ShaderNodeTexImage",
                                                          "ShaderNodeAttribute"},
        "Class evidence overlay: the chosen map": {"ShaderNodeAttribute", "ShaderNodeMix",
                                                   "ShaderNodeMath"},
        "Class evidence overlay: its cover": {"ShaderNodeAttribute", "ShaderNodeMath"},
        "Class evidence heat colour": {"ShaderNodeValToRGB", "ShaderNodeMix"},
        "Trace highlight": {"ShaderNodeAttribute", "ShaderNodeMapRange", "ShaderNodeMix"},
        "Shader": {"ShaderNodeBsdfPrincipled"},
    },
    "materials.ensure_legend_material": {
        "The tile's value": {"ShaderNodeAttribute"},
        "Viridis by activation": {"ShaderNodeValToRGB"},
        "Shader": {"ShaderNodeBsdfPrincipled"},
    },
    "materials.ensure_label_material": {},
    "materials.new_connection_material": {
        "Shown sample and epoch (the object's, driven by the network)": {"ShaderNodeAttribute"},
        "Recorded epochs around it": {"ShaderNodeMath"},
        "The edge's weight at the epoch": {"ShaderNodeTexImage", "ShaderNodeGroup"},
        "Colour by weight": {"ShaderNodeValToRGB"},
        "Glow and opacity": {"ShaderNodeMapRange"},
        "Trace highlight": {"ShaderNodeAttribute", "ShaderNodeMapRange", "ShaderNodeMath"},
        "Shader": {"ShaderNodeMixShader", "ShaderNodeBsdfTransparent", "ShaderNodeEmission"},
    },
}


@pytest.fixture(scope="module")
def trees():
    """Every tree the builders make, built fresh in an empty file."""
    bpy.ops.wm.read_homefile(use_empty=True)
    made = {name: ensure() for name, ensure in BUILDERS.items()}
    return {name: made.node_tree if isinstance(made, bpy.types.Material) else made
            for name, made in made.items()}


def test_every_tree_is_checked():
    assert set(SECTIONS) <= set(BUILDERS)
    assert len(BUILDERS) >= 6


def absolute_location(node) -> tuple[float, float]:
    """node.location is relative to the node's frame."""
    x, y = node.location
    parent = node.parent
    while parent is not None:
        x, y = x + parent.location[0], y + parent.location[1]
        parent = parent.parent
    return x, y


def box(node, node_size) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) in the editor (y grows upwards; location is the top left)."""
    x, y = absolute_location(node)
    width, height = node_size(node)
    return x, y - height, x + width, y


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def placed_nodes(tree):
    return [node for node in tree.nodes if node.bl_idname != "NodeFrame"]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_no_two_nodes_overlap(trees, builder_module, name):
    size = builder_module.node_size
    boxes = [(node.name, box(node, size)) for node in placed_nodes(trees[name])]
    assert len(boxes) > 1
    clashes = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
               if overlap(box_a, box_b)]
    assert not clashes, "end the builder with b.arrange() (geometry_nodes/builder.py)"


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_link_runs_left_to_right(trees, builder_module, name):
    tree = trees[name]
    assert len(tree.links) > 0
    backwards = []
    for link in tree.links:
        source_right = box(link.from_node, builder_module.node_size)[2]
        if not source_right < absolute_location(link.to_node)[0]:
            backwards.append((link.from_node.name, link.to_node.name))
    assert not backwards, "end the builder with b.arrange() (geometry_nodes/builder.py)"


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_frame_holds_the_nodes_of_its_section(trees, builder_module, name):
    tree, size = trees[name], builder_module.node_size
    frames = {node.label: node for node in tree.nodes if node.bl_idname == "NodeFrame"}
    members = {label: [n for n in placed_nodes(tree) if n.parent == frame]
               for label, frame in frames.items()}
    expected = SECTIONS.get(name)
    if expected is not None:
        assert set(frames) == set(expected)
        for label, node_types in expected.items():
            assert node_types <= {node.bl_idname for node in members[label]}, label
    for label, frame in frames.items():
        assert members[label], f"empty frame {label!r}"
        # the frame's area (its nodes' bounding box) holds no node of another section
        boxes = [box(node, size) for node in members[label]]
        area = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))
        strangers = [node.name for node in placed_nodes(tree)
                     if node.parent != frame and overlap(area, box(node, size))]
        assert not strangers, label
    for node in placed_nodes(tree):
        if node.bl_idname in {"NodeGroupInput", "NodeGroupOutput", "ShaderNodeOutputMaterial"}:
            assert node.parent is None, node.name


# -- the layout rules on small trees ------------------------------------------------------------


@pytest.fixture()
def small_tree(builder_module):
    tree = bpy.data.node_groups.new("layout probe", "GeometryNodeTree")
    builder = builder_module.TreeBuilder(tree)
    builder.add_socket("Value", "FLOAT")
    builder.add_socket("Value", "FLOAT", output=True)
    yield builder
    bpy.data.node_groups.remove(tree)


def test_rows_follow_their_inputs(small_tree):
    """Two chains whose second nodes are made in the opposite order: the layout puts each below
    or above its own input, so the links do not cross."""
    b = small_tree
    group_input = b.node("NodeGroupInput")
    first = b.node("ShaderNodeMath", {0: group_input.outputs[0]})
    second = b.node("ShaderNodeMath", {0: group_input.outputs[0]})
    after_second = b.node("ShaderNodeMath", {0: second.outputs[0]})
    after_first = b.node("ShaderNodeMath", {0: first.outputs[0]})
    b.link(b.node("ShaderNodeMath", {0: after_first.outputs[0],
                                     1: after_second.outputs[0]}).outputs[0],
           b.node("NodeGroupOutput").inputs[0])
    b.arrange()
    assert first.location.y > second.location.y  # made first: no reason to move
    assert after_first.location.y > after_second.location.y


def test_columns_by_longest_path_and_values_beside_their_users(small_tree):
    b = small_tree
    group_input = b.node("NodeGroupInput")
    chain = [b.node("ShaderNodeMath", {0: group_input.outputs[0]})]
    for _ in range(3):
        chain.append(b.node("ShaderNodeMath", {0: chain[-1].outputs[0]}))
    constant = b.node("ShaderNodeValue")
    b.set_input(chain[-1], 1, constant.outputs[0])
    shortcut = b.node("ShaderNodeMath", {0: group_input.outputs[0], 1: chain[-1].outputs[0]})
    b.link(shortcut.outputs[0], b.node("NodeGroupOutput").inputs[0])
    b.arrange()
    xs = [node.location.x for node in (group_input, *chain, shortcut)]
    assert xs == sorted(set(xs))  # one column each, in the order of the longest path
    assert constant.location.x == chain[-2].location.x  # just left of what reads it


def test_a_label_used_twice_is_one_frame(small_tree):
    b = small_tree
    b.section("Twice")
    one = b.node("ShaderNodeMath")
    b.section("Between")
    b.node("ShaderNodeMath")
    b.section("Twice")
    two = b.node("ShaderNodeMath")
    b.section(None)
    outside = b.node("ShaderNodeMath")
    assert one.parent == two.parent and one.parent.label == "Twice"
    assert outside.parent is None
    assert sum(node.bl_idname == "NodeFrame" for node in b.tree.nodes) == 2
