"""The admin's Release section: a dry run of the campaign's release first (counts per kind, redacted
texts beside their originals, weak hits for a person to check), and only then the release button,
which releases exactly the state shown (a changed campaign needs a new dry run)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr

from blindarena.release import LICENSES
from blindarena.ui.common import PRIVATE, Services, as_text, bind, check_admin, refusal, shown_to_user


@dataclass
class ReleaseRoom:
    license: gr.Dropdown
    push: gr.Textbox
    dry_run: gr.Button
    shown: gr.Markdown
    release: gr.Button
    released: gr.Markdown
    reviewed: gr.State  # the fingerprint of the dry run on the page: the state the release button releases


def build() -> ReleaseRoom:
    with gr.Accordion("Release: the consenting raters' votes as a public dataset", open=False):
        gr.Markdown("A dry run shows what would go, for your eyes only; the release button opens once you have "
                    "seen it, and releases exactly that state.")
        with gr.Row():
            license = gr.Dropdown(list(LICENSES), value=LICENSES[0], label="License")
            push = gr.Textbox(label="Also push to the Hub as (optional; HF_TOKEN)", placeholder="user/arena-votes")
        dry_run = gr.Button("Dry run of the campaign above", elem_id="release-dry-run")
        shown = gr.Markdown(elem_id="release-dry-run-out")
        release = gr.Button("Release", variant="primary", interactive=False, elem_id="release")
        released = gr.Markdown(elem_id="released")
    return ReleaseRoom(license, push, dry_run, shown, release, released, gr.State(None))


def wire(svc: Services, room: ReleaseRoom, password: gr.Textbox, campaign: gr.Dropdown) -> None:
    room.dry_run.click(bind(show_dry_run, svc, room), [password, campaign], [room.shown, room.release, room.reviewed],
                       **PRIVATE)
    room.release.click(bind(release, svc, room), [password, campaign, room.license, room.push, room.reviewed],
                       [room.released, room.release, room.reviewed], **PRIVATE)
    campaign.change(lambda: (gr.update(interactive=False), None, ""), None, [room.release, room.reviewed, room.shown],
                    **PRIVATE)


def dry_run_text(run: dict) -> str:
    """The dry run as Markdown: everything a rater typed is shown as text, never as markup."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in run["redacted"].items()) or "nothing"
    left = ", ".join(f"{n} {why}" for why, n in run["not_released"].items()) or "none"
    lines = [f"**{run['votes']} votes** of {run['raters']} consenting raters would go; {run['texts_redacted']} of "
             f"{run['texts']} texts redacted: {as_text(kinds)}. Not released: {as_text(left)}.", "",
             "| question | original (not released) | released |", "|---|---|---|"]
    lines += [f"| {as_text(r['question_id'])} | {as_text(r['original'])} | {as_text(r['redacted'])} |" for r in run["sample"]]
    lines += ["", f"**{len(run['to_check'])} texts for a person to check** (hits too weak to redact):"]
    lines += [f"- {as_text(r['redacted'])}: " + as_text("; ".join(f"{h['kind']} '{h['value']}' ({h['found_by']})"
                                                                  for h in r["hits"])) for r in run["to_check"]]
    return "\n".join(lines)


def show_dry_run(svc: Services, room: ReleaseRoom, password, campaign) -> dict:
    check_admin(svc, password)
    if not campaign:
        raise refusal("pick a campaign")
    with shown_to_user():
        run = svc.arena.release_dry_run(campaign)
    return {room.shown: dry_run_text(run), room.release: gr.update(interactive=run["votes"] > 0),
            room.reviewed: run["fingerprint"]}


def release(svc: Services, room: ReleaseRoom, password, campaign, license, push, reviewed) -> dict:
    check_admin(svc, password)
    if not campaign or not reviewed:
        raise refusal("make a dry run of the campaign first, and look at it")
    out = Path(svc.config.data_dir) / "releases" / f"{campaign}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    with shown_to_user():
        figures = svc.arena.release(campaign, out, license=license or LICENSES[0], push=(push or "").strip() or None,
                                    reviewed=reviewed)
    where = f"; pushed to {as_text(figures['pushed_to'])}" if figures.get("pushed_to") else ""
    return {room.released: f"released {figures['votes']} votes of {figures['raters']} raters to `{as_text(str(out))}`{where}",
            room.release: gr.update(interactive=False), room.reviewed: None}
