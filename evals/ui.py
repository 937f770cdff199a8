"""The arena's Gradio Blocks: blind rating (public), and behind the admin password the
side-by-side demo, results, pairs and campaign admin. Callbacks only translate events into
calls of evals.arena / evals.store and back. Per-user state lives in gr.State (kept on the
server) and in the database; model identities never reach a rater's browser before a vote."""

from __future__ import annotations

import csv
import hmac
import html
import logging
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from evals import arena, plots
from evals.arena import check_blind_name, invite_link
from evals.store import Store, StoreError
from posttrain.backend import Generator, make_generator
from posttrain.engine import BASE, EngineError, SamplingParams
from posttrain.registry import Registry, RegistryError

log = logging.getLogger(__name__)
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
class ArenaConfig:
    registry_dir: Path
    data_dir: Path
    base: str
    admin_password: str = ""
    access_code: str = ""
    public_demo: bool = False  # list registry entries in the demo without a password (a Space showcase)
    hf_login: bool = False  # a "Sign in with Hugging Face" button (a Space with hf_oauth: true; gradio[oauth])
    quantize: bool = True  # load the shared base in NF4 (tests on tiny models turn it off)
    generation_backend: str = "engine"  # or "openai": an OpenAI-compatible multi-LoRA server (vLLM, SGLang)
    generation_base_url: str = ""
    generation_api_key: str = ""
    reports_dir: Path = Path("reports")  # where scripts/evaluate.py writes before/after reports


@dataclass
class Services:
    """What every callback shares: the store, the registry and ONE lazily loaded engine."""

    config: ArenaConfig
    store: Store
    registry: Registry
    _engine: Generator | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self) -> Generator:
        with self._lock:
            if self._engine is None:
                self._engine = make_generator(self.registry, self.config.base, quantize=self.config.quantize,
                                              backend=self.config.generation_backend,
                                              base_url=self.config.generation_base_url or None,
                                              api_key=self.config.generation_api_key)
            return self._engine

    def models(self) -> list[str]:
        return [e.name for e in self.registry.entries()
                if e.name == self.config.base or (e.is_adapter and e.base == self.config.base and e.method != "reward")]


def services(config: ArenaConfig) -> Services:
    return Services(config, Store(Path(config.data_dir) / "arena.sqlite"), Registry(config.registry_dir))


def is_admin(config: ArenaConfig, password: str) -> bool:
    """The admin password matches (no password set: everyone is admin, as the start-up warns)."""
    return not config.admin_password or hmac.compare_digest(password or "", config.admin_password)


def check_admin(config: ArenaConfig, password: str) -> None:
    if not is_admin(config, password):
        raise gr.Error("wrong admin password")


# ---- rating (public) ------------------------------------------------------------------------
def progress_bar(done: int, total: int, label: str) -> str:
    return f"<progress value='{done}' max='{total}'></progress> <b>{label}</b>"


def battle_view(svc: Services, session: dict) -> tuple:
    """(session, progress, prompt, left, right, controls visible) for the rater's next battle."""
    campaign, rater_id = session["campaign"], session["rater_id"]
    try:
        assignment = arena.next_battle(svc.store, campaign, rater_id)
        done, total = arena.progress(svc.store, campaign, rater_id)
    except StoreError as exc:
        raise gr.Error(str(exc)) from None
    if assignment is None:
        finished = ("the campaign is complete: every battle has all its votes. Thank you!"
                    if arena.is_complete(svc.store, campaign) else "all done, thank you!")
        return ({**session, "battle_id": None}, progress_bar(done, total, f"{done} / {total} rated, {finished}"), "", "", "",
                gr.update(visible=False))
    return ({**session, "battle_id": assignment.battle_id}, progress_bar(done, total, f"battle {done + 1} of {total}"),
            safe_markdown(assignment.prompt), safe_markdown(assignment.left), safe_markdown(assignment.right),
            gr.update(visible=True))


def guidelines_text(svc: Services, campaign: str) -> str:
    """The campaign's rating guidelines as safe Markdown ('' when it has none)."""
    guidelines = svc.store.campaign(campaign)["settings"].get("guidelines") or ""
    return safe_markdown(guidelines)


_CODE = re.compile(r"(```.*?(?:```|$)|`[^`\n]+`)", re.S)


