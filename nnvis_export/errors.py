"""Errors the exporter raises on purpose (the CLI turns them into a message and exit code 2)."""

from __future__ import annotations

from nnvis_addon.core.export_format import NnvisError


class ExportError(NnvisError):
    """The exporter cannot do what was asked: a wrong input, an unsupported model, a bad file."""


class CustomLayerWarning(UserWarning):
    """A layer is a user-defined class: it is exported (type = its class name, its output and
    weights) but nnvis has no special drawing for it and shows it as a generic block."""


class ExportWarning(UserWarning):
    """The export is written but may not show what was meant: image pixels that look unscaled
    for the model (or are scaled twice), checkpoint epochs without a row in the metrics log, a
    second ``fit`` renumbered or written to a new export."""
