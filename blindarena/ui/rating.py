"""The public rating room: a rater picks a campaign, gets battles labelled only A and B, votes,
and sees the names after the vote. Model identities never reach the page before a vote; the
public API endpoints /start, /vote, /next and /campaigns are this room's events."""

from __future__ import annotations

import hmac
import html
from dataclasses import dataclass

import gradio as gr

from blindarena.operations import reveal_names
from blindarena.store import StoreError
from blindarena.ui.common import PRIVATE, Services, bind, progress_bar, refusal, safe_markdown, shown_to_user

# The page's labels: A is the answer on the left, B the one on the right (blindarena.vocab's sides).
VOTE_LABELS = {"A is better": "left", "B is better": "right", "Tie": "tie", "Both are bad": "both_bad"}
# Keys 1 / a, 2 / b, 3 / t, 4 / x vote, n goes to the next battle; not while typing in a field.
KEYBOARD_JS = """() => {
  if (window.__arenaKeys) return; window.__arenaKeys = true;
  const targets = {"1": "vote-a", "a": "vote-a", "2": "vote-b", "b": "vote-b", "3": "vote-tie", "t": "vote-tie",
                   "4": "vote-bad", "x": "vote-bad", "n": "next"};
  document.addEventListener("keydown", (event) => {
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || event.ctrlKey || event.metaKey || event.altKey) return;
    const id = targets[event.key.toLowerCase()];
    const button = id && document.getElementById(id);
    if (button && button.offsetParent !== null) { event.preventDefault(); button.click(); }
  });
}"""


@dataclass
class RatingRoom:
    session: gr.State
    campaign: gr.Dropdown
    rater: gr.Textbox
    code: gr.Textbox
    invite: gr.Textbox
    start: gr.Button
    progress: gr.HTML
    guidelines_box: gr.Accordion
    guidelines: gr.Markdown
    prompt: gr.Markdown
    label_left: gr.Markdown
    left: gr.Markdown
    label_right: gr.Markdown
    right: gr.Markdown
    controls: gr.Column
    vote_buttons: list
    score_left: gr.Radio
    score_right: gr.Radio
    edited: gr.Textbox
    comment: gr.Textbox
    choice: gr.Radio
    vote: gr.Button
    reveal: gr.Markdown
    next: gr.Button
    ask_row: gr.Row  # open campaigns: the rater's own question
    question: gr.Textbox
    ask: gr.Button
    consent_box: gr.Accordion  # "release my votes": shown once a rater started, off until they tick it
    consent: gr.Checkbox
    consent_note: gr.Markdown

    @property
    def battle(self) -> list:
        """What every battle update sets: the session, progress, prompt, both answers, the vote controls."""
        return [self.session, self.progress, self.prompt, self.left, self.right, self.controls]

    @property
    def labels(self) -> list:
        """The headers above the two answers: A and B, and after a vote the names and the choice."""
        return [self.label_left, self.label_right]

    @property
    def vote_form(self) -> list:
        return [self.choice, self.score_left, self.score_right, self.edited, self.comment]


