"""The builder's quality report: one HTML page with the funnel, length histograms, language mix,
the largest near-duplicate clusters and a 50-example random sample laid out for manual rating."""

from __future__ import annotations

import html
import json
import random
from collections import Counter
from pathlib import Path

import plotly.graph_objects as go

from posttrain.synth.clean import language


def write(path: Path, summary: dict, final: list[dict], dropped: list[dict], clusters: list[dict], seed: int = 0,
          min_english_share: float | None = None) -> None:
    f = summary["funnel"]
    stages = ["generated", "parsed", "after_filters", "after_minhash", "after_embedding", "final"]
    figs = [go.Figure(go.Funnel(y=stages, x=[f[s] + (f["seeds"] if s not in ("generated", "parsed", "after_filters") else 0)
                                             for s in stages]))]
    figs[0].update_layout(title=f"Funnel (seeds added before dedup: {f['seeds']})")
    for key in ("instruction", "output"):
        fig = go.Figure(go.Histogram(x=[len(r[key]) for r in final], nbinsx=40))
        fig.update_layout(title=f"{key} length (characters), final set", height=300)
        figs.append(fig)
    share = {} if min_english_share is None else {"min_english_share": min_english_share}  # the filter's own setting
    mix = Counter(language(f"{r['instruction']} {r['output']}", **share) for r in final + [d for d in dropped if "output" in d])
    figs.append(go.Figure(go.Pie(labels=list(mix), values=list(mix.values()))).update_layout(title="Language mix (kept and dropped)"))
    reasons = Counter(d["reason"].split(":")[0] for d in dropped)
    figs.append(go.Figure(go.Bar(x=list(reasons), y=list(reasons.values()))).update_layout(title="Why rows were dropped"))
    charts = "".join(fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs))
    top = sorted(clusters, key=lambda c: -len(c["duplicates"]))[:10]
    cluster_html = "".join(
        f"<li><b>{html.escape(c['kept']['instruction'])}</b> ({len(c['duplicates'])} near duplicates)<ul>"
        + "".join(f"<li>{html.escape(d['instruction'])}</li>" for d in c["duplicates"][:5]) + "</ul></li>" for c in top)
    sample = random.Random(seed).sample(final, min(50, len(final)))
    rows = "".join(f"<tr><td>{i + 1}</td><td>{html.escape(r['instruction'])}</td><td>{html.escape(r['input'])}</td>"
                   f"<td>{html.escape(r['output'])}</td><td></td></tr>" for i, r in enumerate(sample))
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Instruction data quality report</title>"
        "<style>td{vertical-align:top;border:1px solid #ccc;padding:4px}table{border-collapse:collapse}</style></head><body>"
        f"<h1>Instruction data quality report</h1><pre>{html.escape(json.dumps(summary, indent=2))}</pre>{charts}"
        f"<h2>Largest near-duplicate clusters</h2><ol>{cluster_html or '<li>none</li>'}</ol>"
        f"<h2>Random sample for manual rating ({len(sample)})</h2><table><tr><th>#</th><th>instruction</th><th>input</th>"
        f"<th>output</th><th>rating (1-5)</th></tr>{rows}</table></body></html>", encoding="utf-8")
