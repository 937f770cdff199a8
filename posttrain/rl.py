"""Online RL rounds (TRL's GRPOTrainer / RLOOTrainer): the prompts they roll out on and the rewards
named in the recipe.

Rewards (the recipe's `reward`, one spec or several, weighted by TRL's own `reward_weights`):

    ifeval                  share of the prompt's IFEval instructions followed (posttrain/rewards.py)
    ifeval:all              1 when every instruction is followed, else 0
    reward_model:NAME       a registry reward model's score
    judge:openai            an OpenAI-compatible judge's 1-10 grade (JUDGE_BASE_URL / JUDGE_MODEL / JUDGE_API_KEY)
    python:MODULE:FUNCTION  a user's own TRL reward function: f(prompts, completions, **columns) -> list[float | None]

`ifeval`, `ifeval:all` and `judge:openai` are the functions of posttrain/rewards.py, imported here;
the judge borrows the benchmarks' OpenAI judge and MT-Bench grader when a round first asks for it.

A `gold` spec (same grammar) is computed on every batch with weight 0: logged beside the proxy
(`rewards/<gold>/mean`), never trained on, so the round shows where the proxy and the truth part."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable

from posttrain import rewards as project_rewards
from posttrain.data import jsonl_objects
from posttrain.errors import RecipeError
from posttrain.rewards import reply_text

SHORTHANDS = {"ifeval": project_rewards.ifeval, "ifeval:all": project_rewards.ifeval_all,
              "judge:openai": project_rewards.openai_judge}
# Recipes written before the rewards moved out of evals/ name them by their old module.
MOVED = {"evals.rewards": "posttrain.rewards"}


def read_prompts(path: str | Path) -> list[dict]:
    """Prompt rows for a rollout, from the project's formats: IFEval's schema (`prompt` text with
    `instruction_id_list` / `kwargs`, kept as the `ifeval` column), conversations (`messages`: the
    turns before the last assistant turn), preference rows (their `prompt` turns), or
    `instruction` / `question` text. Each row: {"prompt": [messages], "ifeval": JSON or ""}."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such prompt file")
    rows = [prompt_row(row, where) for where, row in jsonl_objects(path, RecipeError)]
    if not rows:
        raise RecipeError(f"{path}: no prompts")
    return rows


def prompt_row(row: dict, where: str) -> dict:
    checks = ""
    if isinstance(row.get("prompt"), str):
        turns = [{"role": "user", "content": row["prompt"]}]
        if row.get("instruction_id_list"):
            checks = json.dumps({"instruction_id_list": row["instruction_id_list"],
                                 "kwargs": row.get("kwargs") or [{}] * len(row["instruction_id_list"])})
    elif isinstance(row.get("messages"), list):
        turns = list(row["messages"])
        while turns and turns[-1].get("role") == "assistant":
            turns.pop()
    elif isinstance(row.get("prompt"), list):
        turns = row["prompt"]
    else:
        text = row.get("instruction") or row.get("question")
        turns = [{"role": "user", "content": text}] if isinstance(text, str) else []
    if not turns or not all(isinstance(t, dict) and isinstance(t.get("content"), str) for t in turns):
        raise RecipeError(f"{where}: no prompt (use IFEval's `prompt`, `messages`, a preference `prompt`, or `instruction`)")
    return {"prompt": turns, "ifeval": checks}


def parse_specs(reward) -> list[str]:
    """The recipe's `reward`: a spec, a comma-separated list of them, or a YAML list."""
    specs = [s.strip() for s in (reward.split(",") if isinstance(reward, str) else (reward or [])) if str(s).strip()]
    if not specs:
        raise RecipeError("an online RL run needs `reward` (ifeval, reward_model:NAME, judge:openai, python:MODULE:FUNCTION)")
    return specs


