"""Render the pictures in README.md and docs/ (Cycles, CPU): the bundled example, a small
trained ResNet, and the default import of real architectures into Blender's startup scene.

    python scripts/render_docs.py [--samples 32] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from working_tree import EXAMPLE, ROOT, import_extension_package  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def collapsed_and_grid(scene_api, connections_api, root):
    """Linear maps, conv1 switched to a grid, conv2 collapsed into its max map; the connections
    re-bundled for the new layout (what the panel's Re-bundle button does)."""
    layers = {layer["nnvis_layer"]: layer for layer in scene_api.network_layers(root)}
    scene_api.set_layer_control(layers["conv1"], "Grid Layout", 1.0)
    scene_api.set_layer_control(layers["conv2"], "Collapse Summary", 1)
    scene_api.set_layer_control(layers["conv2"], "Collapse", 1.0)
    for obj in connections_api.network_connections(root):
        connections_api.rebundle(obj, connections_api.BundlingParams())
    scene_api.frame_network(root)


def traced_cell(scene_api, connections_api, root):
    """Explain a prediction: conv2's map 3 at row 2, column 5 traced for the shown digit, its
    receptive field down to the input and the paths that contribute most; the rest dimmed."""
    from nnvis.nnvis_addon.blender.api import Network

    Network(root).trace("conv2", channel=3, row=2, col=5)


EXPLAINED = ROOT / "out" / "explained" / "digits_cnn.nnvis.json"


def explained_example() -> Path:
    """The bundled example's model trained again by make_example.py with class evidence maps
    (format 1.1; the bundled example is 1.0 without them), made on first use."""
    if not EXPLAINED.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example.py"), "--out",
                        str(EXPLAINED.parent)], check=True)
    return EXPLAINED


def close_up(corners, direction, distance: float = 2.0, lens: float = 50.0):
    """A camera ``distance`` times the size of the box of ``corners`` (world space) from its
    middle, in ``direction``, looking at it."""
    import bpy
    from mathutils import Vector

    centre = Vector(np.mean(corners, axis=0).tolist())
    size = float(np.linalg.norm(np.ptp(corners, axis=0)))
    camera = bpy.data.objects.new("close-up", bpy.data.cameras.new("close-up"))
    camera.data.lens = lens
    bpy.context.scene.collection.objects.link(camera)
    camera.location = centre + Vector(direction).normalized() * size * distance
    camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
    bpy.context.scene.camera = camera
    return camera


def unit_corners(root, unit: str):
    from nnvis.nnvis_addon.blender import staging

    layers, boxes = staging.unit_boxes(root)
    return boxes[[layer["nnvis_layer"] for layer in layers].index(unit)]


def mesh_corners(obj):
    import bpy

    bpy.context.view_layer.update()
    return np.array([tuple(obj.matrix_world @ v.co) for v in obj.data.vertices])


def gradcam(scene_api, connections_api, root):
    """The Grad-CAM overlay of the predicted class on the input picture and conv2 (digit 3, the
    last epoch), and the answer under the output."""
    root["nnvis_sample"] = 1
    root["nnvis_gradcam"] = 1.0


def saliency(scene_api, connections_api, root):
    """Digit 5 at the last epoch three times side by side, only its input picture shown, close
    up: the picture, the Grad-CAM of the predicted class over it (Evidence Map 0), its saliency
    (Evidence Map 1). The same export imported three times, each moved beside the one before."""
    import bpy
    from nnvis.nnvis_addon.blender import labels
    from nnvis.nnvis_addon.blender.api import Network
    from nnvis.nnvis_addon.core import names

    roots = [root, *(scene_api.import_network(explained_example(),
                                              scene_api.ImportOptions(sample=2, stage=False))
                     for _ in range(2))]
    step = 1.25 * float(np.ptp(unit_corners(root, "input")[:, 1]))  # its width and a gap
    for index, (shown, strength, pick) in enumerate(zip(roots, (0.0, 1.0, 1.0), (0.0, 0.0, 1.0))):
        shown["nnvis_gradcam"], shown["nnvis_evidence_map"] = strength, pick
        network = Network(shown)
        for layer in network.layers:
            network.show(layer, layer["nnvis_layer"] == "input")
        labels.label_of(network.layer("input"))[names.LABEL_SHOWN] = 0
        x, y, z = root.location  # -Y is to the right for a camera looking along +X
        shown.location = (x, y - step * index, z)
    bpy.context.view_layer.update()
    close_up(np.concatenate([unit_corners(shown, "input") for shown in roots]),
             (-1.0, 0.0, 0.0), 1.55)


