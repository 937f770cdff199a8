"""The seed's lifts on a real pretrained base, one command: `bash scripts/real_base.sh`.

Gemma 3 270M (the pretrained model, from PyPI) -> the project's data (general set + verified rows by
rejection sampling with the IFEval checkers) -> SFT, SFT on the general set alone, a reward model
(the judge), DPO on verified pairs -> IFEval on the held-out set, judged win rates on the 50
held-out prompts, held-out perplexity, preference accuracy -> a checker-voted campaign, its pairs,
a next round, the child's IFEval (what the votes bought). Writes OUT/metrics.json and OUT/report.md.

Idempotent: every stage skips what exists (registry entries, files), so a rerun after a stop goes
on where it stopped. Each stage is one of the project's own commands (printed before it runs).

    python scripts/real_base.py [--out reports/real_base] [--work runs/real_base] [--quick]

--quick: a smoke run of every stage in minutes (few prompts, 2 training steps) into
runs/real_base_quick; its numbers mean nothing."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posttrain.errors import WorkbenchError, cli  # noqa: E402

BASE, TEACHER, JUDGE = "gemma-3-270m", "smollm2-135m-instruct", "judge-smollm2"
SFT, SFT_GENERAL, DPO, CHILD = "gemma-sft", "gemma-sft-general", "gemma-dpo", "gemma-dpo-loop"
LOOP_CAMPAIGN = "checker-loop"


class StageError(WorkbenchError):
    pass


TIMINGS: Path | None = None  # WORK/timings.json: each stage's last wall time, so a rerun's report keeps the total


def step(args: list[str], what: str) -> str:
    """Run one of the project's commands (stdout captured, stderr passed through); the last line
    of stdout is returned (the commands' --json result)."""
    print(f"\n== {what}\n   $ python {' '.join(args)}", file=sys.stderr, flush=True)
    started = time.time()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise StageError(f"stage '{what}' failed (exit {done.returncode}); rerun scripts/real_base.sh to go on from it")
    record(what, time.time() - started)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def record(what: str, seconds: float) -> None:
    if TIMINGS is None:
        return
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.is_file() else {}
    timings[what] = round(seconds, 1)
    TIMINGS.write_text(json.dumps(timings, indent=2) + "\n")


class Run:
    def __init__(self, work: Path, out: Path, quick: bool):
        self.work, self.out, self.quick = work, out, quick
        self.registry = str(work / "registry") if quick else str(ROOT / "registry")
        self.arena = str(work / "arena")
        self.work.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)

    def reg(self) -> list[str]:
        return ["--registry", self.registry]

    def has(self, name: str) -> bool:
        from posttrain.registry import Registry

        return name in Registry(self.registry)

    def card(self, name: str) -> dict:
        from posttrain.registry import Registry

        return Registry(self.registry).get(name).card

    def limited(self, path: str, n: int, name: str) -> str:
        """The first n rows of a JSONL file in quick mode (the file itself otherwise)."""
        if not self.quick:
            return path
        lines = [l for l in (ROOT / path).read_text(encoding="utf-8").splitlines() if l.strip()][:n]
        target = self.work / name
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(target)

    def train(self, kind: str, recipe: str, name: str, *extra: str) -> None:
        if self.has(name):
            print(f"\n== {kind} {name}: in the registry, skipped", file=sys.stderr)
            return
        quick = ["--max_steps", "2"] if self.quick else []
        step(["scripts/train.py", kind, "--config", recipe, "--name", name, *self.reg(),
              "--output_dir", str(self.work / "runs" / name), *quick, *extra], f"train {kind} {name}")


