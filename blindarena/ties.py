"""Ties, modelled. About a third of arena votes are ties (here "both bad" counts as one). The raw
ladder counts a tie as half a win each way (stats.bt_fit); two models give ties a parameter of
their own and predict how likely one is:

- Rao-Kupper (1967): P(i beats j) = p_i / (p_i + theta p_j), theta >= 1; a tie takes the rest.
- Davidson (1970): P(i beats j) = p_i / D, P(tie) = nu sqrt(p_i p_j) / D, D = p_i + p_j + nu sqrt(p_i p_j).

LMArena (2024-12) found Rao-Kupper ranks like Bradley-Terry but predicts ties better. Rather than
argue, `heldout` measures it on this campaign's own votes: each model is fitted on a seeded 80%
and scored on the other 20% by log-loss over the three outcomes (win, loss, tie) and by how far
its predicted tie probability sits from the observed tie rate; "half" predicts ties at the
training tie rate. Pure functions of vote dicts; strengths on the natural-log scale, centred at 0."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from scipy.optimize import minimize

from blindarena.stats import (L2, Design, bt_fit, centre_on_identified, cluster_weights, design, elo, log,
                              percentile_interval, ranked)

TIE_MODELS = ("half", "rao-kupper", "davidson")
OUTCOMES = {"a": 0, "b": 1, "tie": 2, "both_bad": 2}  # a wins, b wins, a tie (both bad is one)


def counts(votes: list[dict], models: list[str]) -> np.ndarray:
    """(models x models x 3) counts: [i, j, k] votes of i (as model_a) against j with outcome k."""
    index = {m: i for i, m in enumerate(models)}
    table = np.zeros((len(models), len(models), 3))
    for vote in votes:
        k = OUTCOMES.get(vote["winner"])
        if k is not None and vote["model_a"] in index and vote["model_b"] in index:
            table[index[vote["model_a"]], index[vote["model_b"]], k] += 1
    return table


def probabilities(method: str, beta: np.ndarray, eta: float, tie_rate: float = 0.0) -> np.ndarray:
    """(models x models x 3): P(i wins), P(j wins), P(tie) for i against j. `eta` is log(theta - 1)
    for Rao-Kupper, log(nu) for Davidson; "half" predicts ties at `tie_rate` and splits the rest
    by Bradley-Terry."""
    p = np.exp(beta)
    pi, pj = p[:, None], p[None, :]
    if method == "rao-kupper":
        theta = 1 + math.exp(eta)
        win, loss = pi / (pi + theta * pj), pj / (pj + theta * pi)
        tie = 1 - win - loss
    elif method == "davidson":
        shared = math.exp(eta) * np.sqrt(pi * pj)
        total = pi + pj + shared
        win, loss, tie = pi / total, pj / total, shared / total
    else:
        win = half_win(beta[:, None] - beta[None, :], tie_rate)
        loss, tie = 1 - tie_rate - win, np.full_like(win, tie_rate)
    return np.clip(np.stack([win, loss, tie], axis=-1), 1e-12, 1.0)


def half_win(d, tie_rate: float):
    """P(i wins) from strengths fitted with a tie as half a win each way: those satisfy
    sigma(d) = P(i wins) + t / 2, so P(i wins) = sigma(d) - t / 2, clipped into [0, 1 - t]
    (not (1 - t) sigma(d), which flattens every prediction towards a coin)."""
    return np.clip(1 / (1 + np.exp(-np.asarray(d, dtype=float))) - tie_rate / 2, 0.0, 1 - tie_rate)


def fit(method: str, table: np.ndarray, l2: float = L2, start: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, float]:
    """Maximum-likelihood (beta, eta) of a tie model on a count table (a ridge of `l2` on beta
    keeps a model that won every game finite, as in the raw ladder); `start`: a fit to begin from."""
    m = table.shape[0]
    if method == "half":
        return half_fit(table), 0.0

    def loss(theta):
        beta, eta = theta[:m] - theta[:m].mean(), theta[m]
        return -(table * np.log(probabilities(method, beta, eta))).sum() + l2 * beta @ beta

    theta0 = np.append(start[0], start[1]) if start is not None else np.append(np.zeros(m), math.log(0.5))
    result = minimize(loss, theta0, method="L-BFGS-B", options={"maxiter": 2000})
    if not result.success and result.nit >= 2000:
        log.warning("%s tie model fit did not converge in %d iterations (%s)", method, result.nit, result.message)
    theta = result.x
    return theta[:m] - theta[:m].mean(), float(theta[m])


def half_fit(table: np.ndarray) -> np.ndarray:
    """The raw ladder's fit (a tie is half a win each way) from a count table."""
    a, b, k = np.nonzero(table)
    weight = table[a, b, k]
    score = np.where(k == 0, 1.0, np.where(k == 1, 0.0, 0.5))
    d = Design(tuple(range(table.shape[0])), a, b, score, np.zeros(len(a), dtype=int))
    return bt_fit(d, weight)[0]


def tie_parameter(method: str, eta: float) -> dict | None:
    if method == "rao-kupper":
        return {"theta": round(1 + math.exp(eta), 4)}
    if method == "davidson":
        return {"nu": round(math.exp(eta), 4)}
    return None


