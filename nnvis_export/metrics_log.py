"""Per-epoch training metrics from a Keras ``CSVLogger`` file or a saved ``History`` (JSON).

Checkpoint folders hold weights only; the loss and accuracy of each epoch are in the training
log. Both forms number epochs the way Keras passes them to ``on_epoch_end`` (0 = the first
epoch); nnvis epoch ``k`` is the network *after* ``k`` epochs, so log epoch ``e`` becomes nnvis
epoch ``e + 1`` (the same numbering as ``ModelCheckpoint``'s ``{epoch}``).

Accepted files:

- a ``CSVLogger`` file (any name but ``*.json``): a header ``epoch,<metric>,...`` and one row per
  epoch; a run resumed with ``CSVLogger(append=True)`` repeats epochs, and the later row wins;
- a JSON object of lists, ``json.dump(history.history, f)``: list index ``i`` is log epoch ``i``,
  or log epoch ``history.epoch[i]`` when the object also has an ``"epoch"`` list.

Values that are not numbers (a metric logged as a list) are left out; NaN and Inf are kept as
"no value" (``None``), as the format records them.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from .errors import ExportError

Metrics = dict[int, dict[str, "float | None"]]

MAX_LOG_BYTES = 64 * 2**20  # a log of a million epochs is ~50 MB; anything larger is not a log


def read_metrics_log(path: os.PathLike | str) -> Metrics:
    """``{nnvis epoch: {metric: value}}`` from a CSVLogger file or a History JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"metrics log {str(path)!r} does not exist or is not a file")
    if path.stat().st_size > MAX_LOG_BYTES:
        raise ExportError(f"metrics log {path.name!r} is larger than {MAX_LOG_BYTES >> 20} MiB; "
                          f"expected a Keras CSVLogger file or a History JSON file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read metrics log {path.name!r}: {exc}") from None
    metrics = _from_json(path.name, text) if path.suffix.lower() == ".json" else \
        _from_csv(path.name, text)
    if not metrics:
        raise ExportError(f"metrics log {path.name!r} has no epochs")
    return metrics


NOT_A_NUMBER = object()  # a logged value that is no metric (left out, unlike NaN)


def _number(text):
    """A metric value: a finite float, None for NaN/Inf/null, NOT_A_NUMBER for anything else."""
    if text is None:
        return None
    if isinstance(text, bool):
        return NOT_A_NUMBER
    try:
        value = float(text)
    except (TypeError, ValueError):
        return NOT_A_NUMBER
    return value if math.isfinite(value) else None


def _log_epoch(name: str, where: str, value) -> int:
    number = _number(value)
    if number is NOT_A_NUMBER or number is None or number != int(number) or number < 0:
        raise ExportError(f"metrics log {name!r}: {where}: epoch {value!r} is not a whole number "
                          f">= 0")
    return int(number) + 1


def _from_csv(name: str, text: str) -> Metrics:
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if not header or "epoch" not in header:
        raise ExportError(f"metrics log {name!r} has no 'epoch' column; expected a Keras "
                          f"CSVLogger file (epoch,loss,...) or a History JSON file (*.json)")
    epoch_column = header.index("epoch")
    metrics: Metrics = {}
    for line, row in enumerate(rows, start=2):
        if not row or row == header:  # blank lines; a header repeated by an appended run
            continue
        if len(row) != len(header):
            raise ExportError(f"metrics log {name!r}: line {line} has {len(row)} values for "
                              f"{len(header)} columns")
        epoch = _log_epoch(name, f"line {line}", row[epoch_column])
        values = {key: _number(value) for key, value in zip(header, row) if key != "epoch"}
        metrics[epoch] = {key: value for key, value in values.items() if value is not NOT_A_NUMBER}
    return metrics


def _from_json(name: str, text: str) -> Metrics:
    try:
        # History.history holds Python floats; json.dump writes a NaN loss as the literal NaN.
        document = json.loads(text, parse_constant=lambda constant: None)
    except (ValueError, RecursionError) as exc:
        raise ExportError(f"metrics log {name!r} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not all(isinstance(v, list) for v in document.values()):
        raise ExportError(f"metrics log {name!r}: expected a JSON object of lists, as written by "
                          f"json.dump(history.history, file)")
    lengths = {key: len(values) for key, values in document.items()}
    if len(set(lengths.values())) > 1:
        raise ExportError(f"metrics log {name!r}: the lists have different lengths {lengths}")
    count = next(iter(lengths.values()), 0)
    epoch_list = document.get("epoch")
    epochs = [_log_epoch(name, f"epoch[{i}]", e) for i, e in enumerate(epoch_list)] \
        if epoch_list is not None else [i + 1 for i in range(count)]
    metrics: Metrics = {}
    for index, epoch in enumerate(epochs):
        values = {key: _number(values[index]) for key, values in document.items()
                  if key != "epoch"}
        metrics[epoch] = {key: value for key, value in values.items() if value is not NOT_A_NUMBER}
    return metrics
