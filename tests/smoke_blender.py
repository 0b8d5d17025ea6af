"""Smoke test of the built extension inside one Blender version (any bpy 4.2+ wheel).

    <venv>/bin/python tests/smoke_blender.py --zip dist/nnvis-0.1.0.zip \
        --export examples/digits/digits_cnn.nnvis.json --out /tmp/smoke

Standalone on purpose: it imports nothing from the repository, only ``bpy`` and the standard
library, so it runs in a venv that holds nothing but a bpy wheel (scripts/env_matrix.sh). Steps:

1. Blender's user folders point at fresh folders under ``--out``; the zip is installed with
   ``bpy.ops.extensions.package_install_files`` (as a user would, headless);
2. a broken copy of the export (and each of ``--hostile``'s broken exports) fails with one
   operator error, the reader's message, and leaves ``bpy.data`` unchanged;
3. File > Import (``bpy.ops.import_scene.nnvis``) builds one object per layer, and every layer's
   evaluated instances (counted through ``depsgraph.object_instances``; the GeometrySet Python
   API only exists from 4.3 on) are its cells, each showing its recorded activation; every
   connection object evaluates to geometry;
4. a 32x18 Cycles frame (4 samples, CPU; ``--size``, ``--samples``) is not black; the Render
   Preset operator sets what the preset says (its Cycles properties, persistent data,
   connections as curves in renders) and a frame rendered with it is not black;
5. re-bundling to another point count and epoch playback work (their APIs moved in 4.3/4.4);
6. "Remove Network" (with the playback's keyframes and epoch counter) leaves ``bpy.data`` as it
   was before the import;
6b. in the default startup scene (Cube, Camera, Light): the import takes the scene camera; the
   root moved into the user's "Collection" and a whole-network duplicate (Shift+D) are removed
   without touching the user's objects, and the scene gets its camera back; appending the saved
   network into another file brings no scene along;
6c. there too, the labels (text objects of their own) face the network's camera, and in a
   1920x1080 frame every shown label's capitals are at least 12 px tall and no two overlap;
7. disabling and re-enabling the extension leaves no nnvis class registered in between, and
   importing works again afterwards.

Prints a JSON summary (also written to ``--out``/summary.json) and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

EXTENSION_MODULE = "bl_ext.user_default.nnvis"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", required=True, type=Path, help="the built extension zip")
    parser.add_argument("--export", required=True, type=Path, help="a valid *.nnvis.json export")
    parser.add_argument("--out", required=True, type=Path, help="folder for the render and summary")
    parser.add_argument("--hostile", type=Path, help="JSON list of broken exports, each "
                        "{name, path, message}: every one must fail with exactly that message")
    parser.add_argument("--explained", type=Path, help="an export with class evidence maps "
                        "(format 1.1): Grad-CAM, saliency, the answer and an operation close-up")
    parser.add_argument("--no-render", action="store_true", help="skip the Cycles render")
    parser.add_argument("--size", type=int, nargs=2, default=(32, 18), metavar=("W", "H"),
                        help="render resolution (default 32 18)")
    parser.add_argument("--samples", type=int, default=4, help="Cycles samples (default 4)")
    return parser.parse_args(argv)


def user_folders(out: Path) -> None:
    """Fresh Blender user folders (before ``import bpy``), so nothing installed elsewhere loads."""
    base = Path(tempfile.mkdtemp(prefix="blender-user-", dir=out))
    for var in ("BLENDER_USER_EXTENSIONS", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS",
                "BLENDER_USER_DATAFILES"):
        os.environ[var] = str(base / var.lower())
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)


class Checks:
    def __init__(self):
        self.results: dict[str, dict] = {}

    def run(self, name, fn, *args):
        start = time.perf_counter()
        try:
            detail = fn(*args)
            self.results[name] = {"ok": True, **(detail or {})}
        except Exception as exc:  # noqa: BLE001 - every failure goes into the summary
            self.results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[-2000:],
                                  "traceback": traceback.format_exc(limit=4)[-2000:]}
        self.results[name]["seconds"] = round(time.perf_counter() - start, 3)
        return self.results[name]["ok"]

    @property
    def ok(self) -> bool:
        return all(result["ok"] for result in self.results.values())


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    user_folders(args.out)
    started = time.perf_counter()

    import bpy  # noqa: E402 - after the user folders are set

    summary = {"blender": bpy.app.version_string, "python": sys.version.split()[0]}
    checks = Checks()
    state: dict = {}

    def data_names():
        names = {}
        for attr in dir(bpy.data):
            value = getattr(bpy.data, attr, None)
            if isinstance(value, bpy.types.bpy_prop_collection) and attr not in (
                    "window_managers", "workspaces", "screens"):
                names[attr] = sorted(block.name for block in value)
        return names

    def differences(before, after):
        return {key: {"added": sorted(set(after[key]) - set(before[key])),
                      "removed": sorted(set(before[key]) - set(after[key]))}
                for key in before if before[key] != after[key]}

    def install():
        bpy.ops.wm.read_factory_settings(use_empty=True)
        result = bpy.ops.extensions.package_install_files(
            filepath=str(args.zip.resolve()), repo="user_default", enable_on_install=True)
        check(result == {"FINISHED"}, f"install returned {result}")
        check(EXTENSION_MODULE in sys.modules, f"{EXTENSION_MODULE} not loaded after install")
        check(hasattr(bpy.types, "IMPORT_SCENE_OT_nnvis"), "import operator not registered")
        return {}

    def broken_import():
        folder = args.out / "broken"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(args.export.parent, folder)
        document = folder / args.export.name
        raw = document.read_bytes()
        document.write_bytes(raw[: len(raw) // 2])  # cut off half-way: not valid JSON
        before = data_names()
        try:
            bpy.ops.import_scene.nnvis(filepath=str(document))
        except RuntimeError as exc:
            message = str(exc).strip()
        else:
            raise AssertionError("importing a truncated document did not fail")
        lines = [line for line in message.splitlines() if line.strip()]
        check(len(lines) == 1 and lines[0].startswith("Error: ") and "not valid JSON" in message,
              f"expected one error about invalid JSON, got {message!r}")
        check(data_names() == before,
              f"failed import left data: {differences(before, data_names())}")
        return {"message": message}

    def hostile():
        cases = json.loads(args.hostile.read_text(encoding="utf-8"))
        before = data_names()
        wrong = []
        for case in cases:
            try:
                bpy.ops.import_scene.nnvis(filepath=case["path"])
            except RuntimeError as exc:
                if str(exc) != f"Error: {case['message']}\n":
                    wrong.append(f"{case['name']}: {str(exc)[:300]!r}")
            else:
                wrong.append(f"{case['name']}: imported")
            if data_names() != before:
                wrong.append(f"{case['name']}: left {differences(before, data_names())}")
                before = data_names()
        check(not wrong, "; ".join(wrong))
        return {"cases": len(cases)}

    def import_example():
        document = json.loads(args.export.read_text(encoding="utf-8"))
        state["before"] = data_names()
        known = {obj.as_pointer() for obj in bpy.data.objects}
        # Every layer its own unit (no folding), so each is checked against the export.
        result = bpy.ops.import_scene.nnvis(filepath=str(args.export.resolve()), fold=False)
        check(result == {"FINISHED"}, f"import returned {result}")
        roots = [obj for obj in bpy.data.objects
                 if obj.as_pointer() not in known and obj.get("nnvis_network")]
        check(len(roots) == 1, f"expected one new network root, found {len(roots)}")
        root = state["root"] = roots[0]
        layers = sorted((c for c in root.children if c.get("nnvis_layer") is not None),
                        key=lambda obj: obj["nnvis_layer_index"])
        expected = [layer["name"] for layer in document["layers"]]
        check([obj["nnvis_layer"] for obj in layers] == expected,
              f"layer objects {[obj['nnvis_layer'] for obj in layers]} != export layers {expected}")
        cells = {layer["name"]: math.prod(layer["output_shape"]) for layer in document["layers"]}

        connections = [c for c in root.children if c.get("nnvis_connection")]
        depsgraph = bpy.context.evaluated_depsgraph_get()
        counted = {obj.name: 0 for obj in layers}
        drawn = {obj.name: 0 for obj in connections}  # evaluated tube vertices or curve points
        for instance in depsgraph.object_instances:
            if not instance.is_instance:
                # Hair-curve connections (big or structural pairs) are the object's own geometry.
                if instance.object.original.name in drawn and instance.object.type == "CURVES":
                    drawn[instance.object.original.name] += len(instance.object.data.points)
                continue
            if instance.parent is None:
                continue
            name = instance.parent.original.name
            if name in counted:
                counted[name] += 1
            elif name in drawn and instance.object.type == "MESH":
                drawn[name] += len(instance.object.data.vertices)
        per_layer = {obj["nnvis_layer"]: counted[obj.name] for obj in layers}
        check(per_layer == cells, f"evaluated cells {per_layer} != export {cells}")
        for obj in layers:
            check(len(obj.data.vertices) == cells[obj["nnvis_layer"]], f"{obj.name}: vertex count")
        empty = [name for name, vertices in drawn.items() if vertices == 0]
        check(connections, "no connection objects")
        check(not empty, f"connection objects without evaluated geometry: {empty}")
        check(bpy.context.scene.camera is not None, "no scene camera")
        state["layers"] = layers
        return {"layers": len(layers), "cells": sum(per_layer.values()),
                "connections": len(connections)}

    def activations():
        """Every cell shows its recorded activation (NaN/Inf read 0) to within the value atlas's
        quantisation, and a normalised value in 0..1: the add-on's numpy twin of the cell shader
        (value_atlas.shown_cells) on the cells' realized attributes. Instance attributes have no
        Python API before 4.3, so a temporary Realize Instances modifier bakes them onto the
        cubes' vertices."""
        import importlib

        import numpy as np  # bpy's own dependency

        value_atlas = importlib.import_module(EXTENSION_MODULE + ".nnvis_addon.blender.value_atlas")
        export_format = importlib.import_module(EXTENSION_MODULE + ".nnvis_addon.core.export_format")
        export = export_format.read_export(args.export)
        root, layers = state["root"], state["layers"]
        sample, epoch = int(root["nnvis_sample"]), int(round(root["nnvis_epoch"]))
        group = bpy.data.node_groups.new("smoke realize", "GeometryNodeTree")
        group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        group.is_modifier = True
        group_in = group.nodes.new("NodeGroupInput")
        realize = group.nodes.new("GeometryNodeRealizeInstances")
        group_out = group.nodes.new("NodeGroupOutput")
        group.links.new(group_in.outputs[0], realize.inputs[0])
        group.links.new(realize.outputs[0], group_out.inputs[0])
        checked = 0
        try:
            for obj in layers:
                cells = len(obj.data.vertices)
                expected = [v if math.isfinite(v) else 0.0 for v in
                            export.activations(obj["nnvis_layer"], epoch)[sample].reshape(-1)]
                material = next((value for value in obj.modifiers["NNVis Layer"].values()
                                 if isinstance(value, bpy.types.Material)), None)
                modifier = obj.modifiers.new("smoke realize", "NODES")
                modifier.node_group = group
                try:
                    depsgraph = bpy.context.evaluated_depsgraph_get()
                    evaluated = obj.evaluated_get(depsgraph)
                    mesh = evaluated.to_mesh()
                    try:
                        realized = len(mesh.vertices)  # 8 per cube (the cells come last)
                        attributes = {}
                        for attribute in mesh.attributes:
                            if attribute.domain == "POINT" and attribute.data_type == "FLOAT" \
                                    and attribute.name.startswith("nnvis_"):
                                data = [0.0] * realized
                                attribute.data.foreach_get("value", data)
                                attributes[attribute.name] = np.asarray(
                                    data[realized - cells * 8::8], np.float32)
                    finally:
                        evaluated.to_mesh_clear()
                finally:
                    obj.modifiers.remove(modifier)
                check(realized >= 8 * cells, f"{obj.name}: {realized} realized vertices for "
                                             f"{cells} cells")
                shown = value_atlas.shown_cells(obj, attributes, material)
                got, norm = shown["activation"], shown["activation_norm"]
                tolerance = value_atlas.tolerance(obj, "nnvis_cells")
                bad = [i for i, (a, b) in enumerate(zip(got, expected))
                       if abs(a - b) > tolerance + 1e-6 * abs(b)]
                first = bad[0] if bad else 0
                check(not bad, f"{obj.name}: cell {first} shows {got[first] if bad else 0} "
                               f"instead of {expected[first]} ({len(bad)} cells off)")
                check(all(0.0 <= v <= 1.0 for v in norm), f"{obj.name}: activation_norm "
                                                          "outside 0..1 (or NaN)")
                checked += cells
        finally:
            bpy.data.node_groups.remove(group)
        return {"cells": checked, "sample": sample, "epoch": epoch}

    def render_pixels(name: str) -> list[float]:
        """The scene rendered small (Cycles, CPU, fixed seed) to ``<out>/<name>.png``: RGB."""
        scene = bpy.context.scene
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = args.samples
        scene.cycles.seed = 0
        scene.cycles.use_denoising = False
        if hasattr(scene.cycles, "use_adaptive_sampling"):
            scene.cycles.use_adaptive_sampling = False
        if hasattr(scene.cycles, "use_light_tree"):
            # Building the light tree over thousands of emissive cells takes ~15 s on 2 cores
            # and does not matter for "is it a picture".
            scene.cycles.use_light_tree = False
        scene.render.resolution_x, scene.render.resolution_y = args.size
        scene.render.resolution_percentage = 100
        scene.render.use_compositing = False
        scene.render.use_sequencer = False
        scene.view_settings.view_transform = "Standard"
        scene.render.image_settings.file_format = "PNG"
        path = args.out / f"{name}.png"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        check(path.exists(), "no image written")
        image = bpy.data.images.load(str(path), check_existing=False)
        try:
            pixels = list(image.pixels)
        finally:
            bpy.data.images.remove(image)
        return [value for index, value in enumerate(pixels) if index % 4 != 3]

    def render():
        path = args.out / "render.png"
        rgb = render_pixels("render")
        brightest, mean = max(rgb), sum(rgb) / len(rgb)
        check(all(math.isfinite(v) for v in rgb), "non-finite pixels")
        check(brightest > 0.2 and mean > 0.005, f"render is (nearly) black: max {brightest:.3f}, "
                                                f"mean {mean:.4f}")
        return {"max": round(brightest, 4), "mean": round(mean, 4), "image": str(path)}

    def render_preset():
        scene = bpy.context.scene
        render = importlib.import_module(f"{EXTENSION_MODULE}.nnvis_addon.blender.render")
        compat = importlib.import_module(f"{EXTENSION_MODULE}.nnvis_addon.blender.compat")
        scene.cycles.samples = 4096
        scene.render.use_persistent_data = False
        result = bpy.ops.nnvis.render_preset()
        check(result == {"FINISHED"}, f"render preset returned {result}")
        expected = render.RENDER_PRESET.cycles_settings(render.denoiser_available())
        def differs(actual, wanted):
            if isinstance(wanted, str):
                return actual != wanted
            return not math.isclose(actual, wanted, rel_tol=1e-6)

        wrong = {name: [getattr(scene.cycles, name), value] for name, value in expected.items()
                 if differs(getattr(scene.cycles, name), value)}
        check(not wrong, f"Cycles settings differ from the preset: {wrong}")
        check(scene.cycles.diffuse_bounces == 1 and not scene.cycles.caustics_reflective
              and scene.cycles.use_adaptive_sampling and scene.render.use_persistent_data,
              "the preset's bounces, caustics, adaptive sampling or persistent data not set")
        links = [c for c in state["root"].children if c.get("nnvis_connection")]
        tubes = [obj.name for obj in links if compat.get_modifier_input(
            obj.modifiers["NNVis Connections"], "Render Tubes")]
        check(not tubes, f"connections still tubes in renders: {tubes}")
        scene.cycles.samples = args.samples
        path = args.out / "preset.png"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(str(path), check_existing=False)
        try:
            brightest = max(value for index, value in enumerate(image.pixels) if index % 4 != 3)
        finally:
            bpy.data.images.remove(image)
        check(brightest > 0.2, f"preset render is (nearly) black: max {brightest:.3f}")
        return {"denoise": scene.cycles.use_denoising, "max": round(brightest, 4)}

    def features():
        """Re-bundle with another point count (``Curves.resize_curves`` is 4.3+) and keyframed
        epoch playback (legacy F-curves before 4.4, layered actions after) through the UI's
        operators."""
        root = state["root"]
        scene = bpy.context.scene
        connections = [c for c in root.children if c.get("nnvis_connection")]
        for obj in bpy.context.view_layer.objects.selected:
            obj.select_set(False)
        for obj in connections:
            obj.select_set(True)
        bpy.context.view_layer.objects.active = connections[0]
        result = bpy.ops.object.nnvis_rebundle(points_per_edge=7)
        check(result == {"FINISHED"}, f"re-bundle returned {result}")
        connections = [c for c in root.children if c.get("nnvis_connection")]
        for obj in connections:
            points = len(obj.data.points) // max(1, len(obj.data.curves))
            check(points == 7, f"{obj.name}: {points} points per curve after re-bundling to 7")
        depsgraph = bpy.context.evaluated_depsgraph_get()
        drawn = set()
        for instance in depsgraph.object_instances:
            if instance.is_instance and instance.parent is not None \
                    and instance.parent.original.get("nnvis_connection"):
                drawn.add(instance.parent.original.name)  # tubes: a mesh instance
            elif not instance.is_instance and instance.object.type == "CURVES" \
                    and instance.object.original.get("nnvis_connection") \
                    and len(instance.object.data.points):
                drawn.add(instance.object.original.name)  # hair curves: its own geometry
        check(drawn == {obj.name for obj in connections},
              "connections not drawn after re-bundle")

        bpy.context.view_layer.objects.active = root
        result = bpy.ops.nnvis.animate_epochs(frames_per_epoch=2, hold_frames=1)
        check(result == {"FINISHED"}, f"animate epochs returned {result}")
        epochs = len(root["nnvis_epoch_numbers"])
        scene.frame_set(scene.frame_start)
        first = float(root["nnvis_epoch"])
        scene.frame_set(scene.frame_end)
        last = float(root["nnvis_epoch"])
        check((first, last) == (0.0, float(epochs - 1)),
              f"epoch at the first/last frame: {first}/{last}, expected 0/{epochs - 1}")
        return {"frames": [scene.frame_start, scene.frame_end]}

    def explain():
        """Class evidence on this Blender: Grad-CAM on its convolution and the input, saliency
        on the input (the keyframable Evidence Map), the answer's bars and an operation
        close-up build, evaluate and render; removing the network leaves bpy.data as before."""
        api = importlib.import_module(f"{EXTENSION_MODULE}.nnvis_addon.blender.api")
        lifecycle = importlib.import_module(f"{EXTENSION_MODULE}.nnvis_addon.blender.lifecycle")
        bpy.ops.wm.read_homefile(use_empty=True)
        before = data_names()
        result = bpy.ops.import_scene.nnvis(filepath=str(args.explained.resolve()))
        check(result == {"FINISHED"}, f"import of the explained export returned {result}")
        root = next(obj for obj in bpy.data.objects if obj.get("nnvis_network"))
        network = api.Network(root)
        parts = importlib.import_module(f"{EXTENSION_MODULE}.nnvis_addon.blender.network")
        check(bool(parts.listed_parts(root, "answer")), "no answer bars")
        pictures = {}
        for name, strength, choice in (("plain", 0.0, 0.0), ("gradcam", 1.0, 0.0),
                                       ("saliency", 1.0, 1.0)):
            network.set(gradcam=strength, evidence_map=choice)
            pictures[name] = render_pixels(f"explain_{name}")
        for name in ("gradcam", "saliency"):
            changed = sum(abs(a - b) > 0.05 for a, b in zip(pictures[name], pictures["plain"]))
            check(changed > 0, f"the {name} overlay changes no pixel")
        check(pictures["gradcam"] != pictures["saliency"], "Evidence Map changes nothing")
        network.show_operation("conv1", channel=3, row=6, col=7)
        bright = max(render_pixels("explain_operation"))
        check(bright > 0.2, f"operation render is (nearly) black: max {bright:.3f}")
        lifecycle.remove_network(root)
        after = data_names()
        after["images"] = [name for name in after["images"] if name != "Render Result"]
        check(after == before, f"removal left data: {differences(before, after)}")
        return {}

    def remove():
        root = state["root"]
        for obj in bpy.context.view_layer.objects.selected:
            obj.select_set(False)
        bpy.context.view_layer.objects.active = root
        result = bpy.ops.nnvis.remove_network()
        check(result == {"FINISHED"}, f"remove_network returned {result}")
        after = data_names()
        if "Render Result" not in state["before"]["images"]:  # the render's, not the network's
            after["images"] = [name for name in after["images"] if name != "Render Result"]
        check(after == state["before"],
              f"left after removal: {differences(state['before'], after)}")
        return {}

    def ownership():
        bpy.ops.wm.read_homefile(use_empty=False)  # the factory startup scene
        scene = bpy.context.scene
        user_camera = scene.camera
        check(user_camera is not None and "Cube" in bpy.data.objects, "not the startup scene")
        before = data_names()
        known = {obj.as_pointer() for obj in bpy.data.objects}
        result = bpy.ops.import_scene.nnvis(filepath=str(args.export.resolve()))
        check(result == {"FINISHED"}, f"import returned {result}")
        root = next(o for o in bpy.data.objects
                    if o.as_pointer() not in known and o.get("nnvis_network"))
        check(scene.camera is not None and scene.camera != user_camera,
              "the network's camera is not the scene camera")
        path = args.out / "with_network.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
        collection_name = root.users_collection[0].name
        # Shift+D on every object of the network, then Remove Network on the copy.
        owned = [o for o in bpy.data.objects if o.get("nnvis_root") == root]
        for obj in bpy.context.view_layer.objects:
            obj.select_set(obj in owned)
        bpy.context.view_layer.objects.active = root
        check(bpy.ops.object.duplicate() == {"FINISHED"}, "duplicate failed")
        copy = next(o for o in bpy.data.objects if o.get("nnvis_network") and o != root)
        check(bpy.ops.nnvis.remove_network(network=copy.name) == {"FINISHED"}, "remove copy")
        check(all(o.name in bpy.data.objects for o in owned), "removing the copy took originals")
        # M: move the root into the user's collection, then remove the network.
        user_collection = bpy.data.collections["Collection"]
        for collection in list(root.users_collection):
            collection.objects.unlink(root)
        user_collection.objects.link(root)
        check(bpy.ops.nnvis.remove_network(network=root.name) == {"FINISHED"}, "remove")
        after = data_names()
        after["images"] = [n for n in after["images"] if n in before["images"]]
        check(after == before, f"after removal: {differences(before, after)}")
        check(scene.camera == user_camera, "the user's camera did not come back")
        # Appending the saved network brings the network only (no second scene).
        bpy.ops.wm.read_homefile(use_empty=True)
        with bpy.data.libraries.load(str(path), link=False) as (source, target):
            target.collections = [collection_name]
        bpy.context.scene.collection.children.link(target.collections[0])
        check(len(bpy.data.scenes) == 1, f"appending brought scenes: {list(bpy.data.scenes)}")
        check("Cube" not in bpy.data.objects, "appending brought the source file's Cube")
        return {}

    def labels():
        from bpy_extras.object_utils import world_to_camera_view
        from mathutils import Vector
        bpy.ops.wm.read_homefile(use_empty=False)
        scene = bpy.context.scene
        scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
        scene.render.resolution_percentage = 100
        known = {obj.as_pointer() for obj in bpy.data.objects}
        result = bpy.ops.import_scene.nnvis(filepath=str(args.export.resolve()))
        check(result == {"FINISHED"}, f"import returned {result}")
        root = next(o for o in bpy.data.objects
                    if o.as_pointer() not in known and o.get("nnvis_network"))
        camera = scene.camera
        shown = [o for o in bpy.data.objects if o.get("nnvis_root") == root
                 and o.get("nnvis_label") is not None and not o.hide_render]
        check(len(shown) >= 5 and all(o.type == "FONT" for o in shown), f"labels: {shown}")
        text = bpy.data.curves.new("smoke H", "FONT")
        text.body = "H"
        text.font = shown[0].data.font
        probe = bpy.data.objects.new("smoke H", text)
        mesh = probe.to_mesh()
        cap = max(v.co.y for v in mesh.vertices) - min(v.co.y for v in mesh.vertices)
        probe.to_mesh_clear()
        bpy.data.objects.remove(probe)
        bpy.data.curves.remove(text)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        up = camera.matrix_world.to_3x3().col[1].normalized()
        boxes, caps = {}, {}
        for label in shown:
            evaluated = label.evaluated_get(depsgraph)
            matrix = evaluated.matrix_world
            corners = [world_to_camera_view(scene, camera, matrix @ Vector(c))
                       for c in evaluated.bound_box]
            boxes[label.name] = (min(c.x for c in corners) * 1920, max(c.x for c in corners) * 1920,
                                 min(c.y for c in corners) * 1080, max(c.y for c in corners) * 1080)
            origin, top = matrix.translation, matrix.translation + up * matrix.to_scale()[1] * cap
            caps[label.name] = 1080 * (world_to_camera_view(scene, camera, top).y
                                       - world_to_camera_view(scene, camera, origin).y)
            turn = matrix.to_quaternion().rotation_difference(camera.matrix_world.to_quaternion())
            check(abs(turn.angle) < 1e-4, f"{label.name} does not face the camera")
        check(min(caps.values()) >= 12.0, f"labels under 12 px: {caps}")
        items = list(boxes.items())
        overlapping = [(a, b) for i, (a, p) in enumerate(items) for b, q in items[i + 1:]
                       if p[0] < q[1] and q[0] < p[1] and p[2] < q[3] and q[2] < p[3]]
        check(not overlapping, f"overlapping labels: {overlapping}")
        check(bpy.ops.nnvis.remove_network(network=root.name) == {"FINISHED"}, "remove")
        return {"labels": len(shown), "min_cap_px": round(min(caps.values()), 2)}

    def reregister():
        import addon_utils
        for _ in range(2):
            addon_utils.disable(EXTENSION_MODULE, default_set=True)
            leftovers = [name for name in dir(bpy.types) if name.upper().startswith("NNVIS")]
            leftovers += [name for name in ("IMPORT_SCENE_OT_nnvis",) if hasattr(bpy.types, name)]
            check(not leftovers, f"registered after disable: {leftovers}")
            draw_funcs = getattr(bpy.types.TOPBAR_MT_file_import.draw, "_draw_funcs", [])
            check(not any("nnvis" in getattr(f, "__module__", "") for f in draw_funcs),
                  "import menu entry left after disable")
            addon_utils.enable(EXTENSION_MODULE, default_set=True)
            check(hasattr(bpy.types, "IMPORT_SCENE_OT_nnvis"), "not registered after enable")
        bpy.ops.wm.read_homefile(use_empty=True)
        result = bpy.ops.import_scene.nnvis(filepath=str(args.export.resolve()))
        check(result == {"FINISHED"}, f"import after re-enable returned {result}")
        return {}

    if checks.run("install", install):
        checks.run("broken_import", broken_import)
        if args.hostile is not None:
            checks.run("hostile", hostile)
        if checks.run("import", import_example):
            checks.run("activations", activations)
            if not args.no_render:
                checks.run("render", render)
                checks.run("render_preset", render_preset)
            checks.run("features", features)
            checks.run("remove_network", remove)
        if args.explained is not None and not args.no_render:
            checks.run("explain", explain)
        checks.run("ownership", ownership)
        checks.run("labels", labels)
        checks.run("reregister", reregister)

    summary.update(ok=checks.ok, checks=checks.results,
                   seconds=round(time.perf_counter() - started, 2))
    text = json.dumps(summary, indent=1)
    (args.out / "summary.json").write_text(text)
    print("NNVIS-SMOKE " + json.dumps(summary))
    return 0 if checks.ok else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # bpy as a module can hang or crash on interpreter shutdown in some versions; the result is out.
    os._exit(code)
