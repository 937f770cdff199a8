"""AI feedback in the manner of Constitutional AI (Bai et al. 2022): for each prompt, an answer
from a model of the registry (or the teacher), then the teacher's critique of it against one
principle of a constitution and its revision, written as a preference pair (the revision chosen,
the original rejected) with the principle used. The critiques and revisions go through the
project's parallel API client (concurrency, rate limits, retries, cache)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from posttrain.data import DataError

CRITIQUE = ("Identify specific ways in which the assistant's last response falls short of this principle: {principle}\n"
            "Be concrete and brief.")
REVISION = ("Rewrite the assistant's last response so that it follows this principle: {principle}\n"
            "Use the critique above. Reply with the rewritten response only.")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.+?)\s*$")


def load_constitution(path: str | Path) -> list[str]:
    """The principles of a Markdown constitution: its list items, one principle each."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such constitution file")
    principles = [m.group(1) for line in path.read_text(encoding="utf-8").splitlines() if (m := _ITEM.match(line))]
    if not principles:
        raise DataError(f"{path}: no principles (write each as a Markdown list item: '- Be honest about ...')")
    return principles


def critique_and_revise(client, model: str, prompts: list[str], answers: list[str], principles: list[str],
                        seed: int = 0, max_tokens: int = 400) -> tuple[list[dict], dict]:
    """Preference rows in TRL's conversational format plus `principle` and `critique`, and counts.
    Each prompt gets one principle (drawn with `seed`); a revision that is empty or the same as the
    original gives no pair (counted)."""
    rng = random.Random(seed)
    chosen = [rng.choice(principles) for _ in prompts]
    base = [[{"role": "user", "content": p}, {"role": "assistant", "content": a}] for p, a in zip(prompts, answers)]
    body = lambda messages, i: {"model": model, "temperature": 0, "max_tokens": max_tokens, "seed": seed + i,
                                "messages": messages}
    asked = [conv + [{"role": "user", "content": CRITIQUE.format(principle=rule)}] for conv, rule in zip(base, chosen)]
    critiques = [r["text"] for r in client.complete_many([body(m, i) for i, m in enumerate(asked)])]
    revise = [m + [{"role": "assistant", "content": c}, {"role": "user", "content": REVISION.format(principle=rule)}]
              for m, c, rule in zip(asked, critiques, chosen)]
    revisions = [r["text"].strip() for r in client.complete_many([body(m, i) for i, m in enumerate(revise)])]
    rows, unchanged = [], 0
    for prompt, answer, rule, critique, revision in zip(prompts, answers, chosen, critiques, revisions):
        if not revision or revision == answer.strip():
            unchanged += 1
            continue
        rows.append({"prompt": [{"role": "user", "content": prompt}],
                     "chosen": [{"role": "assistant", "content": revision}],
                     "rejected": [{"role": "assistant", "content": answer}],
                     "principle": rule, "critique": critique})
    return rows, {"prompts": len(prompts), "pairs": len(rows), "unchanged": unchanged}


def write_pairs(rows: list[dict], out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(out)
