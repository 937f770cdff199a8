"""The admin room: the password that unlocks every admin room, new campaigns (models, prompts,
sampling, votes per battle, allocation, gold checks, guidelines), invite links, the next round
(the people's pairs -> DPO -> a new campaign), and deleting a campaign."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from blindarena.operations import invite_link
from blindarena.records import ALLOCATIONS, SAMPLING, CampaignSettings
from blindarena.service import NewCampaign
from blindarena.ui.common import PRIVATE, Services, as_text, bind, check_admin, refusal, shown_to_user
from posttrain.engine import BASE


@dataclass
class AdminRoom:
    password: gr.Textbox
    unlock: gr.Button
    unlocked: gr.Markdown
    name: gr.Textbox
    models: gr.CheckboxGroup
    prompts: gr.File
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    top_p: gr.Slider
    seed: gr.Number
    votes_per_battle: gr.Number
    allocation: gr.Radio
    gold_rate: gr.Number
    min_gold_accuracy: gr.Number
    gold: gr.File
    guidelines: gr.File
    system: gr.Textbox
    identity_words: gr.Textbox
    open: gr.Checkbox
    create: gr.Button
    created: gr.Markdown
    campaign: gr.Dropdown  # the campaign the pairs, invites, next round and delete act on
    invite_count: gr.Number
    invite: gr.Button
    invites: gr.Markdown
    round_parent: gr.Dropdown
    round_child: gr.Textbox
    round_steps: gr.Number
    round_method: gr.Radio
    round_prompts: gr.File
    run_round: gr.Button
    round_out: gr.Markdown
    round_job: gr.State  # the running round's job id
    round_timer: gr.Timer  # polls the job while it runs
    delete_votes: gr.Checkbox
    delete: gr.Button
    deleted: gr.Markdown
    resume: gr.Button
    resumed: gr.Markdown


def build_login() -> tuple[gr.Textbox, gr.Button, gr.Markdown]:
    password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
    unlock = gr.Button("Unlock")
    return password, unlock, gr.Markdown()


def build_new_campaign() -> dict:
    """The "New campaign" form's fields, by AdminRoom field name."""
    with gr.Accordion("New campaign", open=True):
        fields = {"name": gr.Textbox(label="Campaign name (raters see it: no model names)", elem_id="new-name"),
                  "models": gr.CheckboxGroup(label="Models (registry entries)", choices=[], elem_id="new-models"),
                  "prompts": gr.File(label="Prompts (JSONL / CSV, MT-Bench question.jsonl works); empty = 50 held-out prompts",
                                     type="filepath")}
        with gr.Row():
            fields["max_new_tokens"] = gr.Slider(16, 512, value=SAMPLING["max_new_tokens"], step=16, label="Max new tokens")
            fields["temperature"] = gr.Slider(0, 1.5, value=SAMPLING["temperature"], step=0.05, label="Temperature")
            fields["top_p"] = gr.Slider(0.05, 1, value=SAMPLING["top_p"], step=0.05, label="Top-p")
            fields["seed"] = gr.Number(value=SAMPLING["seed"], precision=0, label="Seed")
        with gr.Row():
            fields["votes_per_battle"] = gr.Number(value=0, precision=0, label="Votes per battle (0: no target)",
                                                   elem_id="new-target")
            fields["allocation"] = gr.Radio(list(ALLOCATIONS), value=CampaignSettings.allocation, label="Allocation")
            fields["gold_rate"] = gr.Number(value=CampaignSettings.gold_rate, label="Gold rate")
            fields["min_gold_accuracy"] = gr.Number(value=CampaignSettings.min_gold_accuracy, label="Min gold accuracy")
        with gr.Row():
            fields["gold"] = gr.File(label="Gold checks (preference rows: prompt, chosen, rejected)", type="filepath")
            fields["guidelines"] = gr.File(label="Guidelines (Markdown)", file_types=[".md", ".txt"], type="filepath")
        with gr.Row():
            fields["system"] = gr.Textbox(label="System prompt for every model (optional; e.g. so that none introduces itself)",
                                          scale=4)
            fields["identity_words"] = gr.Textbox(label="More identity words (comma-separated; the models' names, "
                                                        "their family and lab are always checked)", scale=2)
            fields["open"] = gr.Checkbox(label="Open: raters ask their own questions (no prompt file)", scale=1,
                                         elem_id="new-open")
        fields["create"] = gr.Button("Create and generate", variant="primary", elem_id="create")
        fields["created"] = gr.Markdown(elem_id="created")
    return fields


