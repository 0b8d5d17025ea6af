"""Labels a class can read (issue 11, item 6), in Blender's default startup scene (Cube, Camera,
Light) with the installed extension: one static text object per labelled unit, owned by the
network, facing the network's camera; in a 1920x1080 render from that camera every shown label
has capitals at least 12 px tall and no two labels overlap -- for the bundled example and for
deep models. Real bpy; label boxes are projected with ``world_to_camera_view``.

Cap height: the height of a capital "H" of the label's font at size 1, measured here on a text
object of our own, times the label's world scale, projected at the label's place. (A label lies
parallel to the image plane, so every capital of it is that tall on screen.)
"""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from blender_utils import (
    evaluated_instances,
    import_file,
    install_extension,
    installed_module,
    read_startup_scene,
)
from bpy_extras.object_utils import world_to_camera_view
from export_factory import LayerDef, make_export
from mathutils import Vector

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.folding import fold_export

WIDTH, HEIGHT = 1920, 1080
MIN_CAP_PX = 12.0


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    install_extension(tmp_path_factory)


@pytest.fixture
def startup(installed):
    scene = read_startup_scene()
    assert (scene.render.resolution_x, scene.render.resolution_y,
            scene.render.resolution_percentage) == (WIDTH, HEIGHT, 100)
    return scene


def api(name: str):
    return installed_module(f"nnvis_addon.blender.{name}")


