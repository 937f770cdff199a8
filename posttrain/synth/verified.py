"""Training data with verifiable instructions, by rejection sampling: a teacher answers each
IFEval-schema prompt several times, the IFEval checkers (posttrain/checkers.py) keep the answers that
follow every instruction, and the rest become the rejected side of preference pairs:

    prompts -> k samples each -> filters (empty, repetitive, duplicate) -> checker verdicts
            -> contamination check against every held-out set -> SFT rows, pairs, held-out pairs

Every sample that leaves says at which stage and why (dropped.jsonl), so the funnel adds up, and
the folder's README.md is its data card. Used by `scripts/synth.py ifeval`."""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from posttrain import checkers
from posttrain.benchmarks import NAMES as BENCHMARKS, is_named
from posttrain.data import read_jsonl
from posttrain.synth import clean


@dataclass
class VerifiedConfig:
    prompts: str = "data/ifeval_train.jsonl"
    out: str = "runs/verified"
    samples: int = 4
    temperature: float = 0.8
    max_new_tokens: int = 192
    seed: int = 0
    heldout_pair_share: float = 0.15  # of the prompts with a pair: their pairs are held out (DPO's preference accuracy)
    eval_files: list[str] = field(default_factory=lambda: [
        "data/ifeval_heldout.jsonl", "data/heldout_prompts.jsonl", "data/mtbench_lite.jsonl", "data/tasks_heldout.jsonl",
        "data/sft/heldout.jsonl", "data/preference/heldout.jsonl", *BENCHMARKS])
    check_files: list[str] = field(default_factory=lambda: ["data/general/train.jsonl"])


def prompt_texts(path: str | Path) -> list[str]:
    """The prompts of any of the project's files: IFEval's `prompt`, MT-Bench `turns`, chat
    `messages` / preference `prompt` turns (the user's), or `instruction`."""
    from posttrain import benchmarks

    if benchmarks.is_named(path):  # a benchmark set held out by name ("ifeval", "arena-hard", "alpaca-eval")
        return benchmarks.texts(path)
    texts = []
    for row in read_jsonl(path):
        if isinstance(row.get("prompt"), str):
            texts.append(row["prompt"])
        elif row.get("turns"):
            texts += list(row["turns"])
        else:
            turns = row.get("messages") or (row["prompt"] if isinstance(row.get("prompt"), list) else [])
            users = [t["content"] for t in turns if t.get("role") == "user"]
            texts += users or [row[k] for k in ("instruction", "question") if row.get(k)][:1]
    return texts


def repetitive(text: str, t: clean.Thresholds) -> bool:
    tokens = clean.words(text)
    trigrams = list(zip(tokens, tokens[1:], tokens[2:]))
    return len(trigrams) >= 10 and len(set(trigrams)) / len(trigrams) < t.min_distinct_trigrams


def sample(teacher, rows: list[dict], config: VerifiedConfig, progress: Callable[[int, int], None] | None = None) -> list[list[str]]:
    """`config.samples` answers per prompt, cached in OUT/raw.jsonl (a rerun with the same teacher,
    prompts and settings reads them back instead of generating)."""
    raw = Path(config.out) / "raw.jsonl"
    key = hashlib.sha256(json.dumps([getattr(teacher, "name", ""), [r["prompt"] for r in rows], config.samples,
                                     config.temperature, config.max_new_tokens, config.seed]).encode()).hexdigest()
    if raw.is_file():
        lines = raw.read_text(encoding="utf-8").splitlines()
        if lines and json.loads(lines[0]).get("key") == key:
            got = [json.loads(line) for line in lines[1:]]
            if len(got) == len(rows) and all("cut" in g for g in got):  # (a cache from before cut answers were marked: resampled)
                return [[clean.Cut(t) if i in g["cut"] else t for i, t in enumerate(g["samples"])] for g in got]
    prompts = [r["prompt"] for r in rows]
    out: list[list[str]] = [[] for _ in rows]
    for s in range(config.samples):  # one pass over every prompt per sample: whole batches, a seed per pass
        for i, text in enumerate(teacher.complete(prompts, seed=config.seed + 10_000 * s)):
            out[i].append(text)
        if progress:
            progress(s + 1, config.samples)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"key": key}) + "\n" + "".join(
        json.dumps({"key": r["key"], "samples": texts, "cut": [i for i, t in enumerate(texts) if isinstance(t, clean.Cut)]},
                   ensure_ascii=False) + "\n" for r, texts in zip(rows, out)), encoding="utf-8")
    return out


