"""The closed loop, one action: a campaign's human pairs -> a DPO round on a parent adapter (the
project's recipe, overridable), or with method "grpo" a reward model trained on those pairs and a
GRPO round against it -> the child published with its lineage -> a new blind campaign, child vs
parent, on prompts the pairs never saw (checked like the data builder's contamination check).
Used by `scripts/arena.py next-round` and the app's admin tab."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from blindarena import operations as arena
from blindarena.export import export_pairs
from blindarena.prompts import load_prompts
from blindarena.store import Store, StoreError
from posttrain.backend import Generator
from posttrain.engine import SamplingParams
from posttrain.registry import Registry, RegistryError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = ROOT / "posttrain" / "recipes" / "dpo_default.yaml"
RECIPES = {"dpo": DEFAULT_RECIPE, "grpo": ROOT / "posttrain" / "recipes" / "grpo_default.yaml"}
REWARD_RECIPE = ROOT / "posttrain" / "recipes" / "reward_default.yaml"
ROUND_METHODS = tuple(RECIPES)  # how a round trains on the votes


def overlapping_prompts(prompts: list[dict], seen: list[str]) -> list[str]:
    """New prompts that overlap the pairs' prompts (a shared 8-gram or a close MiniLM embedding):
    each named with its place in the file and the pair prompt it matches."""
    from posttrain.synth.clean import Embedder, Thresholds, contamination

    rows = [{"instruction": p["prompt"]} for p in prompts]
    embed = Embedder()
    found = contamination(rows, embed([r["instruction"] for r in rows]), seen, embed(seen), Thresholds())
    return [f"prompt {i + 1} (question_id {prompts[i]['question_id']}) {prompts[i]['prompt'][:60]!r}: {why}"
            for i, why in sorted(found.items())]


def free_campaign_name(store: Store, base: str, models: list[str]) -> str:
    """`BASE-next` (then -next2, ...); raters see it, so no model's name may show in it."""
    if arena.leaked_models(base, models):
        base = "round"
    names = {c.name for c in store.campaigns()}
    name, k = f"{base}-next", 2
    while name in names:
        name, k = f"{base}-next{k}", k + 1
    return name


def add_pairs(pairs_file: Path, extra: str | Path) -> int:
    """Append a preference file's pairs (read and checked like any training data, in TRL's
    conversational form) to the round's pairs file; returns how many."""
    from posttrain.data import read

    rows = read(extra, kind="preference", on_error="stop").rows
    with open(pairs_file, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps({k: r[k] for k in ("prompt", "chosen", "rejected")}, ensure_ascii=False) + "\n"
                          for r in rows)
    return len(rows)


def earlier_round(store: Store, registry: Registry, campaign: str, parent: str, child: str) -> str:
    """What to say when the child's name is taken: by an earlier run of this very round (its
    campaign to resume, or never created), or by something else (pick another name)."""
    if registry.get(child).card.get("source_campaign") != campaign:
        return f"entry {child!r} already exists in {registry.root}; pick another --name"
    theirs = [c for c in store.campaigns() if set(c.models) == {child, parent}]
    unfinished = [c for c in theirs if c.status != "ready"]
    if unfinished:
        name = unfinished[-1].name
        return (f"entry {child!r} was trained from campaign {campaign!r} by an earlier run of this round, and its campaign "
                f"{name!r} was interrupted while its answers were generated ({len(store.missing_answers(name))} still "
                f"missing): finish it with `scripts/arena.py campaign resume {name}` (a new --name would train a second child)")
    if theirs:
        return (f"entry {child!r} was trained from campaign {campaign!r} already, and its campaign {theirs[-1].name!r} is "
                "ready: rate it, or pick another --name for a new round")
    return (f"entry {child!r} was trained from campaign {campaign!r} by an earlier run of this round, which stopped before "
            f"its campaign was created: create it with `scripts/arena.py campaign create NAME --models {child} {parent} "
            "--prompts FILE`, or pick another --name to train again")


