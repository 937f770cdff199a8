"""Which raters to trust: pure functions over plain vote dicts (no SQL, no UI). Per rater: gold
accuracy, agreement with the majority of the OTHER raters on the battles they share, the share
of left-hand choices, and a flag with its reasons. Flagged raters' votes are left out of ladders
and pairs by the caller; nothing here deletes anything."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy.special import expit, logsumexp
from scipy.stats import binomtest

from blindarena.stats import LABELS, bt_fit, design, majority
from blindarena.ties import half_win

MIN_GOLD = 3  # gold battles seen before gold accuracy can flag a rater
MIN_SHARED = 5  # battles shared with other raters before the agreement test can flag
AGREEMENT_ALPHA = 0.01  # one-sided binomial test: agreement below the other raters' pooled rate
MIN_DECISIVE = 10  # decisive votes before the position test can flag
POSITION_ALPHA = 0.001  # two-sided binomial test of the left-hand share against 1/2
FAMILY_ALPHA = 0.01  # the agreement and position tests stay under this share of false alarms per campaign
MIN_FAVOURED = 5  # decisive votes on a model's contested battles before the favouritism test can flag
CONTESTED = 0.8  # a battle is contested for a model whose ladder chance of winning it is below this
SLIP = 0.02  # an attacker's share of votes against their target (a slip of the hand)
FAVOURITISM_POSTERIOR = 0.95  # posterior of being an attacker before the favouritism test can flag
FAVOURITISM_ALPHA = 0.002  # ... and the Poisson-binomial tail of the votes for the model below this
# The sequential test at FastChat's operating point (fastchat/serve/monitor/elo_analysis.py, outlier_detect):
# at least 5 votes, at most the first 100 of each rater, a flag at e-value 1 / 0.05 = 20 per rater. The
# stake per vote was measured (6 models 0.5 apart, 30% ties, 200 honest raters with 30 votes, 5 of each
# bad kind, 4 campaigns): staking half the wealth flagged 3.5% of honest raters in honest-only campaigns
# (Ville's bound is 5%), a quarter 0.75%; at a quarter, with the other checks beside it, 20 of 20 contrarians
# at 40 votes (16 at 20) and 0.9% of honest raters flagged.
# `bench.py --only outliers` gives the whole table (docs/arena.md).
EVALUE_ALPHA = 0.05  # the sequential test flags when a rater's e-process reaches 1 / alpha (per rater, as FastChat)
EVALUE_BET = 0.25  # the share of its wealth the test stakes on each vote being one the consensus finds unlikely
MIN_SEQUENTIAL = 5  # votes before the sequential test can flag (FastChat's minimum)
MAX_SEQUENTIAL = 100  # the first votes of a rater the test reads (FastChat's cap)


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
    rater is near 1/2), or (4) they vote for one model more often than the other raters' ladder
    explains (see _favouritism: the vote-rigging attack that votes for a target whenever it plays). Agreement is recomputed without flagged raters until no flag changes, so a
    careless rater does not drag down the majority others are measured against. `reviews` holds the
    admin's word: 'include' keeps a flagged rater, 'exclude' leaves out an unflagged one."""
    reviews = reviews or {}
    human = [v for v in votes if v.get("rater_role", "human") == "human"]
    gold = [v for v in gold_votes if v.get("rater_role", "human") == "human"]
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
    position_tested = sum(row["decisive"] >= MIN_DECISIVE for row in rows.values())
    fixed = {name: _fixed_reasons(row, min_gold_accuracy, position_tested) for name, row in rows.items()}
    flagged = {name for name, reasons in fixed.items() if reasons}
    for _ in range(10):  # to a fixed point; a handful of rounds in practice
        agreement = _agreement(human, set(names) - flagged)
        sequential = _sequential(human, flagged)  # each rater against the consensus of the raters not flagged
        outliers = {name: _agreement_reason(name, agreement, flagged) for name in names}
        favoured = _favouritism(human, set(names) - flagged)
        now_flagged = {name for name in names if fixed[name] or outliers[name] or favoured.get(name) or sequential.get(name)}
        if now_flagged == flagged:
            break
        flagged = now_flagged
    out = []
    for name, row in rows.items():
        agree, shared = agreement.get(name, (0, 0))
        reasons = fixed[name] + [r for r in (outliers[name], favoured.get(name), sequential.get(name)) if r]
        review = reviews.get(name)
        out.append({"name": name, "votes": row["votes"], "gold_seen": row["gold_seen"], "gold_correct": row["gold_correct"],
                    "gold_accuracy": row["gold_correct"] / row["gold_seen"] if row["gold_seen"] else None,
                    "agreement": agree / shared if shared else None, "shared": shared,
                    "left_share": row["left"] / row["decisive"] if row["decisive"] else None,
                    "flagged": bool(reasons), "reasons": reasons, "checks": [check_of(r) for r in reasons], "review": review,
                    "excluded": review == "exclude" or (bool(reasons) and review != "include")})
    return out


CHECKS = {"gold accuracy": "gold", "chose the left": "position", "agreed with": "agreement", "voted for": "favouritism",
          "sequential test": "sequential"}


