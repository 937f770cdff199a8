"""The before/after report: metrics of each entry, judged win rates with intervals, a paired
test between neighbours, and sample side-by-side answers, written as metrics.json (every number),
report.md and report.html (plotly figures). Reads results; computes nothing new."""

from __future__ import annotations

import html
import json
from pathlib import Path

import plotly.graph_objects as go

from blindarena import stats

METRIC_LABELS = {
    "domain_perplexity": "domain perplexity (lower is better)",
    "general_perplexity": "general-text perplexity (forgetting check)",
    "preference_accuracy": "held-out preference accuracy",
    "task_accuracy": "task accuracy (rule-checked)",
}


def summarise(models: list[str], metrics: dict[str, dict], votes: list[dict], reward: dict | None) -> dict:
    judged = [v for v in votes if v["rater_role"] == "judge"]
    return {
        "models": models,
        "metrics": metrics,
        "reward_model": reward,
        "judge_votes": len(judged),
        "win_rates": stats.win_rates(judged),
        "bradley_terry": stats.bt_ladder(judged, models) if judged else [],
        "paired_tests": [stats.paired_sign_test(judged, later, earlier) for earlier, later in zip(models, models[1:])],
    }


def markdown(summary: dict, samples: list[dict]) -> str:
    models = summary["models"]
    lines = ["# Before / after report", "", "| metric | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for key, label in METRIC_LABELS.items():  # n/a: not measured (a server backend has no teacher forcing)
        values = [summary["metrics"].get(m, {}).get(key) for m in models]
        lines.append(f"| {label} | " + " | ".join("n/a" if v is None else f"{v:.4g}" for v in values) + " |")
    if summary["reward_model"]:
        r = summary["reward_model"]
        lines += ["", f"Reward model `{r['name']}`: held-out pairwise accuracy {r['preference_accuracy']:.3f}."]
    if summary.get("reward_vs_length"):
        check = summary["reward_vs_length"]
        lines += [f"Its score against answer length over {len(check['points'])} answers: Pearson r = "
                  f"{check['correlation']} (a length-hacking check: near 0 is what you want)."]
    lines += ["", f"## Judged win rates ({summary['judge_votes']} judge votes, each pair judged in both orders)", ""]
    if summary["win_rates"]:
        lines += ["| model | opponent | W-L-T | win rate | 95% CI |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['opponent']} | {r['wins']}-{r['losses']}-{r['ties']} | {r['win_rate']:.3f} | "
                  f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] |" for r in summary["win_rates"]]
        lines += ["", "| model | Bradley-Terry rating | 95% CI |", "|---|---|---|"]
        lines += [f"| {r['model']} | {r['rating']:.0f} | [{r['ci_low']:.0f}, {r['ci_high']:.0f}] |" for r in summary["bradley_terry"]]
        lines += ["", "| is better? | wins | losses | two-sided sign-test p |", "|---|---|---|---|"]
        lines += [f"| {t['model']} over {t['other']} | {t['wins']} | {t['losses']} | {t['p_value']:.3g} |"
                  for t in summary["paired_tests"]]
    else:
        lines.append("No judge was available (train a reward model, or set JUDGE_BASE_URL and JUDGE_MODEL).")
    if summary.get("family"):
        lines += ["", "## The preference family side by side (each against its parent)", "",
                  "| model | method | parent | preference accuracy | reward margin | answer tokens | "
                  "general perplexity change (forgetting) | judged win rate vs parent | 95% CI |",
                  "|---|---|---|---|---|---|---|---|---|"]
        fmt = lambda v, spec="{:.3f}": "n/a" if v is None else spec.format(v)
        for r in summary["family"]:
            ci = "n/a" if not r["win_rate_ci"] else f"[{r['win_rate_ci'][0]:.3f}, {r['win_rate_ci'][1]:.3f}]"
            lines.append(f"| {r['model']} | {r['method']} | {r['parent']} | {fmt(r['preference_accuracy'])} | "
                         f"{fmt(r['reward_margin'], '{:+.2f}')} | {fmt(r['answer_tokens'], '{:.1f}')} | "
                         f"{fmt(r['general_perplexity_change'], '{:+.3f}')} | {fmt(r['win_rate_vs_parent'])} | {ci} |")
    lines += ["", "## Sample answers", ""]
    for sample in samples:
        lines += [f"**{sample['prompt']}**", ""] + [f"- `{m}`: {sample['answers'][m]}" for m in models] + [""]
    return "\n".join(lines)


def figures(summary: dict) -> list[go.Figure]:
    models = summary["models"]
    figs = []
    for key, label in METRIC_LABELS.items():
        if any(key not in summary["metrics"].get(m, {}) for m in models):
            continue
        fig = go.Figure(go.Bar(x=models, y=[summary["metrics"][m][key] for m in models]))
        fig.update_layout(title=label, height=320)
        figs.append(fig)
    if summary.get("reward_vs_length"):
        points = summary["reward_vs_length"]["points"]
        fig = go.Figure(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers"))
        fig.update_layout(title=f"Reward against answer length (r = {summary['reward_vs_length']['correlation']})",
                          xaxis_title="answer tokens", yaxis_title="reward", height=320)
        figs.append(fig)
    if summary["bradley_terry"]:
        rows = summary["bradley_terry"]
        fig = go.Figure(go.Scatter(x=[r["rating"] for r in rows], y=[r["model"] for r in rows], mode="markers",
                                   error_x={"type": "data", "symmetric": False,
                                            "array": [r["ci_high"] - r["rating"] for r in rows],
                                            "arrayminus": [r["rating"] - r["ci_low"] for r in rows]}))
        fig.update_layout(title="Judged Bradley-Terry ratings (95% bootstrap CI)", height=320)
        figs.append(fig)
    return figs


def write(out_dir: str | Path, summary: dict, samples: list[dict]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({**summary, "samples": samples}, indent=2))
    text = markdown(summary, samples)
    (out / "report.md").write_text(text)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures(summary))]
    (out / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Before / after report</title></head><body>"
        + "".join(parts) + f"<pre>{html.escape(text)}</pre></body></html>")
    return out
