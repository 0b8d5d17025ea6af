"""The files of one export, written epoch by epoch, without any framework: :class:`EpochWriter`
takes the layer records, the samples and, for every recorded epoch, the activations, weights and
output scores as numpy arrays, and writes them through
:class:`nnvis_addon.core.export_format.ExportWriter`; the finished export is read back with
:func:`~nnvis_addon.core.export_format.read_export` before it is reported as written.

Every source ends here: Keras models through :class:`~nnvis_export.session.ExportSession`, ONNX
files through :func:`~nnvis_export.onnx_export.export_onnx`. Importing this module imports
numpy and nnvis's own reader only.

Class evidence (format 1.1, docs/format.md "Explanations"): a source that can take gradients
sets :attr:`EpochWriter.explain` (``{"gradcam_layer": name or absent, "score": "logit" or
"output"}``) and passes each epoch's maps to :meth:`EpochWriter.write_epoch` as
``explanations`` ({kind: (S, *spatial) array}, kinds from
``core.export_format.EXPLANATION_KINDS``). The Keras source computes them in
:mod:`~nnvis_export.explain`; a PyTorch or ONNX source hooks in here the same way where it has
gradients.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnvis_addon.core.export_format import (
    EXPLANATION_KINDS,
    ExportFormatError,
    ExportWriter,
    NetworkExport,
    read_export,
)

from ._version import __version__
from .errors import ExportError, ExportWarning
from .text import file_name, log, shape_text

ACTIVATION_DTYPES = ("float16", "float32")
WEIGHT_DTYPE = "float32"
GENERATOR = f"nnvis_export {__version__}"
FLOAT16_MAX = float(np.finfo(np.float16).max)


def check_activation_dtype(dtype: str) -> None:
    if dtype not in ACTIVATION_DTYPES:
        raise ExportError(f"activation dtype must be one of {', '.join(ACTIVATION_DTYPES)}, "
                          f"got {dtype!r}")


class EpochWriter:
    """One export's files: the samples once, then each recorded epoch's weights and activations.

    Arrays go to the sidecar as soon as an epoch is written; only the small structure document
    (array references, metrics, predictions) and the latest epoch's output scores stay in memory.
    ``samples`` is the prepared (S, *input_shape) array; ``labels`` and ``sample_names`` have
    one entry per sample. The files are opened by :meth:`start`, with the layer records (format
    v1 ``layers[]``, the input first), once the first epoch's activations give their shapes.
    """

    def __init__(self, out_dir, model_name: str, samples: np.ndarray, *,
                 labels: Sequence[int | None], sample_names: Sequence[str],
                 class_names: Sequence[str] | None, activation_dtype: str,
                 frameworks: Mapping[str, str], verbose: bool = True):
        check_activation_dtype(activation_dtype)
        self.out_dir = Path(out_dir)
        self.model_name = (model_name or "model")[:256]
        self.file_name = file_name(self.model_name)
        self.samples = samples
        self.labels = list(labels)
        self.sample_names = list(sample_names)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.activation_dtype = activation_dtype
        self.frameworks = dict(frameworks)
        self.verbose = verbose
        self.writer: ExportWriter | None = None
        self.layers: list[dict] = []
        self.epochs: list[dict] = []
        self.input_refs: list[int] = []
        self.samples_ref: int | None = None
        self.last_scores: np.ndarray | None = None
        self._score_refs: tuple[int, list[int]] = (0, [])  # (epochs when written, refs)
        self.explain: dict[str, str] | None = None  # format 1.1 "explain", set by the source
        self.bytes_written = 0
        self.started = time.perf_counter()

    @property
    def is_open(self) -> bool:
        return self.writer is not None

    def _add(self, array: np.ndarray, dtype: str) -> int:
        assert self.writer is not None
        array = np.asarray(array)
        ref = self.writer.add_array(array, dtype=dtype)
        self.bytes_written += int(array.size) * np.dtype(dtype).itemsize
        return ref

    def start(self, layers: list[dict]) -> None:
        """Open the files, write the samples and keep the layer records."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = ExportWriter(self.out_dir, self.file_name)
        for i in range(self.samples.shape[0]):
            self.input_refs.append(self._add(self.samples[i], self.samples.dtype.name))
        self.samples_ref = self._add(self.samples, self.samples.dtype.name)
        self.layers = layers

    def write_epoch(self, epoch: int, activations: dict[str, np.ndarray],
                    weights: Mapping[str, Sequence[np.ndarray]], scores: np.ndarray | None,
                    metrics: Mapping | None = None, sigmoid_output: bool = False,
                    explanations: Mapping[str, np.ndarray] | None = None
                    ) -> dict[str, float | None]:
        """One epoch: every layer's activations (the input's are the samples; ``activations``
        is emptied as they are written), the weights of every layer that declares some, the
        model's output ``scores`` (S, ...) for the predictions, and the class evidence maps
        (``explanations``, see the module docstring). Returns the metrics kept."""
        refs = self._write_activations(epoch, activations)
        if scores is not None and _is_classifier_output(tuple(scores.shape[1:])):
            self.last_scores = np.asarray(scores, dtype=np.float32)
        weight_refs = self._write_weights(epoch, weights)
        numbers = _metrics(metrics)
        predictions = None if self.last_scores is None else \
            predicted_classes(self.last_scores, sigmoid_output)
        self.epochs.append(epoch_entry(epoch, numbers, predictions, weight_refs, refs,
                                       self._write_explanations(explanations)))
        return numbers

    def _write_explanations(self, explanations: Mapping[str, np.ndarray] | None
                            ) -> dict[str, int]:
        if not explanations:
            return {}
        if self.explain is None:
            raise ExportError("explanations given, but the source did not describe them "
                              "(EpochWriter.explain)")
        unknown = sorted(set(explanations) - set(EXPLANATION_KINDS))
        if unknown:
            raise ExportError(f"unknown kind of explanation {unknown[0]!r} "
                              f"({', '.join(EXPLANATION_KINDS)})")
        return {kind: self._add(np.asarray(array, np.float32), "float32")
                for kind, array in explanations.items()}

    def _write_activations(self, epoch: int, activations: dict[str, np.ndarray]) -> dict[str, int]:
        refs: dict[str, int] = {}
        for record in self.layers:
            name = record["name"]
            if not record["inbound"]:
                assert self.samples_ref is not None
                refs[name] = self.samples_ref
                continue
            array = activations.pop(name)
            if list(array.shape[1:]) != record["output_shape"] or array.shape[0] != len(self.labels):
                raise ExportError(f"layer {name!r} changed its output shape to "
                                  f"{shape_text(array.shape[1:])} at epoch {epoch}")
            if self.activation_dtype == "float16":
                overflow = int(np.count_nonzero(np.isinf(array)))
                if overflow:
                    log(self.verbose, f"warning: layer {name!r} at epoch {epoch} has {overflow} "
                                      f"infinite values (beyond float16's range of +-{FLOAT16_MAX:g}"
                                      f"?); export with activation dtype float32")
            refs[name] = self._add(array, self.activation_dtype)
            del array
        return refs

    def _write_weights(self, epoch: int, weights: Mapping[str, Sequence[np.ndarray]]
                       ) -> dict[str, list[int]]:
        refs: dict[str, list[int]] = {}
        for record in self.layers:
            if not record.get("weights"):
                continue
            arrays = [np.asarray(a, dtype=np.float32) for a in weights[record["name"]]]
            for spec, array in zip(record["weights"], arrays):
                if list(array.shape) != spec["shape"]:
                    raise ExportError(f"layer {record['name']!r} weight {spec['name']!r} changed "
                                      f"shape to {list(array.shape)} at epoch {epoch}")
            refs[record["name"]] = [self._add(a, WEIGHT_DTYPE) for a in arrays]
        return refs

    def copy_epochs(self, earlier: NetworkExport) -> None:
        """The epochs of an earlier export of the same layers and samples, copied into these
        files (before any new epoch)."""
        for epoch in earlier.epochs:
            weights = {layer: [self._add(w, WEIGHT_DTYPE) for w in arrays]
                       for layer, arrays in epoch.weights.items()}
            activations = {
                record["name"]: self.samples_ref if not record["inbound"] else
                self._add(epoch.activations[record["name"]], self.activation_dtype)
                for record in self.layers}
            explanations = {kind: self._add(array, "float32")
                            for kind, array in epoch.explanations.items()}
            if explanations and earlier.explain is not None:
                self.explain = {key: value for key, value in
                                (("gradcam_layer", earlier.explain.gradcam_layer),
                                 ("score", earlier.explain.score)) if value is not None}
            self.epochs.append(epoch_entry(epoch.epoch, epoch.metrics, epoch.predictions,
                                           weights, activations, explanations))

    def publish(self) -> Path:
        """Write the structure document of the epochs so far (their arrays are on disk already):
        compact JSON, not read back (the export :meth:`finish` writes is); more epochs may follow
        (``write_epoch``)."""
        return self._write_document(readable=False)

    def finish(self) -> Path:
        """Write the structure document, read the export back to validate it, return its path.
        An export published epoch by epoch has its sidecar segments joined into one first."""
        if self.writer is not None:
            self.writer.merge_segments()
        path = self._write_document()
        segments, self.writer = self.writer.segments if self.writer else [], None
        try:
            export = read_export(path)
        except ExportFormatError as exc:
            raise ExportError(f"the export just written does not read back: {exc}") from exc
        json_size = path.stat().st_size
        bin_size = sum(segment["byte_length"] for segment in segments)
        log(self.verbose, f"wrote {path} ({len(export.layers)} layers, {export.num_samples} "
                          f"samples, {len(export.epochs)} epochs; {json_size / 1e3:.1f} kB "
                          f"structure + {bin_size / 1e6:.2f} MB arrays) in "
                          f"{time.perf_counter() - self.started:.1f} s")
        return path

    def _write_document(self, readable: bool = True) -> Path:
        if self.writer is None:
            raise ExportError("nothing to write: no epoch was recorded")
        try:
            samples = self._sample_entries()
            explained = any("explanations" in entry for entry in self.epochs)
            return self.writer.publish(model=self._model_entry(), layers=self.layers,
                                       samples=samples, epochs=self.epochs, generator=GENERATOR,
                                       explain=self.explain if explained else None,
                                       readable=readable)
        except BaseException:
            self.abort()
            raise

    def _sample_entries(self) -> list[dict[str, Any]]:
        """Each sample's name, input and label, and the last epoch's prediction when the model
        is a classifier (its scores written once, at the first document that shows them)."""
        score_refs = []
        if self.last_scores is not None:
            if self._score_refs[0] != len(self.epochs):
                self._score_refs = (len(self.epochs), [
                    self._add(self.last_scores[i], "float32")
                    for i in range(self.last_scores.shape[0])])
            score_refs = self._score_refs[1]
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
        model: dict[str, Any] = {"name": self.model_name, "frameworks": self.frameworks,
                                 "input_shape": list(self.samples.shape[1:])}
        if self.class_names is not None:
            model["class_names"] = self.class_names
        return model

    def abort(self) -> None:
        """Remove the partial files (nothing to do when none are open)."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def earlier_export(path: Path, layer_names: Sequence[str], samples: np.ndarray, what: str,
                   stacklevel: int) -> NetworkExport | None:
    """The export a recording session extends (``continue_from``), or None, with a warning, when
    it cannot be read or its layers or samples are not those of ``what`` (the model) now."""
    try:
        earlier = read_export(path, check_finite=False)
    except ExportFormatError as exc:
        warnings.warn(f"cannot add to the earlier export ({exc}); writing a new one",
                      ExportWarning, stacklevel=stacklevel)
        return None
    if [layer.name for layer in earlier.layers] != list(layer_names) or \
            earlier.num_samples != samples.shape[0] or \
            tuple(earlier.input_shape) != tuple(samples.shape[1:]):
        warnings.warn(f"the earlier export {path.name!r} has other layers or samples than "
                      f"{what} now; writing a new one", ExportWarning, stacklevel=stacklevel)
        return None
    return earlier


class RecordingSession:
    """What the export sessions of every source share: their files (``files``), the export they
    extend (``earlier``: its epochs come first), the epoch numbering, and what a failed record
    leaves: its partial files removed, nothing more to record or finish. A source implements
    ``_record(epoch, metrics)``, which opens the files at the first record (``_open_files``)."""

    files: EpochWriter
    earlier: NetworkExport | None = None
    failed = False

    @property
    def last_epoch(self) -> int | None:
        """The last epoch number recorded (or in the export being extended), None if none."""
        if self.files.epochs:
            return self.files.epochs[-1]["epoch"]
        return self.earlier.epoch_numbers[-1] if self.earlier is not None else None

    def record(self, epoch: int, metrics: Mapping | None = None) -> None:
        """Compute and write the current state as epoch number ``epoch``.

        On any error the partial sidecar is removed and the session cannot be finished.
        """
        self._check_usable()
        try:
            epoch = int(epoch)
            check_epoch_number(epoch, self.last_epoch)
            self._record(epoch, metrics)
        except BaseException:
            self.failed = True
            self.abort()
            raise

    def _record(self, epoch: int, metrics: Mapping | None) -> None:
        raise NotImplementedError

    def _open_files(self, layers: list[dict]) -> None:
        """Open the files with the layer records (at the first record) and copy the epochs of
        the export being extended into them."""
        self.files.start(layers)
        if self.earlier is not None:
            earlier, self.earlier = self.earlier, None  # its memory maps close once copied
            self.files.copy_epochs(earlier)

    def publish(self) -> Path:
        """A complete export of the epochs recorded so far; more may be recorded after it."""
        self._check_usable()
        return self.files.publish()

    def finish(self) -> Path:
        """Write the structure document, read the export back to validate it, return its path."""
        self._check_usable()
        return self.files.finish()

    def abort(self) -> None:
        self.files.abort()

    def _check_usable(self) -> None:
        if self.failed:
            raise ExportError("this export failed earlier and was removed; start a new one")


def check_epoch_number(epoch: int, last: int | None) -> None:
    """Epoch numbers start at 0 and increase (``last``: the one recorded before, if any)."""
    if epoch < 0:
        raise ExportError(f"epoch numbers start at 0, got {epoch}")
    if last is not None and epoch <= last:
        raise ExportError(f"epoch {epoch} recorded after epoch {last}: epoch numbers must "
                          f"increase")


def epoch_entry(epoch: int, metrics: Mapping | None, predictions: Sequence[int] | None,
                weights: dict[str, list[int]], activations: dict[str, int],
                explanations: Mapping[str, int] | None = None) -> dict[str, Any]:
    """One epoch of the structure document (format v1 ``epochs[]``; ``explanations`` 1.1)."""
    entry: dict[str, Any] = {"epoch": epoch}
    if metrics:
        entry["metrics"] = dict(metrics)
    if predictions is not None:
        entry["predictions"] = list(predictions)
    entry["weights"] = weights
    entry["activations"] = activations
    if explanations:
        entry["explanations"] = dict(explanations)
    return entry


def _is_classifier_output(shape: tuple[int, ...]) -> bool:
    return len(shape) == 1


def predicted_classes(scores: np.ndarray, sigmoid_output: bool) -> list[int]:
    """The predicted class per sample: argmax, or for one output unit ``score >= 0.5`` (a
    sigmoid output) / ``>= 0`` (a logit)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 1:
        threshold = 0.5 if sigmoid_output else 0.0
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
