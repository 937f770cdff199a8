#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job on the embedded default base:
# install, import SmolLM2-135M-Instruct into registry/, then a side-by-side battle from the
# shared 4-bit base.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
.venv/bin/python scripts/registry.py import-default
.venv/bin/python scripts/demo.py "$@"