def build_campaign_tools() -> dict:
    """Invites, the next round and delete, for the campaign picked above them."""
    fields = {}
    with gr.Accordion("Invite links (per-rater, unguessable; a typed name then no longer works)", open=False):
        with gr.Row():
            fields["invite_count"] = gr.Number(value=10, precision=0, label="How many links")
            fields["invite"] = gr.Button("Make links for the campaign above")
        fields["invites"] = gr.Markdown()
    with gr.Accordion("Next round: the people's pairs -> DPO (or a reward model and GRPO) -> a new campaign", open=False):
        gr.Markdown("Trains a DPO round on the chosen campaign's human pairs (above) on top of a parent "
                    "adapter, or (GRPO) a reward model on those pairs and a GRPO round against it, publishes "
                    "the child, and opens a campaign child vs parent on new prompts that must not overlap the "
                    "pairs' prompts.")
        with gr.Row():
            fields["round_parent"] = gr.Dropdown(label="Parent adapter", choices=[], allow_custom_value=True)
            fields["round_child"] = gr.Textbox(label="Child name")
            fields["round_steps"] = gr.Number(value=0, precision=0, label="Max steps (0: the recipe's epochs)")
            fields["round_method"] = gr.Radio(["dpo", "grpo"], value="dpo", label="Method")
        fields["round_prompts"] = gr.File(label="New prompts (JSONL / CSV)", file_types=[".jsonl", ".csv"], type="filepath")
        fields["run_round"] = gr.Button("Run the round", variant="primary")
        fields["round_out"] = gr.Markdown(elem_id="round-out")
        fields["round_job"] = gr.State(None)
        fields["round_timer"] = gr.Timer(2.0, active=False)
    with gr.Accordion("Resume an interrupted campaign (only its missing answers are generated)", open=False):
        fields["resume"] = gr.Button("Resume the campaign above", elem_id="resume")
        fields["resumed"] = gr.Markdown(elem_id="resumed")
    with gr.Accordion("Delete", open=False):
        fields["delete_votes"] = gr.Checkbox(label="It holds votes: delete them too (export or back them up first)")
        fields["delete"] = gr.Button("Delete campaign", variant="stop")
        fields["deleted"] = gr.Markdown()
    return fields


NEW_CAMPAIGN = ("name", "models", "prompts", "max_new_tokens", "temperature", "top_p", "seed", "votes_per_battle",
                "allocation", "gold", "gold_rate", "min_gold_accuracy", "guidelines", "system", "identity_words", "open")


def wire(svc: Services, room: AdminRoom, campaign_lists: list[gr.Dropdown]) -> None:
    """`campaign_lists`: every campaign dropdown of the admin rooms, refreshed when campaigns change."""
    room.create.click(bind(create, svc, room, campaign_lists), [room.password] + [getattr(room, f) for f in NEW_CAMPAIGN],
                      [room.created] + campaign_lists, concurrency_limit=svc.config.model_concurrency, concurrency_id="model", **PRIVATE)
    room.invite.click(bind(make_invites, svc), [room.password, room.campaign, room.invite_count], [room.invites], **PRIVATE)
    room.run_round.click(bind(start_round, svc, room),
                         [room.password, room.campaign, room.round_parent, room.round_child, room.round_prompts,
                          room.round_steps, room.round_method], [room.round_out, room.round_job, room.round_timer], **PRIVATE)
    room.round_timer.tick(bind(round_status, svc, room, campaign_lists), [room.round_job],
                          [room.round_out, room.round_timer] + campaign_lists, **PRIVATE)
    room.delete.click(bind(delete, svc, room, campaign_lists), [room.password, room.campaign, room.delete_votes],
                      [room.deleted] + campaign_lists, **PRIVATE)
    room.resume.click(bind(resume, svc), [room.password, room.campaign], [room.resumed],
                      concurrency_limit=svc.config.model_concurrency, concurrency_id="model", **PRIVATE)


