"""nnvis exporter: write trained Keras 3 / TensorFlow, PyTorch and ONNX CNNs in nnvis export format v1.

The Blender add-on never imports this package. The modules, by job: ``graph`` (the model's layer
graph as format v1 layers), ``samples`` (sample files, images, labels), ``models`` (model files),
``activations`` (every layer's output for the samples), ``session`` (one export written epoch by
epoch, and ``export_model``), ``recorder`` (``EpochRecorder``), ``checkpoints`` (per-epoch weight
files and ``export_checkpoints``), ``writing`` (the files, framework-free), ``onnx_export``,
``onnx_graph`` and ``onnx_ops`` (ONNX files: ``export_onnx``), ``torch_source``,
``torch_graph``, ``torch_ops`` and ``torch_recorder`` (PyTorch modules and ``.pt2`` programs:
``export_torch``, ``TorchEpochRecorder``), ``metrics_log``, ``summary``,
``cli``, ``errors``, ``text``.

Importing the package does not import TensorFlow: ``graph``, ``activations``, ``session`` and
``recorder`` need it and are imported on first use of their names, and ``samples``, ``models``
and ``checkpoints`` import it only inside the functions that load something. So ``summarize``,
``list_checkpoints`` and ``read_metrics_log`` (and ``nnvis-export --summary``, and the command
line's checks of its arguments and files) work without loading TensorFlow. Likewise
``export_onnx`` imports onnx and onnxruntime only when called, and the PyTorch names import
torch on first use.

>>> from nnvis_export import EpochRecorder
>>> recorder = EpochRecorder(x_test[:4], "out/", labels=y_test[:4])
>>> model.fit(x, y, epochs=10, callbacks=[recorder])
>>> recorder.export_path
PosixPath('out/my_model.nnvis.json')
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ._version import __version__
from .checkpoints import export_checkpoints, list_checkpoints
from .errors import CustomLayerWarning, ExportError, ExportWarning
from .metrics_log import read_metrics_log
from .models import load_model
from .samples import load_samples
from .summary import summarize

#: Names whose modules import Keras, loaded on first use: name -> module.
_KERAS_NAMES = {"EpochRecorder": "recorder", "export_model": "session", "model_graph": "graph"}
#: Names whose modules import onnx and onnxruntime when called: name -> module.
_ONNX_NAMES = {"export_onnx": "onnx_export"}
#: Names whose modules import torch, loaded on first use: name -> module.
_TORCH_NAMES = {"export_torch": "torch_source", "load_torch_program": "torch_source",
                "TorchEpochRecorder": "torch_recorder", "LightningRecorder": "torch_recorder"}

__all__ = [
    "CustomLayerWarning", "EpochRecorder", "ExportError", "ExportWarning", "TorchEpochRecorder",
    "__version__", "export_checkpoints", "export_model", "export_onnx", "export_torch",
    "list_checkpoints", "load_model", "load_samples", "load_torch_program", "model_graph",
    "read_metrics_log", "summarize",
]

if TYPE_CHECKING:  # pragma: no cover
    from .graph import model_graph
    from .onnx_export import export_onnx
    from .recorder import EpochRecorder
    from .session import export_model
    from .torch_recorder import TorchEpochRecorder
    from .torch_source import export_torch, load_torch_program


def __getattr__(name: str):
    if name == "LightningRecorder" and not hasattr(import_module(".torch_recorder", __name__), name):
        raise ImportError("nnvis_export.LightningRecorder needs PyTorch Lightning (pip install "
                          "lightning); without it, call TorchEpochRecorder.record in the "
                          "training loop")
    module = _KERAS_NAMES.get(name) or _ONNX_NAMES.get(name) or _TORCH_NAMES.get(name)
    if module is not None:
        return getattr(import_module(f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