def answer(scene_api, connections_api, root):
    """A close-up of the answer: digit 5 at epoch 1, still answered '6'."""
    from nnvis.nnvis_addon.blender import answer as answer_api

    root["nnvis_sample"], root["nnvis_epoch"] = 2, 1.0
    close_up(mesh_corners(answer_api.answer_objects(root)[0]), (-1.0, -0.35, 0.1), 1.7)


def gradcam_forming(args) -> None:
    """docs/images/digits_gradcam.gif: the Grad-CAM of the predicted class forming over the 13
    recorded epochs on the input picture of digit 5 (close-up)."""
    import bpy
    from nnvis.nnvis_addon.blender import render, scene
    sys.path.insert(0, str(ROOT / "scripts"))
    from render_video import write_gif

    bpy.ops.wm.read_homefile(use_empty=True)
    render.configure_cycles(bpy.context.scene, width=320, height=320, samples=args.samples)
    root = scene.import_network(explained_example(), scene.ImportOptions(sample=2))
    root["nnvis_gradcam"] = 1.0
    close_up(unit_corners(root, "input"), (-1.0, -0.15, 0.05), 1.25)
    frames = []
    out = ROOT / "out" / "gradcam_frames"
    out.mkdir(parents=True, exist_ok=True)
    for index, epoch in enumerate(np.arange(0.0, 12.01, 0.5)):
        root["nnvis_epoch"] = float(epoch)
        for obj in scene.network.owned_objects(root):
            obj.update_tag()
        bpy.context.scene.render.filepath = str(out / f"{index:03d}.png")
        bpy.ops.render.render(write_still=True)
        frames.append(out / f"{index:03d}.png")
    write_gif(frames, 6, IMAGES / "digits_gradcam.gif")


def tiny_resnet_export(folder: Path) -> Path:
    """A small ResNet-style model (stem, two residual blocks with BatchNormalization and skip
    Adds, global average pooling) trained 3 epochs on the digits, recorded with EpochRecorder."""
    document = folder / "tiny_resnet.nnvis.json"
    if document.exists():
        return document
    import keras
    import numpy as np
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    import nnvis_export

    keras.utils.set_random_seed(1)
    digits = load_digits()
    images = np.stack([zoom(image, 2, order=1) for image in digits.images])[..., None] / 16.0
    inputs = keras.Input((16, 16, 1), name="input")
    h = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    h = keras.layers.ReLU(name="stem_relu")(keras.layers.BatchNormalization(name="stem_bn")(h))
    for block in range(2):
        skip = h
        h = keras.layers.Conv2D(8, 3, padding="same", name=f"b{block}_conv1")(h)
        h = keras.layers.BatchNormalization(name=f"b{block}_bn1")(h)
        h = keras.layers.ReLU(name=f"b{block}_relu1")(h)
        h = keras.layers.Conv2D(8, 3, padding="same", name=f"b{block}_conv2")(h)
        h = keras.layers.BatchNormalization(name=f"b{block}_bn2")(h)
        h = keras.layers.Add(name=f"b{block}_add")([h, skip])
        h = keras.layers.ReLU(name=f"b{block}_out")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(h)
    model = keras.Model(inputs, outputs, name="tiny_resnet")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    recorder = nnvis_export.EpochRecorder(images[-4:], folder, labels=digits.target[-4:],
                                          name="tiny_resnet")
    model.fit(images[:1500], digits.target[:1500], epochs=3, batch_size=64, verbose=0,
              callbacks=[recorder])
    return Path(recorder.export_path)


