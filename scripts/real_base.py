"""The seed's lifts on a real pretrained base, one command: `bash scripts/real_base.sh`.

Gemma 3 270M (the pretrained model, from PyPI) -> the training data (the general set, real ShareGPT
conversations, verifiable rewrites of both) -> SFT (and SFT without the rewrites), a reward model
(the judge), DPO on on-policy pairs (the SFT model's own answers, picked by the IFEval checkers) ->
IFEval on the held-out set, judged win rates on 50 held-out real prompts, held-out perplexity
(general set and real ShareGPT answers), preference accuracy -> the closed loop: rounds of 100
checker-rater votes through the real store, a DPO round and IFEval after each (the curve), the
gain with a paired bootstrap interval. Writes OUT/metrics.json, OUT/report.md, OUT/loop_curve.svg.

Idempotent: every stage skips what exists (registry entries, files), so a rerun after a stop goes
on where it stopped. Each stage is one of the project's own commands (printed before it runs).

    python scripts/real_base.py [--out reports/real_base] [--work runs/real_base] [--quick] [--loop-rounds 4]

--quick: a smoke run of every stage in minutes (few prompts, 2 training steps) into
runs/real_base_quick; its numbers mean nothing."""

from __future__ import annotations

import argparse
import json
import shutil
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
BATCH = 64  # rows per generation batch: a shrinking batch of 64 Gemma rows needs ~2.4 GB; 32 took ~10% longer


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
    def __init__(self, work: Path, out: Path, quick: bool, loop_rounds: int = 4):
        self.work, self.out, self.quick, self.loop_rounds = work, out, quick, loop_rounds
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

    def train(self, method_name: str, recipe: str, name: str, *extra: str) -> None:
        if self.has(name):
            print(f"\n== {method_name} {name}: in the registry, skipped", file=sys.stderr)
            return
        quick = ["--max_steps", "2"] if self.quick else []
        step(["scripts/train.py", method_name, "--config", recipe, "--name", name, *self.reg(),
              "--output_dir", str(self.work / "runs" / name), *quick, *extra], f"train {method_name} {name}")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


SHAREGPT_ROWS, SHAREGPT_TOKENS = 60, 256  # real conversations in the SFT mix (the CPU's budget: ~50k tokens per SFT run)
LOOP_ROUNDS, LOOP_VOTES = 4, 100  # the closed loop: rounds of 100 checker votes, a DPO round after each