def next_round(store: Store, registry: Registry, generator_factory: Callable[[], Generator], campaign: str, parent: str, child: str,
               prompts_file: str | Path, out_dir: str | Path, max_steps: int | None = None,
               recipe: str | Path | None = None, settings: dict | None = None,
               progress: Callable[[str], None] | None = None, method: str = "dpo", extra_pairs: str | Path | None = None) -> dict:
    """Run one round; returns {"child", "campaign", "pairs", "votes", "pairs_hash", ...}. `extra_pairs`:
    a preference file trained on beside the people's pairs (e.g. `synth.py onpolicy`'s pairs.jsonl);
    `settings`: recipe fields to override (e.g. {"beta": 0.2})."""
    say = progress or (lambda message: None)
    pairs, prompts = check_round(store, registry, campaign, parent, child, prompts_file, method, say)
    folder = Path(out_dir) / child
    folder.mkdir(parents=True, exist_ok=True)
    pairs_file = folder / "pairs.jsonl"
    export_pairs(store, campaign, pairs_file)
    added = add_pairs(pairs_file, extra_pairs) if extra_pairs else 0
    lineage = {"source_campaign": campaign, "votes": sum(1 for v in store.votes(campaign) if v.rater_role == "human"),
               "pairs": len(pairs), "pairs_hash": "sha256:" + hashlib.sha256(pairs_file.read_bytes()).hexdigest()}
    extra = train_child(registry, method, recipe or RECIPES[method], parent, child, pairs_file, folder, lineage, say,
                        {"max_steps": max_steps, **(settings or {})})
    entry = registry.annotate(child, **lineage, pairs_file=str(pairs_file), **extra)

    name = free_campaign_name(store, campaign, [child, parent])
    say(f"campaign {name}: {child} vs {parent} on {len(prompts)} unseen prompts")
    source = store.campaign(campaign)
    params = SamplingParams(**source.params) if source.params else SamplingParams()
    made = arena.create_campaign(store, generator_factory(), name, [child, parent], prompts, params,
                                 source=str(prompts_file))
    result = {"child": child, "parent": parent, "campaign": made["name"], "method": method, **lineage,
              "extra_pairs": added, "prompts": len(prompts), "metrics": entry.card.get("metrics", {}), **extra}
    (folder / "round.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def check_round(store: Store, registry: Registry, campaign: str, parent: str, child: str, prompts_file: str | Path,
                method: str, say: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    """Every refusal before anything trains: the method, the parent, the child's name, enough
    pairs, and new prompts that none of the pairs saw. Returns (pairs, prompts)."""
    if method not in ROUND_METHODS:
        raise RegistryError(f"next round method {method!r}; use one of {', '.join(ROUND_METHODS)}")
    store.campaign(campaign)
    if not registry.get(parent).is_adapter:
        raise RegistryError(f"--parent {parent!r} is not an adapter; DPO continues an adapter (e.g. the SFT entry)")
    if child in registry:
        raise RegistryError(earlier_round(store, registry, campaign, parent, child))
    pairs = arena.pairs(store, campaign)
    if len(pairs) < 2:
        raise StoreError(f"campaign {campaign!r} has {len(pairs)} human pairs; a DPO round needs at least 2 (more votes first)")
    prompts = load_prompts(prompts_file)
    say(f"checking {len(prompts)} new prompts against the {len(pairs)} pairs' prompts")
    overlap = overlapping_prompts(prompts, sorted({p["prompt"][0]["content"] for p in pairs}))
    if overlap:
        raise StoreError(f"{prompts_file}: {len(overlap)} prompts overlap the pairs this round trains on; "
                         "the child's campaign must use unseen prompts:\n  " + "\n  ".join(overlap[:10]))
    return pairs, prompts


def train_child(registry: Registry, method: str, recipe: str | Path, parent: str, child: str, pairs_file: Path,
                folder: Path, lineage: dict, say: Callable[[str], None], settings: dict) -> dict:
    """The round's training: DPO on the pairs, or (grpo) a reward model on them and a GRPO round
    against it. Returns what the child's card gains beyond its lineage."""
    from posttrain.train import train_recipe

    common = {"base": registry.get(parent).base, "data": str(pairs_file), "eval_data": "", "eval_fraction": 0.2,
              "registry": str(registry.root)}
    if method == "dpo":
        say(f"DPO round: {lineage['pairs']} pairs from {lineage['votes']} votes, {parent} -> {child}")
        train_recipe("dpo", recipe, name=child, parent=parent, data_format="preference", output_dir=str(folder / "run"),
                     **common, **settings)
        return {}
    reward = f"{child}-reward"  # votes -> a reward model -> a GRPO round against it, on the pairs' prompts
    if reward in registry:
        raise RegistryError(f"entry {reward!r} already exists in {registry.root}; pick another --name")
    say(f"reward model {reward}: {lineage['pairs']} pairs from {lineage['votes']} votes")
    train_recipe("reward", REWARD_RECIPE, name=reward, data_format="preference", output_dir=str(folder / "reward-run"),
                 max_steps=settings.get("max_steps"), **common)
    registry.annotate(reward, **lineage)
    say(f"GRPO round against {reward}: {parent} -> {child}")
    train_recipe("grpo", recipe, name=child, parent=parent, reward=f"reward_model:{reward}", output_dir=str(folder / "run"),
                 **common, **settings)
    return {"reward_model": reward}