def check_of(reason: str) -> str:
    """Which check a reason comes from (gold, position, agreement, favouritism, sequential)."""
    return next(check for start, check in CHECKS.items() if reason.startswith(start))


def _sequential(human: list[dict], flagged: set[str] = frozenset()) -> dict[str, str]:
    """FastChat's sequential outlier test, as an e-process: each rater's votes in the order cast,
    each scored against the consensus of the OTHER raters (their Bradley-Terry ladder for the
    winner, their tie rate for a tie). A vote multiplies the rater's wealth by
    (1 - b) + b q(verdict) / p(verdict), where p is the consensus's chance of that verdict and q
    an alternative: half "the consensus reversed" (a contrarian or a rigger voting for the weaker
    side), half a coin over the three verdicts (a careless rater). For a rater who votes like the
    consensus each factor averages 1 (q sums to 1), so by Ville's inequality their wealth ever
    reaches 1 / alpha with chance at most alpha: the test may watch every vote as it comes. As
    FastChat's outlier test: raters with MIN_SEQUENTIAL votes are tested, their first MAX_SEQUENTIAL
    read, a flag at 1 / EVALUE_ALPHA per rater. The consensus leaves out the raters already
    `flagged`, and its win chance is the half-tie model's, sigma(d) - t / 2 (ties.half_win)."""
    by_rater = defaultdict(list)
    for vote in sorted(human, key=lambda v: v.get("id") or 0):
        by_rater[vote["rater"]].append(vote)
    models = sorted({m for v in human for m in (v["model_a"], v["model_b"])})
    tested = [name for name, mine in by_rater.items() if len(mine) >= MIN_SEQUENTIAL]
    if len(models) < 2 or len(by_rater) < 3:
        return {}
    d = design(human, models)  # every human vote has a winner, so rows align with `human`
    rater = np.array([v["rater"] for v in human])
    left_out = np.isin(rater, list(flagged)) if flagged else np.zeros(len(rater), dtype=bool)
    threshold = 1 / EVALUE_ALPHA
    index = {m: i for i, m in enumerate(models)}
    everyone = bt_fit(d, (~left_out).astype(float))[0]  # each leave-one-rater-out fit starts here: a few steps away
    out = {}
    for name in tested:
        others = (rater != name) & ~left_out
        if not others.any():
            continue
        beta = bt_fit(d, others.astype(float), start=everyone)[0]
        tie = float(np.mean(d.score[others] == 0.5))
        mine = by_rater[name][:MAX_SEQUENTIAL]
        wealth = peak = 1.0
        for vote in mine:
            win = float(half_win(beta[index[vote["model_a"]]] - beta[index[vote["model_b"]]], tie))
            chance = {"a": win, "b": 1 - tie - win, "tie": tie, "both_bad": tie}
            reversed_ = {"a": chance["b"], "b": chance["a"], "tie": chance["tie"], "both_bad": chance["tie"]}
            verdict = vote["winner"]
            q = 0.5 * reversed_[verdict] + 0.5 / 3
            wealth *= (1 - EVALUE_BET) + EVALUE_BET * q / max(chance[verdict], 1e-3)
            peak = max(peak, wealth)
        if peak >= threshold:
            out[name] = (f"sequential test: e-value {peak:.3g} >= {threshold:.3g} over {len(mine)} votes "
                         "(verdicts the other raters' consensus finds unlikely)")
    return out


def family_alpha(alpha: float, tested: int) -> float:
    """A per-rater test's threshold: `alpha`, or FAMILY_ALPHA / the raters tested where that is
    stricter (Bonferroni), so a campaign of many honest raters rarely flags one by chance."""
    return min(alpha, FAMILY_ALPHA / max(1, tested))


def _fixed_reasons(row: dict, min_gold_accuracy: float, position_tested: int) -> list[str]:
    reasons = []
    seen, correct = row["gold_seen"], row["gold_correct"]
    if seen >= MIN_GOLD and correct / seen < min_gold_accuracy:
        reasons.append(f"gold accuracy {correct}/{seen} = {correct / seen:.2f} < {min_gold_accuracy:g}")
    if row["decisive"] >= MIN_DECISIVE:
        p, alpha = binomtest(row["left"], row["decisive"], 0.5).pvalue, family_alpha(POSITION_ALPHA, position_tested)
        if p < alpha:
            reasons.append(f"chose the left answer in {row['left']}/{row['decisive']} decisive votes "
                           f"(binomial p = {p:.1e} < {alpha:.1e})")
    return reasons


def _agreement_reason(name: str, agreement: dict[str, tuple[int, int]], flagged: set[str]) -> str | None:
    agree, shared = agreement.get(name, (0, 0))
    others = [(a, n) for other, (a, n) in agreement.items() if other != name and other not in flagged]
    pooled_n = sum(n for _, n in others)
    if shared < MIN_SHARED or not pooled_n:
        return None
    pooled = sum(a for a, _ in others) / pooled_n
    tested = sum(n >= MIN_SHARED for _, n in agreement.values())
    p, alpha = binomtest(agree, shared, pooled, alternative="less").pvalue, family_alpha(AGREEMENT_ALPHA, tested)
    if p < alpha:
        return (f"agreed with the other raters' majority on {agree}/{shared} battles vs {pooled:.2f} for the others "
                f"(one-sided binomial p = {p:.1e} < {alpha:.1e})")
    return None