def safe_markdown(text: str) -> str:
    """Model or user text for a Markdown component: code blocks, lists and emphasis render, but
    any HTML (a <script>, an <img onerror=...>) outside code is escaped, so it shows as text and
    never runs. Inside code spans and blocks the renderer shows characters literally already."""
    return "".join(part if _CODE.fullmatch(part) else html.escape(part, quote=False) for part in _CODE.split(text or ""))


def build_ui(config: ArenaConfig) -> gr.Blocks:
    svc = services(config)
    if not config.admin_password:
        log.warning("ADMIN_PASSWORD is not set: admin tabs are open to anyone who can reach this server")

    def ready_campaigns(request: gr.Request):
        """The campaign list; an invite link (?campaign=NAME&invite=TOKEN) preselects and fills."""
        names = [c["name"] for c in svc.store.campaigns() if c["status"] == "ready"]
        query = request.query_params if request else {}
        wanted = query.get("campaign")
        return (gr.update(choices=names, value=wanted if wanted in names else (names[-1] if names else None)),
                gr.update(value=query.get("invite", "")))

    def begin(campaign, name, code, invite, login: str | None):
        if config.access_code and not hmac.compare_digest(code or "", config.access_code):
            raise gr.Error("wrong access code")
        if not campaign:
            raise gr.Error("pick a campaign")
        try:
            access = svc.store.campaign(campaign)["access"]
            if access == "invite":  # a typed name is not an identity here
                rater_id = svc.store.invite_rater(campaign, (invite or "").strip())
            elif access == "hf":
                if not login:
                    raise StoreError(f"campaign {campaign!r} asks raters to sign in with Hugging Face" +
                                     ("" if config.hf_login else " (start the app with HF_LOGIN=1 on a Space with hf_oauth: true)"))
                rater_id = svc.store.rater(campaign, f"hf:{login}")
            else:
                rater_id = svc.store.rater(campaign, name or "")
        except StoreError as exc:
            raise gr.Error(str(exc)) from None
        return (*battle_view(svc, {"rater_id": rater_id, "campaign": campaign}), "", guidelines_text(svc, campaign))

    def start(campaign, name, code, invite):
        return begin(campaign, name, code, invite, None)

    def start_with_login(campaign, name, code, invite, profile: gr.OAuthProfile | None):
        return begin(campaign, name, code, invite, profile.username if profile else None)

    def vote(session, choice, score_left, score_right, edited, comment):
        if not session or not session.get("battle_id"):
            raise gr.Error("start rating first")
        if choice not in VOTE_LABELS:
            raise gr.Error("pick A, B, tie or both bad")
        try:
            names = arena.reveal_names(arena.cast_vote(
                svc.store, session["campaign"], session["rater_id"], session["battle_id"], VOTE_LABELS[choice],
                int(score_left) if score_left else None, int(score_right) if score_right else None, edited, comment))
            done, total = arena.progress(svc.store, session["campaign"], session["rater_id"])
        except StoreError as exc:
            raise gr.Error(str(exc)) from None
        reveal = f"You voted **{choice}**.  \nA was **{html.escape(names['left'])}**, B was **{html.escape(names['right'])}**."
        # The battle is cleared while the names are shown; the next one loads on "Next".
        cleared = ({**session, "battle_id": None}, progress_bar(done, total, f"{done} / {total} rated"), "", "", "", gr.update(visible=False))
        return (*cleared, reveal, gr.update(visible=done < total), None, None, None, "", "")

    def next_battle(session):
        if not session or "rater_id" not in session:
            raise gr.Error("start rating first")
        return (*battle_view(svc, session), "", gr.update(visible=False))

    # ---- admin-gated callbacks -----------------------------------------------------------
    def unlock(password):
        check_admin(config, password)
        models = svc.models()
        campaigns = [c["name"] for c in svc.store.campaigns()]
        latest = campaigns[-1] if campaigns else None
        return (gr.update(choices=models, value=None), gr.update(choices=[BASE] + models),
                gr.update(choices=[BASE] + models), gr.update(choices=campaigns, value=latest),
                gr.update(choices=campaigns, value=latest), "unlocked",
                gr.update(choices=[m for m in models if m != config.base], value=None))

    def before_after(password):
        check_admin(config, password)
        adapters = sorted((e for e in svc.registry.entries() if e.is_adapter and e.base == config.base and e.method != "reward"),
                          key=lambda e: str(e.card.get("created_at", "")))
        if not adapters:
            raise gr.Error("no adapters in the registry yet")
        after = adapters[-1]
        before = after.card.get("parent") or BASE
        return gr.update(value=BASE if before == config.base else before), gr.update(value=after.name)

    def side_by_side(password, left, right, prompt, max_new_tokens, temperature, seed):
        if not config.public_demo:
            check_admin(config, password)
        if config.public_demo and not (config.admin_password and is_admin(config, password)):
            # A rater must not re-create a campaign's answers here and so learn who wrote them.
            rated = {m for c in svc.store.campaigns() if c["status"] == "ready" for m in c["models"]}
            rated |= {BASE} if config.base in rated else set()
            blocked = [m for m in (left, right) if m in rated]
            if blocked:
                raise gr.Error(f"{blocked[0]!r} is being rated in an open campaign; the public demo shows it "
                               "again once that campaign is deleted (the admin can use it now)")
        if not (left and right and prompt and prompt.strip()):
            raise gr.Error("pick two models and type a prompt")
        known = [BASE, *svc.models()]
        unknown = [m for m in (left, right) if m not in known]
        if unknown:
            raise gr.Error(f"no model {unknown[0]!r} here; choose one of {', '.join(known)}")
        try:
            params = SamplingParams(max_new_tokens=int(max_new_tokens), temperature=float(temperature), seed=int(seed))
            for answers in svc.engine().stream([prompt, prompt], [left, right], params):
                notes = "  \n".join(f"{a.model}: {a.notice}" for a in answers if a.notice)
                yield answers[0].text, answers[1].text, notes
        except (EngineError, RegistryError) as exc:
            raise gr.Error(str(exc)) from None

    def create(password, name, models, upload, max_new_tokens, temperature, top_p, seed, target, allocation, gold,
               gold_rate, min_gold, guidelines, progress=gr.Progress()):
        check_admin(config, password)
        try:
            plan = arena.RatingPlan(votes_per_battle=int(target) if target else None, allocation=allocation or "balanced",
                                    gold=tuple(arena.load_gold(gold)) if gold else (),
                                    gold_rate=float(0.1 if gold_rate is None else gold_rate),
                                    min_gold_accuracy=float(0.7 if min_gold is None else min_gold),
                                    guidelines=arena.load_guidelines(guidelines) if guidelines else "")
            prompts = arena.load_prompts(upload if upload else arena.DEFAULT_PROMPTS)
            params = SamplingParams(max_new_tokens=int(max_new_tokens), temperature=float(temperature),
                                    top_p=float(top_p), seed=int(seed))
            check_blind_name(name, models or [])
            progress(0, desc="generating answers")
            arena.create_campaign(svc.store, svc.engine(), name, list(models or []), prompts, params,
                                  source=Path(upload).name if upload else "data/heldout_prompts.jsonl",
                                  progress=lambda done, total: progress(done / total, desc=f"{done}/{total} answers"),
                                  plan=plan)
        except (StoreError, EngineError, RegistryError) as exc:
            raise gr.Error(str(exc)) from None
        names = [c["name"] for c in svc.store.campaigns()]
        return f"campaign **{name}** ready: {len(prompts)} prompts, models {', '.join(models)}", \
            gr.update(choices=names, value=name), gr.update(choices=names, value=name)

    def show_results(password, campaign):
        check_admin(config, password)
        if not campaign:
            raise gr.Error("pick a campaign")
        res = arena.results(svc.store, campaign)
        table = [[r["model"], r["opponent"], r["wins"], r["losses"], r["ties"], round(r["win_rate"], 3),
                  f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]", r["more_votes_for_0.10"]] for r in res["win_rates"]]
        path = Path(tempfile.mkdtemp()) / f"{campaign}-votes.csv"
        votes = svc.store.votes(campaign)
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(votes[0]) if votes else ["id"])
            writer.writeheader()
            writer.writerows(votes)
        summary = results_summary_text(res)
        return (plots.ladder(res), plots.win_rates(res), plots.by_category(res), plots.position_bias(res),
                plots.votes_over_time(votes), table, str(path), summary, plots.style_ladder(res), rater_table(res))

    def review_rater(password, campaign, rater_name, decision):
        check_admin(config, password)
        if not (campaign and rater_name and decision):
            raise gr.Error("pick a campaign, type a rater's name and choose include, exclude or auto")
        try:
            svc.store.set_review(campaign, rater_name.strip(), None if decision == "auto" else decision)
        except StoreError as exc:
            raise gr.Error(str(exc)) from None
        return f"rater **{html.escape(rater_name.strip())}** in {campaign}: {decision} (show the results again to see the effect)"

    def list_reports(password):
        check_admin(config, password)
        names = sorted(p.parent.name for p in Path(config.reports_dir).glob("*/report.md"))
        return gr.update(choices=names, value=names[-1] if names else None)

    def show_report(password, name):
        check_admin(config, password)
        path = Path(config.reports_dir) / (name or "") / "report.md"
        if not name or not path.is_file():
            raise gr.Error("pick a report (scripts/evaluate.py writes them)")
        return path.read_text()

    def show_pairs(password, campaign):
        check_admin(config, password)
        pairs = arena.pairs(svc.store, campaign)
        rows = [[p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"], p["chosen_model"],
                 p["rejected_model"], p["rater"], p["edited"], p["created_at"]] for p in pairs]
        path = Path(tempfile.mkdtemp()) / f"{campaign}-pairs.jsonl"
        arena.export_pairs(svc.store, campaign, path)
        return rows, str(path)

    def next_round_action(password, campaign, parent, child, prompts, max_steps, progress=gr.Progress(track_tqdm=True)):
        check_admin(config, password)
        if not (campaign and parent and child and prompts):
            raise gr.Error("pick a campaign and a parent, name the child, and upload the new prompts")
        try:
            result = run_next_round(svc, campaign, parent, child.strip(), prompts, int(max_steps or 0) or None,
                                    say=lambda message: progress(0, desc=message))
        except (StoreError, RegistryError, EngineError, ValueError) as exc:
            raise gr.Error(str(exc)) from None
        names = [c["name"] for c in svc.store.campaigns()]
        summary = (f"Published **{result['child']}** ({result['pairs']} pairs from {result['votes']} votes); campaign "
                   f"**{result['campaign']}** is ready: {result['child']} vs {result['parent']} on {result['prompts']} prompts.")
        return summary, gr.update(choices=names, value=result["campaign"]), gr.update(choices=names)

    def make_invites(password, campaign, count, request: gr.Request):
        check_admin(config, password)
        if not campaign:
            raise gr.Error("pick a campaign")
        try:
            tokens = svc.store.create_invites(campaign, int(count or 0))
        except StoreError as exc:
            raise gr.Error(str(exc)) from None
        page = (request.headers.get("referer") or "").split("?")[0] if request else ""
        return f"{len(tokens)} links for **{campaign}** (send one to each rater):\n\n" + "\n".join(
            f"- {invite_link(page, campaign, t)}" for t in tokens)

    def deep_link(request: gr.Request):
        """?a=NAME&b=NAME preselects the side-by-side pair (names only; nothing runs until asked)."""
        known = [BASE] + svc.models()
        wanted = [request.query_params.get(k) if request else None for k in ("a", "b")]
        choices = {"choices": known} if config.public_demo else {}
        return tuple(gr.update(value=w, **choices) if w in known else gr.update(**choices) for w in wanted)

    def delete(password, campaign):
        check_admin(config, password)
        svc.store.delete_campaign(campaign)
        names = [c["name"] for c in svc.store.campaigns()]
        return f"deleted {campaign}", gr.update(choices=names, value=None), gr.update(choices=names, value=None)

    with gr.Blocks(title="Blind arena") as ui:
        gr.Markdown("# Blind arena\nTwo answers to the same prompt, labelled only **A** and **B**. Pick the better one.")
        with gr.Tab("Rate"):
            session = gr.State({})
            with gr.Row():
                # Custom values allowed: campaigns appear after launch; the store checks the name.
                campaign = gr.Dropdown(label="Campaign", choices=[], allow_custom_value=True, elem_id="campaign")
                rater = gr.Textbox(label="Your name", elem_id="rater-name")
                code = gr.Textbox(label="Access code", type="password", visible=bool(config.access_code))
                invite = gr.Textbox(value="", label="Invite", visible=False, elem_id="invite")  # from the link
                if config.hf_login:
                    gr.LoginButton()
                start_btn = gr.Button("Start / resume", variant="primary", elem_id="start")
            progress_md = gr.HTML(elem_id="progress")
            # Open when a rater starts, so they read it before their first battle; one click while rating.
            with gr.Accordion("Guidelines", open=True, elem_id="guidelines-box"):
                guidelines_md = gr.Markdown(elem_id="guidelines", sanitize_html=True)
            prompt_md = gr.Markdown(elem_id="prompt", sanitize_html=True)
            with gr.Row(equal_height=True):
                with gr.Column(min_width=160):
                    gr.Markdown("**A**")
                    left = gr.Markdown(elem_id="answer-a", sanitize_html=True, container=True)
                with gr.Column(min_width=160):
                    gr.Markdown("**B**")
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
                vote_btn = gr.Button("Submit vote", visible=False, elem_id="vote")
            reveal = gr.Markdown(elem_id="reveal")
            next_btn = gr.Button("Next battle [n]", visible=False, elem_id="next")
            view = [session, progress_md, prompt_md, left, right, controls]
            start_btn.click(start_with_login if config.hf_login else start, [campaign, rater, code, invite],
                            view + [reveal, guidelines_md], api_name="start")
            vote_outputs = view + [reveal, next_btn, choice, score_left, score_right, edited, comment]
            vote_btn.click(vote, [session, choice, score_left, score_right, edited, comment], vote_outputs, api_name="vote")
            for button, label in zip(vote_buttons, VOTE_LABELS):
                button.click(lambda s, sl, sr, e, c, label=label: vote(s, label, sl, sr, e, c),
                             [session, score_left, score_right, edited, comment], vote_outputs, api_visibility="private")
            next_btn.click(next_battle, [session], view + [reveal, next_btn], api_name="next")
            ui.load(None, js=KEYBOARD_JS)
        with gr.Tab("Side by side"):
            with gr.Row():
                # Custom values: choices arrive per session (and API clients never load them);
                # side_by_side checks the names against the registry.
                demo_left = gr.Dropdown(label="Left", choices=[], allow_custom_value=True, elem_id="demo-left")
                demo_right = gr.Dropdown(label="Right", choices=[], allow_custom_value=True, elem_id="demo-right")
                preset = gr.Button("Before vs after")
            demo_prompt = gr.Textbox(label="Prompt", lines=2)
            with gr.Row():
                demo_tokens = gr.Slider(16, 512, value=128, step=16, label="Max new tokens")
                demo_temperature = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Temperature")
                demo_seed = gr.Number(value=0, precision=0, label="Seed")
            demo_btn = gr.Button("Generate both", variant="primary")
            with gr.Row():
                demo_out_left = gr.Textbox(label="Left answer", lines=10)
                demo_out_right = gr.Textbox(label="Right answer", lines=10)
            demo_notes = gr.Markdown()
        with gr.Tab("Results"):
            results_campaign = gr.Dropdown(label="Campaign", choices=[])
            results_btn = gr.Button("Show results")
            results_summary = gr.Markdown()
            ladder_plot, win_plot, category_plot, bias_plot, time_plot = (gr.Plot() for _ in range(5))
            results_table = gr.Dataframe(headers=["model", "opponent", "wins", "losses", "ties", "win rate", "95% CI",
                                                  "more votes for +-0.10"])
            results_csv = gr.File(label="Votes (CSV)")
            style_plot = gr.Plot()
            raters_table = gr.Dataframe(headers=list(RATER_COLUMNS), elem_id="raters", label="Raters (left-out raters' votes are kept, not counted)")
            with gr.Row():
                review_name = gr.Textbox(label="Rater", scale=2)
                review_choice = gr.Radio(["include", "exclude", "auto"], label="Admin review", scale=2)
                review_btn = gr.Button("Apply to the campaign above", scale=1)
            review_out = gr.Markdown()
            with gr.Accordion("Before / after reports (scripts/evaluate.py)", open=False):
                with gr.Row():
                    report_name = gr.Dropdown(label="Report", choices=[])
                    reports_btn = gr.Button("List reports")
                    report_btn = gr.Button("Show report")
                report_md = gr.Markdown()
        with gr.Tab("Admin"):
            password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
            unlock_btn = gr.Button("Unlock")
            unlocked = gr.Markdown()
            with gr.Accordion("New campaign", open=True):
                new_name = gr.Textbox(label="Campaign name (raters see it: no model names)", elem_id="new-name")
                new_models = gr.CheckboxGroup(label="Models (registry entries)", choices=[], elem_id="new-models")
                new_upload = gr.File(label="Prompts (JSONL / CSV, MT-Bench question.jsonl works); empty = 50 held-out prompts",
                                     type="filepath")
                with gr.Row():
                    new_tokens = gr.Slider(16, 512, value=128, step=16, label="Max new tokens")
                    new_temperature = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Temperature")
                    new_top_p = gr.Slider(0.05, 1, value=0.95, step=0.05, label="Top-p")
                    new_seed = gr.Number(value=0, precision=0, label="Seed")
                with gr.Row():
                    new_target = gr.Number(value=0, precision=0, label="Votes per battle (0: no target)", elem_id="new-target")
                    new_allocation = gr.Radio(["balanced", "adaptive"], value="balanced", label="Allocation")
                    new_gold_rate = gr.Number(value=0.1, label="Gold rate")
                    new_min_gold = gr.Number(value=0.7, label="Min gold accuracy")
                with gr.Row():
                    new_gold = gr.File(label="Gold checks (preference rows: prompt, chosen, rejected)", type="filepath")
                    new_guidelines = gr.File(label="Guidelines (Markdown)", file_types=[".md", ".txt"], type="filepath")
                create_btn = gr.Button("Create and generate", variant="primary", elem_id="create")
                created = gr.Markdown(elem_id="created")
            with gr.Accordion("Pairs and clean-up", open=False):
                admin_campaign = gr.Dropdown(label="Campaign", choices=[])
                pairs_btn = gr.Button("Browse and export pairs")
                pairs_table = gr.Dataframe(headers=["prompt", "chosen", "rejected", "chosen model", "rejected model",
                                                    "rater", "edited", "time"])
                pairs_file = gr.File(label="Pairs (JSONL, TRL preference format)")
                delete_btn = gr.Button("Delete campaign", variant="stop")
                deleted = gr.Markdown()
            with gr.Accordion("Invite links (per-rater, unguessable; a typed name then no longer works)", open=False):
                with gr.Row():
                    invite_count = gr.Number(value=10, precision=0, label="How many links")
                    invite_btn = gr.Button("Make links for the campaign above")
                invite_out = gr.Markdown()
            with gr.Accordion("Next round: the people's pairs -> DPO -> a new campaign", open=False):
                gr.Markdown("Trains a DPO round on the chosen campaign's human pairs (above) on top of a parent "
                            "adapter, publishes the child, and opens a campaign child vs parent on new prompts "
                            "that must not overlap the pairs' prompts.")
                with gr.Row():
                    round_parent = gr.Dropdown(label="Parent adapter", choices=[], allow_custom_value=True)
                    round_child = gr.Textbox(label="Child name")
                    round_steps = gr.Number(value=0, precision=0, label="Max steps (0: the recipe's epochs)")
                round_prompts = gr.File(label="New prompts (JSONL / CSV)", file_types=[".jsonl", ".csv"], type="filepath")
                round_btn = gr.Button("Run the round", variant="primary")
                round_out = gr.Markdown()
        private = {"api_visibility": "private"}
        unlock_btn.click(unlock, [password], [new_models, demo_left, demo_right, results_campaign, admin_campaign, unlocked,
                                              round_parent], **private)
        preset.click(before_after, [password], [demo_left, demo_right], **private)
        demo_btn.click(side_by_side, [password, demo_left, demo_right, demo_prompt, demo_tokens, demo_temperature,
                                      demo_seed], [demo_out_left, demo_out_right, demo_notes],
                       concurrency_limit=1, concurrency_id="model",
                       **({"api_name": "side_by_side"} if config.public_demo else private))
        create_btn.click(create, [password, new_name, new_models, new_upload, new_tokens, new_temperature, new_top_p,
                                  new_seed, new_target, new_allocation, new_gold, new_gold_rate, new_min_gold, new_guidelines],
                         [created, results_campaign, admin_campaign],
                         concurrency_limit=1, concurrency_id="model", **private)
        results_btn.click(show_results, [password, results_campaign],
                          [ladder_plot, win_plot, category_plot, bias_plot, time_plot, results_table, results_csv,
                           results_summary, style_plot, raters_table], **private)
        review_btn.click(review_rater, [password, results_campaign, review_name, review_choice], [review_out], **private)
        reports_btn.click(list_reports, [password], [report_name], **private)
        report_btn.click(show_report, [password, report_name], [report_md], **private)
        pairs_btn.click(show_pairs, [password, admin_campaign], [pairs_table, pairs_file], **private)
        delete_btn.click(delete, [password, admin_campaign], [deleted, results_campaign, admin_campaign], **private)
        invite_btn.click(make_invites, [password, admin_campaign, invite_count], [invite_out], **private)
        round_btn.click(next_round_action, [password, admin_campaign, round_parent, round_child, round_prompts, round_steps],
                        [round_out, results_campaign, admin_campaign], concurrency_limit=1, concurrency_id="model", **private)
        ui.load(ready_campaigns, None, [campaign, invite], api_name="campaigns")
        ui.load(deep_link, None, [demo_left, demo_right], **private)
    return ui