def create(svc: Services, room: AdminRoom, campaign_lists: list, password, name, models, prompts_file, max_new_tokens,
           temperature, top_p, seed, votes_per_battle, allocation, gold, gold_rate, min_gold_accuracy, guidelines, system,
           identity_words, open_campaign, progress=gr.Progress()) -> dict:
    check_admin(svc, password)
    with shown_to_user():
        checked = svc.arena.check(new_campaign(svc, name, models, prompts_file, max_new_tokens, temperature, top_p, seed,
                                               votes_per_battle, allocation, gold, gold_rate, min_gold_accuracy, guidelines,
                                               system, identity_words, open_campaign))
        progress(0, desc=f"{checked.answers} answers to generate, {checked.estimate}")
        made = svc.arena.create(checked, progress=lambda done, total: progress(done / total, desc=f"{done}/{total} answers"))
    names = svc.campaign_names()
    flagged = made["identity_flagged_battles"]
    note = f"; {flagged} battles flagged because an answer names a model, its family or its lab" if flagged else ""
    note += f"; {checked.dropped} repeated prompts dropped" if checked.dropped else ""
    note += (f"; {made['truncated_prompts']} prompts were longer than the model's context and were cut for generation "
             "(raters see them whole)" if made.get("truncated_prompts") else "")
    what = "open (raters ask their own questions)" if open_campaign else \
        f"{len(checked.prompts)} prompts ({made['multi_turn_prompts']} with several turns)"
    return {room.created: f"campaign **{as_text(checked.name)}** ready: {what}, models {as_text(', '.join(checked.models))}{note}",
            **{dropdown: gr.update(choices=names, value=checked.name) for dropdown in campaign_lists}}


def new_campaign(svc: Services, name, models, prompts_file, max_new_tokens, temperature, top_p, seed, votes_per_battle,
                 allocation, gold, gold_rate, min_gold_accuracy, guidelines, system, identity_words, open_campaign) -> NewCampaign:
    """The form's fields as the arena's request (the command line makes the same one from its flags)."""
    defaults = CampaignSettings()
    settings = CampaignSettings(votes_per_battle=int(votes_per_battle) if votes_per_battle else None,
                                allocation=allocation or defaults.allocation,
                                gold_rate=float(defaults.gold_rate if gold_rate is None else gold_rate),
                                min_gold_accuracy=float(defaults.min_gold_accuracy if min_gold_accuracy is None
                                                        else min_gold_accuracy),
                                system=system or "", open=bool(open_campaign))
    sampling = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature), "top_p": float(top_p),
                "seed": int(seed if seed is not None else SAMPLING["seed"])}
    return NewCampaign(name or "", tuple(models or ()), prompts_file or None, sampling, settings, gold or None,
                       guidelines or None, tuple(w for w in (identity_words or "").split(",") if w.strip()),
                       svc.config.max_answers, Path(prompts_file).name if prompts_file else None)


def make_invites(svc: Services, password, campaign, count, request: gr.Request) -> str:
    check_admin(svc, password)
    if not campaign:
        raise refusal("pick a campaign")
    with shown_to_user():
        tokens = svc.store.create_invites(campaign, int(count or 0))
    page = (request.headers.get("referer") or "").split("?")[0] if request else ""
    return f"{len(tokens)} links for **{as_text(campaign)}** (send one to each rater):\n\n" + "\n".join(
        f"- {invite_link(page, campaign, t)}" for t in tokens)


