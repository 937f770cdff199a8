"""GRPO beside DPO, from one SFT parent, on the embedded default (SmolLM2-135M-Instruct):

    parent  SFT on the general instruction set (data/general)
    DPO     on checker-built pairs (scripts/synth.py ifeval: 400 teacher samples, IFEval's checkers)
    GRPO    with IFEval's checkers as the reward, 400 completions generated in all (the same budget),
            the reward model `judge-smollm2` as the gold measure (logged, weight 0)

then IFEval on the 175 held-out prompts, the judged win rate of each child against the parent,
answer length and forgetting; writes reports/grpo_vs_dpo/metrics.json, report.md and the GRPO
round's reward / gold / length curves (curves.html). Idempotent; after `bash scripts/real_base.sh`
(its verified pairs and its judge).

    python scripts/grpo_vs_dpo.py [--out reports/grpo_vs_dpo]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import real_base  # noqa: E402  (its stage runner and timings)
from posttrain.errors import cli  # noqa: E402

BASE, JUDGE = "smollm2-135m-instruct", "judge-smollm2"
PARENT, DPO, GRPO = "smol-sft-general", "smol-dpo-checker", "smol-grpo-ifeval"


def train(registry: str, method_name: str, recipe: str, name: str, *extra: str) -> None:
    from posttrain.registry import Registry

    if name in Registry(registry):
        print(f"\n== {method_name} {name}: in the registry, skipped", file=sys.stderr)
        return
    real_base.step(["scripts/train.py", method_name, "--config", recipe, "--name", name, "--registry", registry,
                    "--output_dir", str(ROOT / "runs" / "grpo_vs_dpo" / name), *extra], f"train {method_name} {name}")


def run_cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "reports" / "grpo_vs_dpo"))
    parser.add_argument("--verified", default=str(ROOT / "runs" / "real_base" / "verified"),
                        help="the checker-built pairs (scripts/real_base.sh makes them)")
    args = parser.parse_args(argv)
    from posttrain.registry import Registry, default_registry_dir

    out, work = Path(args.out), ROOT / "runs" / "grpo_vs_dpo"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    real_base.TIMINGS = work / "timings.json"
    registry = str(default_registry_dir())
    pairs, held = Path(args.verified) / "pairs.jsonl", Path(args.verified) / "pairs_heldout.jsonl"
    if not pairs.is_file() or JUDGE not in Registry(registry):
        raise real_base.StageError(f"{pairs} or the judge {JUDGE!r} is missing; run `bash scripts/real_base.sh` first")

    train(registry, "sft", "posttrain/recipes/sft_default.yaml", PARENT, "--data", "data/general/train.jsonl",
          "--eval_data", "data/general/heldout.jsonl", "--num_train_epochs", "1", "--max_length", "384", "--eval_strategy", "no")
    train(registry, "dpo", "posttrain/recipes/dpo_default.yaml", DPO, "--parent", PARENT, "--data", str(pairs),
          "--eval_data", str(held), "--num_train_epochs", "2", "--eval_strategy", "no")
    train(registry, "grpo", "posttrain/recipes/grpo_default.yaml", GRPO, "--parent", PARENT, "--reward", "ifeval",
          "--gold", f"reward_model:{JUDGE}", "--per_device_train_batch_size", "8", "--max_steps", "50")

    metrics = measure(registry, out, work, held)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    lines = report(metrics)
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


def measure(registry: str, out: Path, work: Path, held: Path) -> dict:
    """IFEval and judged win rates of the parent, DPO and GRPO; GRPO's curves as OUT/curves.html."""
    from posttrain.registry import Registry

    models = [PARENT, DPO, GRPO]
    ifeval_file = work / "ifeval.json"
    if not ifeval_file.is_file():
        ifeval_file.write_text(real_base.step(["scripts/evaluate.py", "ifeval", "--models", *models, "--max-new-tokens", "128",
                                               "--batch-rows", "32", "--json"], "IFEval: parent, DPO, GRPO") + "\n")
    ifeval = json.loads(ifeval_file.read_text())["ifeval"]
    judged_dir = out / "judged"
    if not (judged_dir / "metrics.json").is_file():
        real_base.step(["scripts/evaluate.py", "--models", *models, "--judge", "reward", "--reward", JUDGE,
                        "--sft-heldout", "data/general/heldout.jsonl", "--pairs-heldout", str(held), "--max-new-tokens", "128",
                        "--batch-rows", "32", "--data-dir", str(work / "arena"), "--out", str(judged_dir)],
                       "judged win rates vs the parent, length, forgetting")
    judged = json.loads((judged_dir / "metrics.json").read_text())
    family = {row["model"]: row for row in judged.get("family", [])}
    reg = Registry(registry)
    grpo_card, dpo_card = reg.get(GRPO).card, reg.get(DPO).card
    history = json.loads((reg.get(GRPO).path / "training_log.json").read_text())
    from blindarena import plots

    plots.rl_curves(history, f"{GRPO}: IFEval reward (proxy), {JUDGE} (gold, weight 0), length, KL").write_html(
        out / "curves.html", include_plotlyjs="cdn")
    row = lambda name: {"ifeval_prompt_loose": ifeval[name]["prompt_loose"], "ci95": ifeval[name]["ci95"]["prompt_loose"],
                        "ifeval_prompt_strict": ifeval[name]["prompt_strict"],
                        "win_rate_vs_parent": family.get(name, {}).get("win_rate_vs_parent"),
                        "win_rate_ci": family.get(name, {}).get("win_rate_ci"),
                        "answer_tokens": family.get(name, {}).get("answer_tokens"),
                        "general_perplexity_change": family.get(name, {}).get("general_perplexity_change")}
    timings = json.loads(real_base.TIMINGS.read_text()) if real_base.TIMINGS.is_file() else {}
    metrics = {"parent": {**row(PARENT)}, "dpo": {**row(DPO), "pairs": dpo_card.get("train_rows"),
                                                  "completions_generated": 400},
               "grpo": {**row(GRPO), "steps": grpo_card.get("steps"), "completions_generated": grpo_card.get("steps", 0) * 8,
                        "heldout_reward": grpo_card["metrics"].get("rewards/ifeval/mean"),
                        "parent_heldout_reward": grpo_card["metrics"].get("parent_rewards/ifeval/mean"),
                        "heldout_gold": grpo_card["metrics"].get(f"rewards/reward_model_{JUDGE}/mean"),
                        "parent_heldout_gold": grpo_card["metrics"].get(f"parent_rewards/reward_model_{JUDGE}/mean"),
                        "minutes": round(grpo_card.get("duration_s", 0) / 60, 1)},
               "stage_seconds": timings}
    return metrics


