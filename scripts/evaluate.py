"""Evaluate registry entries side by side and write a report folder.

    python scripts/evaluate.py --models BASE sft dpo [--judge auto|reward|openai|none] [--reward NAME]
                               [--prompts data/heldout_prompts.jsonl] [--max-new-tokens 64] [--out reports/NAME]

    python scripts/evaluate.py mtbench --models A B ... [--questions FILE] [--judge openai|reward] [--json]
    python scripts/evaluate.py overoptimization --policy NAME --proxy REWARD --gold JUDGE [--n 1 2 4 8 16] [--json]
    python scripts/evaluate.py ifeval --models A B ... [--prompts data/ifeval_heldout.jsonl] [--max-new-tokens 256] [--json]
    python scripts/evaluate.py ifeval --responses FILE [--json]    (IFEval's input_data.jsonl rows plus `response`)

Metrics on held-out data (domain and general-text perplexity, preference accuracy, task
accuracy); then each model answers the held-out prompts once (a campaign in the arena store)
and a judge (our reward model, or an OpenAI-compatible endpoint from JUDGE_BASE_URL /
JUDGE_API_KEY / JUDGE_MODEL) compares every pair in both orders. Writes metrics.json,
report.md and report.html; the app's Results tab lists the reports."""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from evals import arena, metrics, report
from evals.judge import OpenAIJudge, RewardJudge, judge_campaign
from evals.store import Store, default_data_dir
from posttrain.data import read_jsonl
from posttrain import backend
from posttrain.engine import BASE, Engine, SamplingParams
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, RegistryError, check_models, default_registry_dir, folder_hash
from posttrain.reward import RewardScorer, pairwise_accuracy
from posttrain.errors import cli

DATA = Path(__file__).resolve().parents[1] / "data"


def entry_hash(registry: Registry, name: str) -> str:
    entry = registry.get(name)
    if entry.is_adapter:
        return folder_hash(entry.path, ("adapter_config.json", "*.safetensors"))
    return entry.card.get("base_hash") or folder_hash(entry.path)


def reward_vs_length(scorer, answers: list[dict]) -> dict:
    """The reward model's score of every stored answer against its length (a length-hacking check)."""
    from evals.overoptimization import pearson

    by_prompt: dict[str, list[dict]] = {}
    for answer in answers:
        by_prompt.setdefault(answer["prompt"], []).append(answer)
    points = []
    for prompt, group in by_prompt.items():
        for answer, score in zip(group, scorer.score(prompt, [a["text"] for a in group])):
            points.append((answer["new_tokens"], round(score, 4)))
    return {"correlation": pearson([p[0] for p in points], [p[1] for p in points]), "points": points}


def family_rows(registry: Registry, engine, shown: list[str], summary: dict, answers: list[dict], pairs: list[dict],
                names: dict) -> list[dict]:
    """One row per evaluated entry whose parent is evaluated too (DPO, IPO, KTO, ORPO, SimPO children
    of one SFT parent, say): held-out preference accuracy, implicit reward margin over the parent,
    mean answer length, forgetting (general-text perplexity minus the parent's), judged win rate
    against the parent."""
    rows = []
    for model in shown:
        entry = registry.get(model)
        parent = entry.card.get("parent")
        if not entry.is_adapter or parent not in shown:
            continue
        mine, theirs = summary["metrics"].get(model, {}), summary["metrics"].get(parent, {})
        lengths = [a["new_tokens"] for a in answers if names.get(a["model"], a["model"]) == model]
        versus = next((w for w in summary["win_rates"] if {w["model"], w["opponent"]} == {model, parent}), None)
        if versus is not None and versus["model"] != model:  # the row is the parent's: flip it
            versus = {**versus, "win_rate": 1 - versus["win_rate"], "ci_low": 1 - versus["ci_high"],
                      "ci_high": 1 - versus["ci_low"], "wins": versus["losses"], "losses": versus["wins"]}
        margin = metrics.implicit_reward_margin(engine, model, parent, pairs) if isinstance(engine, Engine) else None
        rows.append({
            "model": model, "method": entry.method, "parent": parent,
            "preference_accuracy": mine.get("preference_accuracy"), "reward_margin": margin,
            "answer_tokens": round(sum(lengths) / len(lengths), 1) if lengths else None,
            "general_perplexity_change": (round(mine["general_perplexity"] - theirs["general_perplexity"], 4)
                                          if "general_perplexity" in mine and "general_perplexity" in theirs else None),
            "win_rate_vs_parent": versus and round(versus["win_rate"], 4),
            "win_rate_ci": versus and [round(versus["ci_low"], 4), round(versus["ci_high"], 4)],
        })
    return rows


