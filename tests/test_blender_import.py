"""The extension as a user gets it: built zip, installed headless, File > Import on the example.

Real bpy 5.0.1, real geometry nodes, real Cycles; nothing is mocked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import bpy
import numpy as np
import pytest
from blender_utils import (
    EXTENSION_MODULE,
    ROOT,
    all_data,
    assert_shown,
    build_zip,
    compare_images,
    configure_test_render,
    evaluated_instances,
    install_zip,
    installed_scene_module,
    load_pixels,
    save_pixels,
)

from nnvis_addon.core.export_format import read_export
from nnvis_addon.core.layout import cell_centres, cell_grid

GOLDEN = ROOT / "tests" / "golden" / "example_64.png"
RECEIVED = ROOT / "tests" / "_received"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    zip_path = build_zip(tmp_path_factory.mktemp("dist"))
    handlers_before = {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
                       if isinstance(getattr(bpy.app.handlers, name), list)}
    install_zip(zip_path)
    bpy.ops.wm.save_userpref()  # so read_homefile keeps the extension enabled
    yield {"zip": zip_path, "handlers_before": handlers_before}


@pytest.fixture
def empty_scene(installed):
    bpy.ops.wm.read_homefile(use_empty=True)
    yield bpy.context.scene


def import_example(path, **options):
    """Import with every layer its own unit (fold=False), unless the test says otherwise: these
    tests check the per-layer mechanics (tests/test_folding.py checks folding)."""
    options.setdefault("fold", False)
    before = {o.as_pointer() for o in bpy.data.objects}
    result = bpy.ops.import_scene.nnvis(filepath=str(path), **options)
    assert result == {"FINISHED"}
    roots = [o for o in bpy.data.objects if o.as_pointer() not in before and o.get("nnvis_network")]
    assert len(roots) == 1
    return roots[0]


def set_control(root, key, value):
    installed_scene_module().set_control(root, key, value)


def layer_objects(root):
    return installed_scene_module().network_layers(root)


def modifier(obj):
    return obj.modifiers["NNVis Layer"]


def input_identifier(obj, name):
    for item in modifier(obj).node_group.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name == name:
            return item.identifier
    raise KeyError(name)


def get_input(obj, name):
    return modifier(obj)[input_identifier(obj, name)]


def set_input(obj, name, value):
    modifier(obj)[input_identifier(obj, name)] = value
    obj.update_tag()


def test_manifest_passes_blenders_validator():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_extension.py"),
                             "--validate-only"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zip_holds_only_the_addon(installed):
    import zipfile
    names = zipfile.ZipFile(installed["zip"]).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert any(n.startswith("nnvis_addon/core/") for n in names)
    assert any(n.startswith("geometry_nodes/") for n in names)
    assert any(n.endswith(".nnvis.json") for n in names), "bundled example missing from the zip"
    assert not any(n.startswith(("tests/", "scripts/", "nnvis_export/", ".venv")) for n in names)
    assert not any("__pycache__" in n for n in names)


def test_import_builds_one_object_per_layer_with_every_cell(empty_scene, example_export):
    export = read_export(example_export)
    root = import_example(example_export)
    layers = layer_objects(root)
    assert [o["nnvis_layer"] for o in layers] == [layer.name for layer in export.layers]
    collection = root.users_collection[0]
    assert collection.name.startswith("NNVis ")
    for obj, layer in zip(layers, export.layers):
        assert obj.users_collection[0] == collection
        positions, _ = evaluated_instances(obj)
        assert len(positions) == layer.cells, layer.name
        assert len(obj.data.vertices) == layer.cells
    assert empty_scene.camera is not None


@pytest.mark.parametrize("sample,epoch", [(0, None), (2, 1), (3, 0)])
def test_evaluated_activation_equals_export(empty_scene, example_export, sample, epoch):
    export = read_export(example_export)
    root = import_example(example_export, sample=sample, epoch=-1 if epoch is None else epoch)
    epoch_index = len(export.epochs) - 1 if epoch is None else epoch
    for obj, layer in zip(layer_objects(root), export.layers):
        _, attributes = evaluated_instances(obj)
        expected = export.activations(layer.name, epoch_index)[sample].reshape(-1).astype(np.float32)
        assert_shown(attributes["activation"], expected, obj, err_msg=layer.name)
        lo, hi = get_input(obj, "Value Min"), get_input(obj, "Value Max")
        assert np.all((attributes["activation_norm"] >= 0) & (attributes["activation_norm"] <= 1))
        assert lo <= float(np.nanmin(expected)) + 1e-6 and hi >= float(np.nanmax(expected)) - 1e-6


def test_fractional_epoch_interpolates_and_step_holds(empty_scene, example_export):
    export = read_export(example_export)
    root = import_example(example_export, sample=1, epoch=0)
    set_control(root, "nnvis_epoch", 1.25)
    obj = layer_objects(root)[1]
    name = obj["nnvis_layer"]
    a = export.activations(name, 1)[1].reshape(-1).astype(np.float32)
    b = export.activations(name, 2)[1].reshape(-1).astype(np.float32)
    _, attributes = evaluated_instances(obj)
    assert_shown(attributes["activation"], a + (b - a) * 0.25, obj, rtol=1e-5)
    set_control(root, "nnvis_step_epochs", True)
    _, attributes = evaluated_instances(obj)
    assert_shown(attributes["activation"], a, obj)


def test_linear_and_grid_layouts_place_cells_as_the_layout_core_says(empty_scene, example_export):
    root = import_example(example_export, map_layout="linear")
    conv = next(o for o in layer_objects(root) if o["nnvis_layer_type"] == "Conv2D")
    grid = cell_grid(tuple(conv["nnvis_output_shape"]))
    cell_size = root["nnvis_cell_size"]
    gap = get_input(conv, "Channel Gap")
    linear, _ = evaluated_instances(conv)
    expected_linear = cell_centres(grid, grid_layout=0.0, cell_size=cell_size, channel_gap=gap)
    np.testing.assert_allclose(linear, expected_linear, atol=1e-5)
    set_input(conv, "Grid Layout", 1.0)
    gridded, _ = evaluated_instances(conv)
    expected_grid = cell_centres(grid, grid_layout=1.0, cell_size=cell_size, channel_gap=gap)
    np.testing.assert_allclose(gridded, expected_grid, atol=1e-5)
    # Linear is one row of maps (wide and flat); grid is near-square.
    assert np.ptp(linear[:, 1]) > 2 * np.ptp(linear[:, 2])
    assert np.ptp(gridded[:, 1]) < 2 * np.ptp(gridded[:, 2])


def test_network_controls_are_farm_safe_drivers(empty_scene, example_export):
    root = import_example(example_export)
    for index, obj in enumerate(layer_objects(root)):
        drivers = obj.animation_data.drivers
        # network controls (3 modifier inputs, the shown sample/epoch/step), the Collapse input
        # from the layer's control, and the position after the first
        assert len(drivers) == 7 + (index > 0)
        for fcurve in drivers:
            assert fcurve.driver.is_valid
            assert fcurve.driver.is_simple_expression, fcurve.driver.expression
    spacing = root["nnvis_layer_spacing"]
    before = layer_objects(root)[3].matrix_world.translation.x
    assert before >= 3 * spacing  # at least one spacing per column; more between wide units
    set_control(root, "nnvis_layer_spacing", spacing * 2)
    bpy.context.view_layer.update()
    assert layer_objects(root)[3].matrix_world.translation.x == pytest.approx(2 * before)


def test_import_twice_gives_two_networks(empty_scene, example_export):
    first = import_example(example_export)
    groups = {g.name for g in bpy.data.node_groups}
    materials = {m.name for m in bpy.data.materials}
    second = import_example(example_export)
    assert first.name != second.name
    assert len(layer_objects(first)) == len(layer_objects(second))
    assert {g.name for g in bpy.data.node_groups} == groups, "node groups are shared, not rebuilt"
    # Each network has its own cell, connection and answer material (they read its value atlas).
    added = {m for m in bpy.data.materials if m.name not in materials}
    cell = get_input(layer_objects(second)[0], "Cell Material")
    # the cells' (one for the input drawn as a picture, one for the other units and one for
    # them while their maps merge into a summary map), the connections', the answer's
    assert cell in added and len(added) == 5
    assert cell != get_input(layer_objects(first)[0], "Cell Material")


def test_malformed_export_reports_one_error_and_leaves_nothing(empty_scene, example_export, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(example_export.parent, bad)
    document = bad / example_export.name
    data = json.loads(document.read_text())
    data["layers"][2]["output_shape"] = [3, 3, 3]
    document.write_text(json.dumps(data))
    before = all_data()
    with pytest.raises(RuntimeError, match="layer 'pool1'|layer"):
        bpy.ops.import_scene.nnvis(filepath=str(document))
    assert all_data() == before


def test_failure_midway_rolls_back_everything(empty_scene, example_export):
    """An error after some data-blocks exist (bad option) leaves bpy.data unchanged."""
    before = all_data()
    with pytest.raises(RuntimeError, match="sample 99 does not exist"):
        bpy.ops.import_scene.nnvis(filepath=str(example_export), sample=99)
    assert all_data() == before


def test_golden_image(empty_scene, example_export, tmp_path):
    """Tiny Cycles render (64x64, fixed seed, no denoise) of the default import against a
    committed reference."""
    import_example(example_export, fold=True)
    output = tmp_path / "render.png"
    configure_test_render(empty_scene, 64, 64, samples=8, path=output)
    bpy.ops.render.render(write_still=True)
    received = load_pixels(output)
    if not GOLDEN.exists():
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(output, GOLDEN)
        pytest.fail(f"no reference image: wrote {GOLDEN}; check it and commit it")
    ok, bad_fraction, diff = compare_images(received, load_pixels(GOLDEN))
    if not ok:
        RECEIVED.mkdir(exist_ok=True)
        shutil.copy(output, RECEIVED / "example_64.received.png")
        save_pixels(diff, RECEIVED / "example_64.diff.png")
    assert ok, f"{bad_fraction:.2%} of pixels differ; see {RECEIVED}"
    assert received[..., :3].max() > 0.3, "render is (nearly) black"


def test_unregister_leaves_nothing(installed):
    import addon_utils
    assert hasattr(bpy.types, "IMPORT_SCENE_OT_nnvis")
    addon_utils.disable(EXTENSION_MODULE, default_set=True)
    try:
        assert not hasattr(bpy.types, "IMPORT_SCENE_OT_nnvis")
        assert not hasattr(bpy.types, "NNVIS_FH_import_network")
        draw_funcs = getattr(bpy.types.TOPBAR_MT_file_import.draw, "_draw_funcs", [])
        assert not any("nnvis" in getattr(f, "__module__", "") for f in draw_funcs)
        for name, count in installed["handlers_before"].items():
            assert len(getattr(bpy.app.handlers, name)) == count, name
        leftovers = [n for n in dir(bpy.types) if n.upper().startswith("NNVIS")]
        assert leftovers == []
    finally:
        addon_utils.enable(EXTENSION_MODULE, default_set=True)
    assert hasattr(bpy.types, "IMPORT_SCENE_OT_nnvis")
