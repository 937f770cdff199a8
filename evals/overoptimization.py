"""Reward hacking, measured (Gao et al. 2023, "Scaling laws for reward model overoptimization"):
best-of-n sampling against a proxy reward model, each pick scored by a gold judge (a second reward
model or an OpenAI-compatible judge), against the analytic KL of best-of-n, log n - (n - 1) / n.
When the proxy keeps rising and the gold stops, the policy is being fitted to the proxy's
mistakes. Also the proxy's score against answer length: a length-hacking check."""

from __future__ import annotations

import math
from dataclasses import replace

from posttrain.backend import Generator
from posttrain.engine import SamplingParams


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || policy) = log n - (n - 1) / n (Stiennon et al. 2020; Gao et al. 2023)."""
    return math.log(n) - (n - 1) / n


def sample(generator: Generator, policy: str, prompts: list[str], n: int, params: SamplingParams) -> list[list]:
    """n answers per prompt (sample i of every prompt in one batched call, seed + i)."""
    per_prompt: list[list] = [[] for _ in prompts]
    for i in range(n):
        answers = generator.generate(prompts, [policy] * len(prompts), replace(params, seed=params.seed + i))
        for row, answer in enumerate(answers):
            per_prompt[row].append(answer)
    return per_prompt


def curve(prompts: list[str], samples: list[list], proxy, gold, ns: list[int]) -> dict:
    """`proxy(prompt, texts)` and `gold(prompt, texts)` -> scores. For each n, each prompt's pick is
    the proxy's best of its first n samples; rows {n, kl, proxy, gold, length} are means over prompts.
    Gold is asked only about picks."""
    proxy_scores = [proxy(p, [a.text for a in answers]) for p, answers in zip(prompts, samples)]
    picks = {(row, max(range(n), key=lambda i: proxy_scores[row][i])) for n in ns for row in range(len(prompts))}
    gold_scores = {}
    for row in sorted({r for r, _ in picks}):
        chosen = sorted(i for r, i in picks if r == row)
        for i, score in zip(chosen, gold(prompts[row], [samples[row][i].text for i in chosen])):
            gold_scores[(row, i)] = score
    rows = []
    for n in ns:
        best = [max(range(n), key=lambda i: proxy_scores[row][i]) for row in range(len(prompts))]
        values = [gold_scores[(row, i)] for row, i in enumerate(best)]
        parsed = [v for v in values if v is not None]
        rows.append({"n": n, "kl": round(best_of_n_kl(n), 4),
                     "proxy": round(sum(proxy_scores[r][i] for r, i in enumerate(best)) / len(best), 4),
                     "gold": round(sum(parsed) / len(parsed), 4) if parsed else None,
                     "length": round(sum(samples[r][i].new_tokens for r, i in enumerate(best)) / len(best), 2),
                     "gold_unparseable": len(values) - len(parsed)})
    golds = [(r["gold"], r["n"]) for r in rows if r["gold"] is not None]
    lengths = [a.new_tokens for answers in samples for a in answers]
    scores = [s for row in proxy_scores for s in row]
    return {"overoptimization": rows, "gold_peak_n": max(golds)[1] if golds else None,
            "length_vs_proxy": {"correlation": pearson(lengths, scores), "points": list(zip(lengths, scores))}}


def pearson(x: list[float], y: list[float]) -> float | None:
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sx, sy = math.sqrt(sum((a - mx) ** 2 for a in x)), math.sqrt(sum((b - my) ** 2 for b in y))
    return round(sxy / (sx * sy), 4) if sx and sy else None


def gold_scores(registry, gold: str, device=None):
    """(prompt, texts) -> scores of the gold judge: a second reward entry, or `openai` (an
    OpenAI-compatible grader from JUDGE_BASE_URL / JUDGE_MODEL, MT-Bench's single-answer grade)."""
    if gold != "openai":
        from posttrain.reward import RewardScorer

        return RewardScorer(registry, gold, device=device).score
    from evals.judge import OpenAIJudge
    from evals.mtbench import OpenAIGrader
    from posttrain.chat_api import ChatClient

    judge = OpenAIJudge.from_env()
    grader = OpenAIGrader(ChatClient(judge.base_url, judge.api_key, retries=judge.retries), judge.model)
    return lambda prompt, texts: grader.grade([({"turns": [prompt], "category": "general", "reference": None}, [t], 0)
                                               for t in texts])


def write(result: dict, out, proxy: str, gold: str):
    """overoptimization.json and the two plots (the curves on the KL axis, length against reward)."""
    import json
    from pathlib import Path

    from blindarena import plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overoptimization.json").write_text(json.dumps(result, indent=2))
    plots.overoptimization(result, proxy, gold).write_html(str(out / "overoptimization.html"), include_plotlyjs=True)
    plots.length_vs_reward(result, proxy).write_html(str(out / "length_vs_reward.html"), include_plotlyjs=True)
    return out
