"""Text the exporter writes besides the export: progress lines on stderr, shapes in messages, and
names made safe for files and for TensorFlow's graph scopes. Plain Python, no TensorFlow."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence


def log(verbose: bool, message: str) -> None:
    """One ``nnvis: ...`` progress line on stderr when ``verbose``."""
    if verbose:
        print(f"nnvis: {message}", file=sys.stderr, flush=True)


def shape_text(shape: Sequence[int | None]) -> str:
    """A shape as Python writes a tuple, an unknown size as ``?``: ``(?, 28, 28, 1)``."""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1
                                                                           else "") + ")"


def file_name(name: str) -> str:
    """``name`` kept to ASCII letters, digits and ``_ . -`` (at most 200 characters): a file name,
    and a model name TensorFlow accepts as a graph's root scope."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
    return cleaned[:200]