def every_other(path: str, work: Path) -> str:
    """One prompt per instruction type of the loop file (25 of 50): a campaign of 75 battles."""
    lines = [l for l in (ROOT / path).read_text(encoding="utf-8").splitlines() if l.strip()][::2]
    target = work / Path(path).name
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(target)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def run_all(run: Run) -> dict:
    from evals import verified
    from posttrain.data import read_jsonl

    w = run.work
    step(["scripts/registry.py", *run.reg(), "import-default"], "import the teacher and judge base (SmolLM2-135M-Instruct)")
    step(["scripts/registry.py", *run.reg(), "import-default", "--model", BASE], "import the real base (Gemma 3 270M)")

    # Data: verified rows by rejection sampling; the SFT mix; the judge's pairs.
    train_prompts = run.limited("data/ifeval_train.jsonl", 25, "ifeval_train.jsonl")
    built = json.loads(step(["scripts/synth.py", "ifeval", "--prompts", train_prompts, "--teacher", TEACHER,
                             "--samples", "2", "--temperature", "0.7", "--batch", "32", "--out", str(w / "verified"),
                             *run.reg(), "--base", TEACHER, "--json"], "verified data (teacher samples, IFEval checkers)"))
    general = read_jsonl(ROOT / "data" / "general" / "train.jsonl")
    verified_sft = read_jsonl(w / "verified" / "sft.jsonl")
    write_jsonl(w / "sft_mix.jsonl", [{"messages": r["messages"]} for r in general + verified_sft])
    pairs, pairs_held = read_jsonl(w / "verified" / "pairs.jsonl"), read_jsonl(w / "verified" / "pairs_heldout.jsonl")
    general_held = read_jsonl(ROOT / "data" / "general" / "heldout.jsonl")
    write_jsonl(w / "judge_pairs.jsonl", verified.contrast_pairs(general, seed=0) + pairs)
    write_jsonl(w / "judge_pairs_heldout.jsonl", verified.contrast_pairs(general_held, seed=1) + pairs_held)

    # Training.
    general_file = run.limited("data/general/train.jsonl", 40, "general_train.jsonl")
    run.train("sft", "posttrain/recipes/sft_gemma3_270m.yaml", SFT, "--data", str(w / "sft_mix.jsonl"))
    run.train("sft", "posttrain/recipes/sft_gemma3_270m.yaml", SFT_GENERAL, "--data", general_file)
    run.train("reward", "posttrain/recipes/reward_default.yaml", JUDGE, "--base", TEACHER, "--data", str(w / "judge_pairs.jsonl"),
              "--eval_data", str(w / "judge_pairs_heldout.jsonl"))
    run.train("dpo", "posttrain/recipes/dpo_gemma3_270m.yaml", DPO, "--parent", SFT, "--data", str(w / "verified" / "pairs.jsonl"),
              "--eval_data", str(w / "verified" / "pairs_heldout.jsonl"))

    # IFEval on the held-out set (the base is prompted with its children's template).
    heldout = run.limited("data/ifeval_heldout.jsonl", 12, "ifeval_heldout.jsonl")
    ifeval_file = w / "ifeval.json"
    models = [BASE, SFT, SFT_GENERAL, DPO]
    if not ifeval_file.is_file():
        line = step(["scripts/evaluate.py", "ifeval", "--base", BASE, "--models", *models, "--prompts", heldout,
                     "--max-new-tokens", "64" if run.quick else "128", "--batch-rows", "32", *run.reg(), "--json"],
                    "IFEval: base, SFT, SFT (general only), DPO")
        ifeval_file.write_text(line + "\n")
    ifeval = json.loads(ifeval_file.read_text())["ifeval"]

    # Judged win rates, perplexity and preference accuracy on the held-out sets.
    judged_dir = run.out / "judged"
    if not (judged_dir / "metrics.json").is_file():
        step(["scripts/evaluate.py", "--base", BASE, "--models", BASE, SFT, DPO, "--judge", "reward", "--reward", JUDGE,
              "--prompts", run.limited("data/heldout_prompts.jsonl", 6, "heldout_prompts.jsonl"),
              "--sft-heldout", "data/general/heldout.jsonl", "--pairs-heldout", str(w / "verified" / "pairs_heldout.jsonl"),
              "--max-new-tokens", "48" if run.quick else "128", "--batch-rows", "32", "--data-dir", run.arena, "--out", str(judged_dir), *run.reg()],
             "judged win rates (reward-model judge, both orders), perplexity, preference accuracy")
    judged = json.loads((judged_dir / "metrics.json").read_text())

    loop = closed_loop(run, ifeval)
    timings = json.loads(TIMINGS.read_text()) if TIMINGS and TIMINGS.is_file() else {}
    summary = summarise(run, built, ifeval, judged, loop, minutes=sum(timings.values()) / 60)
    summary["stage_seconds"] = timings
    return summary


