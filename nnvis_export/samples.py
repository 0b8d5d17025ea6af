"""The samples and their labels: which files (one ``.npy`` array or image files), decoding images
for the model's input, and checking that samples and labels fit the model.

Importing this module does not import TensorFlow, so the command line checks its sample files
before it spends seconds on that; images are decoded with Pillow (TensorFlow only without it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ExportError
from .text import shape_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

#: Input dtypes samples keep; any other model input dtype gets float32 samples.
SAMPLE_DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64")


# --------------------------------------------------------------------------------------------
# Files: one array or images (no TensorFlow)


@dataclass
class SampleFiles:
    """What ``--samples`` named: one array read from a ``.npy`` file, or image files to decode."""

    array: np.ndarray | None = None
    array_name: str = ""                     # the .npy file's stem, for sample names
    images: list[Path] = field(default_factory=list)


def _image_paths(paths: Iterable[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def read_sample_files(paths: Sequence[os.PathLike | str]) -> SampleFiles:
    """Read one ``.npy`` array (``allow_pickle=False``) or list image files/folders."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ExportError("no samples given: at least one is needed")
    for path in paths:
        if not path.exists():
            raise ExportError(f"samples {str(path)!r} do not exist")
    if len(paths) == 1 and paths[0].suffix.lower() == ".npy":
        return SampleFiles(array=load_npy(paths[0], "samples"), array_name=paths[0].stem)
    if any(p.suffix.lower() == ".npy" for p in paths):
        raise ExportError("give either one .npy file or image files, not several .npy files")
    images = _image_paths(paths)
    bad = [p.name for p in images if p.suffix.lower() not in IMAGE_SUFFIXES]
    if bad:
        raise ExportError(f"{bad[0]!r} is neither a .npy array nor an image "
                          f"({', '.join(IMAGE_SUFFIXES)})")
    if not images:
        raise ExportError("no image files found in the given samples")
    return SampleFiles(images=images)


