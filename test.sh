#!/usr/bin/env bash
# Installs what is missing (llama.cpp included: its tests run GGUF exports and the llamacpp backend;
# built from source the first time, about 6 minutes on 2 cores), then runs the whole test suite (unit
# tests on tiny models, behaviour tests on the real embedded base).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh --llama-cpp
.venv/bin/python -m pytest -q "$@"
