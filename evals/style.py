"""A ladder controlled for answer style (LMArena's "style control"): Bradley-Terry as a logistic
regression with, beside one strength per model, the two answers' differences in length, Markdown
headers, list items and bold spans as covariates. People prefer longer, more formatted answers
whatever they say; the covariates take that share of the preference, and the model strengths
keep the rest. Pure functions over plain dicts; no SQL, no UI."""

from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from evals.stats import ladder_rows, outcome, percentile_interval, prompt_bootstrap

FEATURES = ("length", "headers", "lists", "bold")
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s", re.M)
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def style(text: str) -> dict[str, int]:
    """The counted features of one answer: words, Markdown headers, list items, bold spans."""
    text = text or ""
    return {"length": len(text.split()), "headers": len(_HEADER.findall(text)), "lists": len(_LIST.findall(text)),
            "bold": len(_BOLD.findall(text))}


def differences(a: dict[str, int], b: dict[str, int]) -> list[float]:
    """LMArena's normalised difference per feature: (a - b) / (a + b), 0 when both are 0."""
    return [(a[f] - b[f]) / (a[f] + b[f]) if a[f] + b[f] else 0.0 for f in FEATURES]


def _design(votes: list[dict], models: list[str]):
    """Rows (model one-hot +1 / -1, raw style differences), outcomes and weights; a tie is two
    half-weight rows, one won by each side (as LMArena fits ties)."""
    index = {m: i for i, m in enumerate(models)}
    rows, ys, ws = [], [], []
    for vote in votes:
        score = outcome(vote)
        if score is None:
            continue
        x = np.zeros(len(models))
        x[index[vote["model_a"]]], x[index[vote["model_b"]]] = 1.0, -1.0
        z = differences(style(vote["text_a"]), style(vote["text_b"]))
        for y, w in ((1.0, score), (0.0, 1 - score)):
            if w:
                rows.append((x, z))
                ys.append(y)
                ws.append(w)
    return rows, np.array(ys), np.array(ws)


def fit(votes: list[dict], models: list[str], scale: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """Maximum-likelihood fit: log-odds(a beats b) = beta_a - beta_b + sum_k gamma_k * z_k, with z_k
    the style differences standardised over the votes (so gamma_k is per standard deviation).
    A small ridge (1e-4) keeps a model that won everything finite; betas are centred at 0.
    Returns (beta per model on the natural-log scale, gamma per feature, the scales used)."""
    rows, y, w = _design(votes, models)
    if not rows:
        return {m: 0.0 for m in models}, {f: 0.0 for f in FEATURES}, np.ones(len(FEATURES))
    X = np.array([x for x, _ in rows])
    Z = np.array([z for _, z in rows])
    if scale is None:
        scale = Z.std(axis=0)
        scale[scale == 0] = 1.0
    A = np.hstack([X, Z / scale])

    def loss(theta):
        logits = A @ theta
        nll = np.sum(w * (np.logaddexp(0, logits) - y * logits))
        grad = A.T @ (w * (expit(logits) - y))
        return nll + 1e-4 * theta @ theta, grad + 2e-4 * theta

    theta = minimize(loss, np.zeros(A.shape[1]), jac=True, method="L-BFGS-B").x
    beta = theta[: len(models)] - theta[: len(models)].mean()
    return dict(zip(models, beta.tolist())), dict(zip(FEATURES, theta[len(models):].tolist())), scale


def style_ladder(votes: list[dict], models: list[str], rounds: int = 200, seed: int = 0) -> dict:
    """{"ladder": rows like stats.bt_ladder (Elo scale, 95% intervals), "coefficients": {feature:
    {value, ci_low, ci_high}}, "controlled_win_rates": [{model, opponent, win_rate}]}. Intervals by
    the same prompt-clustered bootstrap as the raw ladder. `votes` carry text_a and text_b."""
    models = sorted(models)
    beta, gamma, scale = fit(votes, models)
    beta_samples, gamma_samples = defaultdict(list), defaultdict(list)
    for resampled in prompt_bootstrap(votes, rounds, seed):
        b, g, _ = fit(resampled, models, scale)
        for m, value in b.items():
            beta_samples[m].append(value)
        for f, value in g.items():
            gamma_samples[f].append(value)

    coefficients = {}
    for f in FEATURES:
        low, high = percentile_interval(gamma_samples[f], gamma[f])
        coefficients[f] = {"value": gamma[f], "ci_low": low, "ci_high": high}
    met = {tuple(sorted((v["model_a"], v["model_b"]))) for v in votes}
    controlled = [{"model": a, "opponent": b, "win_rate": 1 / (1 + math.exp(beta[b] - beta[a]))} for a, b in sorted(met)]
    return {"ladder": ladder_rows(votes, models, beta, beta_samples), "coefficients": coefficients,
            "controlled_win_rates": controlled}
