"""One export, written epoch by epoch: :class:`ExportSession` checks the model and the samples
once, then for every recorded epoch computes every layer's activations
(:mod:`~nnvis_export.activations`), collects the weights and writes both through
:class:`nnvis_addon.core.export_format.ExportWriter`; the finished export is read back with
:func:`~nnvis_addon.core.export_format.read_export` before it is reported as written.
:func:`export_model` is the simplest source: one model as one epoch.

Epoch numbers: epoch 0 is the network before training; epoch ``k`` is the network after ``k``
epochs of training (Keras's ``on_epoch_end(k - 1)``, ``ModelCheckpoint``'s ``{epoch}`` = k).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nnvis_addon.core.export_format import ExportFormatError, ExportWriter, NetworkExport, read_export

from ._version import __version__
from .activations import ActivationProbe
from .errors import ExportError, ExportWarning
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
from .text import file_name, log, shape_text

ACTIVATION_DTYPES = ("float16", "float32")
WEIGHT_DTYPE = "float32"
GENERATOR = f"nnvis_export {__version__}"
FLOAT16_MAX = float(np.finfo(np.float16).max)


def check_activation_dtype(dtype: str) -> None:
    if dtype not in ACTIVATION_DTYPES:
        raise ExportError(f"activation dtype must be one of {', '.join(ACTIVATION_DTYPES)}, "
                          f"got {dtype!r}")


class ExportSession:
    """Writes one export: samples once, then each recorded epoch's weights and activations.

    Arrays go to the sidecar as soon as an epoch is recorded; only the small structure document
    (array references, metrics, predictions) and the latest epoch's output scores stay in memory.

    ``continue_from``: an export this session extends (a second ``fit`` with the same
    :class:`~nnvis_export.recorder.EpochRecorder`): its epochs are copied into the new files
    before the first new one, and new epoch numbers must come after its last.
    """

    def __init__(self, model, samples, out_dir: os.PathLike | str, *, labels=None,
                 name: str | None = None, activation_dtype: str = "float16",
                 class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True, continue_from: os.PathLike | str | None = None):
        check_activation_dtype(activation_dtype)
        self.model = model
        build_sequential(model, samples)
        self.graph = model_graph(model)
        check_data_format(self.graph)
        warn_custom_layers(self.graph)
        self.samples = prepare_samples(samples, model_input_shape(model), model_input_dtype(model))
        count = self.samples.shape[0]
        self.labels = prepare_labels(labels, count)
        self.sample_names = prepare_sample_names(sample_names, count)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.out_dir = Path(out_dir)
        self.model_name = (name or model.name or "model")[:256]
        self.file_name = file_name(self.model_name)
        self.activation_dtype = activation_dtype
        self.batch_size = int(batch_size)
        self.verbose = verbose
        self.probe = ActivationProbe(model, self.graph, activation_dtype, verbose)
        self.output_layer = output_layer_name(model)
        self.writer: ExportWriter | None = None
        self.layers: list[dict] = []
        self.weighted: dict[str, list] = {}
        self.epochs: list[dict] = []
        self.input_refs: list[int] = []
        self.samples_ref: int | None = None
        self.last_scores: np.ndarray | None = None
        self.bytes_written = 0
        self.failed = False
        self.started = time.perf_counter()
        self.new_epochs = 0
        self.earlier: NetworkExport | None = None
        if continue_from is not None:
            self.earlier = self._earlier_export(Path(continue_from))

    def _earlier_export(self, path: Path) -> NetworkExport | None:
        """The export to extend, or None (with a warning) when it is gone or does not match."""
        try:
            earlier = read_export(path, check_finite=False)
        except ExportFormatError as exc:
            warnings.warn(f"cannot add to the earlier export ({exc}); writing a new one",
                          ExportWarning, stacklevel=4)
            return None
        names = [g.name for g in self.graph]
        if [layer.name for layer in earlier.layers] != names or \
                earlier.num_samples != self.samples.shape[0] or \
                tuple(earlier.input_shape) != tuple(self.samples.shape[1:]):
            warnings.warn(f"the earlier export {path.name!r} has other layers or samples than "
                          f"model {self.model.name!r} now; writing a new one", ExportWarning,
                          stacklevel=4)
            return None
        return earlier

    @property
    def last_epoch(self) -> int | None:
        """The last epoch number recorded (or in the export being extended), None if none."""
        if self.epochs:
            return self.epochs[-1]["epoch"]
        return self.earlier.epoch_numbers[-1] if self.earlier is not None else None

    # -- recording ---------------------------------------------------------------------------

    def record(self, epoch: int, metrics: Mapping | None = None) -> None:
        """Compute and write the model's current state as epoch number ``epoch``.

        On any error the partial sidecar is removed and the session cannot be finished.
        """
        if self.failed:
            raise ExportError("this export failed earlier and was removed; start a new one")
        try:
            self._record(int(epoch), metrics)
        except BaseException:
            self.failed = True
            self.abort()
            raise

    def _record(self, epoch: int, metrics: Mapping | None) -> None:
        self._check_epoch_number(epoch)
        t0 = time.perf_counter()
        activations, scores = self.probe.run(self.samples, self.batch_size)
        t_predict = time.perf_counter() - t0
        if self.writer is None:
            self._start(activations)
            self._copy_earlier_epochs()
        refs = self._write_activations(epoch, activations)
        if _is_classifier_output(tuple(scores.shape[1:])):
            self.last_scores = scores
        weights = self._write_weights(epoch)
        numbers = _metrics(metrics)
        predictions = None if self.last_scores is None else \
            _classes(self.last_scores, self._layer(self.output_layer))
        self.epochs.append(_epoch_entry(epoch, numbers, predictions, weights, refs))
        self.new_epochs += 1
        shown = ", ".join(f"{k} {v:.4g}" for k, v in numbers.items() if v is not None)
        log(self.verbose, f"epoch {epoch}: {len(self.layers)} layers x {len(self.labels)} samples "
                          f"({len(weights)} with weights), predict {t_predict:.2f} s, "
                          f"{self.bytes_written / 1e6:.2f} MB written"
                          + (f"; {shown}" if shown else ""))

    def _check_epoch_number(self, epoch: int) -> None:
        if epoch < 0:
            raise ExportError(f"epoch numbers start at 0, got {epoch}")
        if self.last_epoch is not None and epoch <= self.last_epoch:
            raise ExportError(f"epoch {epoch} recorded after epoch {self.last_epoch}: "
                              f"epoch numbers must increase")

    def _add(self, array: np.ndarray, dtype: str) -> int:
        array = np.asarray(array)
        ref = self.writer.add_array(array, dtype=dtype)
        self.bytes_written += int(array.size) * np.dtype(dtype).itemsize
        return ref

    def _start(self, activations: dict[str, np.ndarray]) -> None:
        """Open the files, write the samples and make the layer records (at the first epoch,
        when the activations give every layer's output shape)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = ExportWriter(self.out_dir, self.file_name)
        for i in range(self.samples.shape[0]):
            self.input_refs.append(self._add(self.samples[i], self.samples.dtype.name))
        self.samples_ref = self._add(self.samples, self.samples.dtype.name)
        for g in self.graph:
            shape = tuple(self.samples.shape[1:]) if g.is_input else \
                tuple(int(d) for d in activations[g.name].shape[1:])
            self.layers.append(layer_record(g, shape))
            variables = layer_variables(g)
            if variables:
                self.weighted[g.name] = variables

    def _write_activations(self, epoch: int, activations: dict[str, np.ndarray]) -> dict[str, int]:
        """Every layer's activations into the sidecar (the input's are the samples); their refs."""
        refs: dict[str, int] = {}
        for record, g in zip(self.layers, self.graph):
            if g.is_input:
                refs[g.name] = self.samples_ref
                continue
            array = activations.pop(g.name)
            if list(array.shape[1:]) != record["output_shape"] or array.shape[0] != len(self.labels):
                raise ExportError(f"layer {g.name!r} changed its output shape to "
                                  f"{shape_text(array.shape[1:])} at epoch {epoch}")
            if self.activation_dtype == "float16":
                overflow = int(np.count_nonzero(np.isinf(array)))
                if overflow:
                    log(self.verbose, f"warning: layer {g.name!r} at epoch {epoch} has {overflow} "
                                      f"infinite values (beyond float16's range of +-{FLOAT16_MAX:g}"
                                      f"?); export with activation dtype float32")
            refs[g.name] = self._add(array, self.activation_dtype)
            del array
        return refs

    def _write_weights(self, epoch: int) -> dict[str, list[int]]:
        """The weighted layers' current weights into the sidecar; their refs by layer."""
        weights: dict[str, list[int]] = {}
        for record in self.layers:
            variables = self.weighted.get(record["name"])
            if not variables:
                continue
            arrays = [np.asarray(v.numpy(), dtype=np.float32) for v in variables]
            for spec, array in zip(record["weights"], arrays):
                if list(array.shape) != spec["shape"]:
                    raise ExportError(f"layer {record['name']!r} weight {spec['name']!r} changed "
                                      f"shape to {list(array.shape)} at epoch {epoch}")
            weights[record["name"]] = [self._add(a, WEIGHT_DTYPE) for a in arrays]
        return weights

    def _layer(self, name: str):
        return next(g.layer for g in self.graph if g.name == name)

    def _copy_earlier_epochs(self) -> None:
        """The epochs of the export being extended, copied into this session's files."""
        if self.earlier is None:
            return
        earlier, self.earlier = self.earlier, None  # its memory maps close once copied
        for epoch in earlier.epochs:
            weights = {layer: [self._add(w, WEIGHT_DTYPE) for w in arrays]
                       for layer, arrays in epoch.weights.items()}
            activations = {
                g.name: self.samples_ref if g.is_input else
                self._add(epoch.activations[g.name], self.activation_dtype) for g in self.graph}
            self.epochs.append(_epoch_entry(epoch.epoch, epoch.metrics, epoch.predictions,
                                            weights, activations))

    # -- finishing ---------------------------------------------------------------------------

    def finish(self) -> Path:
        """Write the structure document, read the export back to validate it, return its path."""
        if self.failed:
            raise ExportError("this export failed earlier and was removed; start a new one")
        if self.writer is None:
            raise ExportError("nothing to write: no epoch was recorded")
        try:
            samples = self._sample_entries()
            path = self.writer.finish(model=self._model_entry(), layers=self.layers,
                                      samples=samples, epochs=self.epochs, generator=GENERATOR)
        except BaseException:
            self.abort()
            raise
        try:
            export = read_export(path)
        except ExportFormatError as exc:
            raise ExportError(f"the export just written does not read back: {exc}") from exc
        json_size = path.stat().st_size
        bin_size = (path.parent / f"{self.file_name}.bin").stat().st_size
        log(self.verbose, f"wrote {path} ({len(export.layers)} layers, {export.num_samples} "
                          f"samples, {len(export.epochs)} epochs; {json_size / 1e3:.1f} kB "
                          f"structure + {bin_size / 1e6:.2f} MB arrays) in "
                          f"{time.perf_counter() - self.started:.1f} s")
        self.writer = None
        return path

    def _sample_entries(self) -> list[dict[str, Any]]:
        """Each sample's name, input and label, and the last epoch's prediction when the model
        is a classifier (its scores written now)."""
        score_refs = []
        if self.last_scores is not None:
            score_refs = [self._add(self.last_scores[i], "float32")
                          for i in range(self.last_scores.shape[0])]
            classes = self.epochs[-1]["predictions"]
        samples = []
        for i, ref in enumerate(self.input_refs):
            sample: dict[str, Any] = {"name": self.sample_names[i], "input": ref,
                                      "label": self.labels[i]}
            if score_refs:
                sample["prediction"] = {"class": classes[i], "scores": score_refs[i]}
            samples.append(sample)
        return samples

    def _model_entry(self) -> dict[str, Any]:
        model: dict[str, Any] = {"name": self.model_name, "frameworks": _frameworks(),
                                 "input_shape": list(self.samples.shape[1:])}
        if self.class_names is not None:
            model["class_names"] = self.class_names
        return model

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def _epoch_entry(epoch: int, metrics: Mapping | None, predictions: Sequence[int] | None,
                 weights: dict[str, list[int]], activations: dict[str, int]) -> dict[str, Any]:
    """One epoch of the structure document (format v1 ``epochs[]``)."""
    entry: dict[str, Any] = {"epoch": epoch}
    if metrics:
        entry["metrics"] = dict(metrics)
    if predictions is not None:
        entry["predictions"] = list(predictions)
    entry["weights"] = weights
    entry["activations"] = activations
    return entry


def _frameworks() -> dict[str, str]:
    found = {"keras": keras.__version__, "backend": keras.backend.backend(),
             "numpy": np.__version__}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        found["tensorflow"] = tf.__version__
    return found


def _is_classifier_output(shape: tuple[int, ...]) -> bool:
    return len(shape) == 1


def _classes(scores: np.ndarray, output_layer) -> list[int]:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 1:
        activation = layer_config(output_layer).get("activation")
        threshold = 0.5 if activation == "sigmoid" else 0.0
        return [int(v) for v in (scores[:, 0] >= threshold)]
    return [int(v) for v in np.argmax(np.nan_to_num(scores, nan=-np.inf), axis=1)]


def _metrics(logs: Mapping | None) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {}
    for key, value in (logs or {}).items():
        try:
            number = float(np.asarray(value).reshape(()))
        except (TypeError, ValueError):
            continue
        metrics[str(key)] = number if math.isfinite(number) else None
    return metrics


def export_model(model, samples, out_dir: os.PathLike | str, labels=None, name: str | None = None,
                 activation_dtype: str = "float16", *, epoch: int = 0,
                 metrics: Mapping[str, float] | None = None,
                 class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True) -> Path:
    """Export a (trained) model as one epoch record; return the structure document's path."""
    session = ExportSession(model, samples, out_dir, labels=labels, name=name,
                            activation_dtype=activation_dtype, class_names=class_names,
                            sample_names=sample_names, batch_size=batch_size, verbose=verbose)
    try:
        session.record(epoch, metrics)
    except BaseException:
        session.abort()
        raise
    return session.finish()