def chat(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def build(rows: list[dict], samples: list[list[str]], config: VerifiedConfig, embedder=None) -> dict:
    """SFT rows, pairs and the funnel from the teacher's samples (no model needed here but the
    embedder of the contamination check; pass one in tests)."""
    t = clean.Thresholds()
    kept, dropped = checked_samples(rows, samples, t)  # kept: (row, [(text, verdict)])
    evals = [p for path in config.eval_files if is_named(path) or Path(path).is_file() for p in prompt_texts(path)]
    embed = embedder or clean.Embedder()
    candidates = [{"instruction": row["prompt"]} for row, _ in kept]
    hits = clean.contamination(candidates, embed([c["instruction"] for c in candidates]), evals, embed(evals), t)
    sft, pairs = rows_and_pairs([k for i, k in enumerate(kept) if i not in hits], dropped)
    for i in hits:
        row, good = kept[i]
        dropped += [{"key": row["key"], "stage": "contamination", "reason": hits[i], "response": text[:200]} for text, _ in good]
    checked_elsewhere = {}
    for path in config.check_files:
        if Path(path).is_file():
            others = [{"instruction": p} for p in prompt_texts(path)]
            found = clean.contamination(others, embed([o["instruction"] for o in others]), evals, embed(evals), t)
            checked_elsewhere[path] = {"rows": len(others), "overlaps": len(found),
                                       "examples": [others[i]["instruction"][:80] + ": " + why for i, why in sorted(found.items())[:5]]}
    order = list(range(len(pairs)))
    random.Random(config.seed).shuffle(order)
    held = set(order[:max(1, round(config.heldout_pair_share * len(pairs))) if len(pairs) >= 4 else 0])
    by_instruction = {}
    for row, good in kept:
        for kind in row["instruction_id_list"]:
            slot = by_instruction.setdefault(kind, {"prompts": 0, "with_sft_row": 0})
            slot["prompts"] += 1
            slot["with_sft_row"] += any(v["follow_all_instructions"] for _, v in good)
    sampled = sum(len(s) for s in samples)
    return {
        "sft": sft, "pairs": [p for i, p in enumerate(pairs) if i not in held],
        "pairs_heldout": [p for i, p in enumerate(pairs) if i in held], "dropped": dropped,
        "summary": {"prompts": len(rows), "samples": sampled,
                    "dropped_by_filter": sum(d["stage"] == "filter" for d in dropped),
                    "contaminated_prompts": len(hits), "eval_prompts_checked": len(evals),
                    "eval_files": [p for p in config.eval_files if is_named(p) or Path(p).is_file()],
                    "sft_rows": len(sft), "pairs": len(pairs) - len(held), "pairs_heldout": len(held),
                    "pass_rate": round(sum(v["follow_all_instructions"] for _, g in kept for _, v in g) / max(1, sampled), 4),
                    "by_instruction": by_instruction, "other_files": checked_elsewhere},
    }


def checked_samples(rows: list[dict], samples: list[list[str]], t) -> tuple[list[tuple[dict, list]], list[dict]]:
    """Each row with its samples that pass the filters (not empty, cut off, repetitive, repeated or a
    parroted prompt), each with its checker verdict; and the dropped samples."""
    dropped, kept = [], []
    for row, texts in zip(rows, samples):
        seen, good = set(), []
        for sample in texts:
            text = sample.strip()
            why = ("empty" if not text else "cut off at the token limit" if isinstance(sample, clean.Cut)
                   else "repetitive" if repetitive(text, t)
                   else "duplicate sample" if text.lower() in seen
                   else "echoes its prompt" if checkers.parrots(row, text) else None)
            if why:
                dropped.append({"key": row["key"], "stage": "filter", "reason": why, "response": text[:200]})
                continue
            seen.add(text.lower())
            good.append((text, checkers.check_row({**row, "response": text})))
        kept.append((row, good))
    return kept, dropped


def rows_and_pairs(kept: list[tuple[dict, list]], dropped: list[dict]) -> tuple[list[dict], list[dict]]:
    """The SFT row (the first sample that follows every instruction) and the pair (it over one that
    breaks an instruction even read loosely) of each prompt; prompts without a passing sample go
    to `dropped`."""
    sft, pairs = [], []
    for row, good in kept:
        passing = [text for text, v in good if v["follow_all_instructions"]]
        failing = [text for text, v in good if not v["follow_all_instructions_loose"]]
        if passing:
            sft.append({"messages": chat(row["prompt"], passing[0]), "key": row["key"],
                        "instruction_id_list": row["instruction_id_list"]})
        else:
            dropped += [{"key": row["key"], "stage": "checker", "reason": "no sample follows every instruction",
                         "response": text[:200]} for text, _ in good]
        if passing and failing:
            pairs.append({"prompt": [{"role": "user", "content": row["prompt"]}],
                          "chosen": [{"role": "assistant", "content": passing[0]}],
                          "rejected": [{"role": "assistant", "content": failing[0]}], "key": row["key"]})
    return sft, pairs


CARD = """# Verified instruction data

Built by `scripts/synth.py ifeval` (posttrain/synth/verified.py) on {date}.

- **Source**: {prompts} prompts of `{prompts_file}` (IFEval's schema, the project's own wording),
  answered {k} times each by the teacher `{teacher}` (temperature {temperature}, at most
  {max_new_tokens} new tokens): {samples} samples.
- **Filters and their drops**: empty, repetitive (under half of its word trigrams distinct) or a
  duplicate of another sample of the same prompt: {dropped_by_filter} samples; contamination
  (a shared 8-gram or MiniLM cosine >= 0.85 with any of {eval_prompts_checked} prompts of
  {eval_files}): {contaminated_prompts} prompts dropped; checker (IFEval, strict: no sample
  follows every instruction): {no_pass} prompts without an SFT row.
- **Sizes**: `sft.jsonl` {sft_rows} rows (TRL conversational: the first sample that follows every
  instruction); `pairs.jsonl` {pairs} pairs and `pairs_heldout.jsonl` {pairs_heldout} (chosen:
  follows every instruction; rejected: breaks one even under IFEval's loose reading).
- **Teacher pass rate**: {pass_rate} of the samples follow every instruction.
- **Other training files checked against the same held-out prompts**: {others}.

| instruction | prompts | with an SFT row |
|---|---|---|
{table}
"""


def card(summary: dict, config: VerifiedConfig, teacher: str) -> str:
    no_pass = summary["prompts"] - summary["sft_rows"] - summary["contaminated_prompts"]
    others = "; ".join(f"`{p}` {o['rows']} rows, {o['overlaps']} overlaps" for p, o in summary["other_files"].items()) or "none"
    table = "\n".join(f"| {k} | {v['prompts']} | {v['with_sft_row']} |" for k, v in sorted(summary["by_instruction"].items()))
    return CARD.format(date=time.strftime("%Y-%m-%d"), prompts_file=config.prompts, k=config.samples, teacher=teacher,
                       temperature=config.temperature, max_new_tokens=config.max_new_tokens, no_pass=no_pass,
                       others=others, table=table, eval_files=", ".join(f"`{p}`" for p in summary["eval_files"]),
                       **{k: v for k, v in summary.items() if k not in ("eval_files",)})


def write(built: dict, config: VerifiedConfig, teacher: str) -> Path:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("sft", "pairs", "pairs_heldout", "dropped"):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in built[name]),
                                           encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({"config": asdict(config), "teacher": teacher, **built["summary"]},
                                                 indent=2) + "\n")
    (out / "README.md").write_text(card(built["summary"], config, teacher), encoding="utf-8")
    return out


def contrast_pairs(rows: list[dict], seed: int = 0) -> list[dict]:
    """Preference pairs for a judge from chat rows with a written answer: the answer is chosen;
    rejected is, in turn, another row's answer (off the question), the answer running on into a
    made-up next turn (a base model that does not stop), or its first third (cut off). What a
    judge of base vs SFT must tell apart, and nothing about style."""
    rng = random.Random(seed)
    out = []
    for i, row in enumerate(rows):
        user, answer = row["messages"][0]["content"], row["messages"][-1]["content"]
        other = rows[(i + 1 + rng.randrange(len(rows) - 1)) % len(rows)] if len(rows) > 1 else row
        kind = i % 3
        if kind == 0 and other is not row:
            rejected = other["messages"][-1]["content"]
        elif kind == 1 and other is not row:
            rejected = f"{answer}\n\n{other['messages'][0]['content']}\n{other['messages'][-1]['content']}"
        else:
            words = answer.split()
            rejected = " ".join(words[: max(1, len(words) // 3)])
        if rejected.strip() == answer.strip():
            continue
        out.append({"prompt": [{"role": "user", "content": user}], "chosen": [{"role": "assistant", "content": answer}],
                    "rejected": [{"role": "assistant", "content": rejected}]})
    return out