def common_flags(parser) -> None:
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--no-4bit", action="store_true")
    parser.add_argument("--json", action="store_true", help="the last line of stdout is the result as JSON")
    backend.add_flags(parser)


def run_mtbench(argv: list[str]) -> int:
    """MT-Bench-lite: each model answers every turn (turn 2 on its own turn 1), graded per turn."""
    from evals import mtbench, plots

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
    from evals import overoptimization, plots
    from evals.mtbench import OpenAIGrader

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
    if args.gold == "openai":
        judge = OpenAIJudge.from_env()
        from posttrain.chat_api import ChatClient

        grader = OpenAIGrader(ChatClient(judge.base_url, judge.api_key, retries=judge.retries), judge.model)
        gold = lambda prompt, texts: grader.grade([({"turns": [prompt], "category": "general", "reference": None}, [t], 0)
                                                   for t in texts])
    else:
        gold_scorer = RewardScorer(registry, args.gold, device=device)
        gold = gold_scorer.score
    prompts = [p["prompt"] for p in arena.load_prompts(args.prompts)][: args.limit]
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    samples = overoptimization.sample(engine, policy, prompts, args.n[-1], params)
    result = overoptimization.curve(prompts, samples, proxy.score, gold, args.n)
    result.update(policy=args.policy, proxy=args.proxy, gold=args.gold, prompts=len(prompts))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overoptimization.json").write_text(json.dumps(result, indent=2))
    plots.overoptimization(result, args.proxy, args.gold).write_html(str(out / "overoptimization.html"), include_plotlyjs=True)
    plots.length_vs_reward(result, args.proxy).write_html(str(out / "length_vs_reward.html"), include_plotlyjs=True)
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