def closed_loop(run: Run, ifeval: dict) -> dict:
    """A campaign of base vs SFT vs DPO on training-side IFEval prompts, voted by checker raters
    through the real store; its pairs -> a next round on DPO -> the child's IFEval."""
    from evals import ifeval as checks, simulate
    from evals.store import Store

    w = run.work
    loop_file = run.limited("data/ifeval_loop.jsonl", 8, "ifeval_loop.jsonl") if run.quick else every_other("data/ifeval_loop.jsonl", w)
    store_path = Path(run.arena) / "arena.sqlite"
    if not store_path.is_file() or LOOP_CAMPAIGN not in {c.name for c in Store(store_path).campaigns()}:
        step(["scripts/arena.py", "--data-dir", run.arena, "--base", BASE, *run.reg(), "campaign", "create", LOOP_CAMPAIGN,
              "--models", BASE, SFT, DPO, "--prompts", loop_file, "--max-new-tokens", "64" if run.quick else "128",
              "--votes-per-minute", "100000", "--gold-rate", "0"], "closed loop: a campaign of base, SFT and DPO")
    store = Store(store_path)
    votes = len(store.votes(LOOP_CAMPAIGN))
    if not votes:
        print(f"\n== closed loop: checker raters vote on {LOOP_CAMPAIGN}", file=sys.stderr)
        started = time.time()
        simulate.checker_raters(store, LOOP_CAMPAIGN, checks.read_rows(ROOT / loop_file), raters=4,
                                per_rater=5 if run.quick else 25, seed=0)
        record("closed loop: checker raters vote", time.time() - started)
        votes = len(store.votes(LOOP_CAMPAIGN))
    if not run.has(CHILD):
        next_prompts = w / "next_prompts.jsonl"
        next_prompts.write_text("".join(l + "\n" for l in (ROOT / "data" / "heldout_prompts.jsonl").read_text().splitlines()[:4]))
        step(["scripts/arena.py", "--data-dir", run.arena, "--base", BASE, *run.reg(), "next-round", LOOP_CAMPAIGN,
              "--parent", DPO, "--name", CHILD, "--prompts", str(next_prompts), "--json", "--recipe",
              "posttrain/recipes/dpo_gemma3_270m.yaml", "--max-steps", "2" if run.quick else "6"],
             "closed loop: pairs -> DPO round -> child")
    child_file = w / "ifeval_child.json"
    if not child_file.is_file():
        line = step(["scripts/evaluate.py", "ifeval", "--base", BASE, "--models", CHILD,
                     "--prompts", run.limited("data/ifeval_heldout.jsonl", 12, "ifeval_heldout.jsonl"),
                     "--max-new-tokens", "64" if run.quick else "128", "--batch-rows", "32", *run.reg(), "--json"],
                    "IFEval of the loop's child")
        child_file.write_text(line + "\n")
    child = json.loads(child_file.read_text())["ifeval"][CHILD]
    parent = ifeval[DPO]
    gain = child["prompt_loose"] - parent["prompt_loose"]
    return {"campaign": LOOP_CAMPAIGN, "votes": votes, "pairs": run.card(CHILD).get("pairs"),
            "child": CHILD, "parent": DPO, "child_prompt_loose": child["prompt_loose"], "child_ci95": child["ci95"]["prompt_loose"],
            "parent_prompt_loose": parent["prompt_loose"], "gain": round(gain, 4),
            "gain_per_100_votes": round(100 * gain / votes, 4) if votes else None}


