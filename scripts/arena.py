"""The arena from the command line (the same functions the app calls).

    python scripts/arena.py campaign create NAME --models A B [C ...] [--prompts FILE] [--max-new-tokens N]
                                             [--temperature T] [--seed S] [--json]
                                             [--votes-per-battle N] [--allocation balanced|adaptive]
                                             [--gold FILE] [--gold-rate R] [--min-gold-accuracy A] [--guidelines FILE.md]
                                             [--system TEXT] [--identity-words WORD ...]
                                             [--open [--max-turns 3] [--max-prompt-chars 2000] [--battles-per-hour 30]]
                                             [--max-answers 5000] [--max-text-chars 8000] [--votes-per-minute 30]
    python scripts/arena.py campaign list [--json]
    python scripts/arena.py campaign resume NAME        (an interrupted creation: generates only the missing answers)
    python scripts/arena.py campaign delete NAME [--force]   (--force: also when it holds votes)
    python scripts/arena.py backup OUT.sqlite            (a consistent copy of the live database)
    python scripts/arena.py results NAME [--json] [--ties half|rao-kupper|davidson] [--min-games 10] [--max-interval 400]
    python scripts/arena.py export-pairs NAME --out FILE.jsonl [--include-judge]   (or a folder: a `datasets` dataset)
    python scripts/arena.py release NAME --out DIR [--license cc-by-4.0] [--push REPO_ID] [--json]
                                             (consenting raters' votes, cleaned, in LMSYS's arena-conversations layout)
    python scripts/arena.py release NAME --dry-run [--json]   (what would go, for the admin's eyes; --push needs one)
    python scripts/arena.py invite NAME [--n 10] [--url http://HOST/] [--json]   (per-rater links; typed names then refused)
    python scripts/arena.py access NAME name|invite|hf
    python scripts/arena.py review NAME RATER include|exclude|auto   (the admin's word on a flagged rater)
    python scripts/arena.py judge NAME [--judge reward|openai] [--reward NAME]   (prints agreement with the people and the judge's audit)
    python scripts/arena.py next-round CAMPAIGN --parent NAME --name CHILD --prompts FILE [--method dpo|grpo] [--max-steps N] [--json]

Settings: --registry (REGISTRY_DIR), --data-dir (ARENA_DATA_DIR), --base (BASE_MODEL); --init starts a new arena
in an empty (0-byte) database file instead of refusing it."""

import argparse
import json
import logging
import os
import sys
from functools import partial
from pathlib import Path

from tqdm import tqdm

from blindarena.loop import ROUND_METHODS
from blindarena.operations import MAX_ANSWERS, invite_link
from blindarena.prompts import DEFAULT_PROMPTS
from blindarena.records import ALLOCATIONS, SAMPLING, CampaignSettings
from blindarena.release import LICENSES
from blindarena.service import Arena, CheckedCampaign, NewCampaign
from blindarena.stats import MAX_INTERVAL_ELO, MIN_DECISIVE_GAMES
from blindarena.store import Store, StoreError, default_data_dir
from blindarena.ties import TIE_MODELS
from posttrain import backend
from posttrain.errors import cli
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, RegistryError, default_registry_dir


