"""``nnvis-export``: write an nnvis export from a saved Keras or ONNX model, or summarize an
export.

    nnvis-export MODEL --samples SAMPLES --out DIR [--labels LABELS.npy] [--indices 0,3,5]
                 [--name NAME] [--dtype float16|float32] [--epoch N | --checkpoints DIR]
                 [--metrics LOG] [--rescale 1/255] [--unsafe-load-code] [--quiet]
    nnvis-export --summary EXPORT

Errors in what was given (a missing file, samples that do not fit the model...) print one
``nnvis-export: error: ...`` line and exit with status 2. Arguments and files are checked before
TensorFlow is imported (which takes seconds), so a wrong argument fails at once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnvis_addon.core.export_format import NnvisError

from .checkpoints import Checkpoint, export_checkpoints, list_checkpoints
from .errors import ExportError, ExportWarning
from .metrics_log import Metrics, read_metrics_log
from .models import check_model_path, check_torch_program_path, is_torch_path
from .onnx_export import check_onnx_path, is_onnx_path
from .samples import SampleFiles, load_npy, read_sample_files

PROG = "nnvis-export"
EXIT_USAGE = 2

#: The largest pixel value that still looks scaled to 0..1 (a little slack for resizing).
SCALED_PIXEL_MAX = 1.0 + 1e-6


def _scale_factor(text: str) -> float:
    """``--rescale``: a number or a fraction such as ``1/255``."""
    numerator, _, denominator = text.partition("/")
    try:
        value = float(numerator) / float(denominator) if denominator else float(numerator)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 1/255, "
                                         f"got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _whole_number(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a trained Keras/TensorFlow, PyTorch or ONNX model's layers, weights and "
                    "activations for the nnvis Blender extension (nnvis format v1).")
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="a .keras or .h5 model file, a SavedModel folder, a .onnx file or a "
                             "saved torch.export program (.pt2) (samples in the model's own "
                             "layout, e.g. (S, C, H, W))")
    parser.add_argument("--samples", nargs="+", metavar="SAMPLES",
                        help="a .npy array of inputs (S, *input_shape), or image files/folders "
                             "(PNG/JPEG, resized to the model input; pixel values 0..255, see "
                             "--rescale)")
    parser.add_argument("--out", metavar="DIR",
                        help="folder to write <name>.nnvis.json and <name>.bin")
    parser.add_argument("--labels", metavar="LABELS.npy",
                        help="a .npy array of class numbers (or one-hot rows), one per sample")
    parser.add_argument("--indices", metavar="I,J,...",
                        help="export only these samples (comma-separated, 0-based)")
    parser.add_argument("--name", help="export name (default: the model's name)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                        help="activation dtype (weights are always float32; default float16)")
    parser.add_argument("--checkpoints", metavar="DIR",
                        help="a folder of per-epoch weights (*.weights.h5 or TF ckpt-N.index); "
                             "writes one epoch per checkpoint, numbered from the file names")
    parser.add_argument("--epoch", type=_whole_number(0),
                        help="epoch number of a single-model export (default: the last epoch "
                             "of --metrics, else 0); not with --checkpoints")
    parser.add_argument("--metrics", metavar="LOG",
                        help="training metrics per epoch: a Keras CSVLogger file or a JSON file "
                             "of history.history (log epoch e is the network after e+1 epochs)")
    parser.add_argument("--class-names", metavar="A,B,...",
                        help="class names, comma-separated, in class order")
    parser.add_argument("--rescale", type=_scale_factor, metavar="FACTOR",
                        help="multiply image pixel values 0..255 by this (e.g. 1/255 for 0..1); "
                             "default: none, right for a model that starts with its own "
                             "Rescaling layer")
    parser.add_argument("--batch-size", type=_whole_number(1), default=32,
                        help="samples per predict call (default 32)")
    parser.add_argument("--no-explain", action="store_true",
                        help="leave out the class evidence maps (Grad-CAM of the last convolution "
                             "and input-gradient saliency, for the predicted class and the true "
                             "label, per sample and epoch), which models with a convolution get "
                             "by default")
    parser.add_argument("--unsafe-load-code", action="store_true",
                        help="load the model with Keras safe_mode off, so Lambda layers load: "
                             "this runs Python code stored in the model file; only for files "
                             "you trust")
    parser.add_argument("--quiet", action="store_true",
                        help="print only warnings and errors (no progress, no summary)")
    parser.add_argument("--summary", metavar="EXPORT",
                        help="print the summary of an existing export (no TensorFlow needed) "
                             "and exit")
    return parser


@dataclass
class CheckedInputs:
    """Everything the command line was given, checked and read without TensorFlow."""

    model: Path
    samples: SampleFiles
    labels: np.ndarray | None
    indices: list[int] | None
    checkpoints: list[Checkpoint] | None
    metrics: Metrics | None
    class_names: list[str] | None


def _parse_indices(text: str) -> list[int]:
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ExportError(f"--indices must be comma-separated integers, got {text!r}") from None
    if not indices:
        raise ExportError("--indices is empty")
    return indices


def _select(array, indices: list[int], what: str):
    count = len(array)
    bad = [i for i in indices if not -count <= i < count]
    if bad:
        raise ExportError(f"--indices {bad[0]} is out of range: {what} has {count} entries")
    return [array[i] for i in indices]


def check_inputs(args: argparse.Namespace) -> CheckedInputs:
    """Check every argument and read every small input file; no TensorFlow is imported."""
    if is_onnx_path(args.model):
        model = check_onnx_path(args.model)
        if args.checkpoints or args.unsafe_load_code:
            raise ExportError(f"{'--checkpoints' if args.checkpoints else '--unsafe-load-code'} "
                              f"is for Keras models; an ONNX file holds one set of weights and "
                              f"no code: export it as one epoch (--epoch N)")
    elif is_torch_path(args.model):
        model = check_torch_program_path(args.model)
        if args.checkpoints or args.unsafe_load_code:
            raise ExportError(f"{'--checkpoints' if args.checkpoints else '--unsafe-load-code'} "
                              f"is for Keras models; a .pt2 program holds one set of weights: "
                              f"export it as one epoch (--epoch N), or record epochs while "
                              f"training with nnvis_export.TorchEpochRecorder")
    else:
        model = check_model_path(args.model)
    samples = read_sample_files(args.samples)
    if args.rescale is not None and samples.array is not None:
        raise ExportError("--rescale scales image pixels; the samples are a .npy array, scale it "
                          "before saving it")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {str(out)!r} is a file; give a folder")
    labels = load_npy(args.labels, "labels") if args.labels else None
    if labels is not None and np.ndim(labels) == 0:
        labels = np.reshape(labels, (1,))
    return CheckedInputs(
        model=model, samples=samples, labels=labels,
        indices=_parse_indices(args.indices) if args.indices else None,
        checkpoints=list_checkpoints(args.checkpoints) if args.checkpoints else None,
        metrics=read_metrics_log(args.metrics) if args.metrics else None,
        class_names=[c.strip() for c in args.class_names.split(",")] if args.class_names
        else None)


def check_image_scale(model, images: np.ndarray, rescale: float | None,
                      verbose: bool) -> None:
    """Say how image samples meet the model's own scaling: a warning when 0..255 pixels go into a
    model without a scaling layer at its input (no --rescale), or when --rescale scales pixels
    the model scales itself; a note when the model's layer does the scaling."""
    from .graph import input_scaling_layer, layer_config

    scaling = input_scaling_layer(model)
    if scaling is not None:
        config = layer_config(scaling.layer)
        shown = {k: config[k] for k in ("scale", "offset") if config.get(k) not in (None, 0)}
        detail = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in shown.items())
        described = f"layer {scaling.name!r} ({scaling.type}{', ' + detail if detail else ''})"
        if rescale is None:
            if verbose:
                print(f"nnvis: images go in as pixel values 0..255; the model scales them "
                      f"itself ({described})", file=sys.stderr)
        else:
            warnings.warn(f"--rescale {rescale:.6g} scales the pixels and then the model's own "
                          f"{described} scales them again; leave --rescale out to feed the 0..255 "
                          f"pixels the model expects", ExportWarning, stacklevel=2)
        return
    largest = float(np.max(images)) if images.size else 0.0
    if rescale is None and largest > SCALED_PIXEL_MAX:
        warnings.warn(f"the images go in as pixel values 0..255 (largest {largest:g}) and model "
                      f"{model.name!r} has no Rescaling or Normalization layer at its input; if "
                      f"it was trained on inputs scaled to 0..1, pass --rescale 1/255 (the "
                      f"images were not rescaled)", ExportWarning, stacklevel=2)