def build(hf_login: bool, access_code: bool) -> RatingRoom:
    session = gr.State({})
    with gr.Row():
        # Custom values allowed: campaigns appear after launch; the store checks the name.
        campaign = gr.Dropdown(label="Campaign", choices=[], allow_custom_value=True, elem_id="campaign")
        rater = gr.Textbox(label="Your name", elem_id="rater-name")
        code = gr.Textbox(label="Access code", type="password", visible=access_code)
        invite = gr.Textbox(value="", label="Invite", visible=False, elem_id="invite")  # from the link
        if hf_login:
            gr.LoginButton()
        start = gr.Button("Start / resume", variant="primary", elem_id="start")
    progress = gr.HTML(elem_id="progress")
    with gr.Accordion("Release my votes (optional)", open=False, visible=False, elem_id="consent-box") as consent_box:
        consent_note = gr.Markdown(elem_id="consent-note")
        consent = gr.Checkbox(value=False, label="I agree that my votes on this campaign may be released as described above",
                              elem_id="consent")
    # Open when a rater starts, so they read it before their first battle; one click while rating.
    with gr.Accordion("Guidelines", open=True, visible=False, elem_id="guidelines-box") as guidelines_box:
        guidelines = gr.Markdown(elem_id="guidelines", sanitize_html=True)
    prompt = gr.Markdown(elem_id="prompt", sanitize_html=True)
    # Each side as tall as its own answer, both at the top: with equal_height the shorter side's label
    # stretched and pushed its answer to the bottom of the column.
    with gr.Row(equal_height=False):
        with gr.Column(min_width=160):
            label_left = gr.Markdown("**A**", elem_id="label-a")
            left = gr.Markdown(elem_id="answer-a", sanitize_html=True, container=True)
        with gr.Column(min_width=160):
            label_right = gr.Markdown("**B**", elem_id="label-b")
            right = gr.Markdown(elem_id="answer-b", sanitize_html=True, container=True)
    with gr.Column(visible=False) as controls:
        # One click votes; keys 1-4 (or a, b, t, x) do the same outside text fields.
        with gr.Row():
            vote_buttons = [gr.Button(f"{label} [{key}]", variant="primary" if i < 2 else "secondary",
                                      elem_id=f"vote-{slug}", min_width=80)
                            for i, (label, key, slug) in enumerate(zip(VOTE_LABELS, "1234", ("a", "b", "tie", "bad")))]
        with gr.Accordion("Optional: scores, an edited better answer, a comment", open=False):
            with gr.Row():
                score_left = gr.Radio([str(i) for i in range(1, 8)], label="Score A (1-7)")
                score_right = gr.Radio([str(i) for i in range(1, 8)], label="Score B (1-7)")
            edited = gr.Textbox(label="Edited better answer", lines=3)
            comment = gr.Textbox(label="Comment")
        # The API's /vote (choice as a value) and the page's buttons share one callback.
        choice = gr.Radio(list(VOTE_LABELS), visible=False, elem_id="choice")
        vote = gr.Button("Submit vote", visible=False, elem_id="vote")
    with gr.Row(visible=False) as ask_row:  # open campaigns: ask your own question, then follow up
        question = gr.Textbox(label="Your question (two anonymous models answer; ask a follow-up, then vote)", scale=5,
                              elem_id="question")
        ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
    reveal = gr.Markdown(elem_id="reveal")
    next_button = gr.Button("Next battle [n]", visible=False, elem_id="next")
    return RatingRoom(session, campaign, rater, code, invite, start, progress, guidelines_box, guidelines, prompt, label_left, left,
                      label_right, right, controls, vote_buttons, score_left, score_right, edited, comment, choice, vote,
                      reveal, next_button, ask_row, question, ask, consent_box, consent, consent_note)