def add_campaign_commands(campaign) -> None:
    """campaign create / list / resume / delete."""
    create = campaign.add_parser("create")
    create.add_argument("name")
    create.add_argument("--models", nargs="+", required=True)
    create.add_argument("--prompts", default=str(DEFAULT_PROMPTS))
    create.add_argument("--max-new-tokens", type=int, default=SAMPLING["max_new_tokens"])
    create.add_argument("--temperature", type=float, default=SAMPLING["temperature"])
    create.add_argument("--top-p", type=float, default=SAMPLING["top_p"])
    create.add_argument("--seed", type=int, default=SAMPLING["seed"])
    create.add_argument("--no-4bit", action="store_true", help="load the base in full precision")
    create.add_argument("--json", action="store_true")
    create.add_argument("--max-answers", type=int, default=MAX_ANSWERS,
                        help=f"refuse a campaign that needs more answers than this (default {MAX_ANSWERS})")
    create.add_argument("--votes-per-battle", type=int, help="each battle rated by N different people, then no more")
    create.add_argument("--allocation", choices=list(ALLOCATIONS), default=CampaignSettings.allocation,
                        help="balanced: least-covered battles first; adaptive: the widest win-rate intervals first")
    create.add_argument("--gold", help="gold checks: preference rows (prompt, chosen, rejected) with a known better answer")
    create.add_argument("--gold-rate", type=float, default=CampaignSettings.gold_rate, help="share of each rater's battles that are gold checks")
    create.add_argument("--min-gold-accuracy", type=float, default=CampaignSettings.min_gold_accuracy,
                        help="raters under this gold accuracy (after 3 gold battles) are flagged and left out")
    create.add_argument("--guidelines", help="Markdown shown to raters before their first battle")
    create.add_argument("--system", default="", help="one system prompt every model answers under")
    create.add_argument("--open", action="store_true",
                        help="no prompt file: raters ask their own questions (/ask), two anonymous models answer")
    create.add_argument("--max-turns", type=int, default=CampaignSettings.max_turns, help="open battles: user turns per battle")
    create.add_argument("--max-prompt-chars", type=int, default=CampaignSettings.max_prompt_chars, help="open battles: characters per user turn")
    create.add_argument("--battles-per-hour", type=int, default=CampaignSettings.battles_per_hour, help="open battles: new battles per rater per hour")
    create.add_argument("--max-duplicates", type=int, default=CampaignSettings.max_duplicates,
                        help="open battles: times one question may start a battle in the campaign")
    create.add_argument("--max-text-chars", type=int, default=CampaignSettings.max_text_chars,
                        help="a rater's edited answer or comment, at most this many characters")
    create.add_argument("--votes-per-minute", type=int, default=CampaignSettings.votes_per_minute,
                        help="a rater's votes in any minute, at most")
    create.add_argument("--repeat-share", type=float, default=CampaignSettings.repeat_share,
                        help="open battles: one question counts for at most this share of the votes")
    create.add_argument("--near-duplicate", type=float, default=CampaignSettings.near_duplicate,
                        help="open battles: one rater's questions at least this similar (MiniLM cosine) within a day count once")
    create.add_argument("--identity-words", nargs="*", default=[],
                        help="more words that give a model away (its name, its base's family and lab are always checked)")
    backend.add_flags(create)
    campaign.add_parser("list").add_argument("--json", action="store_true")
    resume = campaign.add_parser("resume", help="finish an interrupted creation: only the missing answers")
    resume.add_argument("name")
    resume.add_argument("--no-4bit", action="store_true")
    backend.add_flags(resume)
    delete = campaign.add_parser("delete", help="delete a campaign with its answers (and votes, with --force)")
    delete.add_argument("name")
    delete.add_argument("--force", action="store_true", help="delete it even though it holds votes")


def add_output_commands(sub) -> None:
    """results, export-pairs and release: what a campaign gives back."""
    results = sub.add_parser("results")
    results.add_argument("name")
    results.add_argument("--json", action="store_true")
    results.add_argument("--ties", choices=list(TIE_MODELS), default="half",
                         help="the tie model of the `ties` ladder: half (a tie is half a win each way, as the main ladder), "
                              "rao-kupper or davidson (a tie parameter; held-out scores of all three are always reported)")
    results.add_argument("--min-games", type=int, default=MIN_DECISIVE_GAMES,
                         help="a ladder row with fewer decisive games is provisional (no rank)")
    results.add_argument("--topics", action="store_true",
                         help="find topics in the prompts (MiniLM, HDBSCAN, named by class-based TF-IDF) and ladder per topic")
    results.add_argument("--max-interval", type=float, default=MAX_INTERVAL_ELO,
                         help="a ladder row whose 95%% interval is wider than this many Elo points is provisional")
    export = sub.add_parser("export-pairs")
    export.add_argument("name")
    export.add_argument("--out", required=True)
    export.add_argument("--include-judge", action="store_true", help="add the automatic judge's pairs (source: judge)")
    releasing = sub.add_parser("release", help="the votes of raters who agreed, cleaned of personal data, as a `datasets` "
                                               "folder in the column layout of lmsys/chatbot_arena_conversations")
    releasing.add_argument("name")
    releasing.add_argument("--out", help="a new or empty folder (not needed with --dry-run)")
    releasing.add_argument("--dry-run", action="store_true",
                           help="write nothing; print what would go (counts per kind, redacted texts beside their "
                                "originals, texts for a person to check) and record that this state was seen")
    releasing.add_argument("--license", choices=list(LICENSES), default="cc-by-4.0", help="the dataset card's license")
    releasing.add_argument("--push", metavar="REPO_ID", help="also upload it as a Hub dataset repo (HF_TOKEN)")
    releasing.add_argument("--json", action="store_true")


