"""Build an instruction data set from hand-written seeds with a teacher model.

    python scripts/synth.py [--teacher NAME | --api] [--n 5000] [--seeds data/synth/seeds.jsonl]
                            [--out data/synth/build] [--eval-file FILE ...] [--batch 16] [--seed 0]

    python scripts/synth.py ifeval [--prompts data/ifeval_train.jsonl] [--teacher NAME | --api] [--samples 4]
                            [--out runs/verified] [--eval-file FILE ...] [--check-file FILE ...] [--json]

    python scripts/synth.py constitutional --prompts FILE --constitution FILE.md --out pairs.jsonl
                            [--model NAME | --model teacher] [--seed 0]

    python scripts/synth.py rewrite --data FILE --out DIR [--per-row 1] [--seed 0] [--heldout-share 0.1]
                            (IFEval-style constraints met by construction or read off each answer; no teacher)

    python scripts/synth.py onpolicy --model NAME --prompts FILE --samples K --out DIR [--judge REWARD_ENTRY]
                            (the model answers its own training prompts K times; checkers / judge pick)

--teacher: a registry entry (or the base's name) on the shared engine, offline (default: the
embedded base). --api: an OpenAI-compatible endpoint from TEACHER_BASE_URL / TEACHER_API_KEY /
TEACHER_MODEL, with retries, a rate limit (--rpm) and a cache (rerunning never pays twice).
Resumable: raw replies accumulate in OUT/raw.jsonl. Writes OUT/data.jsonl ({instruction, input,
output}: `train.py sft --data OUT/data.jsonl` takes it as is), OUT/dropped.jsonl (stage and
reason per row), OUT/config.json (config, hashes, funnel, throughput) and OUT/report.html."""

import argparse
import json
import logging
import os
import sys
from functools import partial

from tqdm import tqdm

from posttrain import backend
from posttrain.engine import BASE
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, default_registry_dir
from posttrain.synth.build import BuildConfig, build
from posttrain.synth.teacher import LocalTeacher, OpenAITeacher
from posttrain.errors import cli


def run_constitutional(argv: list[str]) -> int:
    """Answers (a registry model, or the teacher), the teacher's critique and revision against one
    principle each, as preference pairs that `train.py dpo --data OUT` takes as they are."""
    from blindarena.prompts import load_prompts
    from posttrain.chat_api import ChatClient
    from posttrain.engine import SamplingParams
    from posttrain.synth import constitutional

    parser = argparse.ArgumentParser(prog="synth.py constitutional", description=constitutional.__doc__)
    parser.add_argument("--prompts", required=True, help="JSONL / CSV prompts (the arena's prompt formats)")
    parser.add_argument("--constitution", default="data/constitution.md", help="Markdown: one principle per list item")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="teacher", help="who answers first: a registry entry, or `teacher`")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--rpm", type=float, default=60, help="teacher requests per minute")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--no-4bit", action="store_true")
    backend.add_flags(parser)
    args = parser.parse_args(argv)
    principles = constitutional.load_constitution(args.constitution)
    prompts = [p["prompt"] for p in load_prompts(args.prompts)]
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)  # the teacher's cache lives beside the pairs: a rerun never pays twice
    cache = os.path.join(folder, "constitutional_cache.sqlite")
    teacher = OpenAITeacher.from_env(cache=cache, requests_per_minute=args.rpm, concurrency=args.concurrency)
    client = ChatClient(teacher.client.base_url, teacher.client.api_key, concurrency=args.concurrency,
                        requests_per_minute=args.rpm, cache=cache)
    if args.model == "teacher":
        answers = teacher.complete(prompts, seed=args.seed)
    else:
        registry = Registry(args.registry)
        engine = backend.from_flags(args, registry, args.base, quantize=not args.no_4bit)
        model = BASE if args.model == args.base else args.model
        engine.ensure_model(model)
        params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.7, seed=args.seed)
        answers = [a.text for a in engine.generate(prompts, [model] * len(prompts), params)]
    rows, counts = constitutional.critique_and_revise(client, teacher.model, prompts, answers, principles, seed=args.seed)
    constitutional.write_pairs(rows, args.out)
    print(json.dumps({**counts, "principles": len(principles), "answered_by": args.model, "out": args.out}))
    return 0


def local_teacher(args, model: str, **settings) -> LocalTeacher:
    """A registry entry answering through the shared engine (the flags' backend); the base's own
    name means the plain base."""
    registry = Registry(args.registry)
    registry.ensure_base(args.base)
    engine = backend.from_flags(args, registry, args.base, quantize=not args.no_4bit)
    return LocalTeacher(engine, BASE if model == args.base else model, **settings)