def wire(svc: Services, room: RatingRoom, ui: gr.Blocks) -> None:
    start = bind(start_with_login if svc.config.hf_login else start_rating, svc, room)
    # Outputs only ever grow at their end: API clients read them by position.
    room.start.click(start, [room.campaign, room.rater, room.code, room.invite],
                     room.battle + [room.reveal, room.guidelines] + room.labels + [room.guidelines_box, room.ask_row],
                     api_name="start").then(bind(show_consent, svc, room), [room.session],
                                            [room.consent_box, room.consent_note, room.consent], **PRIVATE)
    room.consent.input(bind(set_consent, svc), [room.session, room.consent], [room.consent_note], **PRIVATE)
    room.ask.click(bind(ask_question, svc, room), [room.session, room.question],
                   room.battle + [room.reveal, room.question] + room.labels, api_name="ask",
                   concurrency_limit=svc.config.model_concurrency, concurrency_id="model")
    vote_outputs = room.battle + [room.reveal, room.next] + room.vote_form + room.labels
    room.vote.click(bind(vote, svc, room), [room.session] + room.vote_form, vote_outputs, api_name="vote")
    details = [room.score_left, room.score_right, room.edited, room.comment]
    for button, label in zip(room.vote_buttons, VOTE_LABELS):
        button.click(bind(vote_as, svc, room, label), [room.session] + details, vote_outputs, **PRIVATE)
    room.next.click(bind(next_battle, svc, room), [room.session], room.battle + [room.reveal, room.next] + room.labels,
                    api_name="next")
    room.question.submit(bind(ask_question, svc, room), [room.session, room.question],
                         room.battle + [room.reveal, room.question] + room.labels, concurrency_limit=svc.config.model_concurrency,
                         concurrency_id="model", **PRIVATE)
    ui.load(None, js=KEYBOARD_JS)
    ui.load(bind(ready_campaigns, svc, room), None, [room.campaign, room.invite], api_name="campaigns")


# ---- callbacks ------------------------------------------------------------------------------
def ready_campaigns(svc: Services, room: RatingRoom, request: gr.Request) -> dict:
    """The campaign list; an invite link (?campaign=NAME&invite=TOKEN) preselects and fills."""
    names = ready_names(svc)
    query = request.query_params if request else {}
    wanted = query.get("campaign")
    return {room.campaign: gr.update(choices=names, value=wanted if wanted in names else (names[-1] if names else None)),
            room.invite: gr.update(value=query.get("invite", ""))}


def ready_names(svc: Services) -> list[str]:
    """The campaigns a rater may see and join: the ready ones (the page's list)."""
    return [c.name for c in svc.store.campaigns() if c.status == "ready"]


def start_rating(svc: Services, room: RatingRoom, campaign, name, code, invite) -> dict:
    return begin(svc, room, campaign, name, code, invite, None)


def start_with_login(svc: Services, room: RatingRoom, campaign, name, code, invite, profile: gr.OAuthProfile | None) -> dict:
    return begin(svc, room, campaign, name, code, invite, profile.username if profile else None)


def begin(svc: Services, room: RatingRoom, campaign, name, code, invite, login: str | None) -> dict:
    """Who the rater is (a typed name, an invite token or a Hugging Face login, as the campaign
    asks), then their next battle and the campaign's guidelines."""
    config = svc.config
    if config.access_code and not hmac.compare_digest(code or "", config.access_code):
        raise refusal("wrong access code")
    if not campaign:
        raise refusal("pick a campaign")
    if campaign not in ready_names(svc):  # the same words for unknown and not ready: no names to probe
        raise refusal(f"no campaign {campaign!r} is open for rating; pick one from the list")
    with shown_to_user():
        access = svc.store.campaign(campaign).access
        if access == "invite":  # a typed name is not an identity here
            rater_id = svc.arena.join_by_invite(campaign, (invite or "").strip())
        elif access == "hf":
            if not login:
                raise StoreError(f"campaign {campaign!r} asks raters to sign in with Hugging Face" +
                                 ("" if config.hf_login else " (start the app with HF_LOGIN=1 on a Space with hf_oauth: true)"))
            rater_id = svc.arena.join(campaign, f"hf:{login}")
        else:
            rater_id = svc.arena.join(campaign, name or "")
        settings = svc.store.campaign(campaign).settings
    guidelines = settings.guidelines or ""
    session = {"rater_id": rater_id, "campaign": campaign, "open": settings.open}
    return {**battle_view(svc, room, session), room.reveal: "", room.guidelines: safe_markdown(guidelines),
            room.guidelines_box: gr.update(visible=bool(guidelines), open=True),
            room.ask_row: gr.update(visible=session["open"])}