def _warn_missing_metrics(metrics: Metrics, epochs: Sequence[int], log: str) -> None:
    """Epoch 0 (before training) has no log row by nature; any later epoch should."""
    missing = [e for e in epochs if e > 0 and e not in metrics]
    if missing:
        logged = sorted(metrics)
        warnings.warn(f"metrics log {Path(log).name!r} has no row for epoch"
                      f"{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} (it has "
                      f"epochs {logged[0]}-{logged[-1]}, numbered as nnvis does: log epoch e is "
                      f"epoch e+1); those epochs have no metrics", ExportWarning, stacklevel=2)


def _selected(samples: np.ndarray, names: list[str], inputs: CheckedInputs
              ) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """The samples, their names and labels, checked against each other and cut to --indices."""
    labels = inputs.labels
    if len(names) != samples.shape[0]:
        names = [f"sample {i}" for i in range(samples.shape[0])]
    if labels is not None and len(labels) != samples.shape[0]:
        raise ExportError(f"{len(labels)} labels for {samples.shape[0]} samples")
    if inputs.indices:
        samples = np.stack(_select(samples, inputs.indices, "the samples"))
        names = _select(names, inputs.indices, "the samples")
        if labels is not None:
            labels = np.stack(_select(labels, inputs.indices, "the labels"))
    return samples, names, labels


