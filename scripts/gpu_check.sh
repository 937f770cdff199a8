#!/usr/bin/env bash
# The GPU proof (issue 11): QLoRA step and adapter decode, ours next to plain transformers + PEFT +
# bitsandbytes, on a 7B-shaped random Llama. `--dry` runs it on tiny shapes on the CPU (CI does).
#   bash scripts/gpu_check.sh [--dry] [--out DIR] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3   # a GPU machine's image has its own python3 with torch
exec "$PY" scripts/gpu_check.py "$@"
