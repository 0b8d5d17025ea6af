"""Code shape: no function (or method, or nested function) in the shipped packages is longer than
MAX_LINES lines, counted from its ``def`` line to its last line. Long units are cut into named
steps; the allow-list below names the ones still over the limit and why, and it can only shrink:
an entry whose function is gone or has come under the limit fails until it is removed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nnvis_addon", "nnvis_export", "geometry_nodes")
MAX_LINES = 80

# "path:function" -> why it is still over the limit (none: the list may only shrink)
ALLOWED_LONG: dict[str, str] = {}


def function_lengths() -> dict[str, int]:
    """"path:qualified.name" -> lines, for every function in PACKAGES."""
    lengths = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
            for name, node in _functions(tree, ""):
                lengths[f"{relative}:{name}"] = node.end_lineno - node.lineno + 1
    return lengths


def _functions(node, prefix):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield name, child
            yield from _functions(child, f"{name}.")
        else:
            yield from _functions(child, prefix)


def test_the_scan_sees_the_packages():
    lengths = function_lengths()
    assert len(lengths) > 300
    assert "nnvis_addon/core/bundling.py:bundle_edges" in lengths
    assert "nnvis_addon/core/bundling.py:_RowBlocks.run" in lengths  # methods count too


def test_no_function_over_the_limit():
    too_long = {name: lines for name, lines in function_lengths().items()
                if lines > MAX_LINES and name not in ALLOWED_LONG}
    assert not too_long, f"functions over {MAX_LINES} lines (cut them into named steps): " \
        f"{too_long}"


def test_allow_list_only_shrinks():
    lengths = function_lengths()
    stale = {name for name in ALLOWED_LONG if lengths.get(name, 0) <= MAX_LINES}
    assert not stale, f"no longer over {MAX_LINES} lines (or gone): remove from ALLOWED_LONG: " \
        f"{sorted(stale)}"
