#!/usr/bin/env python3
"""Export a zoo of real architectures for the slide test (issue 11) and the README pictures.

    .venv/bin/python scripts/make_zoo.py [--out out/zoo] [--only NAME ...]

Models (all built with ``weights=None``: nothing is downloaded, the weights are untrained; every
model is built after ``keras.backend.clear_session()`` and ``keras.utils.set_random_seed(SEED)``,
so ``--only`` gives the same weights and layer names as a full run):

  resnet50      keras.applications.ResNet50, 224x224x3 (with its ImageNet classifier head)
  mobilenetv2   keras.applications.MobileNetV2, 224x224x3
  vgg16         keras.applications.VGG16, 224x224x3
  conv_bn_relu  a student CNN, 64x64x3: 3 blocks Conv2D-BatchNormalization-ReLU(-Dropout) +
                MaxPooling, then Flatten, Dense 64, Dropout, Dense 10 softmax
  branches      a small functional model, 64x64x3: two parallel conv branches merged by
                Concatenate, MaxPooling, Flatten, Dense 10 softmax

Input sample: one real photograph, china.jpg from ``sklearn.datasets.load_sample_images()``
(427x640, shipped with scikit-learn), centre-cropped to a square and resized with PIL (bicubic)
to the model's input size. What goes into each model:

  conv_bn_relu, branches   the photo as RGB floats 0..1
  mobilenetv2              ``mobilenet_v2.preprocess_input(photo * 255)``: RGB scaled to -1..1
                           (an affine map of the photo, channel order kept)
  resnet50, vgg16          ``resnet50/vgg16.preprocess_input(photo * 255)`` ("caffe" mode: the
                           channels reversed to BGR, minus the ImageNet channel means, 0..255
                           scale), then flipped back to RGB order: each channel keeps its own
                           mean subtracted, only the order is RGB. The BGR order is a convention
                           of Keras' ImageNet weights, which untrained (weights=None) models do
                           not have; RGB order keeps the input layer a picture in its own
                           colours (BGR would show the photo with red and blue swapped).

Each model is exported with ``nnvis_export.export_model`` (one sample, float16 activations,
epoch 0) to ``OUT/<name>/<name>.nnvis.json`` + ``.bin``; the photo itself (H x W x 3 float32,
0..1, the input size) goes to ``OUT/<name>/photo.npy`` for ``../shared/tools/slide_check.py``.
One line per model: export seconds, sidecar MB, layer count and the input layer's name.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the working tree's packages, whatever is installed

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

SEED = 1234
PHOTO = "china.jpg"
NAMES = ("resnet50", "mobilenetv2", "vgg16", "conv_bn_relu", "branches")


# --------------------------------------------------------------------------------------------
# The photograph


def load_photo(size: int, name: str = PHOTO):
    """``name`` from scikit-learn's sample images, centre-cropped to a square and resized to
    ``size`` x ``size`` (PIL bicubic): float32 (size, size, 3), RGB, 0..1."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    images = load_sample_images()
    names = [Path(f).name for f in images.filenames]
    image = np.asarray(images.images[names.index(name)], dtype=np.uint8)
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(image[top:top + side, left:left + side])
    resized = square.resize((size, size), Image.Resampling.BICUBIC)
    photo = np.asarray(resized, dtype=np.float32) / 255.0
    return np.clip(photo, 0.0, 1.0)


