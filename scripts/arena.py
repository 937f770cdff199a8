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
    python scripts/arena.py results NAME --json
    python scripts/arena.py export-pairs NAME --out FILE.jsonl [--include-judge]   (or a folder: a `datasets` dataset)
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
from pathlib import Path

from tqdm import tqdm

from evals import arena
from evals.export import export as export_campaign
from evals.loop import METHODS as LOOP_METHODS, next_round
from evals.prompts import DEFAULT_PROMPTS, answers_needed, load_gold, load_guidelines, load_prompts
from evals.records import ALLOCATIONS, SAMPLING, CampaignSettings as Defaults
from evals.store import Store, StoreError, default_data_dir
from posttrain import backend
from posttrain.engine import SamplingParams
from posttrain.errors import cli
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, RegistryError, check_models, default_registry_dir


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
    create.add_argument("--max-answers", type=int, default=arena.MAX_ANSWERS,
                        help=f"refuse a campaign that needs more answers than this (default {arena.MAX_ANSWERS})")
    create.add_argument("--votes-per-battle", type=int, help="each battle rated by N different people, then no more")
    create.add_argument("--allocation", choices=list(ALLOCATIONS), default=Defaults.allocation,
                        help="balanced: least-covered battles first; adaptive: the widest win-rate intervals first")
    create.add_argument("--gold", help="gold checks: preference rows (prompt, chosen, rejected) with a known better answer")
    create.add_argument("--gold-rate", type=float, default=Defaults.gold_rate, help="share of each rater's battles that are gold checks")
    create.add_argument("--min-gold-accuracy", type=float, default=Defaults.min_gold_accuracy,
                        help="raters under this gold accuracy (after 3 gold battles) are flagged and left out")
    create.add_argument("--guidelines", help="Markdown shown to raters before their first battle")
    create.add_argument("--system", default="", help="one system prompt every model answers under")
    create.add_argument("--open", action="store_true",
                        help="no prompt file: raters ask their own questions (/ask), two anonymous models answer")
    create.add_argument("--max-turns", type=int, default=Defaults.max_turns, help="open battles: user turns per battle")
    create.add_argument("--max-prompt-chars", type=int, default=Defaults.max_prompt_chars, help="open battles: characters per user turn")
    create.add_argument("--battles-per-hour", type=int, default=Defaults.battles_per_hour, help="open battles: new battles per rater per hour")
    create.add_argument("--max-duplicates", type=int, default=Defaults.max_duplicates,
                        help="open battles: times one question may start a battle in the campaign")
    create.add_argument("--max-text-chars", type=int, default=Defaults.max_text_chars,
                        help="a rater's edited answer or comment, at most this many characters")
    create.add_argument("--votes-per-minute", type=int, default=Defaults.votes_per_minute,
                        help="a rater's votes in any minute, at most")
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


