"""Prompt sets, gold checks and guidelines from files, for campaigns and evaluations: MT-Bench
question.jsonl, rows with a prompt-like field, conversations (their user turns), JSON Lines or
CSV. A bad row stops the load with file:line and the reason."""

from __future__ import annotations

import csv
from pathlib import Path

from blindarena.records import StoreError
from posttrain.data import DataError, jsonl_objects, read

DEFAULT_PROMPTS = Path(__file__).resolve().parents[1] / "data" / "heldout_prompts.jsonl"
PROMPT_KEYS = ("prompt", "instruction", "question", "text")


def load_prompts(path: str | Path) -> list[dict]:
    """Prompts from JSONL or CSV: MT-Bench question.jsonl (question_id, category, turns; the first
    turn is the prompt) or rows with a prompt/instruction/question/text field and an optional
    category. Bad rows stop the load with file:line and reason. A benchmark set's name
    (posttrain.benchmarks: "ifeval", "arena-hard:40", "alpaca-eval:100") stands for its prompts."""
    from posttrain import benchmarks

    if benchmarks.is_named(path):
        try:
            return benchmarks.prompt_rows(*benchmarks.parse(path))
        except benchmarks.BenchmarkError as exc:
            raise StoreError(str(exc)) from None
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such prompt file")
    if path.suffix.lower() == ".csv":
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                rows = [(f"{path}:{i + 2}", row) for i, row in enumerate(csv.DictReader(handle))]
        except UnicodeDecodeError:
            raise StoreError(f"{path}: not UTF-8 text; save the prompt file as UTF-8") from None
    else:
        rows = jsonl_objects(path, StoreError)
    prompts = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise StoreError(f"{where}: expected an object")
        turns = user_turns(row, where)
        text = turns[0] if turns else next((row[k] for k in PROMPT_KEYS if row.get(k)), None)
        if not isinstance(text, str) or not text.strip():
            raise StoreError(f"{where}: no prompt text (use 'turns', 'messages' or one of {PROMPT_KEYS})")
        prompt = {"question_id": row.get("question_id", len(prompts) + 1), "category": row.get("category") or None,
                  "prompt": text.strip()}
        if turns and len(turns) > 1:  # answered turn by turn, each model on its own earlier answers
            prompt["turns"] = [t.strip() for t in turns]
        prompts.append(prompt)
    if not prompts:
        raise StoreError(f"{path}: no prompts")
    return prompts


def load_gold(path: str | Path) -> list[dict]:
    """Gold checks from preference rows (`prompt`, `chosen`, `rejected`: any format posttrain.data
    reads as preference data), each a single user turn. A bad row stops the load with file:line."""
    try:
        rows = read(path, on_error="stop", kind="preference").rows
    except DataError as exc:
        raise StoreError(f"gold file: {exc}") from None
    gold = []
    for number, row in enumerate(rows, 1):
        users = [m["content"] for m in row["prompt"] if m["role"] == "user"]
        if len(users) != 1:
            raise StoreError(f"{path}: gold row {number} has {len(users)} user turns; a gold check is one prompt")
        gold.append({"prompt": users[0], "chosen": row["chosen"][-1]["content"], "rejected": row["rejected"][-1]["content"]})
    if not gold:
        raise StoreError(f"{path}: no gold rows")
    return gold


def load_guidelines(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such guidelines file")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise StoreError(f"{path}: guidelines must be UTF-8 Markdown text") from None
    if not text:
        raise StoreError(f"{path}: the guidelines are empty")
    return text


def user_turns(row: dict, where: str) -> list[str] | None:
    """The user turns of a row: MT-Bench's `turns`, or the user messages of `messages` (the file's
    own assistant messages are dropped: every model answers every turn itself)."""
    if isinstance(row.get("turns"), list) and row["turns"]:
        turns = row["turns"]
    elif isinstance(row.get("messages"), list) and row["messages"]:
        turns = [m.get("content") for m in row["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    else:
        return None
    if not turns or not all(isinstance(t, str) and t.strip() for t in turns):
        raise StoreError(f"{where}: every user turn must be non-empty text")
    return turns


def multi_turn_count(prompts: list[dict]) -> int:
    return sum(1 for p in prompts if len(p.get("turns") or []) > 1)


def answers_needed(prompts: list[dict], models: list[str]) -> int:
    """Generation calls a campaign needs: each model answers every turn of every prompt."""
    return sum(max(1, len(p.get("turns") or [])) for p in prompts) * len(models)
