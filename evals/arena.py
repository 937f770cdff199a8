"""Arena operations as plain functions (the UI and the CLI both call these): load a prompt set,
create a campaign and generate every answer once over the shared engine, compute results, and
export preference pairs in TRL's format. Knows nothing of Gradio."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from evals import stats
from evals.store import Store, StoreError
from posttrain.engine import Engine, SamplingParams

DEFAULT_PROMPTS = Path(__file__).resolve().parents[1] / "data" / "heldout_prompts.jsonl"
PROMPT_KEYS = ("prompt", "instruction", "question", "text")


def load_prompts(path: str | Path) -> list[dict]:
    """Prompts from JSONL or CSV: MT-Bench question.jsonl (question_id, category, turns; the first
    turn is the prompt) or rows with a prompt/instruction/question/text field and an optional
    category. Bad rows stop the load with file:line and reason."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such prompt file")
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            rows = [(f"{path}:{i + 2}", row) for i, row in enumerate(csv.DictReader(handle))]
    else:
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise StoreError(f"{path}:{number}: broken JSON ({exc.msg})") from None
    prompts = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise StoreError(f"{where}: expected an object")
        turns = row.get("turns")
        text = turns[0] if isinstance(turns, list) and turns else next((row[k] for k in PROMPT_KEYS if row.get(k)), None)
        if not isinstance(text, str) or not text.strip():
            raise StoreError(f"{where}: no prompt text (use 'turns' or one of {PROMPT_KEYS})")
        prompts.append({"question_id": row.get("question_id", len(prompts) + 1), "category": row.get("category") or None,
                        "prompt": text.strip()})
    if not prompts:
        raise StoreError(f"{path}: no prompts")
    return prompts


def create_campaign(store: Store, engine: Engine, name: str, models: list[str], prompts: list[dict],
                    params: SamplingParams, source: str = "", batch_rows: int = 8,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Store the campaign, then generate each model's answer to each prompt once, several
    prompts x models per batched call; resumable (only missing answers are generated)."""
    for model in models:
        engine.slot(model)  # refuses unknown entries and adapters of another base before storing
    store.create_campaign(name, models, prompts, asdict(params), source)
    return generate_missing(store, engine, name, batch_rows, progress)


def generate_missing(store: Store, engine: Engine, name: str, batch_rows: int = 8,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    campaign = store.campaign(name)
    params = SamplingParams(**campaign["params"])
    todo = store.missing_answers(name)
    total = len(todo)
    for start in range(0, total, batch_rows):
        chunk = todo[start : start + batch_rows]
        answers = engine.generate([p for _, p, _ in chunk], [m for _, _, m in chunk], params)
        store.save_answers([(pid, model, a.text, a.new_tokens, a.notice) for (pid, _, model), a in zip(chunk, answers)])
        if progress:
            progress(start + len(chunk), total)
    store.set_status(name, "ready")
    return store.campaign(name)


def results(store: Store, name: str, rounds: int = 200) -> dict:
    """Everything the Results tab and `arena.py results --json` show."""
    campaign = store.campaign(name)
    votes = store.votes(name)
    human = [v for v in votes if v["rater_kind"] == "human"]
    judge = [v for v in votes if v["rater_kind"] == "judge"]
    agreement = stats.rater_agreement(human)
    return {
        "campaign": name, "models": campaign["models"], "votes": len(votes), "human_votes": len(human),
        "win_rates": stats.win_rates(human),
        "bradley_terry": stats.bt_ladder(human, campaign["models"], rounds=rounds),
        "by_category": stats.by_category(human),
        "position_bias": stats.position_bias(human),
        "rater_agreement": agreement,
        "judge_win_rates": stats.win_rates(judge),
        "judge_agreement": {**stats.judge_agreement(human, judge), "human_agreement": agreement["agreement"]},
    }


def leaked_models(name: str, models: list[str]) -> list[str]:
    """Models whose names a campaign name would show raters before they vote."""
    lowered = (name or "").lower()
    return [m for m in models if m.lower() in lowered]


def check_blind_name(name: str, models: list[str]) -> None:
    """Raters see the campaign's name before they vote, so it must not give a model away."""
    leaked = leaked_models(name, models)
    if leaked:
        raise StoreError(f"campaign name {name!r} contains model name(s) {leaked}; raters would see them")


def invite_link(page_url: str, campaign: str, token: str) -> str:
    """A rater's invite link: the app's address with ?campaign=NAME&invite=TOKEN."""
    from urllib.parse import urlencode

    return f"{page_url or ''}?{urlencode({'campaign': campaign, 'invite': token})}"


def export_pairs(store: Store, name: str, out: str | Path, include_judge: bool = False) -> int:
    """Write the campaign's pairs (people's votes only, unless `include_judge`) as JSONL in TRL's
    preference format (a .jsonl path) or as a `datasets` folder (any other path); provenance
    columns ride along (votes for and against, raters, source)."""
    pairs = store.pairs(name, include_judge=include_judge)
    out = Path(out)
    if out.suffix == ".jsonl":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
        tmp.replace(out)
    else:
        from datasets import Dataset

        Dataset.from_list(pairs).save_to_disk(str(out))
    return len(pairs)
