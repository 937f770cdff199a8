"""Rating math, separate from any serving code: win rates with Wilson intervals, one Bradley-Terry
logistic regression (ties count half a win to each side; covariates optional) with prompt-clustered
bootstrap intervals and ranks, the ladder's fragility, position bias and rater agreement. Input is a list of plain vote dicts; no Gradio, no SQL."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

Z95 = 1.959963984540054
log = logging.getLogger(__name__)


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


# ---- Bradley-Terry: one logistic regression for every ladder ------------------------------------
# log-odds(a beats b) = beta_a - beta_b + gamma . z, fitted by maximum likelihood (FastChat's
# compute_mle_elo and LMArena's style control are this regression; z holds a vote's covariates,
# none for the raw ladder). A tie or "both bad" is half a win each way. L2 is a ridge on every
# coefficient, added to the summed negative log-likelihood: it keeps a model that won every game
# finite and moves ratings of any real campaign by far less than one Elo point.
L2 = 1e-4


@dataclass(frozen=True)
class Design:
    """The usable votes as arrays: model indices of a and b, a's score (1, 0 or 1/2), the prompt
    cluster of each vote (for the bootstrap) and, optionally, covariates (votes x features)."""

    models: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    cluster: np.ndarray
    z: np.ndarray | None = None


def design(votes: list[dict], models: list[str], covariates: np.ndarray | None = None) -> Design:
    """`covariates`, when given, is an array with one row per vote of `votes` (in order)."""
    index = {m: i for i, m in enumerate(models)}
    keep = [i for i, v in enumerate(votes) if outcome(v) is not None]
    clusters: dict = {}
    cluster = [clusters.setdefault(prompt_of(votes[i]), len(clusters)) for i in keep]
    z = None if covariates is None else np.asarray(covariates, dtype=float)[np.array(keep, dtype=int)]
    return Design(tuple(models), np.array([index[votes[i]["model_a"]] for i in keep], dtype=int),
                  np.array([index[votes[i]["model_b"]] for i in keep], dtype=int),
                  np.array([outcome(votes[i]) for i in keep], dtype=float), np.array(cluster, dtype=int), z)


def bt_fit(d: Design, weight: np.ndarray | None = None, l2: float = L2,
           start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood (beta, gamma): beta per model on the natural-log scale, centred at 0,
    gamma per covariate. `weight` multiplies each vote (a bootstrap resample's multiplicities).
    Without covariates, votes of the same pair and score are summed first (a handful of cells)."""
    m = len(d.models)
    w = np.ones(len(d.score)) if weight is None else np.asarray(weight, dtype=float)
    if d.z is None:  # cells (a, b): total weight and a's total score
        cell = d.a * m + d.b
        a, b = np.divmod(np.arange(m * m), m)
        total, won = np.bincount(cell, w, m * m), np.bincount(cell, w * d.score, m * m)
        used = total > 0
        a, b, total, won, z = a[used], b[used], total[used], won[used], np.zeros((int(used.sum()), 0))
    else:
        a, b, total, won, z = d.a, d.b, w, w * d.score, d.z
    k = z.shape[1]

    def loss(theta):
        logits = theta[a] - theta[b] + z @ theta[m:]
        nll = np.sum(total * np.logaddexp(0, logits) - won * logits)
        residual = total * expit(logits) - won
        grad = np.concatenate([np.bincount(a, residual, m) - np.bincount(b, residual, m), z.T @ residual])
        return nll + l2 * theta @ theta, grad + 2 * l2 * theta

    theta0 = np.zeros(m + k) if start is None else start
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"gtol": 1e-9, "maxiter": 1000})
    if not result.success and np.abs(result.jac).max() > 1e-4:  # L-BFGS-B also "fails" at a flat optimum it cannot improve
        log.warning("Bradley-Terry fit did not converge (%s; largest gradient %.2g): ratings are approximate",
                    result.message, float(np.abs(result.jac).max()))
    theta = result.x
    return theta[:m] - theta[:m].mean(), theta[m:]


def cluster_weights(d: Design, rounds: int, seed: int = 0):
    """`rounds` prompt-clustered bootstrap resamples as vote multiplicities: prompts are drawn with
    replacement, each with all its votes (votes on one prompt are not independent, so resampling
    votes would make intervals too narrow)."""
    rng = np.random.default_rng(seed)
    clusters = int(d.cluster.max()) + 1 if len(d.cluster) else 0
    for _ in range(rounds if clusters else 0):
        drawn = np.bincount(rng.integers(0, clusters, clusters), minlength=clusters)
        yield drawn[d.cluster].astype(float)


