"""Shared test set-up. Blender's user folders point at temporary ones *before* bpy is imported,
so an installed copy of the extension never shadows the working tree."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_EXPORT = ROOT / "examples" / "digits" / "digits_cnn.nnvis.json"

_user_dirs = Path(tempfile.mkdtemp(prefix="nnvis-test-blender-user-"))
for _var in ("BLENDER_USER_EXTENSIONS", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS"):
    os.environ[_var] = str(_user_dirs / _var.lower())
    Path(os.environ[_var]).mkdir(parents=True, exist_ok=True)


def import_extension_package(name: str = "nnvis"):
    """Import the repository root as a package, the way Blender imports the extension."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def example_export() -> Path:
    if not EXAMPLE_EXPORT.exists():
        pytest.fail(f"bundled example missing: run scripts/make_example.py ({EXAMPLE_EXPORT})")
    return EXAMPLE_EXPORT
