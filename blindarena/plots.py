"""Plotly figures of arena results (the dict blindarena.operations.results returns). Pure functions:
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
        x=[r["rating"] for r in rows], y=[f"#{r['rank']} {r['model']}" if "rank" in r else r["model"] for r in rows],
        mode="markers",
        error_x={"type": "data", "symmetric": False, "array": [r["ci_high"] - r["rating"] for r in rows],
                 "arrayminus": [r["rating"] - r["ci_low"] for r in rows]}))
    fig.update_layout(title="Bradley-Terry ratings (Elo scale, ties count half; 95% bootstrap CI; #rank)",
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


def topic_map(results: dict) -> go.Figure:
    """The voted prompts on a 2-D map (PCA of their MiniLM embeddings), coloured by found topic."""
    points = (results.get("topics") or {}).get("map") or []
    if not points:
        return _empty("Topics (shown for campaigns whose prompts carry no category)")
    fig = go.Figure()
    for topic in sorted({p["topic"] for p in points}):
        mine = [p for p in points if p["topic"] == topic]
        fig.add_scatter(name=topic, x=[p["x"] for p in mine], y=[p["y"] for p in mine], mode="markers",
                        text=[p["prompt"] for p in mine], hoverinfo="text+name")
    fig.update_layout(title="Prompts by found topic (MiniLM embeddings, HDBSCAN, 2-D PCA map)")
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


def family_tree(entries: list[dict]) -> go.Figure:
    """The registry as a family tree: bases on the left, each entry one step right of its parent
    (an adapter without a parent hangs from its base), coloured by method; imported entries are
    diamonds. `entries`: [{name, method, parent, base}]."""
    if not entries:
        return _empty("Registry")
    by_name = {e["name"]: e for e in entries}

    def parent_of(e: dict) -> str | None:
        parent = e.get("parent") or (e.get("base") if e.get("method") != "base" else None)
        return parent if parent in by_name and parent != e["name"] else None

    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset = frozenset()) -> int:
        if name not in depth:
            parent = parent_of(by_name[name])
            depth[name] = 0 if parent is None or parent in seen else depth_of(parent, seen | {name}) + 1
        return depth[name]

    rows: dict[int, list[str]] = {}
    for name in sorted(by_name, key=lambda n: (depth_of(n), n)):
        rows.setdefault(depth_of(name), []).append(name)
    position = {name: (d, -i) for d, names in rows.items() for i, name in enumerate(names)}
    fig = go.Figure()
    for e in entries:
        parent = parent_of(e)
        if parent:
            (x0, y0), (x1, y1) = position[parent], position[e["name"]]
            fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", line={"color": "#999"}, hoverinfo="skip",
                                     showlegend=False))
    for method in sorted({e.get("method") or "?" for e in entries}):
        group = [e for e in entries if (e.get("method") or "?") == method]
        fig.add_trace(go.Scatter(
            x=[position[e["name"]][0] for e in group], y=[position[e["name"]][1] for e in group], mode="markers+text",
            name=method, text=[e["name"] for e in group], textposition="top center",
            marker={"size": 16, "symbol": ["diamond" if method == "imported" or e.get("imported") else "circle" for e in group]}))
    fig.update_layout(title="Registry: base -> SFT -> DPO / ORPO / next-round children (diamonds: imported)",
                      xaxis={"title": "generation", "dtick": 1}, yaxis={"visible": False})
    return fig


def loss_curves(history: list[dict], title: str = "Training and evaluation loss") -> go.Figure:
    """Loss against step from a run's logged history (the Trainer's log_history)."""
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evaluation = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    if not train and not evaluation:
        return _empty(title + " (no logged history for this entry)")
    fig = go.Figure()
    for label, points in (("train loss", train), ("eval loss", evaluation)):
        if points:
            fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers", name=label))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss")
    return fig


def rl_curves(history: list[dict], title: str = "Online RL round") -> go.Figure:
    """An online RL round's log (GRPO / RLOO): every reward's batch mean (the proxy and the gold
    measure), the completion length and the KL to the parent, per step, one panel each: where the
    proxy climbs while the gold measure does not, the reward is being hacked."""
    from plotly.subplots import make_subplots

    steps = [h for h in history if "step" in h and any(k.startswith("rewards/") for k in h)]
    if not steps:
        return _empty(title + " (no rewards logged for this entry)")
    rewards = sorted({k for h in steps for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, subplot_titles=("reward (batch mean)", "completion length", "KL to the parent"))
    for key in rewards:
        points = [(h["step"], h[key]) for h in steps if h.get(key) is not None]
        fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers",
                                 name=key.removeprefix("rewards/").removesuffix("/mean")), row=1, col=1)
    for row, key, label in ((2, "completions/mean_length", "length (tokens)"), (3, "kl", "KL")):
        points = [(h["step"], h[key]) for h in steps if h.get(key) is not None]
        if points:
            fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers", name=label),
                          row=row, col=1)
    fig.update_layout(title=title, height=640)
    fig.update_xaxes(title_text="step", row=3, col=1)
    return fig


def mtbench_radar(result: dict) -> go.Figure:
    """MT-Bench-lite's per-category scores, one closed polygon per model."""
    scores = result["mtbench"]
    categories = sorted({c for m in scores.values() for c in m["by_category"]})
    if not categories:
        return _empty("MT-Bench-lite")
    fig = go.Figure()
    for model, row in scores.items():
        values = [row["by_category"].get(c) or 0 for c in categories]
        fig.add_trace(go.Scatterpolar(r=values + values[:1], theta=categories + categories[:1], name=model, fill="toself",
                                      opacity=0.55))
    fig.update_layout(title=f"MT-Bench-lite by category (judge: {result['judge']}; overall: " +
                      ", ".join(f"{m} {r['overall']}" for m, r in scores.items()) + ")")
    return fig


def overoptimization(result: dict, proxy: str, gold: str) -> go.Figure:
    """Proxy and gold score of best-of-n picks against KL (Gao et al.'s over-optimization curves)."""
    from plotly.subplots import make_subplots

    rows = result["overoptimization"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    kl = [r["kl"] for r in rows]
    fig.add_trace(go.Scatter(x=kl, y=[r["proxy"] for r in rows], mode="lines+markers", name=f"proxy ({proxy})",
                             text=[f"n={r['n']}" for r in rows]), secondary_y=False)
    fig.add_trace(go.Scatter(x=kl, y=[r["gold"] for r in rows], mode="lines+markers", name=f"gold ({gold})",
                             text=[f"n={r['n']}" for r in rows]), secondary_y=True)
    fig.update_layout(title=f"Best-of-n against the proxy: gold peaks at n = {result['gold_peak_n']}",
                      xaxis_title="KL(best-of-n || policy) = log n - (n-1)/n")
    fig.update_yaxes(title_text="proxy reward", secondary_y=False)
    fig.update_yaxes(title_text="gold score", secondary_y=True)
    return fig


def length_vs_reward(result: dict, proxy: str) -> go.Figure:
    """Every sample's proxy reward against its length: a reward model that pays for length shows a slope."""
    points = result["length_vs_proxy"]["points"]
    fig = go.Figure(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers"))
    fig.update_layout(title=f"{proxy}: reward against answer length (Pearson r = {result['length_vs_proxy']['correlation']})",
                      xaxis_title="answer tokens", yaxis_title="reward")
    return fig