def bt_fit_batch(x: np.ndarray, total: np.ndarray, won: np.ndarray, m: int, l2: float = L2) -> np.ndarray:
    """bt_fit for many resamples at once: `x` holds one row per cell or vote (+1 for model a, -1 for
    model b, then its covariates), `total` / `won` one row per resample (weights and a's score).
    Newton's method on the same penalised likelihood (the ridge makes it strictly convex, so this
    is the optimum L-BFGS finds, to 1e-8). Returns (resamples x parameters), betas centred at 0."""
    theta = np.zeros((total.shape[0], x.shape[1]))
    ridge = 2 * l2 * np.eye(x.shape[1])
    for _ in range(100):
        p = expit(theta @ x.T)
        grad = (total * p - won) @ x + 2 * l2 * theta
        curvature = np.einsum("rc,ci,cj->rij", total * p * (1 - p), x, x) + ridge
        step = np.linalg.solve(curvature, grad[..., None])[..., 0]
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    else:
        log.warning("Bradley-Terry bootstrap refits did not converge in 100 Newton steps (last step %.2g)",
                    float(np.abs(step).max()))
    theta[:, :m] -= theta[:, :m].mean(axis=1, keepdims=True)
    return theta


def bt_bootstrap(d: Design, rounds: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The point fit and `rounds` cluster-bootstrap refits: (beta, gamma, beta samples, gamma samples).
    The refits are solved together (bt_fit_batch): a few hundred in well under a second."""
    beta, gamma = bt_fit(d)
    m, k = len(d.models), 0 if d.z is None else d.z.shape[1]
    if not rounds or not len(d.score):
        return beta, gamma, np.zeros((0, m)), np.zeros((0, k))
    weights = np.array(list(cluster_weights(d, rounds, seed)))  # rounds x votes
    if d.z is None:  # votes of the same pair summed into cells (a, b), as bt_fit does
        cell = d.a * m + d.b
        used = np.unique(cell)
        onehot = (cell[:, None] == used[None, :]).astype(float)  # votes x used cells
        x = np.zeros((len(used), m))
        x[np.arange(len(used)), used // m] += 1
        x[np.arange(len(used)), used % m] -= 1
        fits = bt_fit_batch(x, weights @ onehot, (weights * d.score) @ onehot, m)
    else:
        x = np.zeros((len(d.score), m))
        x[np.arange(len(d.score)), d.a] += 1
        x[np.arange(len(d.score)), d.b] -= 1
        fits = bt_fit_batch(np.hstack([x, d.z]), weights, weights * d.score, m)
    return beta, gamma, fits[:, :m], fits[:, m:]


def bradley_terry(votes: list[dict], models: list[str] | None = None) -> dict[str, float]:
    """Bradley-Terry log-strengths (natural log, centred at 0) of the raw ladder."""
    models = sorted(models or {m for v in votes for m in (v["model_a"], v["model_b"])})
    return dict(zip(models, bt_fit(design(votes, models))[0].tolist()))


def elo(log_strength: float) -> float:
    """The same strength on the Elo scale that arenas quote (400 points = 10x odds), centred at 1000."""
    return 1000 + 400 * log_strength / math.log(10)


def prompt_of(vote: dict) -> tuple:
    """A vote's bootstrap cluster: its question, else its prompt text, else its battle, each in a key
    space of its own (a question id 0 is a question, and a question id never equals a battle id)."""
    if vote.get("question_id") is not None:
        return ("question", vote["question_id"])
    if vote.get("prompt") is not None:
        return ("prompt", vote["prompt"])
    return ("battle", vote["battle_id"])


def percentile_interval(samples, point: float, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of R bootstrap samples as order statistics (no interpolation): the
    k-th smallest with k = floor((R + 1) a / 2) and the k'-th with k' = ceil((R + 1)(1 - a / 2)),
    clipped into 1..R (the point itself when there are none)."""
    values = sorted(samples) or [point]
    r, alpha = len(values), 1 - level
    low = min(max(math.floor((r + 1) * alpha / 2), 1), r)
    high = min(max(math.ceil((r + 1) * (1 - alpha / 2)), 1), r)
    return values[low - 1], values[high - 1]


def unbounded(votes: list[dict], models: list[str]) -> dict[str, str]:
    """Models whose maximum-likelihood rating is infinite: "above" for one that won every decisive game
    it played (no decisive loss), "below" for one that lost every one (no decisive win). Only the
    ridge holds their ratings, and every bootstrap resample agrees, so their intervals are narrow for
    the wrong reason."""
    games, wins = decisive_games(votes)
    return {m: "above" if wins[m] == games[m] else "below" for m in models if games[m] and wins[m] in (0, games[m])}


def centre_on_identified(beta: np.ndarray, samples: np.ndarray, models: list[str], votes: list[dict]):
    """The ratings centred on the models whose ratings are finite (a model with a perfect record would
    drag the mean, and with it every other model, by hundreds of Elo); unchanged when none is."""
    loose = unbounded(votes, models)
    keep = np.array([m not in loose for m in models])
    if not keep.any() or keep.all():
        return beta, samples
    shift = beta[keep].mean()
    return beta - shift, (samples - samples[:, keep].mean(axis=1, keepdims=True) if len(samples) else samples)


def bt_ladder(votes: list[dict], models: list[str] | None = None, rounds: int = 200, seed: int = 0) -> list[dict]:
    """The raw Bradley-Terry ladder: ratings with 95% prompt-clustered bootstrap intervals and ranks."""
    models = sorted(models or {m for v in votes for m in (v["model_a"], v["model_b"])})
    beta, _, samples, _ = bt_bootstrap(design(votes, models), rounds, seed)
    return ladder_rows(votes, models, beta, samples)


def ladder_rows(votes: list[dict], models: list[str], beta: np.ndarray, samples: np.ndarray) -> list[dict]:
    """A ladder, best first: each model's log-strength on the Elo scale with its 95% bootstrap
    interval, its rank and its number of games; centred on the models with finite ratings."""
    beta, samples = centre_on_identified(np.asarray(beta, dtype=float), np.asarray(samples, dtype=float).reshape(-1, len(models)),
                                         models, votes)
    ladder = []
    for i, model in enumerate(models):
        low, high = percentile_interval(samples[:, i].tolist(), float(beta[i]))
        ladder.append({"model": model, "rating": elo(float(beta[i])), "ci_low": elo(low), "ci_high": elo(high),
                       "games": sum(1 for v in votes if model in (v["model_a"], v["model_b"]))})
    return ranked(sorted(ladder, key=lambda row: -row["rating"]))


def ranked(ladder: list[dict]) -> list[dict]:
    """LMArena's rank: 1 + the number of models whose interval lies wholly above this model's
    (lower bound above its upper bound), so models whose intervals overlap share a rank."""
    return [{**row, "rank": 1 + sum(other["ci_low"] > row["ci_high"] for other in ladder)} for row in ladder]


# ---- provisional rows: too few games or too wide an interval to rank ------------------------------
# Chosen from simulation (`python scripts/bench.py --only provisional`): four models 50 Elo apart,
# votes drawn by Bradley-Terry, 30 repetitions. The 95% bootstrap interval covers the true rating
# 0.79 of the time at 4 decisive games per model and 0.93 from 8 on, so 10 games is where an
# interval starts to mean what it says; intervals are still 700-1,900 Elo wide at 4-12 games and
# about 300 at 20, so a row wider than 400 Elo (a factor of 10 in odds across it) is not ranked.
MIN_DECISIVE_GAMES = 10
MAX_INTERVAL_ELO = 400.0


def decisive_games(votes: list[dict]) -> tuple[dict[str, int], dict[str, int]]:
    """Per model: decisive games (a win or a loss, not a tie or both bad) and wins among them."""
    games, wins = defaultdict(int), defaultdict(int)
    for vote in votes:
        if vote["winner"] in ("a", "b"):
            for side in ("a", "b"):
                games[vote[f"model_{side}"]] += 1
            wins[vote[f"model_{vote['winner']}"]] += 1
    return games, wins


def provisional(ladder: list[dict], votes: list[dict], min_games: int = MIN_DECISIVE_GAMES,
                max_width: float = MAX_INTERVAL_ELO) -> list[dict]:
    """The ladder with its provisional rows marked: a model that won (or lost) every decisive game
    it played, whatever its interval (its rating has no upper (lower) bound yet: the row says so and
    shows its rating as a lower (upper) bound, `bound`); fewer than `min_games` decisive games; or a
    95% interval wider than `max_width` Elo. Such a row gets no rank (`rank` None) and says what a
    rank needs: the decisive loss (win) it lacks, the decisive games up to `min_games`, and the
    votes that narrow the interval to `max_width` (width falls as 1 / sqrt(n)). The others are
    ranked among themselves, as LMArena ranks (stats.ranked)."""
    games, _ = decisive_games(votes)
    loose = unbounded(votes, [r["model"] for r in ladder])
    settled = [r for r in ladder if r["model"] not in loose and games[r["model"]] >= min_games
               and r["ci_high"] - r["ci_low"] <= max_width]
    ranks = {r["model"]: r["rank"] for r in ranked(settled)}
    out = []
    for row in ladder:
        model, n, width = row["model"], games[row["model"]], row["ci_high"] - row["ci_low"]
        if model in ranks:
            out.append({**row, "rank": ranks[model], "provisional": False, "decisive_games": n})
            continue
        needs, more = [], max(min_games - n, 0)
        if model in loose:
            won = loose[model] == "above"
            needs.append(f"{'won' if won else 'lost'} every decisive game: its rating has no {'upper' if won else 'lower'} "
                         f"bound yet (shown as a{' lower' if won else 'n upper'} bound); a rank needs one decisive "
                         f"{'loss' if won else 'win'}")
            more = max(more, 1)
        elif n == 0:
            needs.append("no decisive game yet")
        if n < min_games:
            needs.append(f"{n} decisive games of the {min_games} a rank needs: {min_games - n} more")
        if width > max_width and model not in loose:
            narrow = math.ceil(max(n, 1) * ((width / max_width) ** 2 - 1))
            needs.append(f"interval {width:.0f} Elo wide: about {narrow} more decisive votes to narrow it to {max_width:.0f}")
            more = max(more, narrow)
        out.append({**row, "rank": None, "provisional": True, "decisive_games": n,
                    **({"bound": "lower" if loose[model] == "above" else "upper"} if model in loose else {}),
                    "needs": "provisional: " + "; ".join(needs), "more_votes": max(more, 1)})
    return out


def by_category_votes(votes: list[dict]) -> dict[str, list[dict]]:
    """The votes of each prompt category (votes without one are in none), categories in order."""
    grouped = defaultdict(list)
    for vote in votes:
        if vote.get("category"):
            grouped[vote["category"]].append(vote)
    return dict(sorted(grouped.items()))


def bt_by_category(votes: list[dict], rounds: int = 200, seed: int = 0) -> dict[str, list[dict]]:
    """One raw ladder (with ranks) per prompt category, over the models that played in it."""
    return {category: bt_ladder(group, rounds=rounds, seed=seed) for category, group in by_category_votes(votes).items()}


# ---- fragility: how many votes stand between two neighbours on the ladder ------------------------
FLIP_METHOD = ("greedy removal of the decisive vote with the largest first-order influence on the two "
               "ratings' gap (refit after each step): an upper bound on the fewest votes whose removal "
               "reverses the order")


def robustness(votes: list[dict], models: list[str] | None = None) -> dict:
    """For each adjacent pair of the raw ladder (the top two first): `votes_to_flip`, how few
    decisive votes, removed, put the lower model above the higher (None: removing votes cannot),
    and its share of all counted votes."""
    models = sorted(models or {m for v in votes for m in (v["model_a"], v["model_b"])})
    d = design(votes, models)
    beta = bt_fit(d)[0]
    order = sorted(range(len(models)), key=lambda i: -beta[i])
    pairs = []
    for high, low in zip(order, order[1:]):
        flips = votes_to_flip(d, high, low)
        pairs.append({"higher": models[high], "lower": models[low], "votes_to_flip": flips,
                      "share": flips / len(d.score) if flips is not None and len(d.score) else None})
    return {"method": FLIP_METHOD, "votes": int(len(d.score)), "pairs": pairs, "top": pairs[0] if pairs else None}


def votes_to_flip(d: Design, high: int, low: int, limit: int = 100_000) -> int | None:
    """The greedy count behind `robustness`. Votes of one ordered pair and one outcome are
    interchangeable, so the search runs over cells (winner, loser) of decisive votes: each step
    takes the cell whose one vote, removed, most narrows beta_high - beta_low (Newton's
    approximation H^-1 times the vote's gradient), removes up to half the votes that approximation
    says are still needed, refits, and stops once the order is reversed."""
    m = len(d.models)
    decisive = d.score != 0.5
    winner = np.where(d.score == 1, d.a, d.b)[decisive]
    loser = np.where(d.score == 1, d.b, d.a)[decisive]
    wins = np.bincount(winner * m + loser, minlength=m * m).reshape(m, m).astype(float)
    ties = Design(d.models, d.a[~decisive], d.b[~decisive], d.score[~decisive], d.cluster[~decisive])
    removed = 0
    contrast = np.zeros(m)
    contrast[high], contrast[low] = 1.0, -1.0
    while removed <= limit:
        fitted = _fit_counts(wins, ties)
        gap = contrast @ fitted
        if gap < -1e-9:  # reversed, not merely level
            return removed
        influence = _removal_influence(wins, ties, fitted) @ contrast  # change of the gap per removed vote, per cell
        influence[wins.reshape(-1) == 0] = 0.0
        best = int(np.argmin(influence))
        if influence[best] >= -1e-12:
            return None  # no removal narrows the gap
        count = max(1, min(int(wins.flat[best]), int(0.5 * gap / -influence[best])))
        wins.flat[best] -= count
        removed += count
    return None


def _fit_counts(wins: np.ndarray, ties: Design) -> np.ndarray:
    """The raw fit of a win matrix (wins[i, j]: decisive wins of i over j) plus the tie votes."""
    m = wins.shape[0]
    winner, loser = np.nonzero(wins)
    d = Design(ties.models, np.concatenate([winner, ties.a]), np.concatenate([loser, ties.b]),
               np.concatenate([np.ones(len(winner)), ties.score]), np.zeros(len(winner) + len(ties.a), dtype=int))
    return bt_fit(d, np.concatenate([wins[winner, loser], np.ones(len(ties.a))]))[0] if len(d.a) else np.zeros(m)


def _removal_influence(wins: np.ndarray, ties: Design, beta: np.ndarray) -> np.ndarray:
    """(m*m, m): for each cell (winner i, loser j), the first-order change of beta when one of its
    votes is removed: H^+ grad, with H the Hessian of the negative log-likelihood at beta."""
    m = len(beta)
    tied = np.bincount(ties.a * m + ties.b, minlength=m * m).reshape(m, m)
    games = wins + wins.T + tied + tied.T
    p = expit(beta[:, None] - beta[None, :])
    curvature = games * p * p.T
    hessian = np.diag(curvature.sum(axis=1)) - curvature + 2 * L2 * np.eye(m)
    inverse = np.linalg.pinv(hessian)
    out = np.zeros((m * m, m))
    for i in range(m):
        for j in range(m):
            if i != j:
                grad = np.zeros(m)  # the gradient of -log p_ij with respect to beta
                grad[i], grad[j] = -(1 - p[i, j]), 1 - p[i, j]
                out[i * m + j] = inverse @ grad
    return out


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


def judge_audit(human: list[dict], judge: list[dict]) -> list[dict]:
    """Per automatic judge (its votes carry `rater`, `verdicts` {"as_shown", "swapped"} and the
    answers' texts `text_a` / `text_b`): how often its verdict flips when the sides are swapped (the
    two orders are not mirror images), the share of its decisive verdicts that went to the longer
    answer (by words; equal lengths left out), and its agreement and kappa with the people's majority
    (judge_agreement). FastChat's tracker reported GPT-4 flipping on 12.9% of swaps and picking the
    longer answer 68% of the time."""
    import json

    mirror = {"left": "right", "right": "left", "tie": "tie"}
    out = []
    for name in sorted({v["rater"] for v in judge}):
        mine = [v for v in judge if v["rater"] == name]
        raw = [json.loads(v["verdicts"]) if isinstance(v.get("verdicts"), str) else v.get("verdicts") for v in mine]
        raw = [r for r in raw if r]
        flips = sum(r["swapped"] != mirror.get(r["as_shown"], r["as_shown"]) for r in raw)
        longer = decided = 0
        for vote in mine:
            words = {side: len((vote.get(f"text_{side}") or "").split()) for side in "ab"}
            if vote["winner"] in ("a", "b") and words["a"] != words["b"]:
                decided += 1
                longer += vote["winner"] == max(words, key=words.get)
        agreement = judge_agreement(human, mine)
        out.append({"judge": name, "battles": len(mine), "swapped": len(raw),
                    "flip_rate": flips / len(raw) if raw else None,
                    "longer_answer_share": longer / decided if decided else None, "decisive_with_lengths": decided,
                    "agreement": agreement["agreement"], "kappa": agreement["kappa"],
                    "agreement_battles": agreement["battles"]})
    return out


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
