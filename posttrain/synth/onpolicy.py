"""On-policy rounds: the model being trained answers each training prompt K times (batched,
through the engine), and its own answers become its training data: the IFEval checkers score
prompts that carry constraints, a reward model (`judge`) scores the others; best-of-K answers
become SFT rows and a passing (or best-scored) answer over a failing (or worst-scored) one a DPO
pair. Pairs from the policy itself teach it more than pairs sampled from another model: the
rejected answer is a mistake it actually makes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from posttrain import checkers
from posttrain.synth import clean, verified
from posttrain.data import jsonl_objects


def read_prompts(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(rows with IFEval constraints, rows without) from a JSONL of `prompt` rows; constraints, when
    present, are IFEval's schema and are checked like `evaluate.py ifeval` checks them."""
    located = jsonl_objects(path, checkers.IFEvalError)
    checked, free = [], []
    for where, row in located:
        if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise checkers.IFEvalError(f"{where}: a row needs its `prompt` as text")
        key = row.get("key", row.get("question_id", int(where.rsplit(":", 1)[1])))
        if "instruction_id_list" in row:
            problem = checkers.row_problem(row)
            if problem:
                raise checkers.IFEvalError(f"{where}: {problem}")
            checked.append({**row, "key": key})
        else:
            free.append({"key": key, "prompt": row["prompt"]})
    if not checked and not free:
        raise checkers.IFEvalError(f"{path}: no prompts")
    return checked, free


def judged(rows: list[dict], samples: list[list[str]], score) -> tuple[list[dict], list[dict]]:
    """Best-of-K SFT rows and best-over-worst pairs by a reward model's scores (`score(prompt,
    replies) -> scores`); a prompt whose answers all score alike gives no pair."""
    sft, pairs = [], []
    for row, texts in zip(rows, samples):
        texts = [t.strip() for t in dict.fromkeys(texts) if t.strip() and not isinstance(t, clean.Cut)]  # finished answers only
        if not texts:
            continue
        scores = score(row["prompt"], texts)
        ranked = sorted(zip(scores, texts), key=lambda pair: -pair[0])
        sft.append({"messages": verified.chat(row["prompt"], ranked[0][1]), "key": row["key"], "score": ranked[0][0]})
        if len(ranked) > 1 and ranked[0][0] > ranked[-1][0]:
            pairs.append({"prompt": [{"role": "user", "content": row["prompt"]}],
                          "chosen": [{"role": "assistant", "content": ranked[0][1]}],
                          "rejected": [{"role": "assistant", "content": ranked[-1][1]}], "key": row["key"],
                          "score_chosen": ranked[0][0], "score_rejected": ranked[-1][0]})
    return sft, pairs


def check_judge(free: list[dict], judged: bool) -> None:
    """Prompts without IFEval constraints need a judge to score their answers."""
    if free and not judged:
        raise checkers.IFEvalError(f"{len(free)} prompts carry no IFEval constraints; pass --judge NAME (a reward model) "
                                 "to score their answers, or give prompts with instruction_id_list")


def round_data(teacher, checked: list[dict], free: list[dict], config: verified.VerifiedConfig, score=None,
               embedder=None, progress=None) -> dict:
    """The round's SFT rows, pairs and summary: checker-scored rows through posttrain/synth/verified.py's
    pipeline (filters, contamination check, held-out pairs), judge-scored rows by `score`."""
    check_judge(free, score is not None)
    built = {"sft": [], "pairs": [], "pairs_heldout": [], "dropped": [], "summary": {"prompts": 0, "samples": 0}}
    if checked:
        built = verified.build(checked, verified.sample(teacher, checked, config, progress), config, embedder)
    if free:
        samples = verified.sample(teacher, free, replace(config, out=str(Path(config.out) / "judged")), progress)
        sft, pairs = judged(free, samples, score)
        built["sft"] += sft
        built["pairs"] += pairs
        built["summary"] = {**built["summary"], "judged_prompts": len(free), "judged_sft_rows": len(sft),
                            "judged_pairs": len(pairs)}
    built["summary"] = {**built["summary"], "sft_rows": len(built["sft"]), "pairs": len(built["pairs"]),
                        "policy": getattr(teacher, "name", "")}
    return built


def write(built: dict, config: verified.VerifiedConfig, policy: str) -> Path:
    out = verified.write(built, config, policy)
    summary = json.loads((out / "summary.json").read_text())
    (out / "README.md").write_text((out / "README.md").read_text().replace(
        "# Verified instruction data", f"# On-policy round data\n\nThe policy `{policy}` answered its own training prompts "
        f"(on-policy: the teacher is the model being trained).{judged_line(summary)}"), encoding="utf-8")
    return out


def judged_line(summary: dict) -> str:
    if not summary.get("judged_prompts"):
        return ""
    return (f" {summary['judged_prompts']} prompts without constraints were scored by the reward model: "
            f"{summary['judged_sft_rows']} best-of-K rows, {summary['judged_pairs']} best-over-worst pairs.")
