"""Shared test set-up. Blender's user folders point at temporary ones *before* bpy is imported,
so an installed copy of the extension never shadows the working tree."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from working_tree import EXAMPLE as EXAMPLE_EXPORT  # noqa: E402
from working_tree import ROOT, import_extension_package  # noqa: E402,F401 (re-exported)

_user_dirs = Path(tempfile.mkdtemp(prefix="nnvis-test-blender-user-"))
for _var in ("BLENDER_USER_EXTENSIONS", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS"):
    os.environ[_var] = str(_user_dirs / _var.lower())
    Path(os.environ[_var]).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def example_export() -> Path:
    if not EXAMPLE_EXPORT.exists():
        pytest.fail(f"bundled example missing: run scripts/make_example.py ({EXAMPLE_EXPORT})")
    return EXAMPLE_EXPORT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The extension built from the working tree and installed into Blender, once per module
    (modules needing more define their own ``installed``)."""
    from blender_utils import install_extension
    install_extension(tmp_path_factory)


@pytest.fixture(scope="module")
def Network(installed):
    """The installed extension's script handle, ``nnvis.Network`` (blender/api.py)."""
    import importlib

    from blender_utils import EXTENSION_MODULE
    return importlib.import_module(EXTENSION_MODULE).Network


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The small default export of tests/export_factory.py (input, conv, pool, flatten, dense)."""
    from export_factory import make_export
    return make_export(tmp_path_factory.mktemp("tiny"), name="tiny").path


@pytest.fixture(scope="session")
def explained_example(tmp_path_factory) -> Path:
    """The bundled example's model trained again by scripts/make_example.py into a temporary
    folder: the same network, format 1.1 with Grad-CAM and saliency maps of every epoch (the
    bundled example is format 1.0 without them). About 10 s of TensorFlow, in its own process."""
    import subprocess
    out = tmp_path_factory.mktemp("explained_example")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example.py"),
                             "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out / "digits_cnn.nnvis.json"