def run_next_round(svc: Services, campaign: str, parent: str, child: str, prompts: str, max_steps: int | None,
                   say=None, method: str = "dpo") -> dict:
    """The admin's "Next round": the arena's next round over the app's store, registry and engine."""
    return svc.arena.next_round(campaign, parent, child, prompts, Path(svc.config.data_dir) / "rounds", progress=say,
                                max_steps=max_steps, method=method)


def start_round(svc: Services, room: AdminRoom, password, campaign, parent, child, prompts, max_steps, method="dpo") -> dict:
    """Start the next round as a background job (it trains for minutes); the timer shows its progress."""
    check_admin(svc, password)
    if not (campaign and parent and child and prompts):
        raise refusal("pick a campaign and a parent, name the child, and upload the new prompts")
    child, steps = child.strip(), int(max_steps or 0) or None
    with shown_to_user():
        job = svc.jobs.start(f"the round {campaign} -> {child}", lambda say: run_next_round(
            svc, campaign, parent, child, prompts, steps, say=say, method=method or "dpo"))
    return {room.round_out: f"Round started: **{as_text(parent)}** -> **{as_text(child)}** on the pairs of "
                            f"**{as_text(campaign)}**; its progress shows here.",
            room.round_job: job.id, room.round_timer: gr.Timer(active=True)}


def round_status(svc: Services, room: AdminRoom, campaign_lists: list, job_id) -> dict:
    """The running round's last progress line, then its outcome (and the timer stops)."""
    job = svc.jobs.get(job_id)
    if job is None:
        return {room.round_timer: gr.Timer(active=False)}
    if not job.done:
        return {room.round_out: f"Running {as_text(job.what)}: {as_text(job.lines[-1]) if job.lines else 'starting'}"}
    if job.error:
        return {room.round_out: f"The round stopped: {as_text(job.error)}", room.round_timer: gr.Timer(active=False)}
    result, names = job.result, svc.campaign_names()
    summary = (f"Published **{as_text(result['child'])}** ({result['pairs']} pairs from {result['votes']} votes); campaign "
               f"**{as_text(result['campaign'])}** is ready: {as_text(result['child'])} vs {as_text(result['parent'])} on "
               f"{result['prompts']} prompts.")
    return {room.round_out: summary, room.round_timer: gr.Timer(active=False),
            **{dropdown: gr.update(choices=names, value=result["campaign"]) for dropdown in campaign_lists}}


def delete(svc: Services, room: AdminRoom, campaign_lists: list, password, campaign, with_votes=False) -> dict:
    check_admin(svc, password)
    if not campaign:
        raise refusal("pick a campaign")
    with shown_to_user():
        votes = svc.arena.delete(campaign, force=bool(with_votes))
    names = svc.campaign_names()
    return {room.deleted: f"deleted {as_text(campaign)}" + (f" and its {votes} votes" if votes else ""),
            **{dropdown: gr.update(choices=names, value=None) for dropdown in campaign_lists}}


def resume(svc: Services, password, campaign, progress=gr.Progress()) -> str:
    """An interrupted creation: generate only its missing answers, then mark it ready."""
    check_admin(svc, password)
    if not campaign:
        raise refusal("pick a campaign")
    with shown_to_user():
        missing = len(svc.store.missing_answers(campaign))
        progress(0, desc=f"{missing} missing answers")
        made = svc.arena.resume(campaign, progress=lambda done, total: progress(done / total, desc=f"{done}/{total} answers"))
    if made is None:
        return f"campaign **{as_text(campaign)}** is ready: nothing to resume"
    return f"campaign **{as_text(campaign)}** ready: {missing} missing answers generated"


def model_choices(svc: Services) -> dict:
    """The registry's answering models, as the admin rooms list them once unlocked."""
    models = svc.models()
    return {"models": models, "with_base": [BASE] + models, "adapters": [m for m in models if m != svc.config.base]}
