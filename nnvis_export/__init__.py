"""nnvis exporter: write trained Keras 3 / TensorFlow CNNs in nnvis export format v1.

The Blender add-on never imports this package. Everything that needs TensorFlow lives in
:mod:`nnvis_export.keras_export` and is imported lazily, so ``summarize``, ``list_checkpoints``
and ``read_metrics_log`` (and ``nnvis-export --summary``, and the command line's checks of its
arguments and files) work without loading TensorFlow.

>>> from nnvis_export import EpochRecorder
>>> recorder = EpochRecorder(x_test[:4], "out/", labels=y_test[:4])
>>> model.fit(x, y, epochs=10, callbacks=[recorder])
>>> recorder.export_path
PosixPath('out/my_model.nnvis.json')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .checkpoints import list_checkpoints
from .errors import CustomLayerWarning, ExportError, ExportWarning
from .metrics_log import read_metrics_log
from .summary import summarize

_KERAS_NAMES = {
    "EpochRecorder", "export_model", "export_checkpoints", "load_model", "load_samples",
    "model_graph",
}

__all__ = [
    "CustomLayerWarning", "EpochRecorder", "ExportError", "ExportWarning", "__version__",
    "export_checkpoints", "export_model", "list_checkpoints", "load_model", "load_samples",
    "model_graph", "read_metrics_log", "summarize",
]

if TYPE_CHECKING:  # pragma: no cover
    from .keras_export import (
        EpochRecorder,
        export_checkpoints,
        export_model,
        load_model,
        load_samples,
        model_graph,
    )


def __getattr__(name: str):
    if name in _KERAS_NAMES:
        from . import keras_export
        return getattr(keras_export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
