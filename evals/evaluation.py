"""The side-by-side evaluation behind `scripts/evaluate.py --models ...`: held-out metrics of each
entry (where the generator can teacher-force), each entry's answers to the held-out prompts (a
campaign in the arena store, reused for the very same weights), a judge over every pair in both
orders, the method-family table, and the report folder (evals.report)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from blindarena import operations as arena
from evals import metrics, report
from evals.judge import OpenAIJudge, RewardJudge, judge_campaign
from blindarena.prompts import load_prompts
from blindarena.store import Store
from posttrain.backend import Generator
from posttrain.data import read, read_jsonl
from posttrain.engine import BASE, SamplingParams
from posttrain.registry import Registry, RegistryError, folder_hash
from posttrain.reward import RewardScorer, pairwise_accuracy

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class HeldOut:
    """The held-out files an evaluation reads."""

    prompts: str
    sft: str
    pairs: str
    general_text: str
    tasks: str


def entry_hash(registry: Registry, name: str) -> str:
    entry = registry.get(name)
    if entry.is_adapter:
        return folder_hash(entry.path, ("adapter_config.json", "*.safetensors"))
    return entry.card.get("base_hash") or folder_hash(entry.path)


def reward_vs_length(scorer, answers: list[dict]) -> dict:
    """The reward model's score of every stored answer against its length (a length-hacking check)."""
    from evals.overoptimization import pearson

    by_prompt: dict[str, list[dict]] = {}
    for answer in answers:
        by_prompt.setdefault(answer["prompt"], []).append(answer)
    points = []
    for prompt, group in by_prompt.items():
        for answer, score in zip(group, scorer.score(prompt, [a["text"] for a in group])):
            points.append((answer["new_tokens"], round(score, 4)))
    return {"correlation": pearson([p[0] for p in points], [p[1] for p in points]), "points": points}


def family_rows(registry: Registry, generator: Generator, shown: list[str], summary: dict, answers: list[dict],
                pairs: list[dict], names: dict) -> list[dict]:
    """One row per evaluated entry whose parent is evaluated too (DPO, IPO, KTO, ORPO, SimPO children
    of one SFT parent, say): held-out preference accuracy, implicit reward margin over the parent
    (where the generator scores), mean answer length, forgetting (general-text perplexity minus the
    parent's), judged win rate against the parent."""
    rows = []
    for model in shown:
        entry = registry.get(model)
        parent = entry.card.get("parent")
        if not entry.is_adapter or parent not in shown:
            continue
        mine, theirs = summary["metrics"].get(model, {}), summary["metrics"].get(parent, {})
        lengths = [a["new_tokens"] for a in answers if names.get(a["model"], a["model"]) == model]
        versus = next((w for w in summary["win_rates"] if {w["model"], w["opponent"]} == {model, parent}), None)
        if versus is not None and versus["model"] != model:  # the row is the parent's: flip it
            versus = {**versus, "win_rate": 1 - versus["win_rate"], "ci_low": 1 - versus["ci_high"],
                      "ci_high": 1 - versus["ci_low"], "wins": versus["losses"], "losses": versus["wins"]}
        margin = metrics.implicit_reward_margin(generator, model, parent, pairs) if generator.scores else None
        rows.append({
            "model": model, "method": entry.method, "parent": parent,
            "preference_accuracy": mine.get("preference_accuracy"), "reward_margin": margin,
            "answer_tokens": round(sum(lengths) / len(lengths), 1) if lengths else None,
            "general_perplexity_change": (round(mine["general_perplexity"] - theirs["general_perplexity"], 4)
                                          if "general_perplexity" in mine and "general_perplexity" in theirs else None),
            "win_rate_vs_parent": versus and round(versus["win_rate"], 4),
            "win_rate_ci": versus and [round(versus["ci_low"], 4), round(versus["ci_high"], 4)],
        })
    return rows


