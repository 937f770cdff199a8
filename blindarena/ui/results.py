"""The results room (admin): the leaderboard first (ranks, provisional rows, intervals, every
ladder: all votes, style-controlled, per category), then the summary and the plotly figures
(ladders, win rates, categories, position bias, votes over time), the rater table with the
admin's review, the votes as CSV, and the before/after reports. Locked, it says where to unlock
in one line instead of failing every component."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from blindarena import plots
from blindarena.export import file_stem, write_votes_csv
from blindarena.ui.common import PRIVATE, Services, admin_unlocked, as_text, bind, check_admin, refusal, shown_to_user

RATER_COLUMNS = {"rater": "name", "votes": "votes", "gold seen": "gold_seen", "gold correct": "gold_correct",
                 "agreement": "agreement", "left share": "left_share", "flagged": "flagged", "review": "review",
                 "left out": "excluded", "reasons": "reasons"}
WIN_RATE_COLUMNS = ["model", "opponent", "wins", "losses", "ties", "win rate", "95% CI", "more votes for +-0.10"]
LADDER_COLUMNS = ["ladder", "rank", "model", "rating", "95% CI", "games", "decisive", "note"]
LOCKED = "The results are behind the admin password: type it in the **Admin** tab and press **Unlock**, then **Show results**."


@dataclass
class ResultsRoom:
    campaign: gr.Dropdown
    show: gr.Button
    locked: gr.Markdown
    summary: gr.Markdown
    ladder: gr.Plot
    win_rates: gr.Plot
    by_category: gr.Plot
    position_bias: gr.Plot
    over_time: gr.Plot
    table: gr.Dataframe
    ladders: gr.Dataframe
    votes_csv: gr.File
    style_ladder: gr.Plot
    topic_map: gr.Plot
    raters: gr.Dataframe
    review_name: gr.Textbox
    review_choice: gr.Radio
    review: gr.Button
    reviewed: gr.Markdown
    report_name: gr.Dropdown
    list_reports: gr.Button
    show_report: gr.Button
    report: gr.Markdown


def build() -> ResultsRoom:
    with gr.Row():
        campaign = gr.Dropdown(label="Campaign", choices=[], scale=3)
        show = gr.Button("Show results", scale=1, elem_id="show-results")
    locked = gr.Markdown(LOCKED, elem_id="results-locked")
    ladders = gr.Dataframe(headers=LADDER_COLUMNS, elem_id="ladders",
                           label="Leaderboard: all votes, style-controlled, then per category (rank: 1 + models whose "
                                 "interval lies wholly above; provisional rows are not ranked)")
    summary = gr.Markdown(elem_id="results-summary")
    ladder, win_rates, by_category, position_bias, over_time = (
        gr.Plot(elem_id=f"plot-{name}") for name in ("ladder", "win-rates", "by-category", "position-bias", "over-time"))
    table = gr.Dataframe(headers=WIN_RATE_COLUMNS)
    votes_csv = gr.File(label="Votes (CSV)")
    style_ladder = gr.Plot()
    topic_map = gr.Plot(elem_id="topic-map")
    raters = gr.Dataframe(headers=list(RATER_COLUMNS), elem_id="raters",
                          label="Raters (left-out raters' votes are kept, not counted)")
    with gr.Row():
        review_name = gr.Textbox(label="Rater", scale=2, elem_id="review-name")
        review_choice = gr.Radio(["include", "exclude", "auto"], label="Admin review", scale=2, elem_id="review-choice")
        review = gr.Button("Apply to the campaign above", scale=1)
    reviewed = gr.Markdown()
    with gr.Accordion("Before / after reports (scripts/evaluate.py)", open=False):
        with gr.Row():
            report_name = gr.Dropdown(label="Report", choices=[])
            list_reports = gr.Button("List reports")
            show_report = gr.Button("Show report")
        report = gr.Markdown()
    return ResultsRoom(campaign, show, locked, summary, ladder, win_rates, by_category, position_bias, over_time, table,
                       ladders, votes_csv, style_ladder, topic_map, raters, review_name, review_choice, review, reviewed, report_name,
                       list_reports, show_report, report)


def wire(svc: Services, room: ResultsRoom, password: gr.Textbox) -> None:
    room.show.click(bind(show_results, svc, room), [password, room.campaign],
                    [room.locked, room.ladder, room.win_rates, room.by_category, room.position_bias, room.over_time,
                     room.table, room.ladders, room.votes_csv, room.summary, room.style_ladder, room.topic_map, room.raters],
                    **PRIVATE)
    room.review.click(bind(review_rater, svc), [password, room.campaign, room.review_name, room.review_choice],
                      [room.reviewed], **PRIVATE)
    room.list_reports.click(bind(list_reports, svc), [password], [room.report_name], **PRIVATE)
    room.show_report.click(bind(show_report, svc), [password, room.report_name], [room.report], **PRIVATE)


def show_results(svc: Services, room: ResultsRoom, password, campaign) -> dict:
    """The campaign's results, leaderboard first. Locked (no or a wrong password) it answers with
    one line where to unlock, and touches nothing else: no component fails."""
    if not admin_unlocked(svc, password):
        return {room.locked: gr.update(value=("**Locked.** " if not password else "**Wrong admin password.** ") + LOCKED,
                                       visible=True)}
    if not campaign:
        return {room.locked: gr.update(value="Pick a campaign above, then **Show results**.", visible=True)}
    with shown_to_user():
        res, votes = svc.arena.cached_results(campaign)
    table = [[r["model"], r["opponent"], r["wins"], r["losses"], r["ties"], round(r["win_rate"], 3),
              f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]", r["more_votes_for_0.10"]] for r in res["win_rates"]]
    path = write_votes_csv(votes, Path(tempfile.mkdtemp()) / f"{file_stem(campaign)}-votes.csv")
    return {room.locked: gr.update(visible=False), room.ladders: ladder_table(res), room.summary: results_summary_text(res),
            room.ladder: plots.ladder(res), room.win_rates: plots.win_rates(res), room.by_category: plots.by_category(res),
            room.position_bias: plots.position_bias(res), room.over_time: plots.votes_over_time(votes), room.table: table,
            room.votes_csv: str(path), room.style_ladder: plots.style_ladder(res), room.topic_map: plots.topic_map(res),
            room.raters: rater_table(res)}


def review_rater(svc: Services, password, campaign, rater_name, decision) -> str:
    check_admin(svc, password)
    if not (campaign and rater_name and decision):
        raise refusal("pick a campaign, type a rater's name and choose include, exclude or auto")
    with shown_to_user():
        svc.store.set_review(campaign, rater_name.strip(), None if decision == "auto" else decision)
    return (f"rater **{as_text(rater_name.strip())}** in {as_text(campaign)}: {decision} "
            "(show the results again to see the effect)")


def list_reports(svc: Services, password):
    check_admin(svc, password)
    names = sorted(p.parent.name for p in Path(svc.config.reports_dir).glob("*/report.md"))
    return gr.update(choices=names, value=names[-1] if names else None)


def show_report(svc: Services, password, name) -> str:
    check_admin(svc, password)
    path = Path(svc.config.reports_dir) / (name or "") / "report.md"
    if not name or not path.is_file():
        raise refusal("pick a report (scripts/evaluate.py writes them)")
    return path.read_text()


def ladder_table(res: dict) -> list[list]:
    """The raw ladder, the style-controlled one, then each category's, with LMArena's ranks; a
    provisional row shows "provisional" and what it still needs."""
    ladders = [("all votes", res["bradley_terry"]), ("style-controlled", res["bradley_terry_style"]["ladder"])]
    ladders += [(f"category: {c}", rows) for c, rows in sorted(res.get("bradley_terry_by_category", {}).items())]
    ladders += [(f"topic: {t}", rows) for t, rows in sorted(((res.get("topics") or {}).get("ladders") or {}).items())]
    return [[name, "provisional" if r.get("provisional") else r["rank"], r["model"], round(r["rating"]),
             f"[{r['ci_low']:.0f}, {r['ci_high']:.0f}]", r["games"], r.get("decisive_games", ""), r.get("needs", "")]
            for name, rows in ladders for r in rows]


def participation_lines(res: dict) -> list[str]:
    """Ties, and where the battles and votes went (with the allocation policy in force)."""
    lines = []
    ties = res.get("ties") or {}
    if ties.get("votes"):
        held = ties["heldout"].get("log_loss")
        lines.append(f"Ties: {ties['tie_rate']:.0%} of the counted votes (both bad {ties['both_bad_rate']:.0%})" +
                     ("; held-out log-loss " + ", ".join(f"{m} {v:.3f}" for m, v in held.items()) if held else "") + ".")
    shares, policy = res.get("battle_share") or [], res.get("allocation_policy") or {}
    if shares:
        pct = lambda x: "n/a" if x is None else f"{x:.0%}"
        lines.append("Battles / votes per model: " + ", ".join(f"{s['model']} {pct(s['battle_share'])} / "
                                                               f"{pct(s['vote_share'])}" for s in shares) +
                     f" (allocation {policy.get('allocation')}, target {policy.get('votes_per_battle') or 'none'} votes "
                     f"per battle, gold rate {policy.get('gold_rate')}).")
    return lines


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
    if res.get("identity_flagged_battles"):
        left_out += (f" {res['identity_flagged_battles']} battles flagged (an answer names a model, its family or its "
                     f"lab; {res['identity_flagged_votes']} votes on them not counted).")
    aside = (res.get("prompt_hygiene") or {}).get("set_aside") or {}
    if aside:
        left_out += (f" Open-battle hygiene set aside {sum(aside.values())} votes (" +
                     ", ".join(f"{n} {why}" for why, n in sorted(aside.items())) + ").")
    if res.get("refused"):
        left_out += " Refused in open battles: " + ", ".join(f"{n} {reason.replace('_', ' ')}"
                                                           for reason, n in sorted(res["refused"].items())) + "."
    coefficients = res["bradley_terry_style"]["coefficients"]
    style = lambda v: f"{v['value']:+.2f} [{v['ci_low']:+.2f}, {v['ci_high']:+.2f}]" if v.get("enough_votes", True) \
        else "not enough votes"
    lines = [f"{res['human_votes']} human votes counted, {res['judge_votes']} judge votes.{left_out}{target}",
             "Style coefficients (log-odds per standard deviation of the normalised difference): " +
             ", ".join(f"{k} {style(v)}" for k, v in coefficients.items()) + ".",
             *participation_lines(res),
             f"Rater agreement: {fmt(agreement['agreement'])} over {agreement['pairs']} rater pairs on "
             f"{agreement['shared_battles']} shared battles (Cohen's kappa {fmt(agreement['cohen_kappa'])}, "
             f"Krippendorff's alpha {fmt(agreement['krippendorff_alpha'])}; ties included)."]
    if judge["battles"]:
        lines.append(f"Judge vs the people's majority: {fmt(judge['agreement'])} agreement on {judge['battles']} battles, "
                     f"kappa {fmt(judge['kappa'])}; people vs people {fmt(judge['human_agreement'])} "
                     "(MT-Bench: GPT-4 vs humans 0.66, humans vs humans 0.63).")
    pct = lambda x: "n/a" if x is None else f"{100 * x:.0f}%"
    for audit in res.get("judge_audit", []):
        lines.append(f"{audit['judge']}: flips on {pct(audit['flip_rate'])} of swaps, picks the longer answer in "
                     f"{pct(audit['longer_answer_share'])} of its decisive verdicts, agrees with the people on "
                     f"{fmt(audit['agreement'])} (kappa {fmt(audit['kappa'])}) vs people with people "
                     f"{fmt(agreement['agreement'])} (GPT-4 in FastChat's tracker: 12.9% flips, 68% longer).")
    fragile = (res.get("robustness") or {}).get("top")
    if fragile and fragile["votes_to_flip"] is not None and res["human_votes"]:
        lines.insert(1, f"The top spot ({fragile['higher']} over {fragile['lower']}) rests on {fragile['votes_to_flip']} "
                        f"of {res['robustness']['votes']} votes: removing that many would reverse the two (an upper "
                        "bound, found greedily).")
    elif fragile and res["human_votes"]:
        lines.insert(1, f"The top spot ({fragile['higher']} over {fragile['lower']}) cannot be reversed by removing votes.")
    return "  \n".join(lines)
