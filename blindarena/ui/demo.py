"""The side-by-side room: any two models of the registry answer one prompt over the shared base,
streamed; a "before vs after" preset (the newest adapter vs its parent) and ?a=&b= deep links.
Behind the admin password, or public with PUBLIC_DEMO=1 (a Space showcase), where it refuses
the models of an open campaign."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from blindarena.ui.common import PRIVATE, Services, bind, check_admin, is_admin, refusal, shown_to_user
from posttrain import names
from posttrain.engine import BASE, SamplingParams


@dataclass
class DemoRoom:
    left: gr.Dropdown
    right: gr.Dropdown
    preset: gr.Button
    prompt: gr.Textbox
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    seed: gr.Number
    generate: gr.Button
    left_answer: gr.Textbox
    right_answer: gr.Textbox
    notes: gr.Markdown
    history: gr.State  # {"models": [left, right], "left": messages, "right": messages}: each side's own conversation
    followup: gr.Textbox
    continue_both: gr.Button


def build() -> DemoRoom:
    with gr.Row():
        # Custom values: choices arrive per session (and API clients never load them);
        # side_by_side checks the names against the registry.
        left = gr.Dropdown(label="Left", choices=[], allow_custom_value=True, elem_id="demo-left")
        right = gr.Dropdown(label="Right", choices=[], allow_custom_value=True, elem_id="demo-right")
        preset = gr.Button("Before vs after")
    prompt = gr.Textbox(label="Prompt", lines=2)
    with gr.Row():
        max_new_tokens = gr.Slider(16, 512, value=128, step=16, label="Max new tokens")
        temperature = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Temperature")
        seed = gr.Number(value=0, precision=0, label="Seed")
    generate = gr.Button("Generate both", variant="primary")
    with gr.Row():
        left_answer = gr.Textbox(label="Left answer", lines=10)
        right_answer = gr.Textbox(label="Right answer", lines=10)
    notes = gr.Markdown()
    history = gr.State({})
    with gr.Row():
        followup = gr.Textbox(label="Follow-up (each model continues its own conversation)", scale=4, elem_id="demo-followup")
        continue_both = gr.Button("Continue both", scale=1, elem_id="demo-continue")
    return DemoRoom(left, right, preset, prompt, max_new_tokens, temperature, seed, generate, left_answer, right_answer, notes,
                    history, followup, continue_both)


def wire(svc: Services, room: DemoRoom, password: gr.Textbox, ui: gr.Blocks) -> None:
    room.preset.click(bind(before_after, svc, room), [password], [room.left, room.right], **PRIVATE)
    room.generate.click(bind(side_by_side, svc, room), [password, room.left, room.right, room.prompt, room.max_new_tokens,
                                                        room.temperature, room.seed],
                        [room.left_answer, room.right_answer, room.notes, room.history], concurrency_limit=svc.config.model_concurrency,
                        concurrency_id="model", **({"api_name": "side_by_side"} if svc.config.public_demo else PRIVATE))
    room.continue_both.click(bind(continue_conversation, svc, room),
                             [password, room.history, room.followup, room.max_new_tokens, room.temperature, room.seed],
                             [room.left_answer, room.right_answer, room.notes, room.history, room.followup],
                             concurrency_limit=svc.config.model_concurrency, concurrency_id="model", **PRIVATE)
    ui.load(bind(deep_link, svc, room), None, [room.left, room.right], **PRIVATE)


def before_after(svc: Services, room: DemoRoom, password) -> dict:
    """The newest adapter on the right, its parent (or the base) on the left."""
    check_admin(svc, password)
    base = svc.config.base
    adapters = sorted((e for e in svc.registry.entries() if e.is_adapter and e.base == base and e.method != "reward"),
                      key=lambda e: str(e.card.get("created_at", "")))
    if not adapters:
        raise refusal("no adapters in the registry yet")
    after = adapters[-1]
    before = after.card.get("parent") or BASE
    return {room.left: gr.update(value=BASE if before == base else before), room.right: gr.update(value=after.name)}


def refuse_rated_models(svc: Services, password: str, models: tuple[str, str]) -> None:
    """On a public demo, a rater must not re-create a campaign's answers here and so learn who
    wrote them: the models of a ready campaign are refused (the admin may use them)."""
    config = svc.config
    if not config.public_demo:
        check_admin(svc, password)
        return
    if config.admin_password and is_admin(config, password):
        return
    rated = {m for c in svc.store.campaigns() if c.status == "ready" for m in c.models}
    rated |= {BASE} if config.base in rated else set()
    blocked = [m for m in models if m in rated]
    if blocked:
        raise refusal(f"{blocked[0]!r} is being rated in an open campaign; the public demo shows it "
                       "again once that campaign is deleted (the admin can use it now)")


def side_by_side(svc: Services, room: DemoRoom, password, left, right, prompt, max_new_tokens, temperature, seed):
    """Both answers stream from one batched call."""
    refuse_rated_models(svc, password, (left, right))
    if not (left and right and prompt and prompt.strip()):
        raise refusal("pick two models and type a prompt")
    known = [BASE, *svc.models()]
    unknown = [m for m in (left, right) if m not in known]
    if unknown:
        raise refusal(f"no model {unknown[0]!r} here; choose one of {', '.join(known)}")
    conversations = {"left": [{"role": "user", "content": prompt}], "right": [{"role": "user", "content": prompt}]}
    yield from stream_both(svc, room, (left, right), conversations, max_new_tokens, temperature, seed)


def continue_conversation(svc: Services, room: DemoRoom, password, history, followup, max_new_tokens, temperature, seed):
    """Both models answer the follow-up, each after its OWN earlier answers."""
    if not (history and history.get("models")):
        raise refusal("generate both answers first; the follow-up continues those conversations")
    if not (followup and followup.strip()):
        raise refusal("type a follow-up")
    refuse_rated_models(svc, password, tuple(history["models"]))
    conversations = {side: history[side] + [{"role": "user", "content": followup.strip()}] for side in ("left", "right")}
    for update in stream_both(svc, room, tuple(history["models"]), conversations, max_new_tokens, temperature, seed):
        yield {**update, room.followup: ""}


def stream_both(svc: Services, room: DemoRoom, models: tuple[str, str], conversations: dict, max_new_tokens, temperature,
                seed):
    """Stream both sides from one batched call; the history keeps each side's conversation."""
    with shown_to_user():
        params = SamplingParams(max_new_tokens=int(max_new_tokens), temperature=float(temperature), seed=int(seed))
        for answers in svc.engine().stream([conversations["left"], conversations["right"]], list(models), params):
            notes = "  \n".join(f"{a.model}: {a.notice}" for a in answers if a.notice)
            history = {"models": list(models), **{side: conversations[side] + [{"role": "assistant", "content": a.text}]
                                                  for side, a in zip(("left", "right"), answers)}}
            yield {room.left_answer: transcript(history["left"]), room.right_answer: transcript(history["right"]),
                   room.notes: notes, room.history: history}


def transcript(messages: list[dict]) -> str:
    """A side's conversation as the answer box shows it: the answers, each later user turn marked."""
    parts = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            parts.append(message["content"])
        elif i > 0:
            parts.append(f"» {message['content']}")
    return "\n\n".join(parts)


def deep_link(svc: Services, room: DemoRoom, request: gr.Request) -> dict:
    """?a=NAME&b=NAME preselects the side-by-side pair (names only; nothing runs until asked). The
    event answers anyone, so without a public demo it echoes any well-formed name, known or not: a
    reply must not tell a stranger which registry names exist (side_by_side checks them, admin only)."""
    wanted = [request.query_params.get(k) if request else None for k in ("a", "b")]
    if not svc.config.public_demo:
        return {component: gr.update(value=w) if w == BASE or names.is_valid(w) else gr.update()
                for component, w in zip((room.left, room.right), wanted)}
    known = [BASE] + svc.models()
    return {component: gr.update(value=w, choices=known) if w in known else gr.update(choices=known)
            for component, w in zip((room.left, room.right), wanted)}
