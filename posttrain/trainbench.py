"""Training throughput, side by side: the path every run took until December 2026 ("plain": fp32,
batches padded to their longest row, random order) against today's ("fast": bf16 autocast where
the hardware has it natively, padding-free SFT batches, length-grouped pairs, the fused LM head on
labelled positions only). Same recipe, base, data and LoRA initialisation; the two lanes step in turn in
one process on the same cores until each has trained on one epoch of the same rows (or on a
given number of real, non-padding tokens), then both are scored on the same held-out batches in
fp32. A whole epoch is the fair default: both lanes have then seen every row once under the same
schedule, where a dozen steps compare batches of different rows (and once compared BFD packs,
which group rows by length, with random batches). Used by `scripts/bench.py --only train`; never
publishes anything."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from posttrain.fused_head import cpu_fast_head
from posttrain.models import DEFAULT_BASE_NAME, GEMMA_BASE_NAME
from posttrain.train import build, load_splits, load_trainable, parse_run, resolve_entries, run_tokenizer

RECIPES = Path(__file__).resolve().parent / "recipes"
DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass
class Lane:
    name: str
    trainer: object
    model: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    bf16: bool
    target_tokens: int  # real tokens to train on: the count asked for, or the lane's whole epoch
    batches: object = None
    real_tokens: int = 0
    computed_tokens: int = 0
    seconds: float = 0.0
    steps: int = 0
    peak_rss_mb: float = 0.0
    losses: list = field(default_factory=list)


def recipe_args(method_name: str, base: str) -> list[str]:
    """The project's recipe for `method_name` on `base`, made runnable without a parent entry: DPO starts
    from a fresh adapter on the base (the base is its reference) on the demo pairs."""
    gemma = base == GEMMA_BASE_NAME
    recipe = RECIPES / f"{method_name}_{'gemma3_270m' if gemma else 'default'}.yaml"
    args = ["--config", str(recipe), "--base", base, "--gradient_accumulation_steps", "1",
            "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none"]
    if method_name == "dpo":
        args += ["--parent", "", "--data", str(DATA / "preference" / "train.jsonl"),
                 "--eval_data", str(DATA / "preference" / "heldout.jsonl")]
        args += ["--chat_template", "gemma"] if gemma else []
    return args


def plain_overrides(method_name: str, base: str) -> list[str]:
    """The 2026-12-01 settings of the same recipe: fp32, no packing, batches in random order padded
    to their longest row (SFT: batch 8, max_length 384 on Gemma, 256 on the default base)."""
    common = ["--bf16", "false", "--train_sampling_strategy", "random"]
    if method_name == "sft":
        return common + ["--packing", "false", "--padding_free", "false", "--per_device_train_batch_size", "8",
                         "--max_length", "384" if base == GEMMA_BASE_NAME else "256"]
    return common


def make_lane(name: str, method_name: str, args: list[str], registry_dir: str, workdir: Path, tokens: int | None) -> Lane:
    """A lane ready to step: `tokens` real tokens, or (None) one epoch of the recipe's data."""
    run_args, config, model_args = parse_run(method_name, args + ["--name", f"bench-{name}", "--registry", registry_dir,
                                                          "--output_dir", str(workdir / name)])
    registry, base, parent = resolve_entries(run_args)
    splits = load_splits(run_args, method_name)
    tokenizer = run_tokenizer(registry, base, parent, run_args)
    torch.manual_seed(0)  # the same LoRA initialisation in both lanes
    model = load_trainable(base, parent, run_args, False, tokenizer, model_args)
    _, trainer = build(method_name, model, tokenizer, splits, config, run_args, registry)
    # The recipe's own optimizer and schedule (warmup, cosine) over the steps this lane will take.
    loader = trainer.get_train_dataloader()
    epoch_tokens = sum(real_tokens(batch) for batch in loader)
    steps = len(loader) if tokens is None else max(1, math.ceil(tokens * len(loader) / epoch_tokens))
    trainer.create_optimizer_and_scheduler(num_training_steps=steps)
    return Lane(name, trainer, model, trainer.optimizer, trainer.lr_scheduler, bool(config.bf16),
                target_tokens=epoch_tokens if tokens is None else tokens)


