"""Preference pairs from votes: a pure function beside the statistics (votes in, TRL rows out;
no SQL). One row per (prompt, chosen, rejected): a battle voted by several raters gives its
majority's pair once (stats.majority, the rule the judge agreement uses too), with the votes for
and against in its provenance; a battle whose decisive votes split evenly gives none. A rater who
edited the better answer backs a row whose `chosen` is that edit."""

from __future__ import annotations

import json

from evals.stats import LABELS, majority
from evals.vocab import conversation

WINNER_OF_LABEL = {LABELS["a"]: "a", LABELS["b"]: "b"}


def conversation_sides(vote: dict, win: str, lose: str, edited: str | None) -> tuple[list, list, list]:
    """TRL's conversational preference format. One turn: the prompt, and each side's answer. Several
    turns (`turns`, `turns_a`, `turns_b` as JSON): the first user turn is the shared prompt, and
    chosen / rejected are each model's own conversation from its first answer on (its answers with
    the later user turns between them); an edit replaces the chosen side's last answer."""
    if not vote.get("turns"):
        return ([{"role": "user", "content": vote["prompt"]}],
                [{"role": "assistant", "content": edited or vote[f"text_{win}"]}],
                [{"role": "assistant", "content": vote[f"text_{lose}"]}])
    users = json.loads(vote["turns"])
    side = lambda answers: conversation(users, answers)[1:]  # from the model's first answer on

    chosen = side(json.loads(vote[f"turns_{win}"]))
    if edited:
        chosen[-1] = {"role": "assistant", "content": edited}
    return [{"role": "user", "content": users[0]}], chosen, side(json.loads(vote[f"turns_{lose}"]))


def build_pairs(votes: list[dict], campaign: str, include_judge: bool = False,
                excluded: frozenset[str] = frozenset()) -> tuple[list[dict], int]:
    """(pairs, split battles) from decisive votes ({battle_id, winner, edited, created_at, rater,
    kind, prompt, model_a, model_b, text_a, text_b}). People's votes only unless `include_judge`
    (then the judge's rows are marked `source: judge`); the votes of `excluded` raters never count.
    Split battles are counted for the people only."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for vote in votes:
        if vote["winner"] in WINNER_OF_LABEL.values() and (vote["kind"] == "human" or include_judge) \
                and vote["rater"] not in excluded:
            groups.setdefault((vote["battle_id"], vote["kind"]), []).append(vote)
    pairs, split = [], 0
    for (_, kind), group in groups.items():
        win = WINNER_OF_LABEL.get(majority([LABELS[v["winner"]] for v in group]))
        if win is None:  # the decisive votes split evenly
            split += kind == "human"
            continue
        lose = "b" if win == "a" else "a"
        backing = [v for v in group if v["winner"] == win]
        first = group[0]
        backers: dict[str | None, list[dict]] = {}
        for vote in backing:  # None: the model's own answer; else the rater's edit
            backers.setdefault(vote["edited"], []).append(vote)
        for edited, support in backers.items():
            prompt, chosen, rejected = conversation_sides(first, win, lose, edited)
            pairs.append({
                "prompt": prompt, "chosen": chosen, "rejected": rejected,
                "campaign": campaign, "source": kind, "chosen_model": first[f"model_{win}"],
                "rejected_model": first[f"model_{lose}"], "edited": edited is not None,
                "votes_for": len(support), "votes_against": len(group) - len(backing),
                "rater": ",".join(v["rater"] for v in support), "created_at": max(v["created_at"] for v in support),
            })
    return pairs, split