def parser() -> argparse.ArgumentParser:
    """Every command and flag (the interface; the defaults come from blindarena.records)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--init", action="store_true", help="an empty (0-byte) database file becomes a new arena")
    sub = parser.add_subparsers(dest="command", required=True)
    add_campaign_commands(sub.add_parser("campaign").add_subparsers(dest="action", required=True))
    backing = sub.add_parser("backup", help="a consistent copy of the live database")
    backing.add_argument("out")
    backing.add_argument("--force", action="store_true", help="replace OUT when it exists")
    add_output_commands(sub)
    inviting = sub.add_parser("invite", help="per-rater invite links (the campaign then needs one to rate)")
    inviting.add_argument("name")
    inviting.add_argument("--n", type=int, default=10)
    inviting.add_argument("--url", default="http://127.0.0.1:7860/", help="the app's address, for the links")
    inviting.add_argument("--json", action="store_true")
    access = sub.add_parser("access", help="who may rate: name (typed), invite (links), hf (Hugging Face login)")
    access.add_argument("name")
    access.add_argument("mode", choices=["name", "invite", "hf"])
    review = sub.add_parser("review", help="include a flagged rater again, exclude one, or leave it to the checks")
    review.add_argument("name")
    review.add_argument("rater")
    review.add_argument("decision", choices=["include", "exclude", "auto"])
    judging = sub.add_parser("judge", help="the automatic judge rates the campaign's own battles (both orders)")
    judging.add_argument("name")
    judging.add_argument("--judge", choices=["reward", "openai"], default="reward",
                         help="reward: a registry reward model; openai: JUDGE_BASE_URL / JUDGE_MODEL / JUDGE_API_KEY")
    judging.add_argument("--reward", help="reward entry (default: the newest)")
    loop = sub.add_parser("next-round", help="human pairs -> DPO on a parent -> child -> new campaign child vs parent")
    loop.add_argument("campaign")
    loop.add_argument("--parent", required=True, help="the adapter DPO continues (and the child's opponent)")
    loop.add_argument("--name", required=True, help="the child's registry name")
    loop.add_argument("--prompts", required=True, help="the new campaign's prompts: none may overlap the pairs' prompts")
    loop.add_argument("--max-steps", type=int)
    loop.add_argument("--method", choices=list(ROUND_METHODS), default="dpo",
                      help="dpo: DPO on the pairs; grpo: a reward model on the pairs, then a GRPO round against it")
    loop.add_argument("--recipe", help="the round's recipe (default: the project's dpo_default.yaml / grpo_default.yaml)")
    loop.add_argument("--extra-pairs", help="a preference file trained on beside the people's pairs (e.g. synth.py onpolicy's)")
    loop.add_argument("--json", action="store_true")
    loop.add_argument("--no-4bit", action="store_true")
    backend.add_flags(loop)
    return parser


def run(argv=None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    store = Store(os.path.join(args.data_dir, "arena.sqlite"), init=args.init)
    registry = Registry(args.registry)
    generator = lambda: backend.from_flags(args, registry, args.base, quantize=not getattr(args, "no_4bit", False))
    arena = Arena(store, registry, generator, base=args.base, backend=getattr(args, "generation_backend", "engine"))
    command = COMMANDS[(args.command, getattr(args, "action", None))]
    return command(args, arena) or 0


def delete_campaign(args, arena: Arena) -> None:
    votes = arena.delete(args.name, force=args.force)
    print(f"deleted campaign {args.name}" + (f" and its {votes} votes" if votes else ""))


def list_campaigns(args, arena: Arena) -> None:
    rows = arena.store.campaigns()
    if args.json:
        print(json.dumps([row.as_dict() for row in rows]))
    for row in [] if args.json else rows:
        print(f"{row.name:24} {row.status:10} models={','.join(row.models)} battles={row.battles} votes={row.votes}")


def backup(args, arena: Arena) -> None:
    print(f"backed up {arena.store.path} to {arena.store.backup(args.out, overwrite=args.force)}")


def results(args, arena: Arena) -> None:
    if args.min_games < 0 or args.max_interval <= 0:
        raise StoreError("--min-games must be 0 or more and --max-interval above 0")
    res = arena.results(args.name, ties=args.ties, min_games=args.min_games, max_width=args.max_interval, topics=args.topics)
    if args.json:
        print(json.dumps(res))
        return
    print("\n".join(results_lines(res)))


def results_lines(res: dict) -> list[str]:
    """The results as text: the ladder (rank or "provisional"), the style-controlled and tie-model
    ratings beside it, the tie rates, where the votes went, and who was left out."""
    styled = {row["model"]: row for row in res["bradley_terry_style"]["ladder"]}
    tied = {row["model"]: row for row in res["ties"]["ladder"]}
    lines = [f"{'rank':>4}  {'model':28} {'rating':>7}  {'95% CI':17} {'style-controlled':>16}  "
             f"{'ties: ' + res['ties']['model']:>18}  games"]
    for row in res["bradley_terry"]:
        st, tie = styled[row["model"]], tied[row["model"]]
        rank = "prov" if row.get("provisional") else str(row["rank"])
        lines.append(f"{rank:>4}  {row['model']:28} {row['rating']:7.1f}  [{row['ci_low']:.1f}, {row['ci_high']:.1f}]  "
                     f"{st['rating']:7.1f} {'':8}  {tie['rating']:7.1f} {'':10}  {row['games']}")
    lines += [f"      {row['model']}: {row['needs']}" for row in res["bradley_terry"] if row.get("provisional")]
    ties = res["ties"]
    if ties["votes"]:
        lines.append(f"ties {ties['tie_rate']:.0%} of {ties['votes']} votes (both bad {ties['both_bad_rate']:.0%})" +
                     ("; held-out log-loss " + ", ".join(f"{m} {v}" for m, v in ties["heldout"]["log_loss"].items())
                      if ties["heldout"]["log_loss"] else ""))
    lines.append("battles / votes per model: " + ", ".join(
        f"{s['model']} {s['battle_share'] or 0:.0%} / {s['vote_share'] or 0:.0%}" for s in res["battle_share"]) +
        f" (allocation {res['allocation_policy']['allocation']})")
    for topic, rows in ((res.get("topics") or {}).get("ladders") or {}).items():
        lines.append(f"topic {topic}: " + ", ".join(f"{r['model']} {r['rating']:.0f}" + (" (prov)" if r.get("provisional") else "")
                                                   for r in rows))
    aside = (res.get("prompt_hygiene") or {}).get("set_aside") or {}
    if aside:
        lines.append("set aside by open-battle hygiene: " + ", ".join(f"{n} {why}" for why, n in sorted(aside.items())))
    lines += [f"left out: {r['name']} ({r['votes']} votes): {'; '.join(r['reasons']) or 'admin'}" for r in res["raters"]
              if r["excluded"]]
    return lines


def export_pairs(args, arena: Arena) -> None:
    written = arena.export_pairs(args.name, args.out, include_judge=args.include_judge)
    split = written["split_battles"]
    print(f"wrote {written['pairs']} pairs to {args.out}" + (f" ({split} battles with evenly split votes left out)"
                                                             if split else ""))


def release(args, arena: Arena) -> None:
    if args.dry_run:
        return print_dry_run(arena.release_dry_run(args.name), args.json)
    if not args.out:
        raise StoreError("release needs --out DIR (or --dry-run to see what would go)")
    figures = arena.release(args.name, args.out, license=args.license, push=args.push)
    print(json.dumps(figures) if args.json else
          f"released {figures['votes']} votes of {figures['raters']} consenting raters to {args.out} "
          f"(redacted: {', '.join(f'{n} {k}' for k, n in figures['redacted'].items() if n) or 'nothing'}; "
          f"not released: {', '.join(f'{n} {why}' for why, n in figures['not_released'].items()) or 'none'})" +
          (f"; pushed to {figures['pushed_to']}" if figures.get("pushed_to") else ""))


def print_dry_run(run: dict, as_json: bool) -> None:
    """A release's dry run on the terminal: for the admin's eyes, it shows originals."""
    if as_json:
        return print(json.dumps(run))
    print(f"dry run of {run['campaign']!r}: {run['votes']} votes of {run['raters']} consenting raters would go; "
          f"{run['texts_redacted']} of {run['texts']} texts redacted "
          f"({', '.join(f'{n} {k}' for k, n in run['redacted'].items()) or 'nothing'}); not released: "
          f"{', '.join(f'{n} {why}' for why, n in run['not_released'].items()) or 'none'}")
    for row in run["sample"]:
        print(f"\n[{row['question_id']}] original: {row['original']}\n{' ' * len(row['question_id'])}   released: {row['redacted']}")
    print(f"\n{len(run['to_check'])} texts for a person to check (hits too weak to redact):")
    for row in run["to_check"]:
        hits = "; ".join(f"{h['kind']} {h['value']!r} ({h['found_by']}, {h['score']})" for h in row["hits"])
        print(f"[{row['question_id']}] {row['redacted']}\n    {hits}")
    print(f"\nstate {run['fingerprint'][:12]} recorded: `release {run['campaign']} --out DIR --push REPO` may now go "
          "while the campaign stays as shown")


def invite(args, arena: Arena) -> None:
    links = [invite_link(args.url, args.name, t) for t in arena.store.create_invites(args.name, args.n)]
    print(json.dumps({"campaign": args.name, "links": links}) if args.json else "\n".join(links))


def review(args, arena: Arena) -> None:
    arena.store.set_review(args.name, args.rater, None if args.decision == "auto" else args.decision)
    print(f"campaign {args.name}: rater {args.rater} {args.decision}")


def access(args, arena: Arena) -> None:
    arena.store.set_access(args.name, args.mode)
    print(f"campaign {args.name}: access {args.mode}")


def judge(args, arena: Arena) -> None:
    from evals.judge import OpenAIJudge, RewardJudge, judge_campaign
    from posttrain.reward import RewardScorer

    arena.store.campaign(args.name)  # an unknown campaign is refused before a judge loads
    registry = arena.registry
    if args.judge == "openai":
        chosen = OpenAIJudge.from_env()
    else:
        name = args.reward or getattr(registry.newest("reward"), "name", None)
        if not name:
            raise RegistryError("no reward entry in the registry; train one (scripts/train.py reward) or use --judge openai")
        chosen = RewardJudge(RewardScorer(registry, name), name=name)
    count = judge_campaign(arena.store, args.name, chosen)
    res = arena.results(args.name, rounds=0)
    audit = next((a for a in res["judge_audit"] if a["judge"] == f"judge:{chosen.name}"), None)
    print(json.dumps({"judged": count, **res["judge_agreement"], "audit": audit}))


def round_after(args, arena: Arena) -> None:
    result = arena.next_round(args.campaign, args.parent, args.name, args.prompts, Path(args.data_dir) / "rounds",
                              progress=lambda message: print(message, file=sys.stderr, flush=True), max_steps=args.max_steps,
                              recipe=args.recipe, method=args.method, extra_pairs=args.extra_pairs)
    print(json.dumps(result) if args.json else
          f"published {result['child']} ({result['pairs']} pairs from {result['votes']} votes of {args.campaign}); "
          f"campaign {result['campaign']} ready: {result['child']} vs {result['parent']}, {result['prompts']} prompts")


def new_campaign(args) -> NewCampaign:
    """The flags of `campaign create` as the arena's request (the Admin form makes the same one)."""
    settings = CampaignSettings(
        votes_per_battle=args.votes_per_battle, allocation=args.allocation, gold_rate=args.gold_rate,
        min_gold_accuracy=args.min_gold_accuracy, system=args.system, open=args.open, max_turns=args.max_turns,
        max_prompt_chars=args.max_prompt_chars, battles_per_hour=args.battles_per_hour,
        max_duplicates=args.max_duplicates, max_text_chars=args.max_text_chars, votes_per_minute=args.votes_per_minute,
        repeat_share=args.repeat_share, near_duplicate=args.near_duplicate)
    return NewCampaign(args.name, tuple(args.models), None if args.open else args.prompts,
                       {k: getattr(args, k) for k in SAMPLING}, settings, args.gold, args.guidelines,
                       tuple(args.identity_words), args.max_answers)