ZOO = ROOT / "out" / "zoo"


def zoo_export(name: str):
    """A real architecture exported by scripts/make_zoo.py (untrained, sklearn's china.jpg as
    input), made on first use."""
    def export() -> Path:
        document = ZOO / name / f"{name}.nnvis.json"
        if not document.exists():
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_zoo.py"), "--out",
                            str(ZOO), "--only", name], check=True)
        return document
    return export

def operation(scene_api, connections_api, root):
    """A close-up of one operation: conv1's map 3 at row 6, column 7 for the digit shown,
    the 3x3 window on the input picture and the cell it writes."""
    import bpy
    from mathutils import Vector
    from nnvis.nnvis_addon.blender import operation as operation_api
    from nnvis.nnvis_addon.blender.api import Network

    bpy.context.scene.frame_set(1)
    network = Network(root)
    network.show_operation("conv1", channel=3, row=6, col=7, frame_start=1 - 7 * 6)
    # Only what the operation reads and writes: the input and conv1 (the others, their labels
    # and connections hide with them).
    for layer in network.layers:
        if layer["nnvis_layer"] not in ("input", "conv1"):
            scene_api.set_layer_visible(layer, False)
    made = operation_api.operation_objects(root)
    shown = [made[0], *(layer for layer in network.layers
                        if layer["nnvis_layer"] in ("input", "conv1"))]
    depsgraph = bpy.context.evaluated_depsgraph_get()
    corners = np.concatenate([  # world-space boxes of what the picture shows, as evaluated
        [tuple(obj.evaluated_get(depsgraph).matrix_world @ Vector(corner))
         for corner in obj.evaluated_get(depsgraph).bound_box] for obj in shown])
    close_up(corners, (-1.0, -0.8, 0.35), 2.1)  # from the side: both labels clear


PICTURES = {
    # name: (export, import options, adjust function, into Blender's startup scene)
    "digits_cnn": (lambda: EXAMPLE, {}, None, False),
    "digits_cnn_collapsed": (lambda: EXAMPLE, {"map_layout": "linear"}, collapsed_and_grid, False),
    "digits_traced": (lambda: EXAMPLE, {}, traced_cell, False),
    "digits_gradcam": (explained_example, {"sample": 1}, gradcam, False),
    "digits_saliency": (explained_example, {"sample": 2}, saliency, False),
    "digits_answer": (explained_example, {}, answer, False),
    "digits_operation": (lambda: EXAMPLE, {}, operation, False),
    "tiny_resnet": (lambda: tiny_resnet_export(ROOT / "out" / "tiny_resnet"), {}, None, False),
    # The default import of real architectures, as File > Import gives it in the startup scene.
    "resnet50": (zoo_export("resnet50"), {}, None, True),
    "mobilenetv2": (zoo_export("mobilenetv2"), {}, None, True),
    "conv_bn_relu": (zoo_export("conv_bn_relu"), {}, None, True),
}


GIF = "digits_gradcam_gif"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--only", nargs="*", choices=sorted([*PICTURES, GIF]))
    args = parser.parse_args(argv)
    import bpy
    import_extension_package()
    from nnvis.nnvis_addon.blender import connections, render, scene

    IMAGES.mkdir(parents=True, exist_ok=True)
    if args.only is None or GIF in args.only:
        gradcam_forming(args)
    for name in [name for name in args.only or PICTURES if name != GIF]:
        export, options, adjust, startup = PICTURES[name]
        path = export()
        bpy.ops.wm.read_homefile(use_empty=not startup)
        render.configure_cycles(bpy.context.scene, width=args.width, height=args.height,
                                samples=args.samples)
        root = scene.import_network(path, scene.ImportOptions(**options))
        if adjust is not None:
            adjust(scene, connections, root)
        bpy.context.scene.render.filepath = str(IMAGES / f"{name}.png")
        started = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        print(f"{name}.png in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
