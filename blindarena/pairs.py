"""Preference pairs from votes: a pure function beside the statistics (votes in, TRL rows out;
no SQL). One row per (prompt, chosen, rejected): a battle voted by several raters gives its
majority's pair once (stats.majority, the rule the judge agreement uses too), with the votes for
and against in its provenance; a battle whose decisive votes split evenly gives none. A rater who
edited the better answer backs a row whose `chosen` is that edit."""

from __future__ import annotations

from blindarena.records import Battle, Vote
from blindarena.stats import LABELS, majority
from blindarena.vocab import DECISIVE, conversation

WINNER_OF_LABEL = {LABELS["a"]: "a", LABELS["b"]: "b"}


def conversation_sides(battle: Battle, win: str, lose: str, edited: str | None) -> tuple[list, list, list]:
    """TRL's conversational preference format. One turn: the prompt, and each side's answer. Several
    turns: the first user turn is the shared prompt, and chosen / rejected are each model's own
    conversation from its first answer on (its answers with the later user turns between them); an
    edit replaces the chosen side's last answer."""
    if not battle.turns:
        return ([{"role": "user", "content": battle.prompt}],
                [{"role": "assistant", "content": edited or battle[f"text_{win}"]}],
                [{"role": "assistant", "content": battle[f"text_{lose}"]}])
    side = lambda answers: conversation(list(battle.turns), list(answers))[1:]  # from the model's first answer on
    chosen = side(battle[f"turns_{win}"])
    if edited:
        chosen[-1] = {"role": "assistant", "content": edited}
    return [{"role": "user", "content": battle.turns[0]}], chosen, side(battle[f"turns_{lose}"])


def build_pairs(votes: list[Vote], campaign: str, include_judge: bool = False,
                left_out: frozenset[str] = frozenset()) -> tuple[list[dict], int]:
    """(pairs, split battles) from decisive votes, each with its battle (Store.decisive_votes).
    People's votes only unless `include_judge` (then the judge's rows are marked `source: judge`);
    the votes of `left_out` raters never count. Split battles are counted for the people only."""
    groups: dict[tuple[int, str], list[Vote]] = {}
    for vote in votes:
        if vote.winner in DECISIVE and (vote.rater_role == "human" or include_judge) and vote.rater not in left_out:
            groups.setdefault((vote.battle_id, vote.rater_role), []).append(vote)
    pairs, split = [], 0
    for (_, role), group in groups.items():
        win = WINNER_OF_LABEL.get(majority([LABELS[v.winner] for v in group]))
        if win is None:  # the decisive votes split evenly
            split += role == "human"
            continue
        lose = "b" if win == "a" else "a"
        backing = [v for v in group if v.winner == win]
        battle = group[0].battle
        backers: dict[str | None, list[Vote]] = {}
        for vote in backing:  # None: the model's own answer; else the rater's edit
            backers.setdefault(vote.edited, []).append(vote)
        for edited, support in backers.items():
            prompt, chosen, rejected = conversation_sides(battle, win, lose, edited)
            pairs.append({
                "prompt": prompt, "chosen": chosen, "rejected": rejected,
                "campaign": campaign, "source": role, "chosen_model": battle[f"model_{win}"],
                "rejected_model": battle[f"model_{lose}"], "edited": edited is not None,
                "votes_for": len(support), "votes_against": len(group) - len(backing),
                "rater": ",".join(v.rater for v in support), "created_at": max(v.created_at for v in support),
            })
    return pairs, split
