#!/usr/bin/env python3
"""Train the bundled example and write it to examples/digits/ (digits_cnn.nnvis.json + .bin).

A small CNN learns scikit-learn's bundled 8x8 digits (no download), upsampled to 16x16. An
EpochRecorder records 4 test images of different classes before training and after every epoch,
with float16 activations. Seeds are fixed and TensorFlow runs deterministic ops, so a re-run on
the same machine and versions writes the same arrays.

    .venv/bin/python scripts/make_example.py [--out examples/digits] [--epochs 12]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the working tree's packages, whatever is installed

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

SEED = 1234
NAME = "digits_cnn"
SIZE = 16


def load_data(seed: int = SEED):
    """Digits upsampled to 16x16 (bilinear, scipy.ndimage.zoom order=1), scaled to 0..1."""
    import numpy as np
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    factor = SIZE / images.shape[1]
    upsampled = np.stack([zoom(image, factor, order=1) for image in images])
    upsampled = np.clip(upsampled, 0.0, 1.0).astype(np.float32)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    return train_test_split(upsampled, labels, test_size=0.2, random_state=seed, stratify=labels)


def build_model():
    import keras
    from keras import layers

    return keras.Sequential([
        layers.Input((SIZE, SIZE, 1), name="input"),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dense(32, activation="relu", name="dense1"),
        layers.Dense(10, activation="softmax", name="output"),
    ], name=NAME)


def pick_samples(x_test, y_test, classes=(0, 3, 5, 8)):
    """The first test image of each of ``classes`` (4 different digits)."""
    import numpy as np

    indices = [int(np.flatnonzero(y_test == c)[0]) for c in classes]
    return indices, x_test[indices], y_test[indices]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "digits")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)

    import numpy as np
    random.seed(SEED)
    np.random.seed(SEED)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception as exc:  # noqa: BLE001 - older TF builds
        print(f"note: deterministic ops unavailable ({exc})", file=sys.stderr)

    from nnvis_export import EpochRecorder, summarize

    started = time.perf_counter()
    x_train, x_test, y_train, y_test = load_data()
    indices, samples, labels = pick_samples(x_test, y_test)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    recorder = EpochRecorder(samples, args.out, labels=labels, name=NAME, activation_dtype="float16",
                             class_names=[str(i) for i in range(10)],
                             sample_names=[f"test #{i} (digit {y_test[i]})" for i in indices])
    model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=args.epochs,
              batch_size=32, shuffle=True, verbose=0, callbacks=[recorder])
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {accuracy:.4f} (loss {loss:.4f}) on {len(y_test)} held-out digits; "
          f"trained in {time.perf_counter() - started:.1f} s")
    summarize(recorder.export_path)
    total = sum(p.stat().st_size for p in args.out.glob(f"{NAME}.*"))
    print(f"example size: {total / 1e6:.2f} MB")
    if total >= 3e6:
        print("error: the example must stay under 3 MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
