"""Per-epoch checkpoint files in a folder: which files, which epoch (no TensorFlow needed).

Loading a checkpoint's weights into a model needs Keras and lives in
:mod:`nnvis_export.keras_export`; finding and numbering them does not, so the command line can
check a checkpoint folder before it spends seconds importing TensorFlow.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ExportError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    path: Path          # the file, or a TF checkpoint's prefix (without .index)
    kind: str           # "keras" (weights.h5/.keras/.h5) or "tf" (tf.train.Checkpoint)


_EPOCH_WORD = re.compile(r"epoch[_\-. ]?0*(\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


def _epoch_from_name(stem: str) -> int | None:
    match = _EPOCH_WORD.search(stem)
    if match:
        return int(match.group(1))
    numbers = _NUMBER.findall(stem)
    return int(numbers[0]) if numbers else None


def list_checkpoints(folder: os.PathLike | str) -> list[Checkpoint]:
    """Per-epoch weights in ``folder``, sorted by epoch.

    Keras weight files (``*.weights.h5``, ``*.keras``, ``*.h5``): the epoch is the number after
    "epoch" in the name, else the first number (``epoch_003.weights.h5``, ``weights.03.weights.h5``
    and ``weights.03-0.41.weights.h5`` are all epoch 3). TensorFlow checkpoints
    (``ckpt-N.index`` + data files): epoch N.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"checkpoint folder {str(folder)!r} does not exist or is not a folder")
    found: list[Checkpoint] = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if not path.is_file():
            continue
        if name.endswith(".index"):
            prefix = path.with_suffix("")
            match = re.search(r"-(\d+)$", prefix.name)
            epoch = int(match.group(1)) if match else _epoch_from_name(prefix.name)
            kind = "tf"
            target = prefix
        elif name.endswith(".weights.h5") or name.endswith(MODEL_SUFFIXES):
            stem = name[:-len(".weights.h5")] if name.endswith(".weights.h5") else path.stem
            epoch = _epoch_from_name(stem)
            kind = "keras"
            target = path
        else:
            continue
        if epoch is None:
            raise ExportError(f"checkpoint {name!r} has no epoch number in its name "
                              f"(expected e.g. epoch_003.weights.h5 or ckpt-3.index)")
        found.append(Checkpoint(epoch, target, kind))
    if not found:
        raise ExportError(f"no checkpoints in {str(folder)!r} (expected *.weights.h5 files or "
                          f"TensorFlow ckpt-N.index files)")
    found.sort(key=lambda c: c.epoch)
    for a, b in zip(found, found[1:]):
        if a.epoch == b.epoch:
            raise ExportError(f"checkpoints {a.path.name!r} and {b.path.name!r} both are epoch "
                              f"{a.epoch}")
    return found
