"""A ladder controlled for answer style (LMArena's "style control"): Bradley-Terry as a logistic
regression (the raw ladder's own, blindarena.stats.bt_fit) with, beside one strength per model, the two answers' differences in length, Markdown
headers, list items and bold spans as covariates. People prefer longer, more formatted answers
whatever they say; the covariates take that share of the preference, and the model strengths
keep the rest. Pure functions over plain dicts; no SQL, no UI."""

from __future__ import annotations

import math
import re
import numpy as np

from blindarena.stats import bt_bootstrap, design, ladder_rows, percentile_interval

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


# A style coefficient is a log-odds change per standard deviation of a style difference; one of 1
# already multiplies the odds by e. An interval wider than MAX_STYLE_WIDTH, or one fitted on fewer
# than MIN_STYLE_VOTES decisive votes, says "not enough votes" instead of a number (12 votes gave
# "length -0.71 [-50.22, +0.85]").
MAX_STYLE_WIDTH = 2.0
MIN_STYLE_VOTES = 40


def style_ladder(votes: list[dict], models: list[str], rounds: int = 200, seed: int = 0) -> dict:
    """{"ladder": rows like stats.bt_ladder (Elo scale, 95% intervals, ranks), "coefficients":
    {feature: {value, ci_low, ci_high}}, "controlled_win_rates": [{model, opponent, win_rate}]}.
    The same regression as the raw ladder (stats.bt_fit) with the style differences as covariates,
    standardised over the votes (so a coefficient is per standard deviation), and the same
    prompt-clustered bootstrap. `votes` carry text_a and text_b."""
    models = sorted(models)
    z = np.array([differences(style(v["text_a"]), style(v["text_b"])) for v in votes]).reshape(len(votes), len(FEATURES))
    scale = z.std(axis=0) if len(z) else np.ones(len(FEATURES))
    scale[scale == 0] = 1.0
    d = design(votes, models, z / scale)
    beta, gamma, beta_samples, gamma_samples = bt_bootstrap(d, rounds, seed)
    coefficients = {}
    decisive = sum(v["winner"] in ("a", "b") for v in votes)
    for k, f in enumerate(FEATURES):
        low, high = percentile_interval(gamma_samples[:, k].tolist(), float(gamma[k]))
        enough = decisive >= MIN_STYLE_VOTES and math.isfinite(high - low) and high - low <= MAX_STYLE_WIDTH
        coefficients[f] = {"value": float(gamma[k]), "ci_low": low, "ci_high": high, "enough_votes": enough}
    strength = dict(zip(models, beta.tolist()))
    met = {tuple(sorted((v["model_a"], v["model_b"]))) for v in votes}
    controlled = [{"model": a, "opponent": b, "win_rate": 1 / (1 + math.exp(strength[b] - strength[a]))} for a, b in sorted(met)]
    return {"ladder": ladder_rows(votes, models, beta, beta_samples), "coefficients": coefficients,
            "controlled_win_rates": controlled}
