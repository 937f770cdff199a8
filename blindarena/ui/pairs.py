"""The pairs room (admin): browse a campaign's preference pairs (the people's majority, raters
left out by the quality checks not counted) and download them in TRL's format."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from blindarena.export import file_stem
from blindarena.ui.common import PRIVATE, Services, bind, check_admin, refusal, shown_to_user

COLUMNS = ["prompt", "chosen", "rejected", "chosen model", "rejected model", "rater", "edited", "time"]


@dataclass
class PairsRoom:
    browse: gr.Button
    table: gr.Dataframe
    file: gr.File


def build() -> PairsRoom:
    browse = gr.Button("Browse and export pairs")
    table = gr.Dataframe(headers=COLUMNS, elem_id="pairs")
    file = gr.File(label="Pairs (JSONL, TRL preference format)")
    return PairsRoom(browse, table, file)


def wire(svc: Services, room: PairsRoom, password: gr.Textbox, campaign: gr.Dropdown) -> None:
    room.browse.click(bind(show_pairs, svc, room), [password, campaign], [room.table, room.file], **PRIVATE)


def show_pairs(svc: Services, room: PairsRoom, password, campaign) -> dict:
    check_admin(svc, password)
    if not campaign:
        raise refusal("pick a campaign")
    path = Path(tempfile.mkdtemp()) / f"{file_stem(campaign)}-pairs.jsonl"
    with shown_to_user():
        pairs, _ = svc.arena.pairs_and_export(campaign, path)
    rows = [[p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"], p["chosen_model"],
             p["rejected_model"], p["rater"], p["edited"], p["created_at"]] for p in pairs]
    return {room.table: rows, room.file: str(path)}
