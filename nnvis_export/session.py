"""One export, written epoch by epoch: :class:`ExportSession` checks the model and the samples
once, then for every recorded epoch computes every layer's activations
(:mod:`~nnvis_export.activations`), collects the weights and writes both through the
framework-free :class:`~nnvis_export.writing.EpochWriter`, which reads the finished export back
before it is reported as written.
:func:`export_model` is the simplest source: one model as one epoch.

Epoch numbers: epoch 0 is the network before training; epoch ``k`` is the network after ``k``
epochs of training (Keras's ``on_epoch_end(k - 1)``, ``ModelCheckpoint``'s ``{epoch}`` = k).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from nnvis_addon.core.export_format import NetworkExport

from .activations import ActivationProbe
from .explain import make_class_evidence
from .graph import (
    build_sequential,
    check_data_format,
    layer_config,
    layer_record,
    layer_variables,
    model_graph,
    model_input_dtype,
    model_input_shape,
    output_layer_name,
    warn_custom_layers,
)
from .samples import prepare_labels, prepare_sample_names, prepare_samples
from .text import log
from .writing import (
    ACTIVATION_DTYPES,
    EpochWriter,
    RecordingSession,
    check_activation_dtype,
    earlier_export,
    predicted_classes,
)

__all__ = ["ACTIVATION_DTYPES", "ExportSession", "check_activation_dtype", "export_model"]


class ExportSession(RecordingSession):
    """Writes one export of a Keras model: samples once, then each recorded epoch's weights and
    activations (through an :class:`~nnvis_export.writing.EpochWriter`).

    ``continue_from``: an export this session extends (a second ``fit`` with the same
    :class:`~nnvis_export.recorder.EpochRecorder`): its epochs are copied into the new files
    before the first new one, and new epoch numbers must come after its last.
    """

    def __init__(self, model, samples, out_dir: os.PathLike | str, *, labels=None,
                 name: str | None = None, activation_dtype: str = "float16",
                 class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True, continue_from: os.PathLike | str | None = None,
                 explain: bool | None = None):
        check_activation_dtype(activation_dtype)
        self.model = model
        build_sequential(model, samples)
        self.graph = model_graph(model)
        check_data_format(self.graph)
        warn_custom_layers(self.graph)
        self.samples = prepare_samples(samples, model_input_shape(model), model_input_dtype(model))
        count = self.samples.shape[0]
        self.files = EpochWriter(out_dir, name or model.name or "model", self.samples,
                                 labels=prepare_labels(labels, count),
                                 sample_names=prepare_sample_names(sample_names, count),
                                 class_names=class_names, activation_dtype=activation_dtype,
                                 frameworks=_frameworks(), verbose=verbose)
        self.batch_size = int(batch_size)
        self.verbose = verbose
        self.probe = ActivationProbe(model, self.graph, activation_dtype, verbose)
        output_layer = next(g.layer for g in self.graph if g.name == output_layer_name(model))
        self.sigmoid_output = layer_config(output_layer).get("activation") == "sigmoid"
        self.evidence = make_class_evidence(model, self.graph, explain, verbose)
        if self.evidence is not None:
            self.files.explain = self.evidence.description
        self.weighted: dict[str, list] = {}
        self.new_epochs = 0
        self.earlier: NetworkExport | None = None
        if continue_from is not None:
            self.earlier = earlier_export(Path(continue_from), [g.name for g in self.graph],
                                          self.samples, f"model {model.name!r}", stacklevel=4)

    # -- recording ---------------------------------------------------------------------------

    def _record(self, epoch: int, metrics: Mapping | None) -> None:
        t0 = time.perf_counter()
        activations, scores = self.probe.run(self.samples, self.batch_size)
        t_predict = time.perf_counter() - t0
        if not self.files.is_open:
            self._start(activations)
        weights = {name: [v.numpy() for v in variables]
                   for name, variables in self.weighted.items()}
        explanations = None
        if self.evidence is not None:
            predicted = predicted_classes(scores, self.sigmoid_output)
            explanations = self.evidence.compute(self.samples, predicted, self.files.labels,
                                                 self.batch_size)
        numbers = self.files.write_epoch(epoch, activations, weights, scores, metrics,
                                         self.sigmoid_output, explanations)
        self.new_epochs += 1
        shown = ", ".join(f"{k} {v:.4g}" for k, v in numbers.items() if v is not None)
        log(self.verbose, f"epoch {epoch}: {len(self.files.layers)} layers x "
                          f"{self.samples.shape[0]} samples ({len(weights)} with weights), "
                          f"predict {t_predict:.2f} s, "
                          f"{self.files.bytes_written / 1e6:.2f} MB written"
                          + (f"; {shown}" if shown else ""))

    def _start(self, activations: dict[str, np.ndarray]) -> None:
        """Open the files with the layer records (at the first epoch, when the activations give
        every layer's output shape), and copy the epochs of the export being extended."""
        layers = []
        for g in self.graph:
            shape = tuple(self.samples.shape[1:]) if g.is_input else \
                tuple(int(d) for d in activations[g.name].shape[1:])
            layers.append(layer_record(g, shape))
            variables = layer_variables(g)
            if variables:
                self.weighted[g.name] = variables
        self._open_files(layers)


def _frameworks() -> dict[str, str]:
    found = {"keras": keras.__version__, "backend": keras.backend.backend(),
             "numpy": np.__version__}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        found["tensorflow"] = tf.__version__
    return found


def export_model(model, samples, out_dir: os.PathLike | str, labels=None, name: str | None = None,
                 activation_dtype: str = "float16", *, epoch: int = 0,
                 metrics: Mapping[str, float] | None = None,
                 class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True, explain: bool | None = None) -> Path:
    """Export a (trained) model as one epoch record; return the structure document's path.
    ``explain``: class evidence maps (Grad-CAM, saliency: :mod:`~nnvis_export.explain`); None
    computes them for models with a convolution, False never."""
    session = ExportSession(model, samples, out_dir, labels=labels, name=name,
                            activation_dtype=activation_dtype, class_names=class_names,
                            sample_names=sample_names, batch_size=batch_size, verbose=verbose,
                            explain=explain)
    session.record(epoch, metrics)  # a failed record removes its partial files
    return session.finish()
