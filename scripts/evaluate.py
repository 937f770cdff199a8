"""Evaluate registry entries side by side and write a report folder.

    python scripts/evaluate.py --models BASE sft dpo [--judge auto|reward|openai|none] [--reward NAME]
                               [--prompts data/heldout_prompts.jsonl] [--max-new-tokens 64] [--out reports/NAME]

    python scripts/evaluate.py mtbench --models A B ... [--questions FILE] [--judge openai|reward] [--json]
    python scripts/evaluate.py overoptimization --policy NAME --proxy REWARD --gold JUDGE [--n 1 2 4 8 16] [--json]
    python scripts/evaluate.py ifeval --models A B ... [--prompts data/ifeval_heldout.jsonl | ifeval] [--max-new-tokens N] [--json]
    python scripts/evaluate.py ifeval --responses FILE [--json]    (IFEval's input_data.jsonl rows plus `response`)
    python scripts/evaluate.py benchmarks [--json]    (the named sets: ifeval, arena-hard[:N], alpaca-eval[:N], with cards)

Metrics on held-out data (domain and general-text perplexity, preference accuracy, task
accuracy); then each model answers the held-out prompts once (a campaign in the arena store)
and a judge (our reward model, or an OpenAI-compatible endpoint from JUDGE_BASE_URL /
JUDGE_API_KEY / JUDGE_MODEL) compares every pair in both orders. Writes metrics.json,
report.md and report.html; the app's Results tab lists the reports."""

import argparse
import json
import os
import sys
from functools import partial
from pathlib import Path

from tqdm import tqdm

from evals import evaluation
from evals.judge import OpenAIJudge
from blindarena.prompts import load_prompts
from blindarena.store import Store, default_data_dir
from posttrain import backend, benchmarks
from posttrain.engine import BASE, SamplingParams
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, RegistryError, check_models, default_registry_dir
from posttrain.reward import RewardScorer
from posttrain.errors import cli

DATA = Path(__file__).resolve().parents[1] / "data"
IFEVAL_541_TOKENS = 1280  # lm-evaluation-harness's IFEval max_gen_toks (the Open LLM Leaderboard's setting)


def common_flags(parser) -> None:
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--no-4bit", action="store_true")
    parser.add_argument("--json", action="store_true", help="the last line of stdout is the result as JSON")
    backend.add_flags(parser)


def run_mtbench(argv: list[str]) -> int:
    """MT-Bench-lite: each model answers every turn (turn 2 on its own turn 1), graded per turn."""
    from evals import mtbench
    from blindarena import plots

    parser = argparse.ArgumentParser(prog="evaluate.py mtbench", description=mtbench.__doc__)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--questions", default=str(mtbench.DEFAULT_QUESTIONS))
    parser.add_argument("--judge", choices=["openai", "reward"], default="openai",
                        help="openai: JUDGE_BASE_URL / JUDGE_MODEL / JUDGE_API_KEY, graded 1-10; reward: our reward model's score")
    parser.add_argument("--reward", help="reward entry (default: the newest)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--system", help="one system prompt for every model")
    parser.add_argument("--out", default="reports/mtbench", help="where mtbench.json and the radar plot go")
    common_flags(parser)
    args = parser.parse_args(argv)
    registry = Registry(args.registry)
    questions = mtbench.load_questions(args.questions)
    engine = backend.from_flags(args, registry, args.base, quantize=not args.no_4bit)
    models = [BASE if m == args.base else m for m in args.models]
    for model in models:
        engine.ensure_model(model)
    grader = mtbench_grader(args, registry, engine)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0)
    answers = {args.base if m == BASE else m: mtbench.answer(engine, m, questions, params, args.system)
               for m in tqdm(models, desc="answers", file=sys.stderr)}
    result = mtbench.grade(grader, questions, answers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mtbench.json").write_text(json.dumps({**result, "answers": answers}, indent=2))
    plots.mtbench_radar(result).write_html(str(out / "mtbench_radar.html"), include_plotlyjs=True)
    for model, row in result["mtbench"].items():
        print(f"{model:28} turn 1 {row['turn_1']}  turn 2 {row['turn_2']}  overall {row['overall']}  "
              f"({row['graded']} graded, {row['unparseable']} unparseable)", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    return 0


def run_overoptimization(argv: list[str]) -> int:
    """Best-of-n against a proxy reward model, picks scored by a gold judge (Gao et al.'s curves)."""
    from evals import overoptimization

    parser = argparse.ArgumentParser(prog="evaluate.py overoptimization", description=overoptimization.__doc__)
    parser.add_argument("--policy", required=True, help="the registry entry sampled from")
    parser.add_argument("--proxy", required=True, help="the reward entry best-of-n optimises")
    parser.add_argument("--gold", required=True, help="a second reward entry, or `openai` (JUDGE_BASE_URL / JUDGE_MODEL)")
    parser.add_argument("--n", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--prompts", default=str(DATA / "heldout_prompts.jsonl"))
    parser.add_argument("--limit", type=int, default=20, help="how many prompts")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports/overoptimization")
    common_flags(parser)
    args = parser.parse_args(argv)
    if sorted(set(args.n)) != args.n or args.n[0] < 1:
        raise RegistryError(f"--n must be increasing whole numbers from 1, got {args.n}")
    if args.proxy == args.gold:
        raise RegistryError("--gold must differ from --proxy: a proxy cannot check itself")
    registry = Registry(args.registry)
    engine = backend.from_flags(args, registry, args.base, quantize=not args.no_4bit)
    policy = BASE if args.policy == args.base else args.policy
    engine.ensure_model(policy)
    device = getattr(engine, "device", None)
    proxy = RewardScorer(registry, args.proxy, device=device)
    gold = overoptimization.gold_scores(registry, args.gold, device)
    prompts = [p["prompt"] for p in load_prompts(args.prompts)][: args.limit]
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    samples = overoptimization.sample(engine, policy, prompts, args.n[-1], params)
    result = overoptimization.curve(prompts, samples, proxy.score, gold, args.n)
    result.update(policy=args.policy, proxy=args.proxy, gold=args.gold, prompts=len(prompts))
    overoptimization.write(result, args.out, args.proxy, args.gold)
    for row in result["overoptimization"]:
        print(f"n={row['n']:3} KL={row['kl']:.3f} proxy={row['proxy']:+.3f} gold={row['gold']} length={row['length']}",
              file=sys.stderr)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "length_vs_proxy"} |
                         {"length_vs_proxy": {"correlation": result["length_vs_proxy"]["correlation"]}}))
    return 0


