"""Simulated raters with known model strengths, voting through the real store and allocation
(a real SQLite file): what `scripts/bench.py --only allocation` measures, and how an allocation
can be checked without people."""

from __future__ import annotations

import math
import random
import tempfile
from itertools import combinations
from pathlib import Path

from evals import arena
from evals.stats import Z95, wilson
from evals.store import Store

STRENGTHS = {"model-a": 0.0, "model-b": 0.2, "model-c": 1.2, "model-d": 2.4}  # Bradley-Terry log-strengths


def votes_until_precise(allocation: str, strengths: dict[str, float] = STRENGTHS, half_width: float = 0.10,
                        prompts: int = 400, per_rater: int = 25, seed: int = 0, limit: int = 5000) -> dict:
    """Raters arrive one after another and each votes on up to `per_rater` battles handed out by
    the campaign's allocation (one vote per battle, each prompt once per rater); a vote goes to the
    stronger model with its Bradley-Terry probability, ties never. Counts the votes until every model
    pair's 95% Wilson interval is within +-half_width. Returns {votes, raters, per_pair}."""
    rng = random.Random(seed)
    models = sorted(strengths)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "arena.sqlite")
        rows = [{"question_id": i, "prompt": f"prompt {i}"} for i in range(prompts)]
        store.create_campaign("sim", models, rows, {}, settings={"votes_per_battle": 1, "allocation": allocation})
        store.save_answers([(pid, m, f"{m}: {p}", 1, "") for pid, p, m in store.missing_answers("sim")])
        store.set_status("sim", "ready")
        tally = {pair: [0, 0] for pair in combinations(models, 2)}  # first model's wins, votes
        votes = raters = 0
        while votes < limit and not all(_precise(w, n, half_width) for w, n in tally.values()):
            raters += 1
            rid = store.rater("sim", f"sim-{raters}")
            for _ in range(per_rater):
                battle = arena.next_battle(store, "sim", rid)
                if battle is None:
                    break
                a, b = (battle.left.split(":")[0], battle.right.split(":")[0])
                p_left = 1 / (1 + math.exp(strengths[b] - strengths[a]))
                left_wins = rng.random() < p_left
                arena.cast_vote(store, "sim", rid, battle.battle_id, "left" if left_wins else "right")
                first, second = sorted((a, b))
                tally[(first, second)][0] += (a if left_wins else b) == first
                tally[(first, second)][1] += 1
                votes += 1
                if all(_precise(w, n, half_width) for w, n in tally.values()):
                    break
    return {"votes": votes, "raters": raters, "per_pair": {f"{a} vs {b}": n for (a, b), (_, n) in tally.items()}}


def _precise(wins: int, n: int, half_width: float) -> bool:
    low, high = wilson(wins, n, Z95)
    return n > 0 and (high - low) / 2 <= half_width