def tie_ladder(votes: list[dict], models: list[str], method: str, rounds: int = 200, seed: int = 0) -> dict:
    """The ladder under a tie model: Elo-scale ratings with 95% prompt-clustered bootstrap
    intervals and LMArena's ranks, and the fitted tie parameter."""
    if method not in TIE_MODELS:
        raise ValueError(f"ties: {method!r}; use one of {', '.join(TIE_MODELS)}")
    table = counts(votes, models)
    beta, eta = fit(method, table)
    d = design(votes, models)
    index = {m: i for i, m in enumerate(models)}
    usable = [v for v in votes if OUTCOMES.get(v["winner"]) is not None]  # design()'s votes, in its order
    cells = tuple(np.array(c, dtype=int) for c in zip(*[(index[v["model_a"]], index[v["model_b"]], OUTCOMES[v["winner"]])
                                                       for v in usable])) if usable else None
    samples = []
    for weight in cluster_weights(d, rounds, seed):
        resampled = np.zeros_like(table)
        np.add.at(resampled, cells, weight)
        samples.append(fit(method, resampled, start=(beta, eta))[0])
    samples = np.array(samples).reshape(len(samples), len(models))
    beta, samples = centre_on_identified(beta, samples, models, votes)
    rows = []
    for i, model in enumerate(models):
        low, high = percentile_interval(samples[:, i].tolist(), float(beta[i]))
        rows.append({"model": model, "rating": elo(float(beta[i])), "ci_low": elo(low), "ci_high": elo(high),
                     "games": int(table[i].sum() + table[:, i].sum())})
    return {"method": method, "tie_parameter": tie_parameter(method, eta),
            "ladder": ranked(sorted(rows, key=lambda row: -row["rating"]))}


def rates(votes: list[dict]) -> dict:
    """The tie rate (ties and both-bad) and the both-bad rate among usable votes."""
    usable = [v for v in votes if OUTCOMES.get(v["winner"]) is not None]
    n = len(usable)
    return {"votes": n, "tie_rate": round(sum(OUTCOMES[v["winner"]] == 2 for v in usable) / n, 4) if n else None,
            "both_bad_rate": round(sum(v["winner"] == "both_bad" for v in usable) / n, 4) if n else None}


def heldout(votes: list[dict], models: list[str], share: float = 0.2, seed: int = 0) -> dict:
    """Each tie model fitted on a seeded (1 - share) of the votes, scored on the rest: mean
    log-loss over the three outcomes and the tie-probability error (|mean predicted tie
    probability - observed tie rate|, over each model pair's held-out games, weighted by games),
    in all and per model. None where there are too few votes to hold any out."""
    usable = [v for v in votes if OUTCOMES.get(v["winner"]) is not None]
    order = np.random.default_rng(seed).permutation(len(usable))
    cut = int(round(len(usable) * share))
    if cut < 1 or len(usable) - cut < 2:
        return {"share": share, "train": len(usable), "heldout": 0, "log_loss": None, "tie_probability_error": None,
                "by_model": {}}
    test, train = [usable[i] for i in order[:cut]], [usable[i] for i in order[cut:]]
    table, held = counts(train, models), counts(test, models)
    tie_rate = table[..., 2].sum() / max(table.sum(), 1)
    out = {"share": share, "train": len(train), "heldout": len(test), "log_loss": {}, "tie_probability_error": {},
           "by_model": defaultdict(dict)}
    for method in TIE_MODELS:
        beta, eta = fit(method, table)
        prob = probabilities(method, beta, eta, tie_rate)
        out["log_loss"][method] = round(float(-(held * np.log(prob)).sum() / held.sum()), 4)
        out["tie_probability_error"][method] = tie_error(held, prob)
        for i, model in enumerate(models):
            mine = np.zeros_like(held)
            mine[i], mine[:, i] = held[i], held[:, i]
            if mine.sum():
                out["by_model"][model][method] = {"games": int(mine.sum()),
                                                  "log_loss": round(float(-(mine * np.log(prob)).sum() / mine.sum()), 4),
                                                  "tie_probability_error": tie_error(mine, prob)}
    out["by_model"] = dict(out["by_model"])
    return out


def tie_error(held: np.ndarray, prob: np.ndarray) -> float | None:
    games = held.sum(axis=-1)
    if not games.sum():
        return None
    observed = np.divide(held[..., 2], games, out=np.zeros_like(games), where=games > 0)
    return round(float((games * np.abs(prob[..., 2] - observed)).sum() / games.sum()), 4)


def simulate(strengths: dict[str, float], games: int, tie_rate: float, seed: int = 0, method: str = "davidson") -> list[dict]:
    """Votes of known strengths (natural-log scale) and an overall tie rate near `tie_rate`, drawn
    from the Davidson model (nu chosen so that evenly matched models tie at that rate), from
    Rao-Kupper, or ("half") from half's own assumption: a tie at the constant rate, the rest decided
    by Bradley-Terry, P(i wins) = (1 - t) sigma(beta_i - beta_j). Every pair equally often, each on
    a prompt of its own."""
    rng = np.random.default_rng(seed)
    models = list(strengths)
    beta = np.array([strengths[m] for m in models])
    if method == "half":
        decided = 1 / (1 + np.exp(-(beta[:, None] - beta[None, :])))
        prob = np.stack([(1 - tie_rate) * decided, (1 - tie_rate) * (1 - decided), np.full_like(decided, tie_rate)], axis=-1)
    else:
        # Evenly matched, Davidson ties at nu / (2 + nu) and Rao-Kupper at 1 - 2 / (1 + theta): both
        # give the rate t at nu = theta - 1 = 2t / (1 - t).
        prob = probabilities(method, beta, math.log(2 * tie_rate / (1 - tie_rate)))
    pairs = [(i, j) for i in range(len(models)) for j in range(len(models)) if i != j]
    votes = []
    for n in range(games):
        i, j = pairs[n % len(pairs)]
        k = rng.choice(3, p=prob[i, j] / prob[i, j].sum())
        votes.append({"model_a": models[i], "model_b": models[j], "winner": ("a", "b", "tie")[k], "question_id": n,
                      "battle_id": n})
    return votes