def show_consent(svc: Services, room: RatingRoom, session) -> dict:
    """After a start: the campaign's release question, with the rater's stored answer (off at first)."""
    if not session or not session.get("rater_id"):
        return {room.consent_box: gr.update(visible=False)}
    with shown_to_user():
        note = svc.store.campaign(session["campaign"]).settings.release_note
        mine = next((r.consent for r in svc.store.raters(session["campaign"]) if r.id == session["rater_id"]), False)
    return {room.consent_box: gr.update(visible=True), room.consent_note: safe_markdown(note), room.consent: bool(mine)}


def set_consent(svc: Services, session, consent) -> str:
    """The rater ticked or unticked the release box: stored at once, said back."""
    if not session or not session.get("rater_id"):
        raise refusal("start rating first")
    with shown_to_user():
        svc.arena.set_consent(session["rater_id"], bool(consent))
        note = svc.store.campaign(session["campaign"]).settings.release_note
    return safe_markdown(note) + ("\n\n**You agreed**: your votes may be released as described." if consent else
                                  "\n\nNot agreed: your votes stay private.")


def battle_view(svc: Services, room: RatingRoom, session: dict) -> dict:
    """The rater's next battle (or the end of their campaign), as updates of the battle components."""
    campaign, rater_id = session["campaign"], session["rater_id"]
    with shown_to_user():
        assignment = svc.arena.next_battle(campaign, rater_id)
        done, total = svc.arena.progress(campaign, rater_id)
        complete = assignment is None and svc.arena.is_complete(campaign)
    labels = {room.label_left: "**A**", room.label_right: "**B**"}
    if assignment is None and session.get("open"):
        return {room.session: {**session, "battle_id": None, "shown": None},
                room.progress: progress_bar(done, max(done, 1), f"{done} rated. Ask your question below: two anonymous "
                                            "models answer it"),
                room.prompt: "", room.left: "", room.right: "", room.controls: gr.update(visible=False), **labels}
    if assignment is None:
        finished = "the campaign is complete: every battle has all its votes. Thank you!" if complete else "all done, thank you!"
        return {room.session: {**session, "battle_id": None, "shown": None},
                room.progress: progress_bar(done, total, f"{done} / {total} rated, {finished}"),
                room.prompt: "", room.left: "", room.right: "", room.controls: gr.update(visible=False), **labels}
    shown = {"prompt": safe_markdown(assignment.prompt) + (f"\n\n*(a conversation of {len(assignment.turns)} turns: "
                                                          "judge each side's whole conversation)*" if len(assignment.turns) > 1 else ""),
             "left": side_markdown(assignment.turns, assignment.left_turns) or safe_markdown(assignment.left),
             "right": side_markdown(assignment.turns, assignment.right_turns) or safe_markdown(assignment.right)}
    return {room.session: {**session, "battle_id": assignment.battle_id, "shown": shown},
            room.progress: progress_bar(done, total, f"battle {done + 1} of {total}"),
            room.prompt: shown["prompt"], room.left: shown["left"], room.right: shown["right"],
            room.controls: gr.update(visible=True), **labels}


def side_markdown(turns: tuple, answers: tuple) -> str:
    """One side of a multi-turn battle, turn by turn: its first answer, then each later user turn
    and its answer to it ('' for a single-turn battle)."""
    if not turns:
        return ""
    parts = [safe_markdown(answers[0])]
    for number, (user, answer) in enumerate(zip(turns[1:], answers[1:]), start=2):
        parts.append(f"\n\n---\n\n**Turn {number}, user:** {safe_markdown(user)}\n\n{safe_markdown(answer)}")
    return "".join(parts)


