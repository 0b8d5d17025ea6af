"""The hostile corpus (tests/hostile_corpus.py) through the installed extension in real bpy 5.0.1.

For every broken export, File > Import (``bpy.ops.import_scene.nnvis``) reports exactly one
error -- the reader's message -- and leaves ``bpy.data`` exactly as it was; the script API
raises nnvis's own exception type; Blender keeps working (a valid import right after succeeds).
NaN/Inf activations import and never colour a cell with NaN.
"""

from __future__ import annotations

import math
import warnings

import bpy
import numpy as np
import pytest
from blender_utils import (
    all_data,
    difference,
    evaluated_instances,
    install_extension,
    installed_module,
    installed_scene_module,
)
from export_factory import make_export
from hostile_corpus import CASES, Case, build_corpus, outcome

CASE_NAMES = [make.__name__ for make in CASES]
ERROR_CASE_NAMES = [name for name in CASE_NAMES if name != "nan_inf_activations"]


def handler_counts() -> dict[str, int]:
    return {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
            if isinstance(getattr(bpy.app.handlers, name), list)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    install_extension(tmp_path_factory)
    return installed_module("nnvis_addon.core.export_format")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Case]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("hostile"))}


@pytest.fixture(scope="module")
def valid_export(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("valid"), name="tiny").path


@pytest.fixture(scope="module")
def scene(installed):
    """One empty scene for the whole module: a failed import must not change it."""
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


def _case(corpus, name) -> Case:
    if name not in corpus:
        pytest.skip(f"{name} does not apply on this platform")
    return corpus[name]


def quick_import(path):
    """A valid import through the script API, without connections and stage (fast)."""
    scene = installed_scene_module()
    options = scene.ImportOptions(stage=False)
    options.connections.enabled = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scene.import_network(path, options)


@pytest.mark.parametrize("name", ERROR_CASE_NAMES)
def test_hostile_export_fails_cleanly_in_blender(installed, scene, corpus, valid_export, name):
    case = _case(corpus, name)
    kind, reader_message = outcome(case)  # the working tree's reader, outside Blender
    assert kind == "error", (kind, reader_message)

    before, handlers = all_data(), handler_counts()
    with pytest.raises(RuntimeError) as info:
        bpy.ops.import_scene.nnvis(filepath=str(case.path))
    # Exactly one operator error, and it is the reader's message: no traceback, no second report.
    assert str(info.value) == f"Error: {reader_message}\n"
    assert "Traceback" not in str(info.value)
    assert all_data() == before, difference(before, all_data())
    assert handler_counts() == handlers

    # The script API raises nnvis's own exception type, with the same message.
    with pytest.raises(installed.NnvisError) as info:
        installed_scene_module().import_network(case.path)
    assert isinstance(info.value, installed.ExportFormatError)
    assert [c.__name__ for c in type(info.value).__mro__][:2] == ["ExportFormatError", "NnvisError"]
    assert str(info.value) == reader_message
    assert all_data() == before, difference(before, all_data())
    if case.marker is not None:
        assert not case.marker.exists(), "something unpickled the payload"

    # Blender (and the add-on) keep working: a valid import right after succeeds.
    root = quick_import(valid_export)
    # Four units: the Flatten folds into the Dense it feeds.
    assert root.get("nnvis_network") and len(installed_scene_module().network_layers(root)) == 4


def test_valid_operator_import_after_every_failure(scene, corpus, valid_export):
    """All failures in a row, then File > Import of a valid export: one network, every cell."""
    for case in corpus.values():
        if case.kind == "error":
            with pytest.raises(RuntimeError):
                bpy.ops.import_scene.nnvis(filepath=str(case.path))
    known = {obj.as_pointer() for obj in bpy.data.objects}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bpy.ops.import_scene.nnvis(filepath=str(valid_export)) == {"FINISHED"}
    roots = [o for o in bpy.data.objects if o.as_pointer() not in known and o.get("nnvis_network")]
    assert len(roots) == 1
    for obj in installed_scene_module().network_layers(roots[0]):
        positions, _ = evaluated_instances(obj)
        assert len(positions) == math.prod(obj["nnvis_output_shape"])


def test_wrong_suffix_is_one_error(scene, tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    before = all_data()
    with pytest.raises(RuntimeError) as info:
        bpy.ops.import_scene.nnvis(filepath=str(path))
    assert str(info.value).startswith("Error: Not an nnvis export")
    assert str(info.value).count("Error") == 1
    assert all_data() == before


def test_nan_and_inf_activations_import_without_nan_colours(installed, scene, corpus):
    case = _case(corpus, "nan_inf_activations")
    known = {obj.as_pointer() for obj in bpy.data.objects}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bpy.ops.import_scene.nnvis(filepath=str(case.path), epoch=1) == {"FINISHED"}
    assert any(case.expected in str(w.message) for w in caught)
    root = next(o for o in bpy.data.objects
                if o.as_pointer() not in known and o.get("nnvis_network"))
    assert all(math.isfinite(v) for v in root["nnvis_global_range"])
    scene_api = installed_scene_module()
    compat = installed_module("nnvis_addon.blender.compat")
    for epoch in (1.0, 0.5, 0.0):  # the recorded epoch with NaN/Inf, halfway, the clean one
        scene_api.set_control(root, "nnvis_epoch", epoch)
        for normalize_globally in (False, True):
            scene_api.set_control(root, "nnvis_normalize_globally", normalize_globally)
            for obj in scene_api.network_layers(root):
                modifier = obj.modifiers["NNVis Layer"]
                for name in ("Value Min", "Value Max", "Global Min", "Global Max"):
                    value = compat.get_modifier_input(modifier, name)
                    assert math.isfinite(value), (obj.name, name)
                _, attributes = evaluated_instances(obj)
                norm, activation = attributes["activation_norm"], attributes["activation"]
                assert not np.isnan(norm).any(), (obj.name, epoch)
                assert np.all((norm >= 0) & (norm <= 1)), (obj.name, epoch)
                assert np.isfinite(activation).all(), (obj.name, epoch)
    conv = next(o for o in scene_api.network_layers(root) if o["nnvis_layer"] == "conv")
    scene_api.set_control(root, "nnvis_epoch", 1.0)
    _, attributes = evaluated_instances(conv)
    # NaN, +Inf and -Inf (the first three cells of the first sample) read as 0.
    np.testing.assert_array_equal(attributes["activation"][:3], 0.0)
