#!/usr/bin/env bash
# The main job: creates .venv when missing, builds the example scene, saves out/digits_cnn.blend
# and renders out/digits_cnn.png (extra args pass through to scripts/demo.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
exec "$NNVIS_VENV/bin/python" scripts/demo.py "$@"