def as_chat(pair: dict) -> dict:
    """A rewrite pair (prompt, chosen, rejected as text) in TRL's conversational form."""
    return {"prompt": [{"role": "user", "content": pair["prompt"]}], "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}]}


def build_data(run: Run) -> dict:
    """Real conversations (ShareGPT), verifiable rewrites of them and of the general set, the SFT
    mixes (with and without the rewrites: lab 3's comparison) and the judge's pairs."""
    from posttrain.synth import verified
    from posttrain.data import read_jsonl

    w = run.work
    if not (w / "sharegpt" / "train.jsonl").is_file():
        step(["scripts/data.py", "sharegpt", "--out", str(w / "sharegpt"), "--max-rows", "8" if run.quick else str(SHAREGPT_ROWS),
              "--max-tokens", str(SHAREGPT_TOKENS)], "real conversations (ShareGPT, filtered, 50 real prompts held out)")
    general = read_jsonl(ROOT / run.limited("data/general/train.jsonl", 24, "general_train.jsonl"))
    sharegpt = read_jsonl(w / "sharegpt" / "train.jsonl")
    write_jsonl(w / "conversations.jsonl", [{"messages": r["messages"]} for r in general + sharegpt])
    if not (w / "rewrites" / "summary.json").is_file():  # the general set's short answers (ShareGPT's cost 3x the tokens)
        step(["scripts/synth.py", "rewrite", "--data", run.limited("data/general/train.jsonl", 24, "general_train.jsonl"),
              "--out", str(w / "rewrites"),
              "--per-row", "1", "--json"], "verifiable rewrites (IFEval constraints met by construction or relabeling)")
    rewrites = read_jsonl(w / "rewrites" / "sft.jsonl")
    write_jsonl(w / "sft_mix.jsonl", [{"messages": r["messages"]} for r in general + sharegpt + rewrites])
    general_held = read_jsonl(ROOT / "data" / "general" / "heldout.jsonl")
    rewrite_pairs = read_jsonl(w / "rewrites" / "pairs.jsonl")
    write_jsonl(w / "judge_pairs.jsonl", verified.contrast_pairs(general, seed=0) + [as_chat(p) for p in rewrite_pairs[:150]])
    write_jsonl(w / "judge_pairs_heldout.jsonl", verified.contrast_pairs(general_held, seed=1) +
                [as_chat(p) for p in read_jsonl(w / "rewrites" / "pairs_heldout.jsonl")])
    summary = json.loads((w / "rewrites" / "summary.json").read_text())
    card = json.loads((w / "sharegpt" / "card.json").read_text())
    return {"sharegpt": card["kept"], "sharegpt_dropped": card["dropped"], "general_rows": len(general),
            "rewrite_rows": summary["sft_rows"], "rewrite_pairs": summary["pairs"], "rewrite_pairs_heldout": summary["pairs_heldout"],
            "sft_rows": len(general) + len(sharegpt) + len(rewrites)}


def run_all(run: Run) -> dict:
    from posttrain.data import read_jsonl

    w = run.work
    step(["scripts/registry.py", *run.reg(), "import-default"], "import the teacher and judge base (SmolLM2-135M-Instruct)")
    step(["scripts/registry.py", *run.reg(), "import-default", "--model", BASE], "import the real base (Gemma 3 270M)")
    data = build_data(run)

    # Training: SFT on the mix (and without the rewrites), the judge, DPO on the SFT model's own pairs.
    run.train("sft", "posttrain/recipes/sft_gemma3_270m.yaml", SFT, "--data", str(w / "sft_mix.jsonl"))
    run.train("sft", "posttrain/recipes/sft_gemma3_270m.yaml", SFT_GENERAL, "--data", str(w / "conversations.jsonl"))
    run.train("reward", "posttrain/recipes/reward_default.yaml", JUDGE, "--base", TEACHER, "--data", str(w / "judge_pairs.jsonl"),
              "--eval_data", str(w / "judge_pairs_heldout.jsonl"), *([] if run.quick else ["--max_steps", "40"]))
    train_prompts = run.limited("data/ifeval_train.jsonl", 8, "ifeval_train.jsonl")
    if not (w / "onpolicy" / "summary.json").is_file():
        step(["scripts/synth.py", "onpolicy", "--model", SFT, "--prompts", train_prompts, "--samples", "4", "--max-new-tokens", "48" if run.quick else "128",
              "--batch", str(BATCH), "--temperature", "0.9", "--base", BASE, "--out", str(w / "onpolicy"), *run.reg(), "--json"],
             "on-policy pairs: the SFT model answers its own training prompts 4 times, the checkers pick")
    onpolicy_pairs = [json.loads(l) for l in (w / "onpolicy" / "pairs.jsonl").read_text().splitlines() if l.strip()]
    if not onpolicy_pairs:  # (--quick's 48-token answers are mostly cut off, and a cut answer is never chosen)
        print("\n== no on-policy pair (no prompt had a finished passing answer and a failing one): DPO trains on the "
              "rewrite pairs", file=sys.stderr)
        onpolicy_pairs = [as_chat(p) for p in read_jsonl(w / "rewrites" / "pairs.jsonl")]
    write_jsonl(w / "dpo_pairs.jsonl", onpolicy_pairs)
    run.train("dpo", "posttrain/recipes/dpo_gemma3_270m.yaml", DPO, "--parent", SFT, "--data", str(w / "dpo_pairs.jsonl"),
              "--eval_data", str(w / "onpolicy" / "pairs_heldout.jsonl" if onpolicy_pairs_heldout(w) else w / "rewrites" / "pairs_heldout.jsonl"),
              "--num_train_epochs", "2")

    ifeval = ifeval_of(run, [BASE, SFT, SFT_GENERAL, DPO], "IFEval: base, SFT, SFT (without rewrites), DPO")

    # Judged win rates on the 50 held-out real prompts, perplexity, preference accuracy.
    # Made in WORK (a fresh clone carries the last published report in OUT, which must not stand
    # in for this run's), then published to OUT/judged beside metrics.json.
    judged_dir = run.work / "judged"
    if not (judged_dir / "metrics.json").is_file():
        step(["scripts/evaluate.py", "--base", BASE, "--models", BASE, SFT, DPO, "--judge", "reward", "--reward", JUDGE,
              "--prompts", run.limited(str(w / "sharegpt" / "real_prompts.jsonl"), 6, "real_prompts.jsonl"),
              "--sft-heldout", "data/general/heldout.jsonl", "--pairs-heldout", str(w / "rewrites" / "pairs_heldout.jsonl"),
              "--max-new-tokens", "48" if run.quick else "128", "--batch-rows", str(BATCH), "--data-dir", run.arena, "--out", str(judged_dir), *run.reg()],
             "judged win rates on the 50 real prompts (reward-model judge, both orders), perplexity, preference accuracy")
    judged = json.loads((judged_dir / "metrics.json").read_text())
    shutil.copytree(judged_dir, run.out / "judged", dirs_exist_ok=True)
    real_perplexity = perplexity_on(run, w / "sharegpt" / "heldout.jsonl")

    loop = closed_loop(run, ifeval)
    timings = json.loads(TIMINGS.read_text()) if TIMINGS and TIMINGS.is_file() else {}
    summary = summarise(run, data, ifeval, judged, loop, minutes=sum(timings.values()) / 60)
    summary["perplexity"].update(real_perplexity)
    summary["stage_seconds"] = timings
    return summary


def onpolicy_pairs_heldout(work: Path) -> bool:
    path = work / "onpolicy" / "pairs_heldout.jsonl"
    return path.is_file() and bool(path.read_text().strip())


def ifeval_of(run: Run, models: list[str], what: str) -> dict:
    """IFEval (prompt-level, with per-prompt verdicts) of `models` on the held-out set. Each
    model's result is kept in WORK/ifeval/MODEL.json (greedy decoding: a model's verdicts do not
    change), so a rerun after a stop evaluates only the models it has not seen."""
    folder = run.work / "ifeval"
    folder.mkdir(exist_ok=True)
    missing = [m for m in models if not (folder / f"{m}.json").is_file()]
    if missing:
        line = step(["scripts/evaluate.py", "ifeval", "--base", BASE, "--models", *missing,
                     "--prompts", run.limited("data/ifeval_heldout.jsonl", 12, "ifeval_heldout.jsonl"),
                     "--max-new-tokens", "64" if run.quick else "128", "--batch-rows", str(BATCH), *run.reg(), "--json"], what)
        for model, result in json.loads(line)["ifeval"].items():
            (folder / f"{model}.json").write_text(json.dumps(result) + "\n")
    return {m: json.loads((folder / f"{m}.json").read_text()) for m in models}


def perplexity_on(run: Run, conversations: Path) -> dict:
    """Held-out perplexity of the base and of SFT on real ShareGPT answers (assistant tokens only),
    both read through SFT's chat template (the base has none of its own), in the dtype the engine
    computes in (bf16 on a CPU that has it: half the time of fp32, perplexities within 0.3%)."""
    cached = run.work / "perplexity_real.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from posttrain.data import read_jsonl
    from posttrain.heldout import perplexity
    from posttrain.models import compute_dtype, load_tokenizer
    from posttrain.registry import Registry

    started = time.time()
    print("\n== perplexity on real ShareGPT answers: base vs SFT", file=sys.stderr, flush=True)
    registry = Registry(run.registry)
    rows = [r["messages"] for r in read_jsonl(conversations)][: 8 if run.quick else 120]
    tokenizer = load_tokenizer(registry.tokenizer_path(registry.get(SFT)))
    base_model = AutoModelForCausalLM.from_pretrained(str(registry.get(BASE).path), dtype=compute_dtype())
    model = PeftModel.from_pretrained(base_model, str(registry.get(SFT).path))
    model.eval()
    with torch.inference_mode():
        with model.disable_adapter():
            base = perplexity(model, tokenizer, rows, 512)
        sft = perplexity(model, tokenizer, rows, 512)
    result = {"base_real": round(base, 2), "sft_real": round(sft, 2), "set_real": f"{conversations.name} ({len(rows)} ShareGPT conversations)"}
    cached.write_text(json.dumps(result) + "\n")
    record("perplexity on real ShareGPT answers", time.time() - started)
    return result


def paired_bootstrap(before: list[bool], after: list[bool], rounds: int = 2000, seed: int = 0) -> dict:
    """The gain in pass rate (after - before) over the same prompts, with a 95% percentile
    interval from resampling prompts (paired: a prompt is drawn with both its verdicts)."""
    import random

    rng, n = random.Random(seed), len(before)
    gains = sorted(sum(after[i] - before[i] for i in (rng.randrange(n) for _ in range(n))) / n for _ in range(rounds))
    return {"gain": round((sum(after) - sum(before)) / n, 4), "ci95": [round(gains[int(0.025 * rounds)], 4),
                                                                      round(gains[int(0.975 * rounds) - 1], 4)]}


def verdicts(result: dict) -> list[bool]:
    return [row["follow_all_instructions_loose"] for row in result["rows"]]


def closed_loop(run: Run, ifeval: dict) -> dict:
    """Rounds of LOOP_VOTES checker-rater votes on a campaign of the newest model against its
    parent (through the real store), each followed by a DPO round on the campaign's pairs and
    IFEval of the child: the curve of IFEval over votes. The loop prompts alternate between two
    halves, so each round's new campaign runs on prompts its pairs never saw."""
    from posttrain import checkers
    from blindarena import simulate
    from blindarena.store import Store

    w = run.work
    loop_rows = checkers.read_rows(ROOT / run.limited("data/ifeval_loop.jsonl", 8, "ifeval_loop.jsonl"))
    halves = []
    for k, rows in enumerate(split_by_instruction(loop_rows)):
        path = w / f"loop_half_{k}.jsonl"
        write_jsonl(path, rows)
        halves.append(path)
    store_path = Path(run.arena) / "arena.sqlite"
    first = f"{LOOP_CAMPAIGN}-1"
    if not store_path.is_file() or first not in {c.name for c in Store(store_path).campaigns()}:
        step(["scripts/arena.py", "--data-dir", run.arena, "--base", BASE, *run.reg(), "campaign", "create", first,
              "--models", DPO, SFT, "--prompts", str(halves[0]), "--max-new-tokens", "64" if run.quick else "128",
              "--votes-per-minute", "100000", "--gold-rate", "0"], "closed loop: a campaign of DPO against its parent SFT")
    curve = [{"round": 0, "votes": 0, "model": DPO, "prompt_loose": ifeval[DPO]["prompt_loose"],
              "ci95": ifeval[DPO]["ci95"]["prompt_loose"]}]
    campaign, parent, votes_total, children = first, DPO, 0, {}
    for r in range(1, (2 if run.quick else run.loop_rounds) + 1):
        store = Store(store_path)
        if not store.votes(campaign):
            started = time.time()
            battles = len(store.battle_ids(campaign))  # one battle per prompt: enough raters for LOOP_VOTES votes
            raters = 4 if run.quick else -(-LOOP_VOTES // max(1, battles))
            simulate.checker_raters(store, campaign, loop_rows, raters=raters, per_rater=(4 if run.quick else battles), seed=r)
            record(f"closed loop round {r}: checker raters vote", time.time() - started)
        votes_total += len(store.votes(campaign))
        child = f"{CHILD}-{r}"
        if not run.has(child):
            step(["scripts/arena.py", "--data-dir", run.arena, "--base", BASE, *run.reg(), "next-round", campaign,
                  "--parent", parent, "--name", child, "--prompts", str(halves[r % 2]), "--json", "--recipe",
                  "posttrain/recipes/dpo_gemma3_270m.yaml", "--max-steps", "2" if run.quick else "4"],
                 f"closed loop round {r}: pairs -> DPO round -> {child} (and its campaign against {parent})")
        children[child] = ifeval_of(run, [child], f"IFEval of the loop's round-{r} child")[child]
        campaign = next(c.name for c in Store(store_path).campaigns() if set(c.models) == {child, parent})
        curve.append({"round": r, "votes": votes_total, "model": child, "prompt_loose": children[child]["prompt_loose"],
                      "ci95": children[child]["ci95"]["prompt_loose"], "pairs": run.card(child).get("pairs")})
        parent = child
    last = children[parent]
    gain = paired_bootstrap(verdicts(ifeval[DPO]), verdicts(last))
    return {"campaign": first, "votes": votes_total, "pairs": sum(p.get("pairs") or 0 for p in curve[1:]), "child": parent,
            "parent": DPO, "child_prompt_loose": last["prompt_loose"], "child_ci95": last["ci95"]["prompt_loose"],
            "parent_prompt_loose": ifeval[DPO]["prompt_loose"], "gain": gain["gain"], "gain_ci95_paired": gain["ci95"],
            "gain_per_100_votes": round(100 * gain["gain"] / votes_total, 4) if votes_total else None, "curve": curve}


def split_by_instruction(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The loop prompts in two halves that share no instruction type and no task (a prompt's first
    sentence): prompts of one type share their instruction's wording, prompts of one task its
    words, and the next round's contamination check (a shared 8-gram or a close embedding with a
    pair's prompt) rightly refuses either in the child's campaign. A task found in both halves is
    dropped from both."""
    types = sorted({r["instruction_id_list"][0] for r in rows})
    first = set(types[: len(types) // 2])
    task = lambda r: r["prompt"].split(". ")[0].strip().lower()
    halves = [r for r in rows if r["instruction_id_list"][0] in first], [r for r in rows if r["instruction_id_list"][0] not in first]
    shared = {task(r) for r in halves[0]} & {task(r) for r in halves[1]}
    return tuple([r for r in half if task(r) not in shared] for half in halves)


def win_rate(judged: dict, model: str, opponent: str) -> dict | None:
    for w in judged.get("win_rates", []):
        if (w["model"], w["opponent"]) == (model, opponent):
            return {"win_rate": round(w["win_rate"], 4), "ci95": [round(w["ci_low"], 4), round(w["ci_high"], 4)],
                    "wins": w["wins"], "losses": w["losses"], "ties": w.get("ties")}
        if (w["model"], w["opponent"]) == (opponent, model):
            return {"win_rate": round(1 - w["win_rate"], 4), "ci95": [round(1 - w["ci_high"], 4), round(1 - w["ci_low"], 4)],
                    "wins": w["losses"], "losses": w["wins"], "ties": w.get("ties")}
    return None


def summarise(run: Run, data: dict, ifeval: dict, judged: dict, loop: dict, minutes: float) -> dict:
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
                     "judge": JUDGE, "prompts": "real_prompts.jsonl (50 held-out ShareGPT first turns)"},
        "perplexity": {"base": measured.get(BASE, {}).get("domain_perplexity"),
                       "sft": measured.get(SFT, {}).get("domain_perplexity"), "set": "data/general/heldout.jsonl"},
        "preference_accuracy": {"dpo": dpo_card.get("metrics", {}).get("preference_accuracy"),
                                "sft": measured.get(SFT, {}).get("preference_accuracy"),
                                "pairs": "held-out pairs (on-policy where there are any, else rewrites)"},
        "synthetic_lift": {"sft_with_verified": ifeval[SFT]["prompt_loose"], "sft_general_only": ifeval[SFT_GENERAL]["prompt_loose"],
                           "lift": round(ifeval[SFT]["prompt_loose"] - ifeval[SFT_GENERAL]["prompt_loose"], 4),
                           "what": "SFT on general + ShareGPT + verifiable rewrites vs the same without the rewrites"},
        "adapter": {"trainable_parameters": sft_card.get("trainable_parameters"), "parameters": run.card(BASE).get("parameters"),
                    "adapter_weights_bytes": weights_bytes(run, SFT), "adapter_folder_bytes": sft_card.get("adapter_size_bytes")},
        "data": data,
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
             + " | SFT >= base + 0.15, DPO >= SFT + 0.03 |",
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
              "target SFT vs base > 0.8)",
              f"- synthetic data: SFT on general + verified rows {fmt(s['sft_with_verified'])} vs general only "
              f"{fmt(s['sft_general_only'])} IFEval loose: lift {s['lift']:+.3f}",
              f"- closed loop: {loop['votes']} checker-rater votes -> {loop['pairs']} pairs -> `{loop['child']}`: IFEval loose "
              f"{fmt(loop['child_prompt_loose'])} vs parent {fmt(loop['parent_prompt_loose'])} "
              f"({loop['gain']:+.3f}; {fmt(loop['gain_per_100_votes'], 4)} per 100 votes)" +
              (f"; paired bootstrap over prompts {ci(loop['gain_ci95_paired'])}" if loop.get("gain_ci95_paired") else ""),
              *[f"  - round {c['round']}: {c['votes']} votes, `{c['model']}` IFEval loose {fmt(c['prompt_loose'])} {ci(c['ci95'])}"
                for c in loop.get("curve", [])],
              *([f"- held-out perplexity on real ShareGPT answers: base {fmt(m['perplexity']['base_real'], 2)}, SFT "
                 f"{fmt(m['perplexity']['sft_real'], 2)}"] if m["perplexity"].get("sft_real") is not None else []),
              f"- adapter: {a['trainable_parameters']:,} trainable of {a['parameters']:,} parameters "
              f"({100 * a['trainable_parameters'] / a['parameters']:.2f}%); weights {a['adapter_weights_bytes'] / 1e6:.1f} MB "
              f"(the folder with its tokenizer {a['adapter_folder_bytes'] / 1e6:.1f} MB)",
              f"- data: {m['data']['sft_rows']} SFT rows ({m['data']['general_rows']} general, {m['data']['sharegpt']['train']} "
              f"ShareGPT, {m['data']['rewrite_rows']} verifiable rewrites); {m['data']['rewrite_pairs']} rewrite pairs",
              f"- wall time: {m['minutes']} minutes", ""]
    return "\n".join(lines)


def curve_svg(curve: list[dict], width: int = 560, height: int = 320) -> str:
    """The closed loop's curve as a small SVG: votes on x, IFEval prompt-level loose on y, each
    round's 95% interval as a bar (no plotting library: the picture is a few lines)."""
    left, right, top, bottom = 60, 20, 30, 50
    xs = [c["votes"] for c in curve]
    lows, highs = [c["ci95"][0] for c in curve], [c["ci95"][1] for c in curve]
    y0, y1 = max(0.0, min(lows) - 0.05), min(1.0, max(highs) + 0.05)
    x = lambda v: left + (width - left - right) * (v / max(xs) if max(xs) else 0)
    y = lambda v: top + (height - top - bottom) * (1 - (v - y0) / ((y1 - y0) or 1))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="18" text-anchor="middle">closed loop: IFEval prompt-level loose (95% CI) after each DPO round</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">checker-rater votes</text>']
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for c in curve:
        parts += [f'<line x1="{x(c["votes"]):.1f}" y1="{y(c["ci95"][0]):.1f}" x2="{x(c["votes"]):.1f}" y2="{y(c["ci95"][1]):.1f}" '
                  'stroke="#8899cc" stroke-width="3"/>',
                  f'<text x="{x(c["votes"]):.1f}" y="{height - bottom + 16}" text-anchor="middle">{c["votes"]}</text>']
    points = " ".join(f"{x(c['votes']):.1f},{y(c['prompt_loose']):.1f}" for c in curve)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#223377" stroke-width="2"/>')
    parts += [f'<circle cx="{x(c["votes"]):.1f}" cy="{y(c["prompt_loose"]):.1f}" r="4" fill="#223377"/>' for c in curve]
    return "\n".join(parts + ["</svg>"]) + "\n"


def run_cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every stage (numbers mean nothing)")
    parser.add_argument("--loop-rounds", type=int, default=LOOP_ROUNDS,
                        help=f"closed-loop rounds of {LOOP_VOTES} checker votes, a DPO round after each (default {LOOP_ROUNDS})")
    parser.add_argument("--work", help="working folder (default runs/real_base, or runs/real_base_quick)")
    parser.add_argument("--out", help="report folder (default reports/real_base, or WORK/report with --quick)")
    args = parser.parse_args(argv)
    work = Path(args.work or (ROOT / "runs" / ("real_base_quick" if args.quick else "real_base")))
    out = Path(args.out or (work / "report" if args.quick else ROOT / "reports" / "real_base"))
    if args.loop_rounds < 1:
        parser.error("--loop-rounds must be at least 1")
    run = Run(work, out, args.quick, args.loop_rounds)
    global TIMINGS
    TIMINGS = work / "timings.json"
    metrics = run_all(run)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "report.md").write_text(markdown(metrics))
    if metrics["closed_loop"].get("curve"):
        (out / "loop_curve.svg").write_text(curve_svg(metrics["closed_loop"]["curve"]))
    print(markdown(metrics))
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli(run_cli))
