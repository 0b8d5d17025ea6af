#!/usr/bin/env bash
# The type-check venv: mypy and the Blender API stubs (fake-bpy-module), pinned in
# requirements-typing.txt. It is a venv of its own because the stubs must stay out of the test
# venv, where the real bpy wheel lives. Idempotent like scripts/env_matrix.sh: the venv is
# (re)created only when it is missing or its stamp differs from requirements-typing.txt.
#
#   bash scripts/env_typing.sh            # prints the venv's python on stdout (progress: stderr)
#   "$(bash scripts/env_typing.sh)" -m mypy
#
# tests/test_checks.py runs this (a no-op once the venv matches its stamp), then mypy.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${NNVIS_PYTHON:-python3.11}"
venv="$root/.venv-typing"
stamp="$venv/.nnvis-typing"
requirements="$root/requirements-typing.txt"
want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
(
  # One writer, even when two test runs start at once.
  mkdir -p "$root/.venv-locks"   # ignored by .gitignore's .venv-*/
  exec 9>"$root/.venv-locks/typing.lock"
  command -v flock >/dev/null && flock 9
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "nnvis: setting up $venv (mypy and fake-bpy-module)..." >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$requirements"
    echo "$want" > "$stamp"
  fi
)
echo "$venv/bin/python"
