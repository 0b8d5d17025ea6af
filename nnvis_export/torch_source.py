"""The PyTorch source of an export: :class:`TorchExportSession` writes a module's layers
(:mod:`~nnvis_export.torch_graph`), weights and activations epoch by epoch through the
framework-free :class:`~nnvis_export.writing.EpochWriter`; :func:`export_torch` is one module
as one epoch, :func:`load_torch_program` reads a saved ``torch.export`` program (``.pt2``).

Samples come in the module's own layout (NCHW for images); the export stores them, like every
activation, channels last (NHWC), as format v1 says.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import ExportError
from .samples import prepare_labels, prepare_sample_names, prepare_samples
from .text import log
from .torch_graph import PROBE_BATCH, TorchGraph, static_batch
from .writing import (
    EpochWriter,
    RecordingSession,
    check_activation_dtype,
    earlier_export,
)

#: Saved programs the command line reads; state dicts and pickled modules are refused.
PROGRAM_SUFFIXES = (".pt2",)
STATE_DICT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


def as_array(samples) -> np.ndarray:
    """Samples given as a tensor or an array, as a numpy array."""
    if isinstance(samples, torch.Tensor):
        return samples.detach().cpu().numpy()
    return np.asarray(samples)


def program_input(program) -> tuple[tuple[int | None, ...], str]:
    """A ``torch.export`` program's one input: a sample's shape (``None`` where free) and dtype."""
    inputs = list(program.graph_signature.user_inputs)
    if len(inputs) != 1:
        raise ExportError(f"the program takes {len(inputs)} inputs; nnvis format v1 records "
                          f"models with exactly one input")
    for node in program.graph.nodes:
        value = node.meta.get("val") if node.op == "placeholder" and node.name in inputs else None
        if isinstance(value, torch.Tensor) and value.dim() >= 1:
            shape = tuple(d if isinstance(d, int) else None for d in value.shape[1:])
            return shape, str(value.dtype).removeprefix("torch.")
    raise ExportError("the program's input is not a batch of tensors")


def _input_spec(module, samples: np.ndarray) -> tuple[tuple[int | None, ...], str]:
    """One sample's shape in the module's layout and the input dtype: a program's own, else the
    samples' (a batch) and the module's floating-point parameters' dtype."""
    if isinstance(module, torch.export.ExportedProgram):
        return program_input(module)
    if samples.ndim < 2:
        raise ExportError(f"samples have shape {samples.shape}; give a batch (S, *input_shape) in "
                          f"the module's own layout (NCHW for images)")
    dtype = "float32"
    if isinstance(module, torch.nn.Module):
        floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
        dtype = str(floats[0]).removeprefix("torch.") if floats else dtype
    return tuple(samples.shape[1:]), dtype


def _probe(samples: np.ndarray, batch: int | None) -> torch.Tensor:
    count = batch or PROBE_BATCH
    return torch.from_numpy(np.ascontiguousarray(np.repeat(samples[:1], count, axis=0)))


def _frameworks(graph: TorchGraph) -> dict[str, str]:
    return {"torch": torch.__version__, "numpy": np.__version__, "traced_by": graph.traced_by}


class TorchExportSession(RecordingSession):
    """Writes one export of a PyTorch module (or a ``torch.export`` program): samples once,
    then each recorded epoch's weights and activations. Options as for Keras's
    :class:`~nnvis_export.session.ExportSession`; ``continue_from``: an export of the same
    layers and samples whose epochs come first."""

    def __init__(self, module, samples, out_dir: os.PathLike | str, *, labels=None,
                 name: str | None = None, activation_dtype: str = "float16",
                 class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True, continue_from: os.PathLike | str | None = None,
                 stacklevel: int = 3):
        check_activation_dtype(activation_dtype)
        array = as_array(samples)
        input_shape, dtype = _input_spec(module, array)
        self.samples = prepare_samples(array, input_shape, dtype)
        self.graph = TorchGraph(module, _probe(self.samples, static_batch(module)))
        self.graph.warn_custom_layers(stacklevel + 1)
        stored = self.graph.input.layout.to_channels_last(torch.from_numpy(self.samples))
        count = self.samples.shape[0]
        model_name = name or (type(module).__name__ if isinstance(module, torch.nn.Module)
                              else "program")
        self.files = EpochWriter(out_dir, model_name, np.ascontiguousarray(stored.numpy()),
                                 labels=prepare_labels(labels, count),
                                 sample_names=prepare_sample_names(sample_names, count),
                                 class_names=class_names, activation_dtype=activation_dtype,
                                 frameworks=_frameworks(self.graph), verbose=verbose)
        self.activation_dtype = activation_dtype
        self.batch_size = int(batch_size)
        self.verbose = verbose
        output = self.graph.by_name[self.graph.output_layer]
        self.sigmoid_output = output.config.get("activation") == "sigmoid"
        self.earlier = None if continue_from is None else earlier_export(
            Path(continue_from), [layer.name for layer in self.graph.layers], self.files.samples,
            "the module", stacklevel + 1)

    def _record(self, epoch: int, metrics: Mapping | None) -> None:
        started = time.perf_counter()
        activations, scores = self.graph.run(self.samples, self.batch_size, self.activation_dtype)
        t_run = time.perf_counter() - started
        if not self.files.is_open:
            self._open_files([self.graph.record(layer.name) for layer in self.graph.layers])
        weights = {layer.name: self.graph.weights(layer.name) for layer in self.graph.layers
                   if layer.weights}
        numbers = self.files.write_epoch(epoch, activations, weights, scores, metrics,
                                         self.sigmoid_output)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in numbers.items() if v is not None)
        log(self.verbose, f"epoch {epoch}: {len(self.graph.layers)} layers x "
                          f"{self.samples.shape[0]} samples ({len(weights)} with weights), "
                          f"forward {t_run:.2f} s, {self.files.bytes_written / 1e6:.2f} MB written"
                          + (f"; {shown}" if shown else ""))


def export_torch(module, samples, out_dir: os.PathLike | str, labels=None,
                 class_names: Sequence[str] | None = None, *, name: str | None = None,
                 activation_dtype: str = "float16", epoch: int = 0,
                 metrics: Mapping[str, float] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True) -> Path:
    """Export a PyTorch module (or a ``torch.export`` program) as one epoch; return the
    structure document's path. ``samples``: an array or tensor (S, C, H, W) (the module's own
    layout). The module runs in eval mode without gradients; its training mode is restored."""
    session = TorchExportSession(module, samples, out_dir, labels=labels, name=name,
                                 activation_dtype=activation_dtype, class_names=class_names,
                                 sample_names=sample_names, batch_size=batch_size,
                                 verbose=verbose, stacklevel=3)
    session.record(epoch, metrics)  # a failed record removes its partial files
    return session.finish()


def load_torch_program(path: os.PathLike | str):
    """A saved ``torch.export`` program (``torch.export.save`` -> ``.pt2``), without its Python
    class. State dicts and pickled modules (``.pt``/``.pth``) are refused: loading them runs
    or needs the model's code."""
    from .models import check_torch_program_path

    path = check_torch_program_path(path)
    try:
        return torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad archive
        raise ExportError(f"cannot load program {path.name!r} with torch.export.load: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                          ) from None
