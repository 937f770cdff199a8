"""Which raters to trust: pure functions over plain vote dicts (no SQL, no UI). Per rater: gold
accuracy, agreement with the majority of the OTHER raters on the battles they share, the share
of left-hand choices, and a flag with its reasons. Flagged raters' votes are left out of ladders
and pairs by the caller; nothing here deletes anything."""

from __future__ import annotations

from collections import defaultdict

from scipy.stats import binomtest

from evals.stats import LABELS, majority

MIN_GOLD = 3  # gold battles seen before gold accuracy can flag a rater
MIN_SHARED = 5  # battles shared with other raters before the agreement test can flag
AGREEMENT_ALPHA = 0.01  # one-sided binomial test: agreement below the other raters' pooled rate
MIN_DECISIVE = 10  # decisive votes before the position test can flag
POSITION_ALPHA = 0.001  # two-sided binomial test of the left-hand share against 1/2


def chose_left(vote: dict) -> bool | None:
    """Whether a decisive vote picked the answer shown on the left (None: tie, both bad, no side)."""
    if vote["winner"] not in ("a", "b") or vote.get("a_on_left") is None:
        return None
    return (vote["winner"] == "a") == bool(vote["a_on_left"])


def _agreement(votes: list[dict], trusted: set[str]) -> dict[str, tuple[int, int]]:
    """Per rater: (battles agreeing with the majority of the other trusted raters, battles compared)."""
    by_battle = defaultdict(dict)
    for vote in votes:
        by_battle[vote["battle_id"]][vote["rater"]] = LABELS[vote["winner"]]
    tally = defaultdict(lambda: [0, 0])
    for verdicts in by_battle.values():
        for rater, label in verdicts.items():
            others = [x for name, x in verdicts.items() if name != rater and name in trusted]
            if others:
                tally[rater][0] += label == majority(others)
                tally[rater][1] += 1
    return {rater: (agree, shared) for rater, (agree, shared) in tally.items()}


def rater_quality(votes: list[dict], gold_votes: list[dict], min_gold_accuracy: float = 0.7,
                  reviews: dict[str, str | None] | None = None) -> list[dict]:
    """One row per human rater: {name, votes, gold_seen, gold_correct, gold_accuracy, agreement,
    shared, left_share, flagged, reasons, review, excluded}.

    A rater is flagged when (1) their gold accuracy is under `min_gold_accuracy` after MIN_GOLD gold
    battles (a tie or "both bad" on a gold check is not correct), (2) their agreement with the
    majority of the other trusted raters is an outlier: a one-sided exact binomial test against the
    pooled agreement of everyone else gives p < AGREEMENT_ALPHA over at least MIN_SHARED shared
    battles, or (3) they chose the left answer in a share no fair coin explains (two-sided binomial
    p < POSITION_ALPHA over at least MIN_DECISIVE decisive votes; sides are randomised, so an honest
    rater is near 1/2). Agreement is recomputed without flagged raters until no flag changes, so a
    careless rater does not drag down the majority others are measured against. `reviews` holds the
    admin's word: 'include' keeps a flagged rater, 'exclude' leaves out an unflagged one."""
    reviews = reviews or {}
    human = [v for v in votes if v.get("rater_kind", "human") == "human"]
    gold = [v for v in gold_votes if v.get("rater_kind", "human") == "human"]
    names = sorted({v["rater"] for v in human} | {v["rater"] for v in gold} | set(reviews))
    rows = {name: {"name": name, "votes": 0, "gold_seen": 0, "gold_correct": 0, "left": 0, "decisive": 0} for name in names}
    for vote in human:
        rows[vote["rater"]]["votes"] += 1
    for vote in gold:
        rows[vote["rater"]]["gold_seen"] += 1
        rows[vote["rater"]]["gold_correct"] += vote["winner"] == "a"  # model_a is the known better answer
    for vote in human + gold:
        left = chose_left(vote)
        if left is not None:
            rows[vote["rater"]]["decisive"] += 1
            rows[vote["rater"]]["left"] += left
    fixed = {name: _fixed_reasons(row, min_gold_accuracy) for name, row in rows.items()}
    flagged = {name for name, reasons in fixed.items() if reasons}
    for _ in range(10):  # to a fixed point; a handful of rounds in practice
        agreement = _agreement(human, set(names) - flagged)
        outliers = {name: _agreement_reason(name, agreement, flagged) for name in names}
        now_flagged = {name for name in names if fixed[name] or outliers[name]}
        if now_flagged == flagged:
            break
        flagged = now_flagged
    out = []
    for name, row in rows.items():
        agree, shared = agreement.get(name, (0, 0))
        reasons = fixed[name] + ([outliers[name]] if outliers[name] else [])
        review = reviews.get(name)
        out.append({"name": name, "votes": row["votes"], "gold_seen": row["gold_seen"], "gold_correct": row["gold_correct"],
                    "gold_accuracy": row["gold_correct"] / row["gold_seen"] if row["gold_seen"] else None,
                    "agreement": agree / shared if shared else None, "shared": shared,
                    "left_share": row["left"] / row["decisive"] if row["decisive"] else None,
                    "flagged": bool(reasons), "reasons": reasons, "review": review,
                    "excluded": review == "exclude" or (bool(reasons) and review != "include")})
    return out


def _fixed_reasons(row: dict, min_gold_accuracy: float) -> list[str]:
    reasons = []
    seen, correct = row["gold_seen"], row["gold_correct"]
    if seen >= MIN_GOLD and correct / seen < min_gold_accuracy:
        reasons.append(f"gold accuracy {correct}/{seen} = {correct / seen:.2f} < {min_gold_accuracy:g}")
    if row["decisive"] >= MIN_DECISIVE:
        p = binomtest(row["left"], row["decisive"], 0.5).pvalue
        if p < POSITION_ALPHA:
            reasons.append(f"chose the left answer in {row['left']}/{row['decisive']} decisive votes "
                           f"(binomial p = {p:.1e} < {POSITION_ALPHA:g})")
    return reasons


def _agreement_reason(name: str, agreement: dict[str, tuple[int, int]], flagged: set[str]) -> str | None:
    agree, shared = agreement.get(name, (0, 0))
    others = [(a, n) for other, (a, n) in agreement.items() if other != name and other not in flagged]
    pooled_n = sum(n for _, n in others)
    if shared < MIN_SHARED or not pooled_n:
        return None
    pooled = sum(a for a, _ in others) / pooled_n
    p = binomtest(agree, shared, pooled, alternative="less").pvalue
    if p < AGREEMENT_ALPHA:
        return (f"agreed with the other raters' majority on {agree}/{shared} battles vs {pooled:.2f} for the others "
                f"(one-sided binomial p = {p:.1e} < {AGREEMENT_ALPHA:g})")
    return None


def excluded_names(quality: list[dict]) -> frozenset[str]:
    return frozenset(row["name"] for row in quality if row["excluded"])