def run_ifeval(argv: list[str]) -> int:
    """Verifiable-instruction data by rejection sampling: the teacher answers each IFEval-schema
    prompt --samples times, IFEval's checkers keep what follows every instruction (SFT rows) and
    pair it with what breaks one (DPO pairs); contamination-checked against the held-out sets.
    Writes OUT/sft.jsonl, pairs.jsonl, pairs_heldout.jsonl, dropped.jsonl, summary.json and README.md
    (the data card). Rerunning reuses the teacher's samples (OUT/raw.jsonl)."""
    from posttrain import checkers
    from posttrain.synth import verified

    parser = argparse.ArgumentParser(prog="synth.py ifeval", description=run_ifeval.__doc__)
    defaults = verified.VerifiedConfig()
    parser.add_argument("--prompts", default=defaults.prompts, help="IFEval-schema prompts to answer")
    parser.add_argument("--teacher", default=DEFAULT_BASE_NAME, help="registry entry (the base's name: the plain base)")
    parser.add_argument("--api", action="store_true", help="the teacher is TEACHER_BASE_URL / TEACHER_MODEL")
    parser.add_argument("--samples", type=int, default=defaults.samples, help="answers per prompt")
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=defaults.out)
    parser.add_argument("--eval-file", action="append", default=None,
                        help="held-out prompts no training prompt may overlap (default: every held-out set in data/)")
    parser.add_argument("--check-file", action="append", default=None,
                        help="other training files to check against the same prompts (default: data/general/train.jsonl)")
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--no-4bit", action="store_true")
    parser.add_argument("--json", action="store_true", help="the last line of stdout is the summary as JSON")
    backend.add_flags(parser)
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    config = verified.VerifiedConfig(prompts=args.prompts, out=args.out, samples=args.samples, temperature=args.temperature,
                                     max_new_tokens=args.max_new_tokens, seed=args.seed,
                                     eval_files=args.eval_file or defaults.eval_files,
                                     check_files=args.check_file if args.check_file is not None else defaults.check_files)
    rows = checkers.read_rows(args.prompts)
    if args.api:
        teacher = OpenAITeacher.from_env(temperature=args.temperature, max_tokens=args.max_new_tokens,
                                         cache=os.path.join(args.out, "cache.sqlite"))
        os.makedirs(args.out, exist_ok=True)
    else:
        teacher = local_teacher(args, args.teacher, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                batch_size=args.batch)
        teacher.name = f"local:{args.teacher}"  # the entry's name, also when it is the plain base
    with tqdm(total=args.samples, desc=f"samples of {len(rows)} prompts", file=sys.stderr) as bar:
        samples = verified.sample(teacher, rows, config, progress=lambda done, total: bar.update(done - bar.n))
    built = verified.build(rows, samples, config)
    out = verified.write(built, config, teacher.name)
    summary = built["summary"]
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['sft_rows']} SFT rows, {summary['pairs']} pairs (+{summary['pairs_heldout']} held out) from "
              f"{summary['samples']} samples of {summary['prompts']} prompts; pass rate {summary['pass_rate']}; "
              f"{summary['contaminated_prompts']} contaminated prompts dropped")
        print(f"data card: {out / 'README.md'}")
    return 0