def conv_chain(count: int) -> list[LayerDef]:
    """Input 16x16x3 -> ``count`` Conv2D 16x16 (8, 12, 16... channels) -> GAP -> Dense(10)."""
    layers = [LayerDef("input", "InputLayer", (16, 16, 3), inbound=[])]
    previous = 3
    for index in range(count):
        channels = 8 + 4 * (index // 10)
        layers.append(LayerDef(f"conv{index}", "Conv2D", (16, 16, channels),
                               weights=[("kernel", (3, 3, previous, channels)),
                                        ("bias", (channels,))], config={"filters": channels}))
        previous = channels
    layers.append(LayerDef("gap", "GlobalAveragePooling2D", (previous,)))
    layers.append(LayerDef("dense", "Dense", (10,), weights=[("kernel", (previous, 10)),
                                                             ("bias", (10,))]))
    return layers


def conv_bn_relu_chain(blocks: int) -> list[LayerDef]:
    """A student CNN: ``blocks`` x (Conv2D, BatchNormalization, ReLU), halving every 3 blocks."""
    layers = [LayerDef("input", "InputLayer", (32, 32, 3), inbound=[])]
    size, previous = 32, 3
    for index in range(blocks):
        if index and index % 3 == 0:
            size //= 2
        channels = 8 * (1 + index // 3)
        shape = (size, size, channels)
        layers += [LayerDef(f"block{index}_conv", "Conv2D", shape,
                            weights=[("kernel", (3, 3, previous, channels))],
                            config={"filters": channels}),
                   LayerDef(f"block{index}_bn", "BatchNormalization", shape),
                   LayerDef(f"block{index}_relu", "ReLU", shape)]
        previous = channels
    layers.append(LayerDef("gap", "GlobalAveragePooling2D", (previous,)))
    layers.append(LayerDef("dense", "Dense", (4,), weights=[("kernel", (previous, 4))]))
    return layers


def residual_stages(blocks: int) -> list[LayerDef]:
    """A ResNet-like chain in Keras' name scopes: ``stage<s>_block<b>_conv1/bn1/relu1``,
    ``_conv2/bn2``, then ``_add`` (the block's input plus its branch) and ``_out`` (ReLU), for
    ``blocks`` blocks, 8 to a stage: three units a block once folded, so many units that it
    imports with its blocks collapsed (core/blocks.py), each drawn as its Add unit."""
    layers = [LayerDef("input", "InputLayer", (16, 16, 8), inbound=[])]
    entry = "input"
    for index in range(blocks):
        scope = f"stage{index // 8 + 1}_block{index % 8 + 1}"
        shape = (16, 16, 8)
        conv = [("kernel", (3, 3, 8, 8))]
        layers += [LayerDef(f"{scope}_conv1", "Conv2D", shape, weights=conv, inbound=[entry]),
                   LayerDef(f"{scope}_bn1", "BatchNormalization", shape),
                   LayerDef(f"{scope}_relu1", "ReLU", shape),
                   LayerDef(f"{scope}_conv2", "Conv2D", shape, weights=conv),
                   LayerDef(f"{scope}_bn2", "BatchNormalization", shape),
                   LayerDef(f"{scope}_add", "Add", shape, inbound=[entry, f"{scope}_bn2"]),
                   LayerDef(f"{scope}_out", "ReLU", shape)]
        entry = f"{scope}_out"
    layers.append(LayerDef("gap", "GlobalAveragePooling2D", (8,), inbound=[entry]))
    layers.append(LayerDef("dense", "Dense", (4,), weights=[("kernel", (8, 4))]))
    return layers


@pytest.fixture(scope="module")
def deep_exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deep")
    return {"conv30": make_export(folder / "conv30", name="conv30", layers=conv_chain(30),
                                  samples=1, epochs=2).path,
            "student": make_export(folder / "student", name="student",
                                   layers=conv_bn_relu_chain(12), samples=1, epochs=2).path,
            "stages": make_export(folder / "stages", name="stages",
                                  layers=residual_stages(24), samples=1, epochs=2).path}


# -- measuring -------------------------------------------------------------------------------


def font_cap_height(font) -> float:
    """Height of a capital "H" of ``font`` at size 1, from Blender's own evaluated text."""
    text = bpy.data.curves.new("test H", "FONT")
    text.body, text.size, text.font = "H", 1.0, font
    probe = bpy.data.objects.new("test H", text)
    bpy.context.scene.collection.objects.link(probe)
    try:
        evaluated = probe.evaluated_get(bpy.context.evaluated_depsgraph_get())
        ys = [corner[1] for corner in evaluated.bound_box]
        return max(ys) - min(ys)
    finally:
        bpy.data.objects.remove(probe)
        bpy.data.curves.remove(text)


def shown_labels(root) -> list[bpy.types.Object]:
    return [label for label in api("network").network_labels(root) if not label.hide_render]


def pixels(scene, point) -> np.ndarray:
    x, y, depth = world_to_camera_view(scene, scene.camera, Vector(point))
    assert depth > 0
    return np.array([x * WIDTH, y * HEIGHT])


def measure(scene, root) -> dict[str, dict]:
    """Per shown label: its pixel box (x0, x1, y0, y1) from the evaluated text's corners and its
    capitals' height in pixels."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    up = scene.camera.matrix_world.to_3x3().col[1].normalized()
    result = {}
    cap = None
    for label in shown_labels(root):
        evaluated = label.evaluated_get(depsgraph)
        matrix = evaluated.matrix_world
        corners = np.array([pixels(scene, matrix @ Vector(c)) for c in evaluated.bound_box])
        cap = cap if cap is not None else font_cap_height(label.data.font)
        origin = matrix.translation
        size = matrix.to_scale()[1]
        cap_px = pixels(scene, origin + up * size * cap)[1] - pixels(scene, origin)[1]
        result[label.name] = {"box": (corners[:, 0].min(), corners[:, 0].max(),
                                      corners[:, 1].min(), corners[:, 1].max()),
                              "cap_px": cap_px, "box_px": corners[:, 1].max() - corners[:, 1].min()}
    return result


def overlaps(measured: dict) -> list[tuple[str, str]]:
    items = list(measured.items())
    return [(a, b) for i, (a, p) in enumerate(items) for b, q in items[i + 1:]
            if p["box"][0] < q["box"][1] and q["box"][0] < p["box"][1]
            and p["box"][2] < q["box"][3] and q["box"][2] < p["box"][3]]


def assert_readable(scene, root, at_least: int) -> dict:
    measured = measure(scene, root)
    assert len(measured) >= at_least, sorted(measured)
    small = {name: round(m["cap_px"], 2) for name, m in measured.items()
             if m["cap_px"] < MIN_CAP_PX}
    assert not small, f"labels under {MIN_CAP_PX} px: {small}"
    assert overlaps(measured) == []
    for name, m in measured.items():
        x0, x1, y0, y1 = m["box"]
        assert 0 <= x0 and x1 <= WIDTH and 0 <= y0 and y1 <= HEIGHT, f"{name} leaves the frame"
    return measured


def faces_camera(label, camera) -> bool:
    turn = label.matrix_world.to_quaternion().rotation_difference(
        camera.matrix_world.to_quaternion())
    return abs(turn.angle) < 1e-4


# -- the tests -------------------------------------------------------------------------------


def test_labels_are_owned_objects_facing_the_network_camera(startup, example_export):
    root = import_file(example_export)
    network = api("network")
    labels = network.network_labels(root)
    layers = network.network_layers(root)
    assert len(labels) == len(layers) == 7  # folded: one unit per drawn layer, each labelled
    owned = network.owned_objects(root)
    camera = network.network_camera(root)
    assert startup.camera == camera
    bpy.context.evaluated_depsgraph_get()
    for label, layer in zip(labels, layers):
        assert label in owned and label.get("nnvis_root") == root
        assert label.type == "FONT" and label.parent == layer
        assert label["nnvis_label_of"] == layer and label["nnvis_label"] == layer["nnvis_layer"]
        assert api("labels").label_of(layer) == label
        assert faces_camera(label, camera), label.name
    # the text is the unit's: its (folded) name, then its type and shape
    export = fold_export(read_export(example_export))
    texts = {label["nnvis_label"]: label.data.body.splitlines() for label in labels}
    assert list(texts) == [layer.name for layer in export.layers]
    for layer in export.layers:
        assert texts[layer.name][0] == (layer.unit_label or layer.name)
        assert texts[layer.name][1].startswith(layer.type), texts[layer.name]
    assert texts["conv1"] == ["conv1", "Conv2D 16x16x8"]
    # the layer group draws cells only: no label inputs left
    group = layers[0].modifiers["NNVis Layer"].node_group
    inputs = {item.name for item in group.interface.items_tree if item.item_type == "SOCKET"}
    assert not {name for name in inputs if "Label" in name}, inputs
    assert api("playback").farm_safety_problems() == []


def test_label_geometry_and_place_do_not_change_with_the_epoch(startup, example_export):
    root = import_file(example_export)
    scene_api = api("scene")
    labels = api("network").network_labels(root)
    for label in labels:
        assert not label.modifiers and label.data.animation_data is None
        assert label.animation_data.action is None
        # drivers: its height on its layer's top, and its visibility (its layer's, its own)
        driven = {(f.data_path, f.array_index) for f in label.animation_data.drivers}
        assert driven == {("location", 2), ("hide_viewport", 0), ("hide_render", 0)}
        for fcurve in label.animation_data.drivers:
            assert fcurve.driver.is_simple_expression
            paths = [t.data_path for v in fcurve.driver.variables for t in v.targets]
            assert not any("epoch" in p or "sample" in p for p in paths), paths

    def state():
        depsgraph = bpy.context.evaluated_depsgraph_get()
        shapes = {}
        for label in labels:
            evaluated = label.evaluated_get(depsgraph)
            mesh = evaluated.to_mesh()
            vertices = np.zeros(len(mesh.vertices) * 3, np.float32)
            mesh.vertices.foreach_get("co", vertices)
            evaluated.to_mesh_clear()
            shapes[label.name] = (vertices, np.array(evaluated.matrix_world))
        return shapes

    root.animation_data_create()
    scene_api.set_control(root, "nnvis_epoch", 0.0)
    root.keyframe_insert('["nnvis_epoch"]', frame=1)
    root["nnvis_epoch"] = 12.0
    root.keyframe_insert('["nnvis_epoch"]', frame=40)
    root["nnvis_sample"] = 0
    root.keyframe_insert('["nnvis_sample"]', frame=1)
    root["nnvis_sample"] = 3
    root.keyframe_insert('["nnvis_sample"]', frame=40)
    cells = api("network").network_layers(root)[1]
    startup.frame_set(1)
    first = state()
    first_cells = evaluated_instances(cells)[1]["activation"]
    updated = []  # what the depsgraph evaluates again on each frame change
    reshaped = []  # ... and whose geometry it evaluates again

    def record(scene, depsgraph):
        objects = [u for u in depsgraph.updates if isinstance(u.id, bpy.types.Object)]
        updated.extend(u.id.original.name for u in objects)
        reshaped.extend(u.id.original.name for u in objects if u.is_updated_geometry)

    bpy.app.handlers.frame_change_post.append(record)
    try:
        for frame in (2, 20, 40):
            startup.frame_set(frame)
    finally:
        bpy.app.handlers.frame_change_post.remove(record)
    assert cells.name in updated, "the cells are evaluated again for every frame"
    # A label's drivers read its layer's layout inputs, so the depsgraph may visit it; its text
    # is never built again (and its place, checked below, does not change).
    assert not {label.name for label in labels} & set(reshaped), "labels were evaluated again"
    assert root["nnvis_epoch"] == 12.0
    last = state()
    assert not np.allclose(first_cells, evaluated_instances(cells)[1]["activation"]), \
        "the cells show another epoch and sample"
    assert first.keys() == last.keys() and len(first) == 7
    for name, (vertices, matrix) in first.items():
        assert len(vertices) > 100, name
        assert np.array_equal(vertices, last[name][0]), name
        assert np.array_equal(matrix, last[name][1]), name


def test_example_labels_are_12_px_and_apart_at_1920x1080(startup, example_export):
    root = import_file(example_export)
    measured = assert_readable(startup, root, at_least=7)  # every unit of the example
    heights = [m["cap_px"] for m in measured.values()]
    print(f"example: {len(measured)} labels, capitals {min(heights):.1f}-{max(heights):.1f} px")


@pytest.mark.parametrize("model", ["conv30", "student"])
def test_deep_model_labels_are_12_px_and_apart_at_1920x1080(startup, deep_exports, model):
    root = import_file(deep_exports[model])
    units = api("network").network_layers(root)
    labels = api("network").network_labels(root)
    measured = assert_readable(startup, root, at_least=6)
    heights = [m["cap_px"] for m in measured.values()]
    print(f"{model}: {len(units)} units, {len(labels)} labels, {len(measured)} shown, "
          f"capitals {min(heights):.1f}-{max(heights):.1f} px")
    shown = {label["nnvis_label"] for label in shown_labels(root)}
    first, last = units[0]["nnvis_layer"], units[-1]["nnvis_layer"]
    assert first in shown and last in shown, "the input and the output keep their labels"
    if model == "student":  # folded units are labelled as a unit, not layer by layer
        assert len(units) == 15
        texts = [label.data.body.splitlines()[0] for label in labels]
        assert "block4_conv + BN + ReLU" in texts, texts


def test_collapsed_blocks_hide_their_labels_and_expanding_places_them(startup, deep_exports):
    root = import_file(deep_exports["stages"])
    network = api("network")
    units = network.network_layers(root)
    assert len(units) == 75
    bpy.context.evaluated_depsgraph_get()
    hidden_units = [layer for layer in units if layer.hide_render]
    assert len(hidden_units) == 48, "each collapsed block shows its output unit only"
    for layer in hidden_units:
        label = api("labels").label_of(layer)
        assert label is None or label.hide_render, layer.name
    for layer in units:  # a collapsed block is labelled (its output is an Add: a compact type)
        if layer.get("nnvis_block_collapsed"):
            label = api("labels").label_of(layer)
            assert label is not None and label.data.body.startswith(
                f"{layer['nnvis_block_name']} (3 units)"), layer.name
    measured = assert_readable(startup, root, at_least=6)
    print(f"stages: {len(units)} units, blocks collapsed, {len(measured)} labels shown")
    blocks = api("blocks")
    block = "stage2_block3"
    blocks.set_block_collapsed(root, block, 0.0)
    api("staging").frame_network(root, startup)
    member = next(layer for layer in units if layer["nnvis_layer"] == f"{block}_conv1")
    assert not member.hide_render
    measured = assert_readable(startup, root, at_least=6)
    print(f"stages, {block} expanded: {len(measured)} labels shown")


def test_labels_follow_their_layer_through_layout_changes(startup, example_export):
    root = import_file(example_export)
    scene_api = api("scene")
    network = api("network")
    labels = {label["nnvis_label"]: label for label in network.network_labels(root)}
    layers = {layer["nnvis_layer"]: layer for layer in network.network_layers(root)}

    def offsets():
        bpy.context.evaluated_depsgraph_get()
        return {name: np.array(label.matrix_world.translation)
                - np.array(layers[name].matrix_world.translation) for name, label in labels.items()}

    def tops():
        depsgraph = bpy.context.evaluated_depsgraph_get()
        result = {}
        for name, layer in layers.items():
            scale = api("compat").get_modifier_input(layer.modifiers["NNVis Layer"], "Cell Scale")
            half_cell = 0.5 * root["nnvis_cell_size"] * scale
            top = np.max(api("connections").layer_cell_positions(layer)[:, 2]) + half_cell
            result[name] = labels[name].evaluated_get(depsgraph).matrix_world.translation.z - top
        return result

    before = offsets()
    spacing_before = {name: layer.matrix_world.translation.x for name, layer in layers.items()}
    scene_api.set_control(root, "nnvis_layer_spacing", 5.0)
    moved = offsets()
    assert layers["output"].matrix_world.translation.x > spacing_before["output"] + 5
    for name in labels:  # every label moved with its layer
        assert np.allclose(moved[name], before[name], atol=1e-5), name
    scene_api.set_layer_control(layers["conv1"], "Collapse", 1.0)
    collapsed = offsets()
    for name in labels:
        assert np.allclose(collapsed[name], before[name], atol=1e-5), name
    # the grid of maps opens into a row: conv2's top comes down, its label with it
    lifted = tops()
    height_before = labels["conv2"].matrix_world.translation.z
    scene_api.set_layer_control(layers["conv2"], "Grid Layout", 0.0)
    assert labels["conv2"].evaluated_get(bpy.context.evaluated_depsgraph_get()) \
        .matrix_world.translation.z < height_before - 0.1
    assert tops()["conv2"] == pytest.approx(lifted["conv2"], abs=1e-4)
    scene_api.set_control(root, "nnvis_cell_size", 0.2)
    assert tops()["conv2"] == pytest.approx(lifted["conv2"], abs=1e-4)


def test_frame_network_places_the_labels_again(startup, example_export):
    root = import_file(example_export)
    scene_api = api("scene")
    scene_api.set_control(root, "nnvis_layer_spacing", 1.5)  # crowded: labels would collide
    camera = api("staging").frame_network(root, startup)
    bpy.context.evaluated_depsgraph_get()
    assert_readable(startup, root, at_least=3)
    for label in shown_labels(root):
        assert faces_camera(label, camera), label.name
    scene_api.set_control(root, "nnvis_layer_spacing", 6.0)  # room for every label again
    api("staging").frame_network(root, startup)
    assert_readable(startup, root, at_least=7)


def test_a_hidden_unit_hides_its_label_and_shows_it_again(startup, example_export):
    root = import_file(example_export)
    scene_api = api("scene")
    layer = scene_api.network_layers(root)[3]
    label = api("labels").label_of(layer)
    assert not label.hide_render
    scene_api.set_layer_visible(layer, False)
    bpy.context.evaluated_depsgraph_get()  # the label's visibility drivers read its layer's
    assert label.hide_render and label.hide_viewport
    assert_readable(startup, root, at_least=6)
    scene_api.set_layer_visible(layer, True)
    bpy.context.evaluated_depsgraph_get()
    assert not label.hide_render and not label.hide_viewport
    assert_readable(startup, root, at_least=7)
    # a label the user switched off (the panel's "Show Label") stays hidden
    label["nnvis_show_label"] = False
    label.update_tag()
    api("staging").frame_network(root, startup)
    bpy.context.evaluated_depsgraph_get()
    assert label.hide_render and label.hide_viewport
    assert_readable(startup, root, at_least=6)


def test_import_without_staging_still_sizes_and_turns_the_labels(startup, example_export):
    root = import_file(example_export, stage=False)
    assert api("network").network_camera(root) is None
    labels = api("network").network_labels(root)
    bpy.context.evaluated_depsgraph_get()
    view = Vector(api("staging").VIEW_DIRECTION).normalized()
    default_camera = (-view).to_track_quat("-Z", "Y")  # how staging turns its camera
    for label in labels:
        turn = label.matrix_world.to_quaternion().rotation_difference(default_camera)
        assert abs(turn.angle) < 1e-4, label.name
    assert all(0 < label.matrix_world.to_scale()[0] < 1 for label in labels)


def test_a_second_network_keeps_clear_of_the_first_ones_labels(startup, example_export):
    first = import_file(example_export)
    second = import_file(example_export)
    depsgraph = bpy.context.evaluated_depsgraph_get()

    def world_box(obj):
        evaluated = obj.evaluated_get(depsgraph)
        corners = np.array([tuple(evaluated.matrix_world @ Vector(c)) for c in evaluated.bound_box])
        return corners.min(axis=0), corners.max(axis=0)

    second_boxes = [world_box(obj) for obj in shown_labels(second)]
    for layer in api("network").network_layers(second):
        positions, _ = evaluated_instances(layer)
        world = positions @ np.array(layer.matrix_world)[:3, :3].T + \
            np.array(layer.matrix_world)[:3, 3]
        second_boxes.append((world.min(axis=0), world.max(axis=0)))
    lo = np.min([box[0] for box in second_boxes], axis=0)
    hi = np.max([box[1] for box in second_boxes], axis=0)
    for label in shown_labels(first):
        a, b = world_box(label)
        assert not (np.all(a < hi) and np.all(b > lo)), f"{label.name} inside the second network"


def test_remove_network_removes_its_labels(startup, example_export):
    before_curves = {curve.name for curve in bpy.data.curves}
    root = import_file(example_export)
    names = [label.name for label in api("network").network_labels(root)]
    assert names
    api("lifecycle").remove_network(root)
    assert not set(names) & {obj.name for obj in bpy.data.objects}
    assert {curve.name for curve in bpy.data.curves} == before_curves
    assert "NNVis Label" not in bpy.data.materials
    assert math.isfinite(startup.camera.location.x)  # the startup camera is back
    assert startup.camera.name == "Camera"
