"""ONNX models in: :func:`export_onnx` loads a ``.onnx`` file (external data only from the
model's own folder), maps its graph to format v1 layers (:mod:`~nnvis_export.onnx_graph`,
:mod:`~nnvis_export.onnx_ops`), computes every drawn node's output for the samples with
onnxruntime in one run (CPU), and writes one epoch through
:class:`~nnvis_export.writing.EpochWriter`.

Samples come in the model's own layout (N, C, H, W for a PyTorch model); the export stores them
and every map channels-last, as the Keras path does. Importing this module imports neither
onnx nor onnxruntime; :func:`check_onnx_path` is what the command line checks first.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import ExportError
from .samples import prepare_labels, prepare_sample_names, prepare_samples
from .text import log, shape_text
from .writing import EpochWriter, check_activation_dtype, check_epoch_number

ONNX_SUFFIX = ".onnx"


def is_onnx_path(path: os.PathLike | str) -> bool:
    return Path(path).suffix.lower() == ONNX_SUFFIX


def check_onnx_path(path: os.PathLike | str) -> Path:
    """``path`` when it is an existing ``.onnx`` file, else ExportError (no onnx import)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"model {str(path)!r} does not exist" if not path.exists() else
                          f"model {str(path)!r} is a folder; expected a .onnx file")
    if not is_onnx_path(path):
        raise ExportError(f"model {path.name!r}: expected a .onnx file")
    return path


def load_onnx(path: os.PathLike | str):
    """The ONNX model in ``path``, its external data (if any) read only from files inside the
    model's folder."""
    import onnx

    path = check_onnx_path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds for a bad file
        raise ExportError(f"cannot read ONNX model {path.name!r}: {exc}") from None
    _load_external_data(model, path)
    return model


def _load_external_data(model, path: Path) -> None:
    from onnx.external_data_helper import (
        _get_all_tensors,
        load_external_data_for_model,
        uses_external_data,
    )

    folder = path.parent.resolve()
    external = [t for t in _get_all_tensors(model) if uses_external_data(t)]
    for tensor in external:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or "\\" in location or \
                ".." in Path(location).parts or not target.is_relative_to(folder):
            raise ExportError(f"ONNX model {path.name!r}: tensor {tensor.name!r} keeps its data "
                              f"in {location!r}, outside the model's folder; refused")
        if not target.is_file():
            raise ExportError(f"ONNX model {path.name!r}: tensor {tensor.name!r} keeps its data "
                              f"in {location!r}, which does not exist next to the model")
    if external:
        try:
            load_external_data_for_model(model, str(folder))
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"cannot read the external data of ONNX model {path.name!r}: "
                              f"{exc}") from None


class OnnxSource:
    """A loaded ONNX model and the plan of its graph (:func:`~nnvis_export.onnx_graph.plan_graph`):
    what the command line needs to read samples for it before the export."""

    def __init__(self, path: os.PathLike | str, name: str | None = None):
        from .onnx_graph import plan_graph

        self.path = Path(path)
        self.model = load_onnx(self.path)
        self.name = name or self.path.stem
        self.plan = plan_graph(self.model, self.name)

    @property
    def sample_shape(self) -> tuple[int | None, ...]:
        """One sample's shape as the model takes it (no batch axis), None where free."""
        return tuple(d if isinstance(d, int) and d > 0 else None
                     for d in self.plan.input_shape[1:])

    @property
    def channels_first(self) -> bool:
        from .onnx_graph import CHANNELS_FIRST

        return self.plan.input_layout == CHANNELS_FIRST

    def scales_its_input(self) -> bool:
        """Whether the input goes first into a scaling of its own: arithmetic with a constant
        (``(x - mean) / std``) or a BatchNormalization."""
        first = [n for n in self.plan.data_nodes if self.plan.input_name in n.input]
        return bool(first) and all(
            n.op_type == "BatchNormalization" or (n.op_type in ("Sub", "Div", "Mul", "Add")
                                                  and any(i not in self.plan.data for i in n.input))
            for n in first)


def fixed_batch(plan) -> int | None:
    batch = plan.input_shape[0]
    return batch if isinstance(batch, int) and batch > 0 else None


