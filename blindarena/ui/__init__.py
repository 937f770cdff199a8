"""The arena's Gradio app, one module per room: rating (public), side by side, results, admin
(campaigns, release), pairs and models (behind the admin password). Each room builds its own components
(`build`) and wires its own events (`wire`) to module-level callbacks that take the services
and the room explicitly and return updates by component. Callbacks only translate events into
calls of the arena's front door (blindarena.service.Arena) and back; per-user state lives in gr.State and the database;
model identities never reach a rater's browser before a vote."""

from __future__ import annotations

import gradio as gr

from blindarena.ui import campaigns, demo, models, pairs, rating, release, results
from blindarena.ui.campaigns import run_next_round
from blindarena.ui.common import PRIVATE, ArenaConfig, Services, bind, check_admin, log, services
from blindarena.ui.results import results_summary_text

__all__ = ["THEME", "ArenaConfig", "build_ui", "results_summary_text", "run_next_round", "services"]


# Gradio's default theme with its font's Bold face for every weight above regular: the SemiBold file
# Gradio ships lacks glyphs, so Chromium drew some letters of bold text ("B" of "Blind arena", "A" of
# "A is better") from a fallback font, in another face than the rest of the word.
THEME = gr.themes.Default(font=[gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)),
                                "ui-sans-serif", "system-ui", "sans-serif"])


def build_ui(config: ArenaConfig) -> gr.Blocks:
    svc = services(config)
    if not config.admin_password:
        log.warning("ADMIN_PASSWORD is not set: admin tabs are open to anyone who can reach this server")
    with gr.Blocks(title="Blind arena") as ui:
        gr.Markdown("# Blind arena\nTwo answers to the same prompt, labelled only **A** and **B**. Pick the better one.")
        with gr.Tab("Rate"):
            rate = rating.build(config.hf_login, bool(config.access_code))
        with gr.Tab("Side by side"):
            side = demo.build()
        with gr.Tab("Results"):
            res = results.build()
        with gr.Tab("Admin"):
            password, unlock_button, unlocked = campaigns.build_login()
            form = campaigns.build_new_campaign()
            with gr.Accordion("Pairs and clean-up", open=False):
                campaign = gr.Dropdown(label="Campaign", choices=[])
                pair_room = pairs.build()
            tools = campaigns.build_campaign_tools()
            release_room = release.build()
            admin = campaigns.AdminRoom(password=password, unlock=unlock_button, unlocked=unlocked, campaign=campaign,
                                        **form, **tools)
        with gr.Tab("Models"):
            model_room = models.build()
        rating.wire(svc, rate, ui)
        demo.wire(svc, side, password, ui)
        results.wire(svc, res, password)
        campaign_lists = [res.campaign, admin.campaign]
        campaigns.wire(svc, admin, campaign_lists)
        pairs.wire(svc, pair_room, password, admin.campaign)
        release.wire(svc, release_room, password, admin.campaign)
        models.wire(svc, model_room, password)
        unlock_button.click(bind(unlock, svc, admin, side, res, campaign_lists), [password],
                            [admin.models, side.left, side.right, *campaign_lists, admin.unlocked, admin.round_parent,
                             res.locked], **PRIVATE)
    return ui


def unlock(svc: Services, admin: campaigns.AdminRoom, side: demo.DemoRoom, res: results.ResultsRoom, campaign_lists: list,
           password) -> dict:
    """The password is right: fill every admin room's lists of models and campaigns."""
    check_admin(svc, password)
    choices = campaigns.model_choices(svc)
    names = svc.campaign_names()
    latest = names[-1] if names else None
    return {admin.models: gr.update(choices=choices["models"], value=None),
            side.left: gr.update(choices=choices["with_base"]), side.right: gr.update(choices=choices["with_base"]),
            **{dropdown: gr.update(choices=names, value=latest) for dropdown in campaign_lists},
            admin.unlocked: "unlocked", admin.round_parent: gr.update(choices=choices["adapters"], value=None),
            res.locked: gr.update(value="Unlocked: pick a campaign, then **Show results**.", visible=True)}
