"""The checks that guard the whole code base, run with the suite: ruff (lint and import order,
[tool.ruff] in pyproject.toml) over the repository, and mypy ([tool.mypy]) over nnvis_addon/ and
geometry_nodes/ against the Blender API stubs.

ruff is pinned in requirements.txt, so it is in the suite's own .venv. mypy and fake-bpy-module
live in .venv-typing, made by scripts/env_typing.sh on first use (the stubs must stay out of the
test venv, where the real bpy wheel lives). A report from either tool fails its test with the
tool's output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600


def run_tool(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)


def report(result: subprocess.CompletedProcess) -> str:
    return f"exit code {result.returncode}\n{result.stdout}{result.stderr}"


def typing_python() -> str:
    """The python of .venv-typing, created by scripts/env_typing.sh when missing or stale."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "env_typing.sh")],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"scripts/env_typing.sh failed:\n{result.stderr[-4000:]}"
    return result.stdout.strip().splitlines()[-1]


def test_ruff_reports_nothing():
    result = run_tool([sys.executable, "-m", "ruff", "check", "--no-cache", "."])
    if result.returncode != 0:
        pytest.fail("ruff check . reported problems:\n" + report(result), pytrace=False)


def test_mypy_reports_nothing():
    result = run_tool([typing_python(), "-m", "mypy"])
    if result.returncode != 0 or "Success: no issues found" not in result.stdout:
        pytest.fail("mypy (files and settings: [tool.mypy] in pyproject.toml) reported "
                    "problems:\n" + report(result), pytrace=False)
