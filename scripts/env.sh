#!/usr/bin/env bash
# Make sure .venv (Python 3.11) holds the pinned requirements; (re)create it when missing or when
# requirements.txt/pyproject.toml changed. Sourced by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${NNVIS_PYTHON:-python3.11}"
stamp="$venv/.nnvis-requirements"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "nnvis: setting up $venv (first run downloads about 1 GB)..." >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$root/requirements.txt"
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$root" \
    || "$venv/bin/python" -m pip install --quiet --no-deps -e "$root"
  echo "$want" > "$stamp"
fi
export NNVIS_VENV="$venv"
