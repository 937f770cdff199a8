"""Self-instruct and Evol-Instruct prompts, and parsing a teacher's reply back into an
{instruction, input, output} example. Resumable: raw replies are appended to a JSONL file and a
rerun continues after the last one."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Callable

SELF_INSTRUCT = (
    "You write new tasks for a helpful assistant. Here are {k} example tasks:\n\n{examples}\n\n"
    "Write ONE new task that is different from all of them, in exactly the same format "
    "(Instruction, Input, Output; leave Input empty when none is needed)."
)
EVOL = (
    "Here is a task:\n\n{example}\n\nRewrite it into a new, more specific and slightly harder task, and answer it. "
    "Use exactly the same format (Instruction, Input, Output)."
)
_FIELDS = re.compile(r"(?is)instructions?\s*:\s*(?P<instruction>.*?)(?:\n\s*inputs?\s*:\s*(?P<input>.*?))?\n\s*(?:output|answer|response)s?\s*:\s*(?P<output>.*)")


def show(example: dict) -> str:
    return f"Instruction: {example['instruction']}\nInput: {example.get('input', '')}\nOutput: {example['output']}"


def make_prompt(kind: str, pool: list[dict], rng: random.Random, k: int = 3) -> str:
    if kind == "evol":
        return EVOL.format(example=show(rng.choice(pool)))
    picked = rng.sample(pool, min(k, len(pool)))
    return SELF_INSTRUCT.format(k=len(picked), examples="\n\n".join(show(e) for e in picked))


def parse(reply: str) -> dict | None:
    """The first Instruction/Input/Output block in a reply, or None when there is none."""
    text = reply.strip()
    if not re.match(r"(?i)\s*instructions?\s*:", text):
        text = "Instruction: " + text  # small teachers often start straight with the task
    match = _FIELDS.search(text)
    if not match:
        return None
    output = re.split(r"\n\s*instructions?\s*:", match.group("output"), flags=re.I)[0]  # a second task starts
    return {"instruction": match.group("instruction").strip(), "input": (match.group("input") or "").strip(),
            "output": output.strip()}


def generate(teacher, seeds: list[dict], n: int, raw_path: Path, evol_share: float = 0.3, batch: int = 16,
             seed: int = 0, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Until `n` raw replies exist in raw_path: prompt the teacher in batches and append each
    {id, kind, prompt, reply}. Returns all raw rows (earlier runs' included)."""
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in raw_path.read_text().splitlines()] if raw_path.exists() else []
    pool = list(seeds)
    while len(rows) < n:
        rng = random.Random(seed * 1_000_003 + len(rows))
        size = min(batch, n - len(rows))
        kinds = ["evol" if rng.random() < evol_share else "self-instruct" for _ in range(size)]
        prompts = [make_prompt(kind, pool, rng) for kind in kinds]
        replies = teacher.complete(prompts, seed=seed + len(rows))
        with open(raw_path, "a", encoding="utf-8") as handle:
            for kind, prompt, reply in zip(kinds, prompts, replies):
                row = {"id": len(rows), "kind": kind, "prompt": prompt, "reply": reply}
                rows.append(row)
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        pool += [e for e in map(parse, replies) if e and e["instruction"] and e["output"]][:4]
        if progress:
            progress(len(rows), n)
    return rows[:n]
