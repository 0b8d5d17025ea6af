"""Build dist/nnvis-<version>.zip with Blender's own extension builder (shipped in the bpy wheel).

    python scripts/build_extension.py [--validate-only]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"


def blender_ext_tool() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the bpy wheel is not installed (pip install bpy==5.0.1)")
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"blender_ext.py not found under {package}")
    return found[-1]


def run_tool(*args: str) -> None:
    subprocess.run([sys.executable, str(blender_ext_tool()), *args], check=True)


def build(output_dir: Path = DIST) -> Path:
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text(encoding="utf-8"))
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    target.unlink(missing_ok=True)
    run_tool("validate", str(ROOT))
    run_tool("build", "--source-dir", str(ROOT), "--output-filepath", str(target))
    if not target.is_file():
        raise SystemExit(f"the builder did not write {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validate-only", action="store_true")
    parser.add_argument("--output-dir", type=Path, default=DIST)
    args = parser.parse_args(argv)
    if args.validate_only:
        run_tool("validate", str(ROOT))
        return 0
    print(build(args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