def check(specs: list[str], weights: list[float] | None, gold: str | None, registry=None) -> None:
    """Refuse a bad reward setting before any model loads: every spec resolves (a reward model by
    its registry entry, not yet loaded), the weights fit, the gold measure is not a training reward."""
    for spec in specs + ([gold] if gold else []):
        if spec.startswith("reward_model:"):
            name = spec.split(":", 1)[1]
            if registry is None or name not in registry:
                raise RecipeError(f"reward {spec}: no such registry entry; train one (scripts/train.py reward)")
            if registry.get(name).method != "reward":
                raise RecipeError(f"reward {spec}: {name!r} is a {registry.get(name).method!r} entry, not a reward model")
        else:
            reward_function(spec)
    if weights and len(weights) != len(specs):
        raise RecipeError(f"reward_weights has {len(weights)} values for {len(specs)} rewards ({', '.join(specs)})")
    if gold and gold in specs:
        raise RecipeError(f"gold {gold!r} is also a training reward; the gold measure must be one the round does not optimise")


def check_reward_signature(spec: str, function: Callable) -> None:
    """TRL calls a reward as f(prompts=..., completions=..., completion_ids=..., **columns): a
    function that cannot take those keywords (os.system takes one command) is refused now, not
    when the first batch is scored a minute later. A function Python cannot inspect is let through."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    names = {p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    missing = [k for k in ("prompts", "completions") if k not in names]
    if missing or any(p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is p.empty for p in parameters):
        raise RecipeError(f"reward {spec!r}: {getattr(function, '__qualname__', function)}"
                          f"{inspect.signature(function)} is not a TRL reward function; write "
                          "f(prompts, completions, **kwargs) -> list[float | None]")


def reward_function(spec: str, registry=None, device=None) -> Callable:
    """A TRL reward function for one spec, its __name__ the spec (TRL logs rewards/<name>/mean)."""
    if spec in SHORTHANDS:
        function = SHORTHANDS[spec]
    elif spec.startswith("python:"):
        function = python_function(spec)
    elif spec.startswith("reward_model:"):
        function = reward_model_function(spec.split(":", 1)[1], registry, device)
    else:
        raise RecipeError(f"unknown reward {spec!r}; use ifeval, ifeval:all, reward_model:NAME, judge:openai or "
                          "python:MODULE:FUNCTION")
    named = lambda *args, **kwargs: function(*args, **kwargs)
    named.__name__ = spec.replace(":", "_")
    return named


def python_function(spec: str) -> Callable:
    """A user's reward function named `python:MODULE:FUNCTION`, checked to be one TRL can call."""
    module, _, name = spec[len("python:"):].partition(":")
    if not module or not name:
        raise RecipeError(f"reward {spec!r}: write python:MODULE:FUNCTION")
    try:
        function = getattr(importlib.import_module(MOVED.get(module, module)), name)
    except (ImportError, AttributeError) as exc:
        raise RecipeError(f"reward {spec!r}: {exc}") from None
    if not callable(function):
        raise RecipeError(f"reward {spec!r}: {module}.{name} is not a function")
    check_reward_signature(spec, function)
    return function


def reward_model_function(name: str, registry, device=None) -> Callable:
    from posttrain.reward import RewardScorer

    scorer = RewardScorer(registry, name, device=device)

    def score(prompts, completions, **_):
        return [scorer.score(prompt, [reply_text(c)])[0] for prompt, c in zip(prompts, completions)]

    score.version = registry.get(name).card.get("created_at")
    return score


def rewards(specs: list[str], weights: list[float] | None, gold: str | None, registry=None, device=None
            ) -> tuple[list[Callable], list[float]]:
    """The trainer's reward functions and weights: the specs (weights: TRL's reward_weights, one
    per spec, default 1 each), then the gold spec with weight 0."""
    check(specs, weights, gold, registry)
    weights = list(weights) if weights else [1.0] * len(specs)
    functions = [reward_function(s, registry, device) for s in specs]
    if gold:
        functions.append(reward_function(gold, registry, device))
        weights.append(0.0)
    return functions, weights