def create_or_resume(args, arena: Arena) -> int:
    """campaign create / resume: every cheap check (name, models, files, size) before the engine
    loads; answers are saved batch by batch as they are generated, so Ctrl-C or a kill loses only
    the batch in flight, and `campaign resume` generates the rest."""
    if args.action == "resume":
        campaign = arena.store.campaign(args.name)
        if campaign.status == "ready":
            print(f"campaign {args.name} is ready: nothing to resume")
            return 0
        checked, todo = None, len(arena.store.missing_answers(args.name))
    else:
        checked = arena.check(new_campaign(args))
        todo = checked.answers
        if checked.dropped:
            print(f"{checked.dropped} repeated prompts dropped (each prompt is battled once)", file=sys.stderr)
        if todo:
            print(f"{todo} answers to generate ({len(checked.prompts)} prompts x {len(checked.models)} models), "
                  f"{checked.estimate}", file=sys.stderr)
    try:
        with tqdm(total=todo, desc="answers", file=sys.stderr, disable=not todo) as bar:
            progress = lambda done, total: bar.update(done - bar.n)
            made = arena.resume(args.name, progress) if checked is None else arena.create(checked, progress)
    except KeyboardInterrupt:
        return interrupted(arena, args.name)
    print(json.dumps(made) if getattr(args, "json", False) else created_line(arena, made, checked))
    return 0