def _single_epoch(args: argparse.Namespace, inputs: CheckedInputs) -> tuple[int, dict | None]:
    """A single-model export's epoch number (--epoch, else the log's last) and its metrics."""
    metrics = inputs.metrics
    epoch = args.epoch if args.epoch is not None else max(metrics) if metrics else 0
    if metrics is not None:
        _warn_missing_metrics(metrics, [epoch], args.metrics)
    return epoch, (metrics or {}).get(epoch)


def export_onnx_file(args: argparse.Namespace, inputs: CheckedInputs) -> Path:
    """An ONNX model's export (imports onnx and onnxruntime, never TensorFlow)."""
    from .onnx_export import OnnxSource, export_onnx
    from .samples import load_sample_files, prepare_samples

    source = OnnxSource(inputs.model, args.name)
    samples, names = load_sample_files(inputs.samples, source.sample_shape,
                                       rescale=1.0 if args.rescale is None else args.rescale,
                                       channels_first=source.channels_first)
    if inputs.samples.images and args.rescale is None and not source.scales_its_input() \
            and samples.size and float(np.max(samples)) > SCALED_PIXEL_MAX:
        warnings.warn(f"the images go in as pixel values 0..255 and ONNX model {source.name!r} "
                      f"does not scale its input itself; if it was trained on inputs scaled to "
                      f"0..1, pass --rescale 1/255 (the images were not rescaled)", ExportWarning,
                      stacklevel=2)
    samples = prepare_samples(samples, source.sample_shape, source.plan.input_dtype)
    samples, names, labels = _selected(samples, names, inputs)
    epoch, metrics = _single_epoch(args, inputs)
    return export_onnx(source, samples, args.out, labels=labels, class_names=inputs.class_names,
                       activation_dtype=args.dtype, epoch=epoch, metrics=metrics,
                       sample_names=names, verbose=not args.quiet)