def mtbench_grader(args, registry: Registry, engine):
    from evals import mtbench
    from posttrain.chat_api import ChatClient

    if args.judge == "openai":
        judge = OpenAIJudge.from_env()  # the same settings the pairwise judge reads
        return mtbench.OpenAIGrader(ChatClient(judge.base_url, judge.api_key, retries=judge.retries), judge.model)
    name = args.reward or getattr(registry.newest("reward"), "name", None)
    if not name:
        raise RegistryError("no reward entry in the registry; train one (scripts/train.py reward) or use --judge openai")
    return mtbench.RewardGrader(RewardScorer(registry, name, device=getattr(engine, "device", None)), name)


def answer_models(args, registry: Registry, rows: list[dict], settings: dict) -> tuple[dict, int]:
    """Each --models entry's answers to `rows` (greedy), and how many came from the --answers file."""
    from evals import ifeval

    log = ifeval.AnswerLog(args.answers, {**settings, "base": args.base}) if args.answers else None
    models = [BASE if m == args.base else m for m in args.models]
    known = {(BASE if m == args.base else m, i): t for (m, i), t in log.known(args.models, rows).items()} if log else {}
    engine = backend.from_flags(args, registry, args.base, quantize=not args.no_4bit)
    save = None
    if log:
        append = log.save(rows)
        save = lambda model, i, text: append(args.base if model == BASE else model, i, text)  # noqa: E731
    with tqdm(total=len(rows) * len(models), initial=len(known), desc="answers", file=sys.stderr) as bar:
        answers = ifeval.answer(engine, models, rows, SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0),
                                batch_rows=args.batch_rows, progress=lambda done, total: bar.update(len(known) + done - bar.n),
                                known=known, save=save)
    return answers, len(known)


