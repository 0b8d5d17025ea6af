"""The reader against the hostile corpus (tests/hostile_corpus.py): every broken export gives
exactly one ExportFormatError with a clear message -- never another exception type."""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hostile_corpus import CASES, Case, build_corpus

from nnvis_addon.core.export_format import (
    ExportFormatError,
    ExportFormatWarning,
    NetworkExport,
    NnvisError,
    read_export,
)

ROOT = Path(__file__).resolve().parents[1]
CASE_NAMES = [make.__name__ for make in CASES]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Case]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("hostile"))}


def _case(corpus: dict[str, Case], name: str) -> Case:
    if name not in corpus:
        pytest.skip(f"{name} does not apply on this platform")
    return corpus[name]


def test_corpus_is_big_enough(corpus):
    errors = [case for case in corpus.values() if case.kind == "error"]
    assert len(errors) >= 30
    assert len(set(corpus)) == len(corpus)
    for case in corpus.values():
        assert case.description and case.expected


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_case(corpus, name):
    case = _case(corpus, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if case.kind == "error":
            with pytest.raises(ExportFormatError) as info:
                read_export(case.path)
            error = info.value
            message = str(error)
        else:
            net = read_export(case.path)
            assert isinstance(net, NetworkExport)
            ours = [w for w in caught if issubclass(w.category, ExportFormatWarning)]
            assert len(ours) == 1, [str(w.message) for w in caught]
            message = str(ours[0].message)
    others = [f"{w.category.__name__}: {w.message}" for w in caught
              if not issubclass(w.category, ExportFormatWarning)]
    assert not others, f"stray warnings: {others}"

    assert case.expected in message, message
    # The message names the file (or the folder passed in) first ...
    assert message.startswith(case.path.name + ":"), message
    # ... and the layer, where one applies.
    if case.layer is not None:
        assert f"layer {case.layer!r}" in message, message
    assert len(message) < 400, f"message too long ({len(message)} characters)"
    if case.kind == "error":
        assert isinstance(error, NnvisError)
        assert error.file.endswith(case.path.name)
        if case.layer is not None:
            assert error.layer == case.layer
        # One error: nothing chained onto it for a traceback to show.
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize("name", [n for n in CASE_NAMES if n.startswith(("absurd", "document_too"))])
def test_absurd_sizes_fail_before_allocating(corpus, name):
    case = _case(corpus, name)
    assert case.max_peak_bytes is not None
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(ExportFormatError, match=re.escape(case.expected)):
            read_export(case.path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < case.max_peak_bytes, f"peak allocation {peak} bytes"


def test_pickle_payload_is_never_unpickled(corpus):
    case = _case(corpus, "pickle_npy_sidecar")
    assert case.marker is not None and not case.marker.exists()
    with pytest.raises(ExportFormatError, match="NumPy .npy file"):
        read_export(case.path)
    assert not case.marker.exists(), "the reader unpickled the payload"
    # The detector works: loading the same file the unsafe way does create the marker.
    np.load(case.path.parent / "payload.npy", allow_pickle=True)
    assert case.marker.exists()
    case.marker.unlink()


def test_corpus_script_prints_markdown(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "hostile_corpus.py"),
                             str(tmp_path / "corpus"), "--markdown"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) >= len(CASE_NAMES) - 1
    assert "**crash**" not in result.stdout and "**loaded**" not in result.stdout


def test_errors_doc_lists_every_case():
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    missing = [name for name in CASE_NAMES if f"`{name}`" not in doc]
    assert not missing, f"docs/errors.md lacks {missing}: regenerate it with " \
                        f"python tests/hostile_corpus.py OUT_DIR --markdown"
