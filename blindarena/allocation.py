"""Which battles a rater gets, in which order and on which side: pure rules over plain rows, no SQL
and no UI (the store records what these return). Without a votes-per-battle target a rater's whole
order is planned when they join (`preassign`); with one, battles are handed out one at a time,
the least covered first (`balanced`) or the model pairs whose win-rate interval is widest first
(`adaptive`, Chatbot Arena's active sampling), each on the side its first model was shown less
(`side`); gold checks are mixed into every rater's sequence at unpredictable places."""

from __future__ import annotations

import random
from collections import defaultdict

from blindarena.records import ALLOCATIONS
from blindarena.stats import win_rates

__all__ = ["ALLOCATIONS", "choose", "gold_due", "preassign", "side", "with_gold"]


def preassign(battles: list[dict], role: str, earlier: int, seed: str, gold_rate: float) -> list[tuple[int, bool]]:
    """A new rater's whole order as (battle id, model_a on the left) rows, from every battle of the
    campaign ({battle_id, model_a, model_b, gold, position}, by prompt position) and how many raters
    of their role came before. A person gets each prompt ONCE, as one battle (a pair of models), so
    no answer whose author was revealed to them comes back later; pairs rotate Latin-square style
    (rater k, prompt p -> pair (k + p) mod pairs), which covers every model pair equally across
    raters and prompts; within a rater, each pair's first model is on the left in a random half of
    its battles (a pattern would let a rater infer sides from a reveal); the order is shuffled,
    with gold checks mixed in at `gold_rate`. A judge rates every regular battle (never gold)."""
    by_prompt: dict[int, list[tuple[int, str]]] = {}
    gold = []
    for b in battles:
        if b["gold"]:
            gold.append(b["battle_id"])
        else:
            by_prompt.setdefault(b["position"], []).append((b["battle_id"], f"{b['model_a']}|{b['model_b']}"))
    if role == "judge":
        chosen = [battle for row in by_prompt.values() for battle in row]
    else:
        chosen = [row[(earlier + position) % len(row)] for position, row in sorted(by_prompt.items())]
    rng = random.Random(seed)
    sides = {}
    for pair in sorted({p for _, p in chosen}):
        mine = [b for b, p in chosen if p == pair]
        left = [i < (len(mine) + rng.randrange(2)) // 2 for i in range(len(mine))]
        rng.shuffle(left)
        sides.update(zip(mine, left))
    order = [b for b, _ in chosen]
    rng.shuffle(order)
    if role == "human" and gold:
        rng.shuffle(gold)
        sides.update({b: rng.random() < 0.5 for b in gold})
        order = with_gold(order, gold, gold_rate, seed)
    return [(b, sides[b]) for b in order]


def side(left: int, shown: int, seed: str) -> bool:
    """Whether a battle handed out now shows its first model on the left: where it was shown less
    often among the battle's `shown` hand-outs so far (`left` of them on the left), at random on a tie."""
    return 2 * left < shown or (2 * left == shown and random.Random(seed).random() < 0.5)


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