def interrupted(arena: Arena, name: str) -> int:
    if name not in {c.name for c in arena.store.campaigns()}:  # stopped while the engine loaded
        print(f"interrupted before campaign {name!r} was stored; nothing to resume", file=sys.stderr)
        return 130
    missing = len(arena.store.missing_answers(name))
    print(f"interrupted: campaign {name!r} keeps the answers made so far, {missing} still missing; finish it "
          f"with `scripts/arena.py campaign resume {name}`", file=sys.stderr)
    return 130


def created_line(arena: Arena, made: dict, checked: CheckedCampaign | None) -> str:
    flagged = made["identity_flagged_battles"]
    summary = ("open: raters ask their own questions" if checked is not None and checked.settings.open else
               f"{len(arena.store.battle_ids(made['name']))} battles" if checked is None else
               f"{len(checked.prompts)} prompts ({made['multi_turn_prompts']} with several turns)")
    return (f"campaign {made['name']} ready: {summary}" +
            (f"; {flagged} battles flagged: an answer names a model, its family or its lab (kept, left out of "
             f"the ladder and the pairs; --system can ask models not to introduce themselves)" if flagged else "") +
            (f"; {made['truncated_prompts']} prompts were longer than the model's context and were cut for generation "
             "(raters see them whole)" if made.get("truncated_prompts") else ""))


COMMANDS = {("campaign", "create"): create_or_resume, ("campaign", "resume"): create_or_resume,
            ("campaign", "delete"): delete_campaign, ("campaign", "list"): list_campaigns, ("backup", None): backup,
            ("results", None): results, ("export-pairs", None): export_pairs, ("invite", None): invite,
            ("release", None): release,
            ("review", None): review, ("access", None): access, ("judge", None): judge, ("next-round", None): round_after}


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