def run_next_round(svc: Services, campaign: str, parent: str, child: str, prompts: str, max_steps: int | None,
                   say=None) -> dict:
    """The admin's "Next round": evals.loop.next_round over the app's store, registry and engine."""
    from evals.loop import next_round

    return next_round(svc.store, svc.registry, svc.engine, campaign, parent, child, prompts,
                      Path(svc.config.data_dir) / "rounds", max_steps=max_steps, progress=say)


RATER_COLUMNS = {"rater": "name", "votes": "votes", "gold seen": "gold_seen", "gold correct": "gold_correct",
                 "agreement": "agreement", "left share": "left_share", "flagged": "flagged", "review": "review",
                 "left out": "excluded", "reasons": "reasons"}


def rater_table(res: dict) -> list[list]:
    """The rater-quality rows of the Results tab."""
    cell = lambda v: round(v, 2) if isinstance(v, float) else "; ".join(v) if isinstance(v, list) else ("" if v is None else v)
    return [[cell(row[key]) for key in RATER_COLUMNS.values()] for row in res["raters"]]


def results_summary_text(res: dict) -> str:
    """The Results tab's summary: votes, rater agreement (raw and chance-corrected) and, when the
    judge rated the campaign, its agreement with the people's majority."""
    fmt = lambda x, digits=2: "n/a" if x is None else f"{x:.{digits}f}"
    agreement, judge = res["rater_agreement"], res["judge_agreement"]
    target = f" Target {res['votes_per_battle']} votes per battle: {'complete' if res['complete'] else 'still collecting'}." \
        if res.get("votes_per_battle") else ""
    left_out = f" {res['excluded_votes']} votes of {len(res['excluded_raters'])} left-out raters not counted." \
        if res.get("excluded_votes") else ""
    coefficients = res["bradley_terry_style"]["coefficients"]
    lines = [f"{res['human_votes']} human votes counted, {res['votes'] - res['human_votes'] - res.get('excluded_votes', 0)} "
             f"judge votes.{left_out}{target}",
             "Style coefficients (log-odds per standard deviation of the normalised difference): " +
             ", ".join(f"{k} {v['value']:+.2f} [{v['ci_low']:+.2f}, {v['ci_high']:+.2f}]" for k, v in coefficients.items()) + ".",
             f"Rater agreement: {fmt(agreement['agreement'])} over {agreement['pairs']} rater pairs on "
             f"{agreement['shared_battles']} shared battles (Cohen's kappa {fmt(agreement['cohen_kappa'])}, "
             f"Krippendorff's alpha {fmt(agreement['krippendorff_alpha'])}; ties included)."]
    if judge["battles"]:
        lines.append(f"Judge vs the people's majority: {fmt(judge['agreement'])} agreement on {judge['battles']} battles, "
                     f"kappa {fmt(judge['kappa'])}; people vs people {fmt(judge['human_agreement'])} "
                     "(MT-Bench: GPT-4 vs humans 0.66, humans vs humans 0.63).")
    return "  \n".join(lines)