def run_ifeval(argv: list[str]) -> int:
    """IFEval's verifiable instructions: answers of registry entries, or given responses, checked."""
    from evals import ifeval
    from posttrain import checkers

    parser = argparse.ArgumentParser(prog="evaluate.py ifeval", description=run_ifeval.__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--models", nargs="+", help="registry entries to answer the prompts (the base's name: the plain base)")
    source.add_argument("--responses", help="IFEval-schema rows with a `response` each: check these answers")
    parser.add_argument("--prompts", help="IFEval-schema prompts (key, prompt, instruction_id_list, kwargs) for --models: "
                                          "the project's 175 held-out prompts by default; `ifeval` (or `ifeval:N`): IFEval's "
                                          "own 541 (posttrain.benchmarks), or a path")
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--max-new-tokens", type=int,
                        help=f"default {IFEVAL_541_TOKENS} for IFEval's own set (the Open LLM Leaderboard's length: its "
                             f"'300+ words' prompts fit), 256 for the project's")
    parser.add_argument("--batch-rows", type=int, default=8, help="answers generated per batched call (more: faster on a CPU)")
    parser.add_argument("--no-4bit", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--answers", metavar="FILE", help="append each answer to FILE (JSONL) as its batch ends, and take "
                                                        "the answers already there: a run that stops resumes")
    backend.add_flags(parser)
    args = parser.parse_args(argv)
    if args.max_new_tokens is None:
        args.max_new_tokens = IFEVAL_541_TOKENS if benchmarks.is_named(args.prompts) else 256
    if args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be at least 1")
    if args.batch_rows < 1:
        parser.error("--batch-rows must be at least 1")
    if args.responses and args.prompts:
        parser.error("--prompts goes with --models; --responses rows carry their own prompts (drop one)")
    if args.responses:
        rows = checkers.read_rows(args.responses, responses=True)
        result = ifeval.evaluate(rows, {"responses": [r["response"] for r in rows]})
    else:
        rows = checkers.read_rows(args.prompts or DATA / "ifeval_heldout.jsonl")
        registry = Registry(args.registry)
        if args.generation_backend == "engine":
            check_models(registry, args.base, args.models)
        settings = {"prompts": str(args.prompts or DATA / "ifeval_heldout.jsonl"), "max_new_tokens": args.max_new_tokens,
                    "decoding": "greedy", "shots": 0, "4bit": not args.no_4bit, "backend": args.generation_backend}
        answers, known = answer_models(args, registry, rows, settings)
        result = ifeval.evaluate(rows, {(args.base if m == BASE else m): texts for m, texts in answers.items()})
        result["settings"] = {**settings, **({"answers": args.answers, "resumed_answers": known} if args.answers else {})}
    if args.json:
        print(json.dumps(result))
    else:
        for name, res in result["ifeval"].items():
            ci = res["ci95"]
            print(f"{name}: prompt-level strict {res['prompt_strict']:.3f} [{ci['prompt_strict'][0]:.3f}, "
                  f"{ci['prompt_strict'][1]:.3f}], loose {res['prompt_loose']:.3f} [{ci['prompt_loose'][0]:.3f}, "
                  f"{ci['prompt_loose'][1]:.3f}]; instruction-level strict {res['instruction_strict']:.3f}, loose "
                  f"{res['instruction_loose']:.3f} ({res['n']} prompts, {res['instructions']} instructions); "
                  f"avg_strict {res['avg_strict']:.1f} [{ci['avg_strict'][0]:.1f}, {ci['avg_strict'][1]:.1f}] "
                  f"(the field's figure: mean of prompt- and instruction-level strict, "
                  f"in points" + (f", {result['settings']['max_new_tokens']} new tokens)" if "settings" in result else ")"))
    return 0


def run_benchmarks(argv: list[str]) -> int:
    """The benchmark sets a name stands for (`--prompts ifeval`, `arena-hard:40`, `alpaca-eval:N`), each with its card."""
    parser = argparse.ArgumentParser(prog="evaluate.py benchmarks", description=run_benchmarks.__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sets = {name: {"count": b.count, "source": b.source, "license": b.license, "file": str(benchmarks.path_of(b)),
                   "sha256": benchmarks.sha256_of(name), "held_out": True} for name, b in benchmarks.SETS.items()}
    print(json.dumps(sets) if args.json else "\n".join(b.card() for b in benchmarks.SETS.values()))
    return 0


def run(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "mtbench":
        return run_mtbench(argv[1:])
    if argv and argv[0] == "overoptimization":
        return run_overoptimization(argv[1:])
    if argv and argv[0] == "ifeval":
        return run_ifeval(argv[1:])
    if argv and argv[0] == "benchmarks":
        return run_benchmarks(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="registry entries; the base's name = the plain base")
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--judge", choices=["auto", "reward", "openai", "none"], default="auto")
    parser.add_argument("--reward", help="reward entry for the judge (default: the newest reward entry)")
    parser.add_argument("--prompts", default=str(DATA / "heldout_prompts.jsonl"))
    parser.add_argument("--sft-heldout", default=str(DATA / "sft" / "heldout.jsonl"))
    parser.add_argument("--pairs-heldout", default=str(DATA / "preference" / "heldout.jsonl"))
    parser.add_argument("--general-text", default=str(DATA / "general_text.jsonl"))
    parser.add_argument("--tasks", default=str(DATA / "tasks_heldout.jsonl"))
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-rows", type=int, default=8, help="answers generated per batched call (more: faster on a CPU)")
    parser.add_argument("--no-4bit", action="store_true")
    parser.add_argument("--out", help="report folder (default reports/<models joined by _vs_>)")
    backend.add_flags(parser)
    args = parser.parse_args(argv)
    if args.batch_rows < 1:
        parser.error("--batch-rows must be at least 1")
    registry = Registry(args.registry)
    engine = backend.from_flags(args, registry, args.base, quantize=not args.no_4bit)
    held = evaluation.HeldOut(args.prompts, args.sft_heldout, args.pairs_heldout, args.general_text, args.tasks)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.setdefault(stage, tqdm(total=total, desc=stage, file=sys.stderr))
        bar.total = total
        bar.update(done - bar.n)

    out = evaluation.evaluate(Store(Path(args.data_dir) / "arena.sqlite"), registry, engine, args.base, args.models, held,
                              args.out, args.judge, args.reward, args.max_new_tokens, args.batch_rows, progress)
    for bar in bars.values():
        bar.close()
    print((out / "report.md").read_text())
    print(f"\nreport: {out / 'report.html'}")
    return 0


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
