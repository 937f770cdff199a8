"""The IFEval benchmark (Zhou et al., 2023): each model answers the held-out prompts, the checkers
(posttrain/checkers.py) score the answers, prompt- and instruction-level, strict and loose, with
95% Wilson intervals and per-prompt verdicts, and the field's one figure, `avg_strict`: the mean of
prompt- and instruction-level strict accuracy in points (0-100), as the Open LLM Leaderboard and
model cards quote IFEval (SmolLM2-135M-Instruct 29.9, Gemma 3 270M IT 51.2, on IFEval's 541)."""

from __future__ import annotations

import json
from pathlib import Path

from blindarena.stats import wilson
from posttrain.checkers import check_row, echoes  # noqa: F401  (echoes: the ifeval module's name for it too)
from posttrain.errors import WorkbenchError


def score(rows: list[dict]) -> dict:
    """IFEval's four accuracies (prompt- and instruction-level, strict and loose) with 95% Wilson
    intervals, per instruction id, and the rows' verdicts (with each response and whether it
    echoes its prompt); `prompt_loose_no_echo` counts an echoing answer as not following."""
    checked = [check_row(r) for r in rows]
    for row, c in zip(rows, checked):
        c["echoes_prompt"] = echoes(row.get("prompt") or "", row.get("response") or "")
        c["response"] = row.get("response") or ""
    n = len(checked)
    flat = [(i, s, l) for row, c in zip(rows, checked) for i, s, l in
            zip(row["instruction_id_list"], c["follow_instruction_list"], c["follow_instruction_list_loose"])]
    counts = {"prompt_strict": (sum(c["follow_all_instructions"] for c in checked), n),
              "prompt_loose": (sum(c["follow_all_instructions_loose"] for c in checked), n),
              "prompt_loose_no_echo": (sum(c["follow_all_instructions_loose"] and not c["echoes_prompt"] for c in checked), n),
              "instruction_strict": (sum(s for _, s, _ in flat), len(flat)),
              "instruction_loose": (sum(l for _, _, l in flat), len(flat))}
    by_instruction = {}
    for instruction in sorted({i for i, _, _ in flat}):
        mine = [(s, l) for i, s, l in flat if i == instruction]
        by_instruction[instruction] = {"strict": sum(s for s, _ in mine) / len(mine),
                                       "loose": sum(l for _, l in mine) / len(mine), "n": len(mine)}
    accuracy = {k: (hit / total if total else None) for k, (hit, total) in counts.items()}
    intervals = {k: list(wilson(hit, total)) for k, (hit, total) in counts.items()}
    intervals["avg_strict"] = avg_strict_interval(checked)
    return {**accuracy, "avg_strict": avg_strict(accuracy), "n": n,
            "echoed": sum(c["echoes_prompt"] for c in checked),
            "instructions": len(flat), "ci95": intervals, "by_instruction": by_instruction, "rows": checked}


def avg_strict_interval(checked: list[dict], rounds: int = 2000, seed: int = 0) -> list[float] | None:
    """A 95% percentile-bootstrap interval of avg_strict, in points: prompts resampled with their
    instructions (both halves of the figure move together), seeded so a rerun gives the same."""
    if not checked:
        return None
    import numpy as np

    prompt = np.array([bool(c["follow_all_instructions"]) for c in checked], dtype=float)
    followed = np.array([sum(c["follow_instruction_list"]) for c in checked], dtype=float)
    count = np.array([len(c["follow_instruction_list"]) for c in checked], dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(checked), size=(rounds, len(checked)))
    figures = 50 * (prompt[draws].mean(1) + followed[draws].sum(1) / np.maximum(count[draws].sum(1), 1))
    low, high = np.percentile(figures, [2.5, 97.5])
    return [round(float(low), 2), round(float(high), 2)]


def avg_strict(result: dict) -> float | None:
    """The field's IFEval figure: (prompt-level strict + instruction-level strict) / 2, in points."""
    if result.get("prompt_strict") is None or result.get("instruction_strict") is None:
        return None
    return round(50 * (result["prompt_strict"] + result["instruction_strict"]), 2)


def answer(generator, models: list[str], rows: list[dict], params, batch_rows: int = 8, progress=None,
           known: dict[tuple[str, int], str] | None = None, save=None) -> dict[str, list[str]]:
    """Each model's answer to each row's prompt (through the Generator protocol: the engine or an
    OpenAI-compatible server), several rows per batched call. Every model is made ready first, so
    a base without a chat template borrows its adapters' template even in a batch of its own rows.
    `known` {(model, row index): answer} are kept from an earlier run and not asked again; `save(model,
    row index, answer)` is called for each new answer as its batch ends, so a run that stops resumes."""
    known = known or {}
    for model in models:
        generator.ensure_model(model)
    out = {model: [known.get((model, i), "") for i in range(len(rows))] for model in models}
    todo = [(model, i) for model in models for i in range(len(rows)) if (model, i) not in known]
    for start in range(0, len(todo), batch_rows):
        chunk = todo[start : start + batch_rows]
        replies = generator.generate([rows[i]["prompt"] for _, i in chunk], [m for m, _ in chunk], params)
        for (model, i), reply in zip(chunk, replies):
            out[model][i] = reply.text
            if save is not None:
                save(model, i, reply.text)
        if progress:
            progress(min(start + batch_rows, len(todo)), len(todo))
    return out


class AnswerLog:
    """A JSONL file that answers are appended to as their batches end (model, row key, prompt,
    answer, and the run's settings), so a long run (IFEval's 541 at 1280 tokens takes hours on a
    CPU) that stops resumes where it stopped. Answers made with other settings are refused."""

    def __init__(self, path: str | Path, settings: dict):
        self.path, self.settings = Path(path), settings

    def known(self, models: list[str], rows: list[dict]) -> dict[tuple[str, int], str]:
        if not self.path.is_file():
            return {}
        where = {str(row.get("key", i)): i for i, row in enumerate(rows)}
        found = {}
        whole = self.path.read_text()
        lines = whole.splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                model, key, prompt, text, settings = (record[k] for k in ("model", "key", "prompt", "response", "settings"))
            except (ValueError, KeyError, TypeError):
                if number == len(lines) and not whole.endswith("\n"):
                    break  # a run killed while it wrote: that answer is asked again
                raise WorkbenchError(f"{self.path}:{number}: not an answer row of evaluate.py ifeval --answers") from None
            if settings != self.settings:
                raise WorkbenchError(f"{self.path}: its answers were made with other settings ({settings}, not "
                                     f"{self.settings}); name another --answers file")
            i = where.get(str(key))
            if i is None or rows[i]["prompt"] != prompt:
                raise WorkbenchError(f"{self.path}:{number}: row {key!r} is not among these prompts (or its prompt "
                                     f"differs); name another --answers file")
            if model in models:
                found[model, i] = text
        return found

    def save(self, rows: list[dict]):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            whole = self.path.read_text()
            if whole and not whole.endswith("\n"):  # drop a torn last line before appending after it
                self.path.write_text(whole[:whole.rfind("\n") + 1])

        def append(model: str, i: int, text: str) -> None:
            record = {"model": model, "key": rows[i].get("key", i), "prompt": rows[i]["prompt"], "response": text,
                      "settings": self.settings}
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")

        return append


def evaluate(rows: list[dict], responses: dict[str, list[str]]) -> dict:
    """{"ifeval": {name: score(...)}} for each name's responses to `rows` (in order)."""
    return {"ifeval": {name: score([{**row, "response": text} for row, text in zip(rows, texts)])
                       for name, texts in responses.items()}}