def run_graph(model, plan, samples: np.ndarray, model_name: str) -> dict[str, np.ndarray]:
    """Every tensor of ``plan.fetch`` for the samples: one onnxruntime run (CPU) with all of them
    as graph outputs (a model whose batch axis is fixed to 1 runs once per sample)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in plan.fetch if n not in outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own kinds
        raise ExportError(f"onnxruntime cannot load ONNX model {model_name!r}: "
                          f"{_first_line(exc)}") from None
    names = [o.name for o in session.get_outputs()]
    batch = fixed_batch(plan)
    if batch is not None and batch not in (1, samples.shape[0]):
        raise ExportError(f"ONNX model {model_name!r} takes batches of exactly {batch} samples, "
                          f"got {samples.shape[0]}; give {batch} samples or export the model "
                          f"with a free batch axis (torch.onnx.export(..., dynamic_axes=...))")
    batches = [samples] if batch != 1 else [samples[i:i + 1] for i in range(samples.shape[0])]
    try:
        runs = [session.run(names, {plan.input_name: b}) for b in batches]
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"onnxruntime cannot run ONNX model {model_name!r} on samples of shape "
                          f"{shape_text(samples.shape[1:])}: {_first_line(exc)}") from None
    return {name: np.concatenate([run[i] for run in runs]) if name in plan.data and len(runs) > 1
            else runs[0][i] for i, name in enumerate(names)}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _frameworks(model) -> dict[str, str]:
    import onnx
    import onnxruntime

    found = {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
             "numpy": np.__version__}
    if model.producer_name:
        found["producer"] = f"{model.producer_name} {model.producer_version}".strip()
    return found


def export_onnx(path: os.PathLike | str | OnnxSource, samples, out_dir: os.PathLike | str,
                labels=None, class_names: Sequence[str] | None = None, *, name: str | None = None,
                activation_dtype: str = "float16", epoch: int = 0,
                metrics: Mapping[str, float] | None = None,
                sample_names: Sequence[str] | None = None, verbose: bool = True) -> Path:
    """Export an ONNX model file as one epoch record; return the structure document's path.

    ``path``: a ``.onnx`` file (or an :class:`OnnxSource` of one). ``samples``: an array in the
    model's input layout, (S, C, H, W) for a PyTorch model, or one sample. The export's layers
    carry the Keras path's type names and weight layouts, maps and samples channels-last
    (``docs/format.md`` lists what each op becomes).
    """
    from .onnx_graph import initializer_values, map_graph, to_export_layout

    check_activation_dtype(activation_dtype)
    check_epoch_number(epoch, None)
    started = time.perf_counter()
    source = path if isinstance(path, OnnxSource) else OnnxSource(path, name)
    model, plan, model_name = source.model, source.plan, name or source.name
    samples = prepare_samples(samples, source.sample_shape, plan.input_dtype)
    count = samples.shape[0]
    labels, sample_names = prepare_labels(labels, count), prepare_sample_names(sample_names, count)
    values = run_graph(model, plan, samples, model_name)
    values.update(initializer_values(model))
    values[plan.input_name] = samples
    t_run = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # one warning per custom node, shown at the caller
        layers = map_graph(model, plan, values, count)
    activations = {layer.name: layer.activations(values) for layer in layers[1:]}
    stored = to_export_layout(samples, plan.input_layout)
    records = [layers[0].record(tuple(stored.shape[1:]))]
    records += [layer.record(tuple(activations[layer.name].shape[1:])) for layer in layers[1:]]
    output = next(layer for layer in layers if layer.tensor == plan.output_name) \
        if any(layer.tensor == plan.output_name for layer in layers) else layers[-1]
    files = EpochWriter(out_dir, model_name, stored, labels=labels, sample_names=sample_names,
                        class_names=class_names, activation_dtype=activation_dtype,
                        frameworks=_frameworks(model), verbose=verbose)
    scores = activations[output.name] if output.name in activations else None
    sigmoid = output.type == "Activation" and output.config.get("activation") == "sigmoid"
    try:
        files.start(records)
        files.write_epoch(int(epoch), activations, {layer.name: [a for _, a in layer.weights]
                                                    for layer in layers if layer.weights},
                          scores, metrics, sigmoid)
        log(verbose, f"ONNX model {model_name!r}: {len(plan.data_nodes)} data nodes -> "
                     f"{len(layers)} layers x {count} samples; onnxruntime run and mapping "
                     f"{t_run:.2f} s, {files.bytes_written / 1e6:.2f} MB written")
    except BaseException:
        files.abort()
        raise
    return files.finish()