def run_ifeval(argv: list[str]) -> int:
    """IFEval's verifiable instructions: answers of registry entries, or given responses, checked."""
    from evals import ifeval

    parser = argparse.ArgumentParser(prog="evaluate.py ifeval", description=run_ifeval.__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--models", nargs="+", help="registry entries to answer the prompts (the base's name: the plain base)")
    source.add_argument("--responses", help="IFEval-schema rows with a `response` each: check these answers")
    parser.add_argument("--prompts", default=str(DATA / "ifeval_heldout.jsonl"),
                        help="IFEval-schema prompts (key, prompt, instruction_id_list, kwargs): the project's 175 held-out "
                             "prompts by default, or IFEval's own input_data.jsonl (541)")
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-rows", type=int, default=8, help="answers generated per batched call (more: faster on a CPU)")
    parser.add_argument("--no-4bit", action="store_true")
    parser.add_argument("--json", action="store_true")
    backend.add_flags(parser)
    args = parser.parse_args(argv)
    if args.batch_rows < 1:
        parser.error("--batch-rows must be at least 1")
    if args.responses:
        rows = ifeval.read_rows(args.responses)
        result = ifeval.evaluate(rows, {"responses": [r.get("response") or "" for r in rows]})
    else:
        rows = ifeval.read_rows(args.prompts)
        registry = Registry(args.registry)
        if args.generation_backend == "engine":
            check_models(registry, args.base, args.models)
        engine = backend.from_flags(args, registry, args.base, quantize=not args.no_4bit)
        models = [BASE if m == args.base else m for m in args.models]
        with tqdm(total=len(rows) * len(models), desc="answers", file=sys.stderr) as bar:
            answers = ifeval.answer(engine, models, rows, SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0),
                                    batch_rows=args.batch_rows, progress=lambda done, total: bar.update(done - bar.n))
        result = ifeval.evaluate(rows, {(args.base if m == BASE else m): texts for m, texts in answers.items()})
    if args.json:
        print(json.dumps(result))
    else:
        for name, res in result["ifeval"].items():
            ci = res["ci95"]
            print(f"{name}: prompt-level strict {res['prompt_strict']:.3f} [{ci['prompt_strict'][0]:.3f}, "
                  f"{ci['prompt_strict'][1]:.3f}], loose {res['prompt_loose']:.3f} [{ci['prompt_loose'][0]:.3f}, "
                  f"{ci['prompt_loose'][1]:.3f}]; instruction-level strict {res['instruction_strict']:.3f}, loose "
                  f"{res['instruction_loose']:.3f} ({res['n']} prompts, {res['instructions']} instructions)")
    return 0


def run(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "mtbench":
        return run_mtbench(argv[1:])
    if argv and argv[0] == "overoptimization":
        return run_overoptimization(argv[1:])
    if argv and argv[0] == "ifeval":
        return run_ifeval(argv[1:])
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
    models = [BASE if m == args.base else m for m in args.models]
    for model in models:
        engine.ensure_model(model)
    names = {BASE: args.base}
    sft_heldout = read_jsonl(args.sft_heldout)
    pairs = read_jsonl(args.pairs_heldout)
    general = [r["text"] for r in read_jsonl(args.general_text)]
    tasks = read_jsonl(args.tasks)
    measured = {}
    for model in tqdm(models, desc="metrics", file=sys.stderr):
        if not isinstance(engine, Engine):  # a server returns text, not teacher-forced likelihoods
            measured[names.get(model, model)] = {}
            continue
        measured[names.get(model, model)] = metrics.measure(engine, model, sft_heldout, general, pairs, tasks)

    reward_entry = args.reward or getattr(registry.newest("reward"), "name", None)
    judge, reward = None, None
    if args.judge in ("auto", "reward") and reward_entry:
        device = getattr(engine, "device", None)  # on a GPU: beside the engine, 4-bit too
        scorer = RewardScorer(registry, reward_entry, device=device,
                              quantize=engine.quantization == "nf4" and device is not None and device.type == "cuda")
        judge = RewardJudge(scorer, name=reward_entry)
        reward = {"name": reward_entry, "preference_accuracy": round(pairwise_accuracy(scorer.model, scorer.tokenizer, pairs), 4)}
    elif args.judge == "openai" or (args.judge == "auto" and os.environ.get("JUDGE_BASE_URL")):
        judge = OpenAIJudge.from_env()
    elif args.judge == "reward":
        print("error: no reward entry in the registry; train one: scripts/train.py reward", file=sys.stderr)
        return 2

    store = Store(Path(args.data_dir) / "arena.sqlite")
    prompts = arena.load_prompts(args.prompts)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0)
    # Stored answers are reused only for the very same weights: a retrained entry of the same
    # name has other hashes, so it gets a campaign of its own.
    hashes = [entry_hash(registry, args.base if m == BASE else m) for m in models]
    key = hashlib.sha1(json.dumps([models, hashes, args.prompts, args.max_new_tokens]).encode()).hexdigest()[:10]
    campaign = f"eval-{key}"
    with tqdm(total=len(prompts) * len(models), desc="answers", file=sys.stderr) as bar:
        update = lambda done, total: bar.update(done - bar.n)
        if campaign in {c["name"] for c in store.campaigns()}:
            arena.generate_missing(store, engine, campaign, batch_rows=args.batch_rows, progress=update)
        else:
            arena.create_campaign(store, engine, campaign, models, prompts, params, source=args.prompts,
                                  batch_rows=args.batch_rows, progress=update)
    if judge is not None:
        with tqdm(desc=f"judge {judge.name}", file=sys.stderr) as bar:
            judge_campaign(store, campaign, judge, progress=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)))
    votes = [{**v, "model_a": names.get(v["model_a"], v["model_a"]), "model_b": names.get(v["model_b"], v["model_b"])}
             for v in store.votes(campaign)]
    shown = [names.get(m, m) for m in models]
    summary = report.summarise(shown, measured, votes, reward)
    summary["campaign"] = campaign
    answers = store.answers(campaign)
    summary["family"] = family_rows(registry, engine, shown, summary, answers, pairs, names)
    if isinstance(judge, RewardJudge):
        summary["reward_vs_length"] = reward_vs_length(judge.scorer, answers)
    samples = []
    for prompt in [p["prompt"] for p in prompts[:: max(1, len(prompts) // 4)]][:4]:
        samples.append({"prompt": prompt, "answers": {names.get(a["model"], a["model"]): a["text"]
                                                      for a in answers if a["prompt"] == prompt}})
    out = report.write(args.out or Path("reports") / "_vs_".join(shown), summary, samples)
    print((out / "report.md").read_text())
    print(f"\nreport: {out / 'report.html'}")
    return 0


def main(argv=None) -> int:
    return cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