def vote(svc: Services, room: RatingRoom, session, choice, score_left, score_right, edited, comment) -> dict:
    """Store the vote, then reveal: the battle stays on the page with each model's name above its
    side and the rater's choice marked, until Next loads the next one."""
    if not session or not session.get("battle_id"):
        raise refusal("start rating first")
    if choice not in VOTE_LABELS:
        raise refusal("pick A, B, tie or both bad")
    with shown_to_user():
        names = reveal_names(svc.arena.vote(
            session["campaign"], session["rater_id"], session["battle_id"], VOTE_LABELS[choice],
            score_left=int(score_left) if score_left else None, score_right=int(score_right) if score_right else None,
            edited=edited, comment=comment))
        done, total = svc.arena.progress(session["campaign"], session["rater_id"])
    reveal = f"You voted **{choice}**.  \nA was **{html.escape(names['left'])}**, B was **{html.escape(names['right'])}**."
    shown = session.get("shown") or {"prompt": "", "left": "", "right": ""}
    return {room.session: {**session, "battle_id": None}, room.progress: progress_bar(done, total, f"{done} / {total} rated"),
            room.prompt: shown["prompt"], room.left: shown["left"], room.right: shown["right"],
            room.controls: gr.update(visible=False), room.reveal: reveal,
            room.next: gr.update(visible=done < total or bool(session.get("open"))),
            room.choice: None, room.score_left: None, room.score_right: None, room.edited: "", room.comment: "",
            **revealed_labels(room, names, VOTE_LABELS[choice])}


def revealed_labels(room: RatingRoom, names: dict, choice: str) -> dict:
    """A and B with each model's name, and the rater's choice marked (a tie or "both bad" on both)."""
    mark = {"left": {"left": " ✓ your choice"}, "right": {"right": " ✓ your choice"},
            "tie": {"left": " (tie)", "right": " (tie)"}, "both_bad": {"left": " (both bad)", "right": " (both bad)"}}[choice]
    return {room.label_left: f"**A: {html.escape(names['left'])}**{mark.get('left', '')}",
            room.label_right: f"**B: {html.escape(names['right'])}**{mark.get('right', '')}"}


def vote_as(svc: Services, room: RatingRoom, label: str, session, score_left, score_right, edited, comment) -> dict:
    """A one-click vote button: the same vote with its label as the choice."""
    return vote(svc, room, session, label, score_left, score_right, edited, comment)


def ask_question(svc: Services, room: RatingRoom, session, question):
    """An open campaign's /ask: the rater's question (or follow-up) answered by two anonymous models,
    streamed onto the page; the vote buttons appear when both answers are complete."""
    if not session or "rater_id" not in session:
        raise refusal("start rating first")
    if not session.get("open"):
        raise refusal("this campaign's prompts are fixed: vote on the battle shown")
    with shown_to_user():
        for update in svc.arena.ask(session["campaign"], session["rater_id"], session.get("battle_id"),
                                question):
            yield open_battle_view(room, session, update)


def open_battle_view(room: RatingRoom, session: dict, update: dict) -> dict:
    turns = tuple(update["turns"])
    left, right = (update["answers_a"], update["answers_b"]) if update["a_on_left"] else (update["answers_b"], update["answers_a"])
    shown = {"prompt": safe_markdown(turns[0]) + (f"\n\n*(a conversation of {len(turns)} turns)*" if len(turns) > 1 else ""),
             "left": side_markdown(turns, tuple(left)), "right": side_markdown(turns, tuple(right))}
    done = update["done"]
    return {room.session: {**session, "battle_id": update["battle_id"], "shown": shown} if done else session,
            room.progress: progress_bar(len(turns), len(turns), f"your question, turn {len(turns)}" +
                                        ("; ask a follow-up or vote" if done else ": the models are answering")),
            room.prompt: shown["prompt"], room.left: shown["left"], room.right: shown["right"],
            room.controls: gr.update(visible=done), room.reveal: "", room.question: "" if done else gr.update(),
            room.label_left: "**A**", room.label_right: "**B**"}


def next_battle(svc: Services, room: RatingRoom, session) -> dict:
    if not session or "rater_id" not in session:
        raise refusal("start rating first")
    return {**battle_view(svc, room, session), room.reveal: "", room.next: gr.update(visible=False)}
