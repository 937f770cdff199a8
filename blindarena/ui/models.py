"""The models room (admin): the registry as a family tree, and for each entry its card, its
training and evaluation loss curves (from the run's logged history) and its held-out metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr

from blindarena import plots
from blindarena.ui.common import PRIVATE, Services, bind, check_admin, refusal, shown_to_user
from posttrain.registry import CARD, TRAINING_LOG


@dataclass
class ModelsRoom:
    refresh: gr.Button
    tree: gr.Plot
    entry: gr.Dropdown
    show: gr.Button
    curves: gr.Plot
    metrics: gr.Dataframe
    card: gr.Markdown


def build() -> ModelsRoom:
    refresh = gr.Button("Show the registry", elem_id="models-refresh")
    tree = gr.Plot(elem_id="family-tree")
    with gr.Row():
        entry = gr.Dropdown(label="Entry", choices=[], elem_id="models-entry")
        show = gr.Button("Show entry", elem_id="models-show")
    curves = gr.Plot(elem_id="loss-curves")
    metrics = gr.Dataframe(headers=["metric", "value"], label="Held-out metrics (from the card)")
    with gr.Accordion("Model card", open=False):
        card = gr.Markdown()
    return ModelsRoom(refresh, tree, entry, show, curves, metrics, card)


def wire(svc: Services, room: ModelsRoom, password: gr.Textbox) -> None:
    room.refresh.click(bind(show_registry, svc, room), [password], [room.tree, room.entry], **PRIVATE)
    room.show.click(bind(show_entry, svc, room), [password, room.entry], [room.curves, room.metrics, room.card], **PRIVATE)


def card_written_ns(entry) -> int:
    """When the entry's card was written, to the nanosecond (created_at has whole seconds)."""
    card = entry.path / CARD
    return card.stat().st_mtime_ns if card.is_file() else 0


def tree_rows(svc: Services) -> list[dict]:
    """The registry's entries for the tree, oldest first."""
    entries = sorted(svc.registry.entries(), key=lambda e: (str(e.card.get("created_at", "")), card_written_ns(e)))
    return [{"name": e.name, "method": e.card.get("method"), "parent": e.card.get("parent"), "base": e.card.get("base")}
            for e in entries]


def show_registry(svc: Services, room: ModelsRoom, password) -> dict:
    check_admin(svc, password)
    rows = tree_rows(svc)
    trained = [r["name"] for r in rows if r["method"] not in ("base", None)]  # the newest is preselected
    return {room.tree: plots.family_tree(rows),
            room.entry: gr.update(choices=[r["name"] for r in rows], value=trained[-1] if trained else None)}


def show_entry(svc: Services, room: ModelsRoom, password, name) -> dict:
    check_admin(svc, password)
    if not name:
        raise refusal("pick an entry (Show the registry lists them)")
    with shown_to_user():
        entry = svc.registry.get(name)
    log = entry.path / TRAINING_LOG
    history = json.loads(log.read_text()) if log.is_file() else []
    metrics = [[key, value] for key, value in (entry.card.get("metrics") or {}).items()]
    card = (entry.path / CARD).read_text() if (entry.path / CARD).is_file() else ""
    curves = (plots.rl_curves(history, f"{name}: rewards, length and KL per step") if entry.method in ("grpo", "rloo")
              else plots.loss_curves(history, f"{name}: training and evaluation loss"))
    return {room.curves: curves, room.metrics: metrics,
            room.card: f"```yaml\n{card}\n```" if card else "no card"}