def done(lane: Lane) -> bool:
    """Whether the lane has trained on its real tokens (one epoch: exactly its loader's batches,
    whatever order the sampler draws them in)."""
    return lane.real_tokens >= lane.target_tokens


def batches(lane: Lane):
    """The lane's training batches, epoch after epoch (its own collator, packing and sampler)."""
    while True:
        yield from lane.trainer.get_train_dataloader()


def real_tokens(batch: dict) -> int:
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())  # packed: no padding at all


def reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM restarts from the current RSS
    except OSError:
        pass


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def train_step(lane: Lane) -> None:
    batch = next(lane.batches)
    reset_peak_rss()
    started = time.perf_counter()
    lane.model.train()
    with cpu_fast_head(lane.name == "fast"):  # the plain lane: TRL's stock fused head (every position scored)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=lane.bf16):  # what accelerate does on a CPU
            loss = lane.trainer.compute_loss(lane.model, batch)
        loss.backward()
    lane.optimizer.step()
    lane.scheduler.step()
    lane.optimizer.zero_grad(set_to_none=True)
    lane.seconds += time.perf_counter() - started
    lane.peak_rss_mb = max(lane.peak_rss_mb, peak_rss_mb())
    lane.real_tokens += real_tokens(batch)
    lane.computed_tokens += int(batch["input_ids"].numel())
    lane.steps += 1
    lane.losses.append(float(loss.detach()))


def heldout_loss(lane: Lane, held: list[dict]) -> float:
    """Mean loss over the same held-out batches for every lane, in fp32 without autocast."""
    lane.model.eval()
    with torch.no_grad():
        losses = [float(lane.trainer.compute_loss(lane.model, dict(batch))) for batch in held]
    return sum(losses) / len(losses)


def compare(method_name: str, base: str | None, registry_dir: str, workdir: Path, tokens: int | None, say=None) -> dict:
    """Both lanes trained on `tokens` real tokens, or (None) on one epoch of the same rows each,
    stepping in turn (the lane behind goes next).
    Returns tokens per second of each, the speed-up, peak resident memory during each lane's steps
    (both models stay loaded: the difference is the activations), and the held-out loss each reaches."""
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    base = base or DEFAULT_BASE_NAME
    args = recipe_args(method_name, base)
    plain = make_lane("plain", method_name, args + plain_overrides(method_name, base), registry_dir, workdir, tokens)
    fast = make_lane("fast", method_name, args, registry_dir, workdir, tokens)
    for lane in (plain, fast):
        lane.batches = batches(lane)
    while not (done(plain) and done(fast)):
        lane = min((plain, fast), key=lambda l: (done(l), l.real_tokens / l.target_tokens))
        train_step(lane)
        say(f"{lane.name:5} step {lane.steps:3}: {lane.real_tokens:6} / {lane.target_tokens} real tokens, loss {lane.losses[-1]:.3f}, "
            f"{lane.real_tokens / lane.seconds:.0f} tokens/s")
    held = list(plain.trainer.get_eval_dataloader())
    prefix = "train" if method_name == "sft" else method_name
    out = {"method": method_name, "base": base, f"{prefix}_real_tokens": tokens or "one epoch"}
    for lane in (plain, fast):
        out.update({f"{prefix}_tokens_per_s_{lane.name}": round(lane.real_tokens / lane.seconds, 1),
                    f"{prefix}_heldout_loss_{lane.name}": round(heldout_loss(lane, held), 4),
                    f"{prefix}_peak_rss_mb_{lane.name}": round(lane.peak_rss_mb, 1),
                    f"{prefix}_steps_{lane.name}": lane.steps,
                    f"{prefix}_trained_tokens_{lane.name}": lane.real_tokens,
                    f"{prefix}_padding_share_{lane.name}": round(1 - lane.real_tokens / lane.computed_tokens, 3),
                    f"{prefix}_bf16_{lane.name}": lane.bf16})
    out[f"{prefix}_speedup"] = round(out[f"{prefix}_tokens_per_s_fast"] / out[f"{prefix}_tokens_per_s_plain"], 3)
    plain_loss, fast_loss = out[f"{prefix}_heldout_loss_plain"], out[f"{prefix}_heldout_loss_fast"]
    out[f"{prefix}_heldout_loss_change"] = round((fast_loss - plain_loss) / plain_loss, 4) if plain_loss else math.nan
    return out
