#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job on the embedded default base: install, import
# SmolLM2-135M-Instruct into the registry, train the demo SFT adapter, then DPO on top of it
# (each skipped when its entry already exists), a side-by-side battle SFT vs DPO in the
# terminal, a blind campaign over the 50 held-out prompts, and finally the arena at
# http://127.0.0.1:7860 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
py=.venv/bin/python
$py scripts/registry.py import-default
for kind in sft dpo; do
  $py scripts/registry.py show "$kind" >/dev/null 2>&1 || $py scripts/train.py "$kind" --config "posttrain/recipes/${kind}_default.yaml"
done
$py scripts/demo.py --a sft --b dpo --prompt "What is the capital of Germany?" --temperature 0
$py scripts/arena.py campaign list --json | grep -q '"name": "captains"' \
  || $py scripts/arena.py campaign create captains --models sft dpo --max-new-tokens 64 \
       --system "Answer the question directly and helpfully. Do not introduce yourself or say who made you."
exec $py app.py "$@"