def _favouritism(human: list[dict], trusted: set[str]) -> dict[str, str]:
    """Raters who vote for one model whenever it plays (the vote-rigging attack of Min et al. 2025),
    found by an empirical-Bayes mixture: each rater is honest or, with prior share pi_m, an attacker
    for model m who votes for m with probability 1 - SLIP when m plays (honestly otherwise). Only
    battles in which m is the ladder's underdog count: that is where an attack moves ranks, and
    where a careful honest rater rarely votes for m (a rater who always picks the stronger model is
    not an attacker, however flat careless raters make the ladder). The honest chance of each vote
    comes from the Bradley-Terry ladder of the OTHER trusted raters (leave-one-out; over three
    rounds, each rater's votes weighted by their posterior of being honest, so attackers do not
    lift their target's expectation); the shares pi_m are fitted by EM over all raters. A rater is
    flagged when their posterior of being an attacker reaches FAVOURITISM_POSTERIOR (when the model
    holds, at least that share of the flagged are attackers) AND the Poisson-binomial upper tail
    of their votes for m is below FAVOURITISM_ALPHA (a guard for campaigns with few raters). A
    campaign without attackers fits pi near 0. An attacker for the top model is not found this
    way; such votes do not change the order."""
    models = sorted({m for v in human for m in (v["model_a"], v["model_b"])})
    if len(models) < 2:
        return {}
    d = design(human, models)  # every human vote has a winner, so rows align with `human`
    rater = np.array([v["rater"] for v in human])
    names = sorted(set(rater.tolist()))
    is_trusted = np.isin(rater, sorted(trusted))
    decisive = d.score != 0.5
    winner = np.where(d.score == 1, d.a, d.b)
    index = np.searchsorted(names, rater)
    weight = is_trusted.astype(float)  # a vote's weight in the ladders; suspects' votes count less each round
    for _ in range(3):
        log_lr = np.full((len(names), len(models)), -np.inf)  # no test: cannot be that model's attacker
        evidence = {}
        for r, name in enumerate(names):
            others = np.where(index == r, 0.0, weight)
            beta = bt_fit(d, others)[0] if others.any() else np.zeros(len(models))
            mine = (index == r) & decisive
            for i in range(len(models)):
                opponent = np.where(d.a == i, d.b, d.a)
                played = mine & ((d.a == i) | (d.b == i)) & (expit(beta[i] - beta[opponent]) < CONTESTED)
                if played.sum() < MIN_FAVOURED:
                    continue
                chances = expit(beta[i] - beta[opponent[played]])
                won = winner[played] == i
                log_lr[r, i] = np.sum(np.where(won, np.log(1 - SLIP) - np.log(chances), np.log(SLIP) - np.log(1 - chances)))
                evidence[(r, i)] = (_upper_tail(chances, int(won.sum())), int(won.sum()), len(chances), float(chances.sum()))
        if not evidence:
            return {}
        posterior = _attacker_posterior(log_lr)
        weight = is_trusted * (1 - posterior.sum(axis=1))[index]
    out = {}
    for (r, i), (p, won, n, expected) in sorted(evidence.items(), key=lambda item: -posterior[item[0]]):
        if posterior[r, i] >= FAVOURITISM_POSTERIOR and p < FAVOURITISM_ALPHA and names[r] not in out:
            out[names[r]] = (f"voted for {models[i]} in {won}/{n} decisive battles it played vs {expected:.1f} expected "
                             f"from the other raters' ladder (Poisson-binomial p = {p:.1e}; posterior of voting for it "
                             f"whenever it plays {posterior[r, i]:.2f})")
    return out


def _attacker_posterior(log_lr: np.ndarray, rounds: int = 200) -> np.ndarray:
    """EM for that mixture: the (raters, models) posteriors that a rater is model m's attacker, from
    each one's log likelihood ratio (attacker of m vs honest), with the shares pi_m fitted to all raters."""
    share = np.full(log_lr.shape[1], 0.01)
    for _ in range(rounds):
        joint = np.log(np.maximum(share, 1e-300)) + log_lr  # log pi_m + log LR_rm
        honest = np.full((len(joint), 1), np.log(max(1 - share.sum(), 1e-300)))
        posterior = np.exp(joint - logsumexp(np.hstack([joint, honest]), axis=1, keepdims=True))
        updated = posterior.mean(axis=0)
        if np.allclose(updated, share, atol=1e-9):
            break
        share = updated
    return posterior


def _upper_tail(chances: np.ndarray, k: int) -> float:
    """P(K >= k) for K a sum of independent Bernoulli(chances) (the Poisson-binomial), exactly."""
    pmf = np.array([1.0])
    for p in chances:
        pmf = np.convolve(pmf, [1 - p, p])
    return float(min(1.0, pmf[k:].sum()))


def excluded_names(quality: list[dict]) -> frozenset[str]:
    return frozenset(row["name"] for row in quality if row["excluded"])
