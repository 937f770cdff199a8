#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite (unit tests on tiny models, behaviour
# tests on the real embedded base).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
.venv/bin/python -m pytest -q "$@"
