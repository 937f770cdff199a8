"""Which battle a rater gets next: pure rules over plain dicts, no SQL and no UI. Campaigns with a
votes-per-battle target hand battles out one at a time, the least covered first (`balanced`) or
the model pairs whose win-rate interval is widest first (`adaptive`, Chatbot Arena's active
sampling); gold checks are mixed into every rater's sequence at unpredictable places."""

from __future__ import annotations

import random
from collections import defaultdict

from evals.stats import win_rates

ALLOCATIONS = ("balanced", "adaptive")


def is_dynamic(settings: dict) -> bool:
    """Battles are handed out one at a time (not pre-assigned per rater) when the campaign has a
    votes-per-battle target or adaptive allocation."""
    return bool(settings.get("votes_per_battle")) or settings.get("allocation") == "adaptive"


def gold_due(position: int, rate: float, seed: str) -> bool:
    """Whether a rater's `position`-th battle (0-based, gold included) is a gold check. The sequence
    is cut into blocks of round(1 / rate) battles and one place in each block, drawn from the
    rater's own seed, holds the gold: the share is exact and the places cannot be guessed."""
    if rate <= 0:
        return False
    block = max(1, round(1 / rate))
    slot = random.Random(f"{seed}:gold:{position // block}").randrange(block)
    return position % block == slot


def with_gold(regular: list, gold: list, rate: float, seed: str) -> list:
    """A pre-assigned order: the regular battles in their order, gold checks interleaved where
    gold_due says, while gold is left (the sequence ends with the last regular battle)."""
    out, gold = [], list(gold)
    regular = list(regular)
    while regular:
        if gold and gold_due(len(out), rate, seed):
            out.append(gold.pop(0))
        else:
            out.append(regular.pop(0))
    return out


def pair_of(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def interval_widths(votes: list[dict]) -> dict[tuple[str, str], float]:
    """Each model pair's 95% Wilson interval width of the win rate (ties half), from stats.win_rates."""
    return {pair_of(row["model"], row["opponent"]): row["ci_high"] - row["ci_low"] for row in win_rates(votes)}


def choose(candidates: list[dict], mode: str, votes: list[dict], rng: random.Random) -> dict | None:
    """The next battle among `candidates` ({battle_id, model_a, model_b, claims}: battles this rater
    may still see, each under its target). balanced: fewest claims, then the model pair with the
    fewest claims overall, then at random. adaptive: the pair with the widest win-rate interval
    (a pair without votes is widest: width 1), then as balanced within that pair."""
    if not candidates:
        return None
    by_pair = defaultdict(int)
    for c in candidates:
        by_pair[pair_of(c["model_a"], c["model_b"])] += c["claims"]
    if mode == "adaptive":
        widths = interval_widths(votes)
        widest = max(widths.get(pair_of(c["model_a"], c["model_b"]), 1.0) for c in candidates)
        candidates = [c for c in candidates if widths.get(pair_of(c["model_a"], c["model_b"]), 1.0) >= widest - 1e-12]
    key = lambda c: (c["claims"], by_pair[pair_of(c["model_a"], c["model_b"])], rng.random())
    return min(candidates, key=key)
