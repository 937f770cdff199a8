"""Rating math, separate from any serving code: win rates with Wilson intervals, Bradley-Terry
strengths by maximum likelihood (ties count half a win to each side) with bootstrap intervals,
position bias and rater agreement. Input is a list of plain vote dicts; no Gradio, no SQL."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from itertools import combinations

Z95 = 1.959963984540054


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion. Whole counts go to SciPy (binomtest's
    proportion_ci, method "wilson"); a count with a half in it (ties count half a win, which
    SciPy does not take) uses the same closed form, written out."""
    if n <= 0:
        return (0.0, 1.0)
    if float(successes).is_integer() and float(n).is_integer() and abs(z - Z95) < 1e-12:
        from scipy.stats import binomtest

        ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
        return (float(ci.low), float(ci.high))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def outcome(vote: dict) -> float | None:
    """Score of model_a in a vote: 1 win, 0 loss, 0.5 tie or both bad; None when unusable."""
    return {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}.get(vote["winner"])


def win_rates(votes: list[dict]) -> list[dict]:
    """For every pair of models that met: wins, losses, ties and the first model's win rate
    (ties count half) with a 95% Wilson interval."""
    table: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0])
    for vote in votes:
        a, b, score = vote["model_a"], vote["model_b"], outcome(vote)
        if score is None:
            continue
        key, score = ((a, b), score) if a <= b else ((b, a), 1 - score)
        table[key][0 if score == 1 else 1 if score == 0 else 2] += 1
    rows = []
    for (a, b), (wins, losses, ties) in sorted(table.items()):
        n = wins + losses + ties
        low, high = wilson(wins + ties / 2, n)
        rate = (wins + ties / 2) / n
        rows.append({"model": a, "opponent": b, "wins": wins, "losses": losses, "ties": ties, "n": n,
                     "win_rate": rate, "ci_low": low, "ci_high": high, "more_votes_for_0.10": votes_needed(rate, n)})
    return rows


def votes_needed(rate: float, n: int, half_width: float = 0.10, z: float = Z95) -> int:
    """How many more votes bring a win rate's 95% interval to +-half_width (normal approximation
    at the observed rate, at least p(1-p) = 0.16 so a lopsided start does not promise too much;
    votes on one prompt are correlated, so read it as a lower bound)."""
    variance = max(rate * (1 - rate), 0.16)
    return max(0, math.ceil(z * z * variance / half_width**2) - n)


def bradley_terry(votes: list[dict], models: list[str] | None = None, iterations: int = 500,
                  tol: float = 1e-10) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry strengths p_i, P(i beats j) = p_i / (p_i + p_j), by the
    MM algorithm (Hunter 2004): p_i <- W_i / sum_j n_ij / (p_i + p_j), where W_i counts wins
    plus half the ties. Returned on the log scale, centred at 0 (geometric mean 1)."""
    models = sorted(models or {m for v in votes for m in (v["model_a"], v["model_b"])})
    wins = defaultdict(float)
    games = defaultdict(float)
    for vote in votes:
        score = outcome(vote)
        if score is None:
            continue
        a, b = vote["model_a"], vote["model_b"]
        wins[a] += score
        wins[b] += 1 - score
        games[(a, b)] += 1
        games[(b, a)] += 1
    # A tiny prior (half a tie against every other model) keeps strengths finite when a
    # model won or lost every game.
    prior = 0.5
    strength = {m: 1.0 for m in models}
    for _ in range(iterations):
        new = {}
        for i in models:
            denominator = sum((games[(i, j)] + prior) / (strength[i] + strength[j]) for j in models if j != i)
            new[i] = (wins[i] + prior / 2 * (len(models) - 1)) / denominator if denominator else 1.0
        mean_log = sum(math.log(v) for v in new.values()) / len(new)
        new = {m: v / math.exp(mean_log) for m, v in new.items()}
        change = max(abs(new[m] - strength[m]) for m in models)
        strength = new
        if change < tol:
            break
    return {m: math.log(strength[m]) for m in models}


def elo(log_strength: float) -> float:
    """The same strength on the Elo scale that arenas quote (400 points = 10x odds), centred at 1000."""
    return 1000 + 400 * log_strength / math.log(10)


def prompt_of(vote: dict):
    return vote.get("question_id") or vote.get("prompt") or vote["battle_id"]


def prompt_bootstrap(votes: list[dict], rounds: int, seed: int = 0):
    """`rounds` resamples of the votes that draw PROMPTS with replacement, each with all its votes:
    votes on one prompt are not independent, so resampling votes would make intervals too narrow."""
    rng = random.Random(seed)
    by_prompt = defaultdict(list)
    for vote in votes:
        by_prompt[prompt_of(vote)].append(vote)
    clusters = list(by_prompt.values())
    for _ in range(rounds if votes else 0):
        yield [v for _ in clusters for v in clusters[rng.randrange(len(clusters))]]


def percentile_interval(samples: list[float], point: float) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap samples (the point itself when there are none)."""
    values = sorted(samples) or [point]
    return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]


def bt_ladder(votes: list[dict], models: list[str] | None = None, rounds: int = 200, seed: int = 0) -> list[dict]:
    """Bradley-Terry ratings with 95% percentile-bootstrap intervals (prompt_bootstrap)."""
    models = sorted(models or {m for v in votes for m in (v["model_a"], v["model_b"])})
    point = bradley_terry(votes, models)
    samples = defaultdict(list)
    for resampled in prompt_bootstrap(votes, rounds, seed):
        for model, value in bradley_terry(resampled, models, iterations=200, tol=1e-6).items():
            samples[model].append(value)
    return ladder_rows(votes, models, point, samples)