def run_rewrite(argv: list[str]) -> int:
    """Verifiable rewrites of a conversation file: SFT rows with IFEval-schema constraints, DPO pairs
    (rewritten over original where the original breaks one), held-out pairs and a data card."""
    from pathlib import Path

    from posttrain.synth import rewrites
    from posttrain.data import read, write_jsonl

    parser = argparse.ArgumentParser(prog="synth.py rewrite", description=rewrites.__doc__)
    parser.add_argument("--data", required=True, help="SFT rows (any format scripts/data.py check reads)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-row", type=int, default=1, help="constrained versions of each row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout-share", type=float, default=0.1, help="share of the pairs held out")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.per_row < 1 or not 0 <= args.heldout_share < 1:
        parser.error("--per-row must be at least 1 and --heldout-share in [0, 1)")
    data = read(args.data, kind="sft", on_error="skip")
    built = rewrites.rewrite_rows(data.rows, per_row=args.per_row, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    held = round(len(built["pairs"]) * args.heldout_share)
    write_jsonl(built["sft"], out / "sft.jsonl")
    write_jsonl(built["pairs"][held:], out / "pairs.jsonl")
    write_jsonl(built["pairs"][:held], out / "pairs_heldout.jsonl")
    summary = {"source": args.data, "rows_read": len(data.rows), "sft_rows": len(built["sft"]),
               "pairs": len(built["pairs"]) - held, "pairs_heldout": held, "per_row": args.per_row, "seed": args.seed,
               "yield": built["yield"], "not_covered": built["not_covered"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "README.md").write_text(rewrites.card(summary), encoding="utf-8")
    print(json.dumps(summary) if args.json else
          f"{summary['sft_rows']} constrained SFT rows and {summary['pairs']} pairs (+{held} held out) from "
          f"{summary['rows_read']} rows; card: {out / 'README.md'}")
    return 0


def run_onpolicy(argv: list[str]) -> int:
    """The policy's own answers to its training prompts: best-of-K SFT rows and pass-over-fail pairs."""
    from posttrain.synth import onpolicy, verified

    parser = argparse.ArgumentParser(prog="synth.py onpolicy", description=onpolicy.__doc__)
    parser.add_argument("--model", required=True, help="the registry entry being trained (it answers)")
    parser.add_argument("--prompts", required=True, help="JSONL prompts; IFEval's schema where constraints apply")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--out", required=True)
    parser.add_argument("--judge", help="a registry reward model for prompts without constraints")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--no-4bit", action="store_true")
    parser.add_argument("--json", action="store_true")
    backend.add_flags(parser)
    args = parser.parse_args(argv)
    if args.samples < 2:
        parser.error("--samples must be at least 2 (a pair needs two answers)")
    checked, free = onpolicy.read_prompts(args.prompts)
    registry = Registry(args.registry)
    from posttrain.registry import check_models

    check_models(registry, args.base, [args.model])
    onpolicy.check_judge(free, bool(args.judge))  # before any model loads
    score = None
    if args.judge:
        from posttrain.reward import RewardScorer

        score = RewardScorer(registry, args.judge).score
    teacher = local_teacher(args, args.model, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            batch_size=args.batch)
    teacher.name = f"policy:{args.model}"
    config = verified.VerifiedConfig(prompts=args.prompts, out=args.out, samples=args.samples,
                                     temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed)
    with tqdm(total=args.samples, desc=f"samples of {len(checked) + len(free)} prompts", file=sys.stderr) as bar:
        built = onpolicy.round_data(teacher, checked, free, config, score,
                                    progress=lambda done, total: bar.update(done - bar.n))
    out = onpolicy.write(built, config, args.model)
    summary = built["summary"]
    print(json.dumps(summary) if args.json else
          f"{summary['sft_rows']} best-of-{args.samples} SFT rows and {summary['pairs']} pairs from {args.model}'s own "
          f"answers; card: {out / 'README.md'}")
    return 0


def run(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "rewrite":
        return run_rewrite(argv[1:])
    if argv and argv[0] == "onpolicy":
        return run_onpolicy(argv[1:])
    if argv and argv[0] == "constitutional":
        return run_constitutional(argv[1:])
    if argv and argv[0] == "ifeval":
        return run_ifeval(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=DEFAULT_BASE_NAME)
    parser.add_argument("--api", action="store_true")
    parser.add_argument("--rpm", type=float, default=60, help="API requests per minute")
    parser.add_argument("--tpm", type=float, help="API tokens per minute (prompt estimate + max_tokens)")
    parser.add_argument("--concurrency", type=int, default=32, help="API requests in flight")
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--seeds", default="data/synth/seeds.jsonl")
    parser.add_argument("--out", default="data/synth/build")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--eval-file", action="append", default=None, help="evaluation prompts to check against")
    parser.add_argument("--no-4bit", action="store_true")
    backend.add_flags(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.makedirs(args.out, exist_ok=True)  # the API teacher's cache lives there
    if args.api:
        teacher = OpenAITeacher.from_env(requests_per_minute=args.rpm, tokens_per_minute=args.tpm,
                                         concurrency=args.concurrency, cache=os.path.join(args.out, "cache.sqlite"))
        args.batch = max(args.batch, 4 * args.concurrency)  # keep every slot busy between checkpoints
    else:
        teacher = local_teacher(args, args.teacher, max_new_tokens=args.max_new_tokens, batch_size=args.batch)
    config = BuildConfig(seeds=args.seeds, out=args.out, n=args.n, batch=args.batch, seed=args.seed,
                         eval_files=args.eval_file or ["data/heldout_prompts.jsonl"])
    with tqdm(total=args.n, desc="generate", file=sys.stderr) as bar:
        summary = build(config, teacher, progress=lambda stage, done, total: bar.update(done - bar.n))
    print(json.dumps(summary["funnel"], indent=2))
    print(f"throughput: {summary['throughput_examples_per_minute']} examples/min with {teacher.name}")
    print(f"report: {os.path.join(args.out, 'report.html')}")
    return 0


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
