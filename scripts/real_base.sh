#!/usr/bin/env bash
# The seed's lifts on a real pretrained base (Gemma 3 270M, offline from PyPI), one command:
# imports, data, SFT / reward / DPO, IFEval, judged win rates, the closed loop; writes
# reports/real_base/metrics.json and report.md. Idempotent: a rerun skips what exists.
# Run the README's first command (scripts/install.sh) once before. --quick: a smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/real_base.py "$@"
