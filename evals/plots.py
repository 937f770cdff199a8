"""Plotly figures of arena results (the dict evals.arena.results returns). Pure functions:
results in, figures out."""

from __future__ import annotations

import plotly.graph_objects as go


def _empty(title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, annotations=[{"text": "no votes yet", "showarrow": False, "x": 0.5, "y": 0.5,
                                                  "xref": "paper", "yref": "paper"}])
    return fig


def ladder(results: dict) -> go.Figure:
    rows = results["bradley_terry"]
    if not results["human_votes"]:
        return _empty("Bradley-Terry ratings")
    fig = go.Figure(go.Scatter(
        x=[r["rating"] for r in rows], y=[r["model"] for r in rows], mode="markers",
        error_x={"type": "data", "symmetric": False, "array": [r["ci_high"] - r["rating"] for r in rows],
                 "arrayminus": [r["rating"] - r["ci_low"] for r in rows]}))
    fig.update_layout(title="Bradley-Terry ratings (Elo scale, ties count half; 95% bootstrap CI)",
                      xaxis_title="rating", yaxis={"autorange": "reversed"})
    return fig


def win_rates(results: dict) -> go.Figure:
    rows = results["win_rates"]
    if not rows:
        return _empty("Win rates")
    labels = [f"{r['model']} vs {r['opponent']}" for r in rows]
    fig = go.Figure(go.Bar(
        x=[r["win_rate"] for r in rows], y=labels, orientation="h",
        error_x={"type": "data", "symmetric": False, "array": [r["ci_high"] - r["win_rate"] for r in rows],
                 "arrayminus": [r["win_rate"] - r["ci_low"] for r in rows]},
        text=[f"{r['wins']}-{r['losses']}-{r['ties']}" for r in rows]))
    fig.add_vline(x=0.5, line_dash="dot")
    fig.update_layout(title="Win rate of the first model (ties half; 95% Wilson CI; W-L-T)", xaxis_range=[0, 1])
    return fig


def by_category(results: dict) -> go.Figure:
    rows = results["by_category"]
    if not rows:
        return _empty("Win rate by category")
    fig = go.Figure()
    for pair in sorted({(r["model"], r["opponent"]) for r in rows}):
        picked = [r for r in rows if (r["model"], r["opponent"]) == pair]
        fig.add_bar(name=f"{pair[0]} vs {pair[1]}", x=[r["category"] for r in picked], y=[r["win_rate"] for r in picked])
    fig.add_hline(y=0.5, line_dash="dot")
    fig.update_layout(title="Win rate by prompt category", yaxis_range=[0, 1], barmode="group")
    return fig


def position_bias(results: dict) -> go.Figure:
    bias = results["position_bias"]
    if not bias["decisive"]:
        return _empty("Position bias")
    fig = go.Figure(go.Bar(x=["left side"], y=[bias["left_win_rate"]], error_y={
        "type": "data", "symmetric": False, "array": [bias["ci_high"] - bias["left_win_rate"]],
        "arrayminus": [bias["left_win_rate"] - bias["ci_low"]]}))
    fig.add_hline(y=0.5, line_dash="dot")
    fig.update_layout(title=f"Left-side win rate over {bias['decisive']} decisive votes (0.5 = no bias)", yaxis_range=[0, 1])
    return fig


def votes_over_time(votes: list[dict]) -> go.Figure:
    if not votes:
        return _empty("Votes over time")
    times = sorted(v["created_at"] for v in votes)
    fig = go.Figure(go.Scatter(x=times, y=list(range(1, len(times) + 1)), mode="lines+markers"))
    fig.update_layout(title="Votes over time", yaxis_title="votes")
    return fig


def style_ladder(results: dict) -> go.Figure:
    """The raw Bradley-Terry ladder beside the one controlled for style, each with its interval."""
    if not results["human_votes"]:
        return _empty("Bradley-Terry: raw and controlled for style")
    fig = go.Figure()
    for label, rows in (("raw", results["bradley_terry"]), ("controlled for style", results["bradley_terry_style"]["ladder"])):
        fig.add_trace(go.Scatter(
            x=[r["rating"] for r in rows], y=[r["model"] for r in rows], mode="markers", name=label,
            error_x={"type": "data", "symmetric": False, "array": [r["ci_high"] - r["rating"] for r in rows],
                     "arrayminus": [r["rating"] - r["ci_low"] for r in rows]}))
    fig.update_layout(title="Bradley-Terry, raw and controlled for length / headers / lists / bold (95% CI)",
                      xaxis_title="rating (Elo scale)", yaxis={"autorange": "reversed"})
    return fig
