#!/usr/bin/env bash
# The Blender version matrix: one venv per older Blender LTS, each holding only that bpy wheel and
# numpy (bpy needs numpy<2). Idempotent like scripts/env.sh: a venv is (re)created only when it is
# missing or its stamp differs from the pinned versions below.
#
#   bash scripts/env_matrix.sh            # every matrix venv
#   bash scripts/env_matrix.sh bpy45      # only .venv-bpy45
#
# Prints "<name> <venv python>" per venv on stdout (progress goes to stderr).
# tests/test_version_matrix.py runs this (a no-op once the venvs match their stamps);
# bpy 5.0.1 is the suite's own .venv (scripts/env.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${NNVIS_PYTHON:-python3.11}"
numpy_pin="numpy==1.26.4"

# name -> bpy version: the newest 4.5 LTS and 4.2 LTS wheels for Python 3.11 on PyPI.
declare -A BPY=([bpy45]="4.5.15" [bpy42]="4.2.23")
order=(bpy45 bpy42)

selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${order[@]}")

for name in "${selected[@]}"; do
  version="${BPY[$name]:-}"
  if [ -z "$version" ]; then
    echo "env_matrix: unknown matrix entry '$name' (known: ${order[*]})" >&2
    exit 2
  fi
  venv="$root/.venv-$name"
  stamp="$venv/.nnvis-matrix"
  want="bpy==$version $numpy_pin $("$python" -c 'import sys; print(sys.version.split()[0])')"
  (
    # One writer per venv, even when two test runs start at once.
    mkdir -p "$root/.venv-locks"   # ignored by .gitignore's .venv-*/
    exec 9>"$root/.venv-locks/$name.lock"
    command -v flock >/dev/null && flock 9
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      echo "nnvis: setting up $venv (bpy $version, downloads about 350-520 MB)..." >&2
      rm -rf "$venv"
      "$python" -m venv "$venv"
      "$venv/bin/python" -m pip install --quiet --upgrade pip
      "$venv/bin/python" -m pip install --quiet "bpy==$version" "$numpy_pin"
      "$venv/bin/python" -c \
        "import sys, bpy; print('nnvis: bpy', bpy.app.version_string, file=sys.stderr)"
      echo "$want" > "$stamp"
    fi
  )
  echo "$name $venv/bin/python"
done