def win_rate(judged: dict, model: str, opponent: str) -> dict | None:
    for w in judged.get("win_rates", []):
        if (w["model"], w["opponent"]) == (model, opponent):
            return {"win_rate": round(w["win_rate"], 4), "ci95": [round(w["ci_low"], 4), round(w["ci_high"], 4)],
                    "wins": w["wins"], "losses": w["losses"], "ties": w.get("ties")}
        if (w["model"], w["opponent"]) == (opponent, model):
            return {"win_rate": round(1 - w["win_rate"], 4), "ci95": [round(1 - w["ci_high"], 4), round(1 - w["ci_low"], 4)],
                    "wins": w["losses"], "losses": w["wins"], "ties": w.get("ties")}
    return None


def summarise(run: Run, built: dict, ifeval: dict, judged: dict, loop: dict, minutes: float) -> dict:
    measured = judged.get("metrics", {})
    entry = lambda name: {"prompt_loose": ifeval[name]["prompt_loose"], "prompt_strict": ifeval[name]["prompt_strict"],
                          "ci95": ifeval[name]["ci95"]["prompt_loose"], "instruction_loose": ifeval[name]["instruction_loose"],
                          "n": ifeval[name]["n"], "prompt_loose_no_echo": ifeval[name].get("prompt_loose_no_echo"),
                          "ci95_no_echo": ifeval[name]["ci95"].get("prompt_loose_no_echo"), "echoed": ifeval[name].get("echoed")}
    sft_card, dpo_card = run.card(SFT), run.card(DPO)
    return {
        "date": time.strftime("%Y-%m-%d"), "quick": run.quick, "base": BASE, "hub_id": "google/gemma-3-270m",
        "ifeval": {"base": entry(BASE), "sft": entry(SFT), "sft_general_only": entry(SFT_GENERAL), "dpo": entry(DPO)},
        "win_rate": {"sft_vs_base": win_rate(judged, SFT, BASE), "dpo_vs_sft": win_rate(judged, DPO, SFT),
                     "judge": JUDGE, "prompts": "data/heldout_prompts.jsonl"},
        "perplexity": {"base": measured.get(BASE, {}).get("domain_perplexity"),
                       "sft": measured.get(SFT, {}).get("domain_perplexity"), "set": "data/general/heldout.jsonl"},
        "preference_accuracy": {"dpo": dpo_card.get("metrics", {}).get("preference_accuracy"),
                                "sft": measured.get(SFT, {}).get("preference_accuracy"),
                                "pairs": "verified pairs_heldout.jsonl"},
        "synthetic_lift": {"sft_with_verified": ifeval[SFT]["prompt_loose"], "sft_general_only": ifeval[SFT_GENERAL]["prompt_loose"],
                           "lift": round(ifeval[SFT]["prompt_loose"] - ifeval[SFT_GENERAL]["prompt_loose"], 4)},
        "adapter": {"trainable_parameters": sft_card.get("trainable_parameters"), "parameters": run.card(BASE).get("parameters"),
                    "adapter_weights_bytes": weights_bytes(run, SFT), "adapter_folder_bytes": sft_card.get("adapter_size_bytes")},
        "data": {k: built[k] for k in ("prompts", "samples", "sft_rows", "pairs", "pairs_heldout", "pass_rate",
                                       "contaminated_prompts", "other_files")},
        "closed_loop": loop, "minutes": round(minutes, 1),
    }


def weights_bytes(run: Run, name: str) -> int:
    """The adapter's weights alone (its folder also holds the tokenizer: 33 MB of Gemma's vocabulary)."""
    from posttrain.registry import Registry

    return sum(p.stat().st_size for p in Registry(run.registry).get(name).path.glob("*.safetensors"))


