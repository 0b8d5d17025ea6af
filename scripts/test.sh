#!/usr/bin/env bash
# The whole test suite: creates .venv when missing, then runs pytest (extra args pass through).
# pytest exits 5 when no test ran; that exit code is passed on, so it fails like any other.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
exec "$NNVIS_VENV/bin/python" -m pytest "$@"