def load_npy(path: os.PathLike | str, what: str) -> np.ndarray:
    """A numeric array from a ``.npy`` file; pickled object arrays are refused, never loaded."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{what} {str(path)!r} do not exist")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ExportError(f"cannot read {what} {path.name!r} as a numeric .npy array "
                          f"(pickled object arrays are refused): {exc}") from None
    except OSError as exc:
        raise ExportError(f"cannot read {what} {path.name!r}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Decoding: the samples for a model input (Pillow; TensorFlow only without it)


def load_samples(paths: Sequence[os.PathLike | str], input_shape: Sequence[int | None],
                 rescale: float = 1.0, channels_first: bool = False
                 ) -> tuple[np.ndarray, list[str]]:
    """Samples from one ``.npy`` file (``allow_pickle=False``) or from image files/folders; see
    :func:`load_sample_files`. Returns the array and a name per sample."""
    return load_sample_files(read_sample_files(paths), input_shape, rescale, channels_first)


def load_sample_files(files: SampleFiles, input_shape: Sequence[int | None],
                      rescale: float = 1.0, channels_first: bool = False
                      ) -> tuple[np.ndarray, list[str]]:
    """The samples of ``files`` (see :func:`read_sample_files`) for a model input of
    ``input_shape``, and a name per sample.

    Images are loaded with Pillow (or TensorFlow's decoder when Pillow is missing), resized
    (bilinear, as ``keras.utils.load_img``) to the model input's height and width, grayscale when
    the model takes one channel, and multiplied by ``rescale`` (pixel values are 0..255); with
    ``channels_first`` (PyTorch and ONNX models) the input is (channels, height, width) and the
    images come in that layout. An array is returned as it is.
    """
    if files.array is not None:
        array = files.array
        if array.ndim == len(input_shape):
            count = 1 if tuple(array.shape) == tuple(input_shape) else array.shape[0]
        else:
            count = array.shape[0] if array.ndim else 0
        return array, [f"{files.array_name}[{i}]" for i in range(count)]
    image_shape = tuple(input_shape)
    if channels_first and len(image_shape) == 3:
        image_shape = (*image_shape[1:], image_shape[0])
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3, 4):
        layout = "1 or 3 or 4 channels, height, width" if channels_first else \
            "height, width, 1 or 3 or 4 channels"
        raise ExportError(f"the model takes inputs of shape {shape_text(input_shape)}; images "
                          f"need a model input of shape ({layout})")
    height, width, channels = image_shape
    target = (height, width) if height is not None and width is not None else None
    arrays = [_load_image(path, channels, target) * np.float32(rescale) for path in files.images]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ExportError(f"the images have different sizes {sorted(shapes)}; the model input has "
                          f"no fixed size, so resize them first")
    images = np.stack(arrays)
    if channels_first:
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images, [p.name for p in files.images]


def _load_image(path: Path, channels: int, target: tuple[int, int] | None) -> np.ndarray:
    """One image as float32 (H, W, channels), pixel values 0..255, resized (bilinear) to target.

    Uses Pillow the way ``keras.utils.load_img`` does (same conversions and resampling, without
    importing Keras); without Pillow, TensorFlow's own PNG/JPEG/BMP/GIF decoder does the job.
    """
    try:
        import PIL.Image
    except ImportError:
        return _load_image_tf(path, channels, target)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    try:
        with PIL.Image.open(path) as opened:
            image = opened
            if image.mode != mode and not (mode == "L" and image.mode in ("I;16", "I")):
                image = image.convert(mode)
            if target is not None and image.size != (target[1], target[0]):
                image = image.resize((target[1], target[0]), PIL.Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for a bad file
        raise ExportError(f"cannot read image {path.name!r}: {exc}") from None
    return array[..., np.newaxis] if array.ndim == 2 else array


def _load_image_tf(path: Path, channels: int, target: tuple[int, int] | None) -> np.ndarray:
    import tensorflow as tf

    try:
        image = tf.io.decode_image(path.read_bytes(), channels=channels, expand_animations=False)
    except Exception as exc:  # noqa: BLE001 - tf raises InvalidArgumentError and others
        raise ExportError(f"cannot read image {path.name!r}: {str(exc).splitlines()[0]}") from None
    image = tf.cast(image, tf.float32)
    if target is not None and tuple(image.shape[:2]) != tuple(target):
        image = tf.image.resize(image, target, method="bilinear")
    return image.numpy()


# --------------------------------------------------------------------------------------------
# Checks: samples and labels that fit the model


def prepare_samples(samples, input_shape: Sequence[int | None], dtype: str = "float32") -> np.ndarray:
    """``samples`` as an array of shape (S, *input_shape) in the model's input dtype.

    Accepts one sample (shape == input_shape) or a batch, and a batch of single-channel images
    without their channel axis when the model takes (H, W, 1).
    """
    array = np.asarray(samples)
    if array.dtype.kind not in "biuf":
        raise ExportError(f"samples must be a numeric array, got dtype {array.dtype}")
    input_shape = tuple(input_shape)
    rank = len(input_shape)

    def fits(shape) -> bool:
        return len(shape) == rank and all(w is None or w == d for w, d in zip(input_shape, shape))

    if array.ndim == rank and fits(array.shape):
        array = array[np.newaxis]
    elif array.ndim == rank and input_shape[-1] == 1 and fits(array.shape[1:] + (1,)):
        array = array[..., np.newaxis]
    if array.ndim != rank + 1 or not fits(array.shape[1:]):
        raise ExportError(f"samples have shape {shape_text(array.shape)}, so one sample is "
                          f"{shape_text(array.shape[1:])}; the model expects samples of shape "
                          f"{shape_text(input_shape)} (a batch: (S, {shape_text(input_shape)[1:]})")
    if array.shape[0] == 0:
        raise ExportError("no samples given: at least one is needed")
    if any(d == 0 for d in array.shape[1:]):
        raise ExportError(f"samples of shape {shape_text(array.shape[1:])} are empty")
    target = dtype if dtype in SAMPLE_DTYPES else "float32"
    return np.ascontiguousarray(array, dtype=target)


def prepare_labels(labels, count: int) -> list[int | None]:
    """One class number (or None) per sample, from class numbers or one-hot rows."""
    if labels is None:
        return [None] * count
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[0] == count and array.shape[1] > 1:  # one-hot
        array = np.argmax(array, axis=1)
    array = array.reshape(-1) if array.ndim == 2 and array.shape[1] == 1 else array
    if array.ndim != 1 or array.shape[0] != count:
        raise ExportError(f"labels have shape {shape_text(array.shape)}; expected one label per "
                          f"sample ({count},)")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array) & (array == np.round(array))):
            raise ExportError("labels must be class numbers (integers)")
    elif array.dtype.kind not in "biu":
        raise ExportError(f"labels must be class numbers (integers), got dtype {array.dtype}")
    return [int(v) for v in array]


def prepare_sample_names(names: Sequence[str] | None, count: int) -> list[str]:
    """A name per sample: the given ones, else ``sample 0``, ``sample 1``, ..."""
    if names is not None and len(names) != count:
        raise ExportError(f"{len(names)} sample names for {count} samples")
    return [str(n) for n in names] if names is not None else [f"sample {i}" for i in range(count)]