def caffe_rgb(preprocess, photo):
    """Keras' "caffe" ``preprocess_input`` (RGB -> BGR, minus the ImageNet channel means, 0..255)
    with the channels put back in RGB order (see the module docstring)."""
    import numpy as np

    bgr = preprocess(np.array(photo * 255.0, dtype=np.float32))
    return np.ascontiguousarray(bgr[..., ::-1], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# The models: each builder returns (model, sample) with sample = one input (H, W, 3)


def build_resnet50(photo_for):
    import keras

    photo = photo_for(224)
    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    return model, caffe_rgb(keras.applications.resnet50.preprocess_input, photo), photo


def build_mobilenetv2(photo_for):
    import keras

    photo = photo_for(224)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    sample = keras.applications.mobilenet_v2.preprocess_input(photo * 255.0)
    return model, sample, photo


def build_vgg16(photo_for):
    import keras

    photo = photo_for(224)
    model = keras.applications.VGG16(weights=None, input_shape=(224, 224, 3))
    return model, caffe_rgb(keras.applications.vgg16.preprocess_input, photo), photo


def build_conv_bn_relu(photo_for):
    """The CNN a student writes: Conv-BN-ReLU(-Dropout) blocks with pooling, a Flatten head."""
    import keras
    from keras import layers

    photo = photo_for(64)
    inputs = keras.Input((64, 64, 3), name="image")
    x = inputs
    for i, (filters, dropout) in enumerate(((16, 0.0), (32, 0.1), (64, 0.2)), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"drop{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    x = layers.Dropout(0.5, name="drop_dense")(x)
    outputs = layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="conv_bn_relu"), photo, photo


def build_branches(photo_for):
    """Two parallel conv branches (3x3-3x3 and 1x1-5x5) merged by Concatenate, a Flatten head."""
    import keras
    from keras import layers

    photo = photo_for(64)
    inputs = keras.Input((64, 64, 3), name="image")
    a = layers.Conv2D(8, 3, padding="same", activation="relu", name="branch_a_conv1")(inputs)
    a = layers.Conv2D(8, 3, padding="same", activation="relu", name="branch_a_conv2")(a)
    b = layers.Conv2D(8, 1, padding="same", activation="relu", name="branch_b_conv1")(inputs)
    b = layers.Conv2D(8, 5, padding="same", activation="relu", name="branch_b_conv2")(b)
    x = layers.Concatenate(name="concat")([a, b])
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="branches"), photo, photo


BUILDERS = {
    "resnet50": build_resnet50,
    "mobilenetv2": build_mobilenetv2,
    "vgg16": build_vgg16,
    "conv_bn_relu": build_conv_bn_relu,
    "branches": build_branches,
}


# --------------------------------------------------------------------------------------------


def export_one(name: str, out: Path, photo_for) -> dict:
    import keras
    import numpy as np

    import nnvis_export

    keras.backend.clear_session()  # fresh name counters: the input layer is "input_layer" in
    keras.utils.set_random_seed(SEED)  # every keras.applications model, whatever ran before
    random.seed(SEED)
    model, sample, photo = BUILDERS[name](photo_for)
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    path = nnvis_export.export_model(model, np.asarray(sample, np.float32)[np.newaxis], folder,
                                     name=name, activation_dtype="float16",
                                     sample_names=[f"{PHOTO} (sklearn sample image)"],
                                     verbose=False)
    seconds = time.perf_counter() - started
    np.save(folder / "photo.npy", photo.astype(np.float32))
    document = json.loads(Path(path).read_text())
    layers = document.get("layers", [])
    inputs = [layer["name"] for layer in layers if layer.get("type") == "InputLayer"] or \
        [layer["name"] for layer in layers if not layer.get("inbound")]
    sidecars = [p for p in folder.iterdir() if p.suffix == ".bin"]
    sidecar_mb = sum(p.stat().st_size for p in sidecars) / 1e6
    return {"name": name, "path": str(path), "export_s": round(seconds, 1),
            "sidecar_mb": round(sidecar_mb, 1), "layers": len(layers),
            "input_layer": inputs[0] if inputs else None,
            "sample_range": (round(float(np.min(sample)), 2), round(float(np.max(sample)), 2))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="models: " + ", ".join(NAMES))
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "zoo",
                        help="folder for the exports, one sub-folder per model (default out/zoo)")
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME",
                        help="export only these models (" + ", ".join(NAMES) + ")")
    args = parser.parse_args(argv)

    import numpy as np

    np.random.seed(SEED)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notes: one predict function per model
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception as exc:  # noqa: BLE001 - older TF builds
        print(f"note: deterministic ops unavailable ({exc})", file=sys.stderr)

    photos: dict[int, np.ndarray] = {}

    def photo_for(size: int) -> np.ndarray:
        if size not in photos:
            photos[size] = load_photo(size)
        return photos[size]

    for name in args.only or NAMES:
        r = export_one(name, args.out, photo_for)
        print(f"{name:13s} export {r['export_s']:6.1f} s  sidecar {r['sidecar_mb']:7.1f} MB  "
              f"{r['layers']:4d} layers  input layer {r['input_layer']!r}  "
              f"sample range {r['sample_range'][0]}..{r['sample_range'][1]}  -> {r['path']}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
