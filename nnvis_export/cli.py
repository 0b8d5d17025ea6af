"""``nnvis-export``: write an nnvis export from a saved Keras model, or summarize an export.

    nnvis-export MODEL --samples SAMPLES --out DIR [--labels LABELS.npy] [--indices 0,3,5]
                 [--name NAME] [--dtype float16|float32] [--checkpoints DIR]
    nnvis-export --summary EXPORT

Errors in what was given (a missing file, samples that do not fit the model...) print one
``nnvis-export: error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from nnvis_addon.core.export_format import NnvisError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnvis-export",
        description="Export a trained Keras/TensorFlow model's layers, weights and activations "
                    "for the nnvis Blender extension (nnvis format v1).")
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="a .keras or .h5 model file, or a SavedModel folder")
    parser.add_argument("--samples", nargs="+", metavar="SAMPLES",
                        help="a .npy array of inputs (S, *input_shape), or image files/folders "
                             "(PNG/JPEG, resized to the model input)")
    parser.add_argument("--out", metavar="DIR", help="folder to write <name>.nnvis.json and <name>.bin")
    parser.add_argument("--labels", metavar="LABELS.npy",
                        help="a .npy array of class numbers (or one-hot rows), one per sample")
    parser.add_argument("--indices", metavar="I,J,...",
                        help="export only these samples (comma-separated, 0-based)")
    parser.add_argument("--name", help="export name (default: the model's name)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                        help="activation dtype (weights are always float32; default float16)")
    parser.add_argument("--checkpoints", metavar="DIR",
                        help="a folder of per-epoch weights (*.weights.h5 or TF ckpt-N.index); "
                             "writes one epoch per checkpoint")
    parser.add_argument("--epoch", type=int, default=0,
                        help="epoch number for a single-model export (default 0)")
    parser.add_argument("--class-names", metavar="A,B,...",
                        help="class names, comma-separated, in class order")
    parser.add_argument("--rescale", type=float, default=1.0,
                        help="factor for image pixel values 0..255 (e.g. 0.00392156 for 0..1)")
    parser.add_argument("--batch-size", type=int, default=32, help="predict batch size")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--summary", metavar="EXPORT",
                        help="print the summary of an existing export (no TensorFlow needed) "
                             "and exit")
    return parser


def _parse_indices(text: str) -> list[int]:
    from .errors import ExportError

    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ExportError(f"--indices must be comma-separated integers, got {text!r}") from None
    if not indices:
        raise ExportError("--indices is empty")
    return indices


def _select(array, indices: list[int], what: str):
    from .errors import ExportError

    count = len(array)
    bad = [i for i in indices if not -count <= i < count]
    if bad:
        raise ExportError(f"--indices {bad[0]} is out of range: {what} has {count} entries")
    return [array[i] for i in indices]


def run(args: argparse.Namespace) -> int:
    from .summary import summarize

    if args.summary:
        summarize(args.summary)
        return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from . import keras_export as kx
    from .errors import ExportError

    model = kx.load_model(args.model)
    input_shape = kx.model_input_shape(model)
    samples, names = kx.load_samples(args.samples, input_shape, rescale=args.rescale)
    labels = None
    if args.labels:
        path = Path(args.labels)
        if not path.is_file():
            raise ExportError(f"labels {str(path)!r} do not exist")
        try:
            labels = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ExportError(f"cannot read labels {path.name!r}: {exc}") from None
    # One sample given without its batch axis counts as a batch of one.
    samples = kx.prepare_samples(samples, input_shape, kx._input_spec(model)[1])
    if len(names) != samples.shape[0]:
        names = [f"sample {i}" for i in range(samples.shape[0])]
    if labels is not None and np.ndim(labels) == 0:
        labels = np.reshape(labels, (1,))
    if labels is not None and len(labels) != samples.shape[0]:
        raise ExportError(f"{len(labels)} labels for {samples.shape[0]} samples")
    if args.indices:
        indices = _parse_indices(args.indices)
        samples = np.stack(_select(samples, indices, "the samples"))
        names = _select(names, indices, "the samples")
        if labels is not None:
            labels = np.stack(_select(labels, indices, "the labels"))
    class_names = [c.strip() for c in args.class_names.split(",")] if args.class_names else None
    options = dict(labels=labels, name=args.name, activation_dtype=args.dtype,
                   class_names=class_names, sample_names=names, batch_size=args.batch_size,
                   verbose=not args.quiet)
    if args.checkpoints:
        path = kx.export_checkpoints(model, args.checkpoints, samples, args.out, **options)
    else:
        path = kx.export_model(model, samples, args.out, epoch=args.epoch, **options)
    summarize(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.summary:
        missing = [flag for flag, value in (("MODEL", args.model), ("--samples", args.samples),
                                            ("--out", args.out)) if not value]
        if missing:
            parser.error(f"{', '.join(missing)} required (or use --summary EXPORT)")
    try:
        return run(args)
    except NnvisError as exc:
        print(f"nnvis-export: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
