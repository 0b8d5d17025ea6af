"""The command line's input files, checked and read without TensorFlow.

Importing TensorFlow takes seconds; a misspelt path should not. Everything here is plain Python
and numpy: which model file, which samples (one ``.npy`` array or image files), the labels.
Decoding images and fitting samples to a model need Keras and live in
:mod:`nnvis_export.keras_export`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoints import MODEL_SUFFIXES
from .errors import ExportError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def check_model_path(path: os.PathLike | str) -> Path:
    """``path`` when it can hold a model (.keras/.h5 file, SavedModel folder), else ExportError."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"model {str(path)!r} does not exist")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return path
        raise ExportError(f"{str(path)!r} is a folder without saved_model.pb; expected a .keras or "
                          f".h5 file or a SavedModel folder")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ExportError(f"model {path.name!r}: expected a .keras or .h5 file or a SavedModel "
                          f"folder")
    return path


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