def fmt(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown(m: dict) -> str:
    ci = lambda pair: f"[{fmt(pair[0])}, {fmt(pair[1])}]"
    lines = [f"# The seed's lifts on a real base: Gemma 3 270M ({m['date']}{', QUICK smoke run' if m['quick'] else ''})", "",
             "| measure | base | SFT | DPO | target |", "|---|---|---|---|---|",
             "| IFEval prompt-level loose (95% CI) | " + " | ".join(
                 f"{fmt(m['ifeval'][k]['prompt_loose'])} {ci(m['ifeval'][k]['ci95'])}" for k in ("base", "sft", "dpo"))
             + " | SFT >= base + 0.15, DPO > SFT |",
             "| IFEval prompt-level strict | " + " | ".join(fmt(m["ifeval"][k]["prompt_strict"]) for k in ("base", "sft", "dpo")) + " | |",
             "| IFEval loose, an answer that echoes its prompt counted as failing | " + " | ".join(
                 f"{fmt(m['ifeval'][k].get('prompt_loose_no_echo'))} ({m['ifeval'][k].get('echoed')} echoed)"
                 for k in ("base", "sft", "dpo")) + " | |",
             f"| held-out perplexity (general set) | {fmt(m['perplexity']['base'], 2)} | {fmt(m['perplexity']['sft'], 2)} | | SFT below base |",
             f"| preference accuracy (held-out verified pairs) | | {fmt(m['preference_accuracy']['sft'])} | "
             f"{fmt(m['preference_accuracy']['dpo'])} | DPO > 0.6 |", ""]
    for key, label in (("sft_vs_base", "SFT vs base"), ("dpo_vs_sft", "DPO vs SFT")):
        w = m["win_rate"][key]
        lines.append(f"- judged win rate {label}: " + (f"**{fmt(w['win_rate'])}** {ci(w['ci95'])} ({w['wins']}-{w['losses']}"
                                                         f"-{w['ties']}, both orders, ties half)" if w else "n/a"))
    s, loop, a = m["synthetic_lift"], m["closed_loop"], m["adapter"]
    lines += [f"  (judge: reward model `{m['win_rate']['judge']}` on `{m['win_rate']['prompts']}`, each pair in both orders; "
              "target SFT vs base > 0.6)",
              f"- synthetic data: SFT on general + verified rows {fmt(s['sft_with_verified'])} vs general only "
              f"{fmt(s['sft_general_only'])} IFEval loose: lift {s['lift']:+.3f}",
              f"- closed loop: {loop['votes']} checker-rater votes -> {loop['pairs']} pairs -> `{loop['child']}`: IFEval loose "
              f"{fmt(loop['child_prompt_loose'])} vs parent {fmt(loop['parent_prompt_loose'])} "
              f"({loop['gain']:+.3f}; {fmt(loop['gain_per_100_votes'], 4)} per 100 votes)",
              f"- adapter: {a['trainable_parameters']:,} trainable of {a['parameters']:,} parameters "
              f"({100 * a['trainable_parameters'] / a['parameters']:.2f}%); weights {a['adapter_weights_bytes'] / 1e6:.1f} MB "
              f"(the folder with its tokenizer {a['adapter_folder_bytes'] / 1e6:.1f} MB)",
              f"- data: {m['data']['sft_rows']} verified SFT rows and {m['data']['pairs']} pairs from {m['data']['samples']} "
              f"teacher samples (pass rate {m['data']['pass_rate']}), {m['data']['contaminated_prompts']} contaminated prompts",
              f"- wall time: {m['minutes']} minutes", ""]
    return "\n".join(lines)


def run_cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every stage (numbers mean nothing)")
    parser.add_argument("--work", help="working folder (default runs/real_base, or runs/real_base_quick)")
    parser.add_argument("--out", help="report folder (default reports/real_base, or WORK/report with --quick)")
    args = parser.parse_args(argv)
    work = Path(args.work or (ROOT / "runs" / ("real_base_quick" if args.quick else "real_base")))
    out = Path(args.out or (work / "report" if args.quick else ROOT / "reports" / "real_base"))
    run = Run(work, out, args.quick)
    global TIMINGS
    TIMINGS = work / "timings.json"
    metrics = run_all(run)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "report.md").write_text(markdown(metrics))
    print(markdown(metrics))
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli(run_cli))