def parser() -> argparse.ArgumentParser:
    """Every command and flag (the interface; the defaults come from evals.records)."""
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
    results = sub.add_parser("results")
    results.add_argument("name")
    results.add_argument("--json", action="store_true")
    export = sub.add_parser("export-pairs")
    export.add_argument("name")
    export.add_argument("--out", required=True)
    export.add_argument("--include-judge", action="store_true", help="add the automatic judge's pairs (source: judge)")
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
    loop.add_argument("--method", choices=list(LOOP_METHODS), default="dpo",
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
    command = COMMANDS[(args.command, getattr(args, "action", None))]
    return command(args, store) or 0


def delete_campaign(args, store: Store) -> None:
    votes = store.vote_stamp(args.name)[0]
    if votes and not args.force:
        raise StoreError(f"campaign {args.name!r} holds {votes} votes; export or back them up first "
                         "(export-pairs, backup), then delete with --force")
    store.delete_campaign(args.name)
    print(f"deleted campaign {args.name}" + (f" and its {votes} votes" if votes else ""))


def list_campaigns(args, store: Store) -> None:
    rows = store.campaigns()
    if args.json:
        print(json.dumps([row.as_dict() for row in rows]))
    for row in [] if args.json else rows:
        print(f"{row.name:24} {row.status:10} models={','.join(row.models)} battles={row.battles} votes={row.votes}")


def backup(args, store: Store) -> None:
    print(f"backed up {store.path} to {store.backup(args.out, overwrite=args.force)}")


def results(args, store: Store) -> None:
    res = arena.results(store, args.name)
    if args.json:
        print(json.dumps(res))
        return
    styled = {row["model"]: row for row in res["bradley_terry_style"]["ladder"]}
    print(f"{'model':28} {'rating':>7}  95% CI            style-controlled")
    for row in res["bradley_terry"]:
        st = styled[row["model"]]
        print(f"{row['model']:28} {row['rating']:7.1f}  [{row['ci_low']:.1f}, {row['ci_high']:.1f}]  "
              f"{st['rating']:7.1f} [{st['ci_low']:.1f}, {st['ci_high']:.1f}]  games={row['games']}")
    for rater in res["raters"]:
        if rater["excluded"]:
            print(f"left out: {rater['name']} ({rater['votes']} votes): {'; '.join(rater['reasons']) or 'admin'}")


def export_pairs(args, store: Store) -> None:
    written = export_campaign(store, args.name, args.out, include_judge=args.include_judge)
    split = written["split_battles"]
    print(f"wrote {written['pairs']} pairs to {args.out}" + (f" ({split} battles with evenly split votes left out)"
                                                             if split else ""))


def invite(args, store: Store) -> None:
    links = [arena.invite_link(args.url, args.name, t) for t in store.create_invites(args.name, args.n)]
    print(json.dumps({"campaign": args.name, "links": links}) if args.json else "\n".join(links))


def review(args, store: Store) -> None:
    store.set_review(args.name, args.rater, None if args.decision == "auto" else args.decision)
    print(f"campaign {args.name}: rater {args.rater} {args.decision}")


def access(args, store: Store) -> None:
    store.set_access(args.name, args.mode)
    print(f"campaign {args.name}: access {args.mode}")


def judge(args, store: Store) -> None:
    from evals.judge import OpenAIJudge, RewardJudge, judge_campaign
    from posttrain.reward import RewardScorer

    store.campaign(args.name)  # an unknown campaign is refused before a judge loads
    registry = Registry(args.registry)
    if args.judge == "openai":
        chosen = OpenAIJudge.from_env()
    else:
        name = args.reward or getattr(registry.newest("reward"), "name", None)
        if not name:
            raise RegistryError("no reward entry in the registry; train one (scripts/train.py reward) or use --judge openai")
        chosen = RewardJudge(RewardScorer(registry, name), name=name)
    count = judge_campaign(store, args.name, chosen)
    res = arena.results(store, args.name, rounds=0)
    audit = next((a for a in res["judge_audit"] if a["judge"] == f"judge:{chosen.name}"), None)
    print(json.dumps({"judged": count, **res["judge_agreement"], "audit": audit}))


def round_after(args, store: Store) -> None:
    registry = Registry(args.registry)
    result = next_round(store, registry, lambda: backend.from_flags(args, registry, args.base, quantize=not args.no_4bit),
                        args.campaign, args.parent, args.name, args.prompts, Path(args.data_dir) / "rounds",
                        max_steps=args.max_steps, recipe=args.recipe, method=args.method, extra_pairs=args.extra_pairs,
                        progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps(result) if args.json else
          f"published {result['child']} ({result['pairs']} pairs from {result['votes']} votes of {args.campaign}); "
          f"campaign {result['campaign']} ready: {result['child']} vs {result['parent']}, {result['prompts']} prompts")


def say_size(prompts: list[dict], models: list[str], dropped: int, args) -> None:
    if dropped:
        print(f"{dropped} repeated prompts dropped (each prompt is battled once)", file=sys.stderr)
    if prompts:
        todo = answers_needed(prompts, models)
        print(f"{todo} answers to generate ({len(prompts)} prompts x {len(models)} models), "
              f"{arena.estimate(todo, args.max_new_tokens, args.generation_backend)}", file=sys.stderr)


def create_or_resume(args, store: Store) -> int:
    """campaign create / resume: every cheap check (name, models, files, size) before the engine
    loads; answers are saved batch by batch as they are generated, so Ctrl-C or a kill loses only
    the batch in flight, and `campaign resume` generates the rest."""
    registry = Registry(args.registry)
    if args.action == "resume":
        campaign = store.campaign(args.name)
        if campaign.status == "ready":
            print(f"campaign {args.name} is ready: nothing to resume")
            return 0
        models, prompts = campaign.models, None
    else:
        models, prompts = args.models, ([] if args.open else load_prompts(args.prompts))
        prompts, dropped = arena.unique_prompts(prompts)
        say_size(prompts, models, dropped, args)
        arena.check_new_campaign(store, args.name, models, prompts, args.max_answers)
        params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                top_p=args.top_p, seed=args.seed)  # refuses a bad value before the engine loads
        plan = Defaults(
            votes_per_battle=args.votes_per_battle, allocation=args.allocation,
            gold=tuple(load_gold(args.gold)) if args.gold else (), gold_rate=args.gold_rate,
            min_gold_accuracy=args.min_gold_accuracy,
            guidelines=load_guidelines(args.guidelines) if args.guidelines else "", system=args.system,
            identity_words=tuple(arena.default_identity_words(registry, args.base, models, args.identity_words)),
            open=args.open, max_turns=args.max_turns, max_prompt_chars=args.max_prompt_chars,
            battles_per_hour=args.battles_per_hour, max_duplicates=args.max_duplicates,
            max_text_chars=args.max_text_chars, votes_per_minute=args.votes_per_minute)
    if args.generation_backend == "engine":
        check_models(registry, args.base, models)
    todo = len(store.missing_answers(args.name)) if prompts is None else answers_needed(prompts, models)
    engine = backend.from_flags(args, registry, args.base, quantize=not args.no_4bit)
    try:
        with tqdm(total=todo, desc="answers", file=sys.stderr, disable=not todo) as bar:
            progress = lambda done, total: bar.update(done - bar.n)
            if prompts is None:
                made = arena.generate_missing(store, engine, args.name, progress=progress)
            else:
                made = arena.create_campaign(store, engine, args.name, models, prompts, params, source=args.prompts,
                                             progress=progress, plan=plan)
    except KeyboardInterrupt:
        if args.name not in {c.name for c in store.campaigns()}:  # stopped while the engine loaded
            print(f"interrupted before campaign {args.name!r} was stored; nothing to resume", file=sys.stderr)
            return 130
        missing = len(store.missing_answers(args.name))
        print(f"interrupted: campaign {args.name!r} keeps the answers made so far, {missing} still missing; finish it "
              f"with `scripts/arena.py campaign resume {args.name}`", file=sys.stderr)
        return 130
    flagged = made["identity_flagged_battles"]
    summary = ("open: raters ask their own questions" if args.action == "create" and args.open else
               f"{len(store.battle_ids(args.name))} battles" if prompts is None else
               f"{len(prompts)} prompts ({made['multi_turn_prompts']} with several turns)")
    print(json.dumps(made) if getattr(args, "json", False) else f"campaign {made['name']} ready: {summary}" +
          (f"; {flagged} battles flagged: an answer names a model, its family or its lab (kept, left out of "
           f"the ladder and the pairs; --system can ask models not to introduce themselves)" if flagged else "") +
          (f"; {made['truncated_prompts']} prompts were longer than the model's context and were cut for generation "
           "(raters see them whole)" if made.get("truncated_prompts") else ""))
    return 0


COMMANDS = {("campaign", "create"): create_or_resume, ("campaign", "resume"): create_or_resume,
            ("campaign", "delete"): delete_campaign, ("campaign", "list"): list_campaigns, ("backup", None): backup,
            ("results", None): results, ("export-pairs", None): export_pairs, ("invite", None): invite,
            ("review", None): review, ("access", None): access, ("judge", None): judge, ("next-round", None): round_after}


def main(argv=None) -> int:
    return cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