def choose_judge(mode: str, registry: Registry, generator: Generator, reward_name: str | None, pairs: list[dict]):
    """(judge, reward model summary) for --judge auto | reward | openai | none: the named or newest
    reward entry (auto, reward), else an OpenAI-compatible judge (openai, or auto with
    JUDGE_BASE_URL set), else none."""
    reward_name = reward_name or getattr(registry.newest("reward"), "name", None)
    if mode in ("auto", "reward") and reward_name:
        device = getattr(generator, "device", None)  # on a GPU: beside the engine, 4-bit too
        scorer = RewardScorer(registry, reward_name, device=device,
                              quantize=generator.quantization == "nf4" and device is not None and device.type == "cuda")
        accuracy = round(pairwise_accuracy(scorer.model, scorer.tokenizer, pairs), 4)
        return RewardJudge(scorer, name=reward_name), {"name": reward_name, "preference_accuracy": accuracy}
    if mode == "openai" or (mode == "auto" and os.environ.get("JUDGE_BASE_URL")):
        return OpenAIJudge.from_env(), None
    if mode == "reward":
        raise RegistryError("no reward entry in the registry; train one: scripts/train.py reward")
    return None, None


def answer_campaign(store: Store, generator: Generator, registry: Registry, base: str, models: list[str],
                    prompts_file: str, max_new_tokens: int, batch_rows: int, progress: Callable[[int, int], None]) -> str:
    """The campaign holding every model's answer to the held-out prompts. Stored answers are reused
    only for the very same weights: a retrained entry of the same name has other hashes, so it gets
    a campaign of its own."""
    hashes = [entry_hash(registry, base if m == BASE else m) for m in models]
    key = hashlib.sha1(json.dumps([models, hashes, prompts_file, max_new_tokens]).encode()).hexdigest()[:10]
    campaign = f"eval-{key}"
    if campaign in {c.name for c in store.campaigns()}:
        arena.generate_missing(store, generator, campaign, batch_rows=batch_rows, progress=progress)
    else:
        arena.create_campaign(store, generator, campaign, models, load_prompts(prompts_file),
                              SamplingParams(max_new_tokens=max_new_tokens, temperature=0), source=prompts_file,
                              batch_rows=batch_rows, progress=progress)
    return campaign


def evaluate(store: Store, registry: Registry, generator: Generator, base: str, models: list[str], held: HeldOut,
             out: str | Path, judge_mode: str = "auto", reward: str | None = None, max_new_tokens: int = 64,
             batch_rows: int = 8, progress: Progress | None = None) -> Path:
    """Measure, answer, judge and write the report folder; returns it. `models` are registry names
    (the base's own name: the plain base)."""
    say = progress or (lambda stage, done, total: None)
    inner = [BASE if m == base else m for m in models]
    for model in inner:
        generator.ensure_model(model)
    names = {BASE: base}
    # TRL's standard or conversational form, through the project's reader (an empty file: no pairs)
    pairs = read(held.pairs, kind="preference", on_error="stop").rows if read_jsonl(held.pairs) else []
    if generator.scores:  # each held-out file read once, for every model
        sft, tasks = read_jsonl(held.sft), read_jsonl(held.tasks)
        general = [r["text"] for r in read_jsonl(held.general_text)]
    measured = {}
    for done, model in enumerate(inner):
        say("metrics", done, len(inner))
        measured[names.get(model, model)] = (metrics.measure(generator, model, sft, general, pairs, tasks)
                                             if generator.scores else {})
    judge, reward_summary = choose_judge(judge_mode, registry, generator, reward, pairs)
    campaign = answer_campaign(store, generator, registry, base, inner, held.prompts, max_new_tokens, batch_rows,
                               lambda done, total: say("answers", done, total))
    if judge is not None:
        judge_campaign(store, campaign, judge, progress=lambda done, total: say(f"judge {judge.name}", done, total))
    votes = [{**v, "model_a": names.get(v.model_a, v.model_a), "model_b": names.get(v.model_b, v.model_b)}
             for v in store.votes(campaign)]
    shown = [names.get(m, m) for m in inner]
    summary = {**report.summarise(shown, measured, votes, reward_summary), "campaign": campaign}
    answers = store.answers(campaign)
    summary["family"] = family_rows(registry, generator, shown, summary, answers, pairs, names)
    if isinstance(judge, RewardJudge):
        summary["reward_vs_length"] = reward_vs_length(judge.scorer, answers)
    prompts = [p["prompt"] for p in load_prompts(held.prompts)]
    samples = [{"prompt": prompt, "answers": {names.get(a["model"], a["model"]): a["text"] for a in answers
                                              if a["prompt"] == prompt}}
               for prompt in prompts[:: max(1, len(prompts) // 4)][:4]]
    return report.write(out or Path("reports") / "_vs_".join(shown), summary, samples)