def report(metrics: dict) -> list[str]:
    fmt = real_base.fmt
    lines = ["# GRPO beside DPO from one SFT parent (SmolLM2-135M-Instruct)", "",
             "| model | IFEval loose (95% CI) | strict | judged win rate vs parent | answer tokens | general ppl change |",
             "|---|---|---|---|---|---|"]
    for label, key in ((PARENT, "parent"), (DPO, "dpo"), (GRPO, "grpo")):
        m = metrics[key]
        ci = m["ci95"]
        win = (f"{fmt(m['win_rate_vs_parent'])} [{fmt(m['win_rate_ci'][0])}, {fmt(m['win_rate_ci'][1])}]"
               if m["win_rate_vs_parent"] is not None else "")
        lines.append(f"| `{label}` | {fmt(m['ifeval_prompt_loose'])} [{fmt(ci[0])}, {fmt(ci[1])}] | {fmt(m['ifeval_prompt_strict'])} "
                     f"| {win} | {m['answer_tokens'] or ''} | {m['general_perplexity_change'] if m['general_perplexity_change'] is not None else ''} |")
    g = metrics["grpo"]
    lines += ["", f"GRPO: {g['steps']} steps, {g['completions_generated']} completions, {g['minutes']} min; held-out rollouts: "
              f"IFEval reward {fmt(g['parent_heldout_reward'])} -> {fmt(g['heldout_reward'])}, gold ({JUDGE}) "
              f"{fmt(g['parent_heldout_gold'])} -> {fmt(g['heldout_gold'])}.", ""]
    return lines


if __name__ == "__main__":
    sys.exit(cli(run_cli))