def ladder_rows(votes: list[dict], models: list[str], point: dict[str, float], samples: dict[str, list[float]]) -> list[dict]:
    """A ladder, best first: each model's log-strength on the Elo scale with its 95% bootstrap
    interval and its number of games."""
    ladder = []
    for model in models:
        low, high = percentile_interval(samples[model], point[model])
        ladder.append({"model": model, "rating": elo(point[model]), "ci_low": elo(low), "ci_high": elo(high),
                       "games": sum(1 for v in votes if model in (v["model_a"], v["model_b"]))})
    return sorted(ladder, key=lambda row: -row["rating"])


def position_bias(votes: list[dict]) -> dict:
    """Share of decisive votes won by the answer shown on the left, with a Wilson interval
    (0.5 means no bias)."""
    left_wins = decisive = 0
    for vote in votes:
        if vote["winner"] in ("a", "b") and vote.get("a_on_left") is not None:
            decisive += 1
            left_wins += (vote["winner"] == "a") == bool(vote["a_on_left"])
    low, high = wilson(left_wins, decisive)
    return {"left_wins": left_wins, "decisive": decisive,
            "left_win_rate": left_wins / decisive if decisive else None, "ci_low": low, "ci_high": high}


def by_category(votes: list[dict]) -> list[dict]:
    """Win rates per prompt category."""
    grouped = defaultdict(list)
    for vote in votes:
        grouped[vote.get("category") or "uncategorised"].append(vote)
    return [{"category": category, **row} for category, group in sorted(grouped.items()) for row in win_rates(group)]


LABELS = {"a": 0, "b": 1, "tie": 2, "both_bad": 2}  # verdicts as nominal labels; both bad is a tie


def rater_agreement(votes: list[dict]) -> dict:
    """On battles judged by two or more raters: the share of rater pairs giving the same verdict
    (ties included, as MT-Bench counts it), and chance-corrected: Cohen's kappa when exactly two
    raters share battles (scikit-learn), Krippendorff's alpha (nominal, missing values allowed)
    for any number (the `krippendorff` package)."""
    verdicts = defaultdict(dict)
    for i, vote in enumerate(votes):  # votes without a rater name count as distinct raters
        verdicts[vote["battle_id"]][vote.get("rater") or f"#{i}"] = LABELS[vote["winner"]]
    agree = total = 0
    for by_rater in verdicts.values():
        for x, y in combinations(by_rater.values(), 2):
            total += 1
            agree += x == y
    shared = {b: r for b, r in verdicts.items() if len(r) > 1}
    raters = sorted({rater for r in shared.values() for rater in r}, key=str)
    out = {"pairs": total, "agreement": agree / total if total else None, "shared_battles": len(shared),
           "raters": len(raters), "cohen_kappa": None, "krippendorff_alpha": None}
    if len(raters) == 2:
        first, second = zip(*[(r[raters[0]], r[raters[1]]) for r in shared.values()])
        out["cohen_kappa"] = cohen_kappa(list(first), list(second))
    if len(raters) >= 2:
        out["krippendorff_alpha"] = krippendorff_alpha([[r.get(rater) for r in shared.values()] for rater in raters])
    return out


def cohen_kappa(first: list[int], second: list[int]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if len(set(first) | set(second)) < 2:
        return None  # one label only: agreement by chance is certain, kappa undefined
    return float(cohen_kappa_score(first, second))


def krippendorff_alpha(matrix: list[list[int | None]]) -> float | None:
    import krippendorff
    import numpy as np

    data = np.array([[np.nan if x is None else x for x in row] for row in matrix], dtype=float)
    if len(set(data[~np.isnan(data)].tolist())) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def majority(labels: list[int]) -> int:
    """The people's verdict on one battle: the most frequent label, a tie when the top two tie."""
    counts = sorted(((labels.count(x), x) for x in set(labels)), reverse=True)
    return LABELS["tie"] if len(counts) > 1 and counts[0][0] == counts[1][0] else counts[0][1]


def judge_agreement(human: list[dict], judge: list[dict]) -> dict:
    """The judge against the people's majority on the battles both rated (ties included, as in
    MT-Bench: GPT-4 vs humans 66%, humans vs humans 63%), with Cohen's kappa; compare it with the
    people's own agreement (rater_agreement)."""
    people = defaultdict(list)
    for vote in human:
        people[vote["battle_id"]].append(LABELS[vote["winner"]])
    verdict = {v["battle_id"]: LABELS[v["winner"]] for v in judge}
    both = [b for b in people if b in verdict]
    if not both:
        return {"battles": 0, "agreement": None, "kappa": None}
    crowd, machine = [majority(people[b]) for b in both], [verdict[b] for b in both]
    return {"battles": len(both), "agreement": sum(x == y for x, y in zip(crowd, machine)) / len(both),
            "kappa": cohen_kappa(crowd, machine)}


def paired_sign_test(votes: list[dict], model: str, other: str) -> dict:
    """Two-sided exact sign test of 'model beats other' over decisive head-to-head votes."""
    wins = losses = 0
    for vote in votes:
        if {vote["model_a"], vote["model_b"]} != {model, other} or vote["winner"] not in ("a", "b"):
            continue
        winner = vote["model_a"] if vote["winner"] == "a" else vote["model_b"]
        wins += winner == model
        losses += winner == other
    n = wins + losses
    if not n:
        return {"model": model, "other": other, "wins": 0, "losses": 0, "p_value": 1.0}
    from scipy.stats import binomtest

    return {"model": model, "other": other, "wins": wins, "losses": losses, "p_value": float(binomtest(wins, n).pvalue)}