def export_torch_file(args: argparse.Namespace, inputs: CheckedInputs) -> Path:
    """A saved ``torch.export`` program's export (imports torch, never TensorFlow)."""
    from .samples import load_sample_files, prepare_samples
    from .torch_source import export_torch, load_torch_program, program_input

    program = load_torch_program(inputs.model)
    shape, dtype = program_input(program)
    samples, names = load_sample_files(inputs.samples, shape,
                                       rescale=1.0 if args.rescale is None else args.rescale,
                                       channels_first=True)
    if inputs.samples.images and args.rescale is None and samples.size \
            and float(np.max(samples)) > SCALED_PIXEL_MAX:
        warnings.warn(f"the images go in as pixel values 0..255 into {inputs.model.name!r}; if "
                      f"it was trained on inputs scaled to 0..1, pass --rescale 1/255 (the "
                      f"images were not rescaled)", ExportWarning, stacklevel=2)
    samples = prepare_samples(samples, shape, dtype)
    samples, names, labels = _selected(samples, names, inputs)
    epoch, metrics = _single_epoch(args, inputs)
    return export_torch(program, samples, args.out, labels, inputs.class_names,
                        name=args.name or inputs.model.stem, activation_dtype=args.dtype,
                        epoch=epoch, metrics=metrics, sample_names=names,
                        batch_size=args.batch_size, verbose=not args.quiet)


def export(args: argparse.Namespace, inputs: CheckedInputs) -> Path:
    """The export itself (imports TensorFlow, or for an ONNX file onnx and onnxruntime, or for
    a .pt2 program torch)."""
    if is_onnx_path(inputs.model):
        return export_onnx_file(args, inputs)
    if is_torch_path(inputs.model):
        return export_torch_file(args, inputs)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .graph import model_input_dtype, model_input_shape
    from .models import load_model
    from .samples import load_sample_files, prepare_samples
    from .session import export_model

    verbose = not args.quiet
    model = load_model(inputs.model, safe_mode=not args.unsafe_load_code, verbose=verbose)
    input_shape = model_input_shape(model)
    samples, names = load_sample_files(inputs.samples, input_shape,
                                       rescale=1.0 if args.rescale is None else args.rescale)
    if inputs.samples.images:
        check_image_scale(model, samples, args.rescale, verbose)
    # One sample given without its batch axis counts as a batch of one.
    samples = prepare_samples(samples, input_shape, model_input_dtype(model))
    samples, names, labels = _selected(samples, names, inputs)
    options = dict(labels=labels, name=args.name, activation_dtype=args.dtype,
                   class_names=inputs.class_names, sample_names=names,
                   batch_size=args.batch_size, verbose=verbose,
                   explain=False if args.no_explain else None)
    metrics = inputs.metrics
    if inputs.checkpoints is not None:
        if metrics is not None:
            _warn_missing_metrics(metrics, [c.epoch for c in inputs.checkpoints], args.metrics)
        return export_checkpoints(model, args.checkpoints, samples, args.out,
                                  metrics=metrics, **options)
    epoch, epoch_metrics = _single_epoch(args, inputs)
    return export_model(model, samples, args.out, epoch=epoch, metrics=epoch_metrics, **options)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``nnvis-export: warning: ...`` line, without Python's source context."""
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.summary:
        missing = [flag for flag, value in (("MODEL", args.model), ("--samples", args.samples),
                                            ("--out", args.out)) if not value]
        if missing:
            parser.error(f"{', '.join(missing)} required (or use --summary EXPORT)")
        if args.checkpoints and args.epoch is not None:
            parser.error("--epoch numbers a single-model export; with --checkpoints every "
                         "checkpoint's epoch comes from its file name (epoch_003.weights.h5, "
                         "ckpt-3.index)")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            if args.summary:
                from .summary import summarize
                summarize(args.summary)
                return 0
            inputs = check_inputs(args)
            if args.unsafe_load_code:
                print(f"{PROG}: WARNING: --unsafe-load-code: Keras safe mode is OFF for "
                      f"{inputs.model.name!r}; any Python code stored in it (Lambda layers) "
                      f"runs while it loads, with your permissions. Use this only for model files "
                      f"you trust.", file=sys.stderr, flush=True)
            path = export(args, inputs)
            if not args.quiet:
                from .summary import summarize
                summarize(path)
            return 0
        except NnvisError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
