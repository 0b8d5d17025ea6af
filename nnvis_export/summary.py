"""Human-readable summary of an nnvis export (numpy only: no TensorFlow needed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from nnvis_addon.core.export_format import NetworkExport, find_document, read_export


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def export_files(export: NetworkExport) -> list[Path]:
    """The structure document and its sidecar buffers."""
    import json

    document = json.loads(export.path.read_text(encoding="utf-8"))
    return [export.path] + [export.path.parent / b["uri"] for b in document["buffers"]]


def summary_text(export: NetworkExport) -> str:
    lines = []
    frameworks = ", ".join(f"{k} {v}" for k, v in export.frameworks.items())
    lines.append(f"{export.name}: nnvis format {export.version}"
                 + (f", written by {export.generator}" if export.generator else "")
                 + (f" ({frameworks})" if frameworks else ""))
    lines.append(f"input {_shape(export.input_shape)}; {len(export.layers)} layers, "
                 f"{sum(layer.params for layer in export.layers):,} parameters")
    width = max(len(layer.name) for layer in export.layers)
    type_width = max(len(layer.type) for layer in export.layers)
    for layer in export.layers:
        inbound = f"  <- {', '.join(layer.inbound)}" if layer.inbound else ""
        lines.append(f"  {layer.name:<{width}}  {layer.type:<{type_width}}  "
                     f"{_shape(layer.output_shape):>12}  {layer.params:>10,} params{inbound}")
    classes = export.class_names
    lines.append(f"{export.num_samples} samples:")
    for sample in export.samples:
        label = "?" if sample.label is None else (
            classes[sample.label] if classes and 0 <= sample.label < len(classes) else sample.label)
        predicted = ""
        if sample.predicted_class is not None:
            name = classes[sample.predicted_class] if classes and \
                sample.predicted_class < len(classes) else sample.predicted_class
            predicted = f", predicted {name}"
        lines.append(f"  {sample.name}: label {label}{predicted}")
    lines.append(f"{len(export.epochs)} epochs:")
    for epoch in export.epochs:
        metrics = ", ".join(f"{k} {'n/a' if v is None else format(v, '.4g')}"
                            for k, v in epoch.metrics.items())
        predictions = f"  predictions {epoch.predictions}" if epoch.predictions is not None else ""
        lines.append(f"  epoch {epoch.epoch}: {metrics or 'no metrics'}{predictions}")
    files = export_files(export)
    lines.append("files: " + ", ".join(f"{p.name} {_size(p)}" for p in files)
                 + f" (total {sum(p.stat().st_size for p in files) / 1e6:.2f} MB)")
    if export.warnings:
        lines.append("warnings: " + "; ".join(export.warnings))
    return "\n".join(lines)


def summarize(path: os.PathLike | str, file: TextIO | None = None) -> str:
    """Read the export at ``path`` (document or folder), print its summary and return it."""
    export = read_export(find_document(path))
    text = summary_text(export)
    print(text, file=file if file is not None else sys.stdout)
    return text
