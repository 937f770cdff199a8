"""A training run, from recipe to published registry entry, top to bottom: every method of
posttrain/methods.py (SFT and QLoRA, DPO and IPO, KTO, ORPO, SimPO, the reward model, GRPO and
RLOO), each one record there, so nothing here branches on a method's name. The pieces live
beside it: recipe.py (the recipe's three dataclasses), splits.py (the data), loading.py (the
model and the adapter folder), fingerprint.py (resuming a killed run), card.py (the card).
Inputs are never changed in place: a run derives the configs it needs."""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from posttrain import templates
from posttrain.card import card_of, hardware, peak_memory_mb, run_metrics
from posttrain.errors import RecipeError
from posttrain.fingerprint import check_fingerprint, last_complete_checkpoint, write_fingerprint
from posttrain.fused_head import cpu_fast_head
from posttrain.heldout import perplexity, preference_accuracy, text_perplexity
from posttrain.loading import load_trainable, resolve_entries, run_tokenizer, save_adapter, trainable_parameters
from posttrain.methods import METHODS, Method, method
from posttrain.recipe import RunArguments, check_some_steps, lora_config, model_settings, parse_run, quantized
from posttrain.registry import TRAINING_LOG, Entry, Registry, RegistryError
from posttrain.reward import load_reward_model, pairwise_accuracy
from posttrain.splits import Splits, datasets, load_splits

log = logging.getLogger(__name__)


def train_recipe(method_name: str, recipe: str | Path, **fields) -> Entry:
    """One run from a recipe file, its fields overridden by keyword (any field of RunArguments,
    TRL's config or ModelConfig: name=, parent=, data=, max_steps=, ...; None leaves the recipe's
    value): the typed front door the closed loop calls. `eval_data=""` clears the recipe's."""
    flags = ["--config", str(recipe)]
    for key, value in fields.items():
        if value is not None:
            flags += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    run_args, config, model_args = parse_run(method_name, flags)
    run_args = replace(run_args, eval_data=run_args.eval_data or None, recipe=run_args.recipe or str(recipe))
    return run(method_name, run_args, config, model_args)


def derived(config, **fields):
    """A copy of a config with `fields` set (TRL's configs re-run their checks in __init__, so a
    shallow copy, not dataclasses.replace); the caller's config is left as it was."""
    config = copy.copy(config)
    for key, value in fields.items():
        setattr(config, key, value)
    return config


def with_output_dir(config, name: str):
    """The config, its output folder runs/NAME when the recipe names none."""
    if config.output_dir and config.output_dir != "trainer_output":
        return config
    return derived(config, output_dir=str(Path("runs") / name))


def run(method_name: str, run_args: RunArguments, config, model_args=None) -> Entry:
    """Train and publish. Returns the new registry entry. `model_args`: TRL's ModelConfig (LoRA and
    quantization fields; default: its defaults, LoRA on every linear layer). What differs per
    method comes from its record in posttrain.methods."""
    how = method(method_name)
    model_args = model_settings(model_args)
    check_before_loading(how, run_args, config, model_args)
    registry, base, parent = resolve_entries(run_args)
    if how.from_base and parent is not None:
        raise RegistryError(f"a {method_name} run starts from the base (a fresh score head); drop --parent")
    config = with_output_dir(config, run_args.name)
    splits = load_splits(run_args, method_name)
    tokenizer = run_tokenizer(registry, base, parent, run_args)
    fingerprint = check_fingerprint(Path(config.output_dir), run_args, config, splits.info, model_args)
    if how.from_base:
        model, _ = load_reward_model(base.path, lora=lora_config(model_args, "SEQ_CLS"))  # + trained score head
    else:
        model = load_trainable(base, parent, run_args, config.gradient_checkpointing, tokenizer, model_args)
    trainable, total = trainable_parameters(model)
    log.info("trainable parameters: %d of %d (%.3f%%)", trainable, total, 100 * trainable / total)
    started = time.time()
    measure, trainer = build(method_name, model, tokenizer, splits, config, run_args, registry)
    config = trainer.args  # the config the trainer runs with (build derives an RL round's reward weights)
    measure = with_general_perplexity(measure, method_name, tokenizer, run_args)
    if run_args.loraplus_lr_ratio is not None:
        trainer.optimizer = loraplus_optimizer(trainer, run_args.loraplus_lr_ratio)
    # Under DDP / FSDP / ZeRO every rank trains; only the main process measures, writes and publishes.
    main = trainer.accelerator.is_main_process
    parent_metrics = measure(model) if main else {}  # before any step: the model is still its parent
    last = last_complete_checkpoint(Path(config.output_dir))
    if last:
        log.info("resuming from %s", last)
    if main:
        write_fingerprint(Path(config.output_dir), fingerprint)
    with cpu_fast_head():  # TRL's fused LM head scores only labelled positions on a CPU too
        train_output = trainer.train(resume_from_checkpoint=last)
        eval_metrics = final_evaluation(trainer)
    if not main:
        trainer.accelerator.wait_for_everyone()  # the main process publishes; then the entry exists
        return registry.get(run_args.name)
    metrics = run_metrics(trainer, train_output, eval_metrics, measure(model), parent_metrics)
    eot = templates.end_of_turn_id(tokenizer) if how.generates else None
    card = {**card_of(how, run_args, config, model_args, registry, base, parent, tokenizer, splits, eot),
            "fingerprint": fingerprint, "metrics": metrics, "trainable_parameters": trainable,
            "trainable_share": round(trainable / total, 6), "peak_memory_mb": round(peak_memory_mb(), 1),
            "world_size": trainer.accelerator.num_processes,
            "distributed": str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1], "hardware": hardware(),
            "duration_s": round(time.time() - started, 1), "steps": trainer.state.global_step}

    def write(tmp: Path) -> None:
        save_adapter(trainer.accelerator.unwrap_model(model), tokenizer, tmp, base, eot)
        (tmp / TRAINING_LOG).write_text(json.dumps(trainer.state.log_history, indent=1))  # the Models tab's curves

    entry = registry.publish(run_args.name, write, card)
    log.info("published %s: %s", entry.name, metrics)
    trainer.accelerator.wait_for_everyone()
    return entry


def check_before_loading(how: Method, run_args: RunArguments, config, model_args) -> None:
    """Every refusal that needs no model, before the registry's entries or any weights load: the
    method's refused fields, a 0-step run, a 4-bit reward model, an RL round's rewards."""
    how.refuse(config)
    check_some_steps(config)
    if how.from_base and quantized(run_args, model_args):
        raise RecipeError(f"a {how.name} run loads its base unquantized (a fresh score head); drop quantize / load_in_4bit")
    if how.online and getattr(config, "use_vllm", False) and quantized(run_args, model_args):
        raise RecipeError("use_vllm with a 4-bit base: TRL syncs vLLM by merging the LoRA weights into the base, which "
                          "on an NF4 base would round them into 4-bit; train the round on the full-precision base "
                          "(quantize: false), where only the adapter is saved and the merge is undone after each sync")
    if how.online:
        from posttrain import rl

        rl.check(rl.parse_specs(run_args.reward), config.reward_weights, run_args.gold, Registry(run_args.registry))


def with_general_perplexity(measure, method_name: str, tokenizer, run: RunArguments):
    """The held-out measure plus the general-text perplexity (forgetting), for generating runs."""
    from posttrain.data import read_jsonl

    path = Path(run.general_text or "")
    if not path.is_file() and not path.is_absolute():  # the project's own file, from any folder
        path = Path(__file__).resolve().parents[1] / path
    if not METHODS[method_name].generates or not run.general_text or not path.is_file():
        return measure
    texts = [r["text"] for r in read_jsonl(path)]
    return lambda m: {**measure(m), "general_perplexity": text_perplexity(m, tokenizer, texts)}


def loraplus_optimizer(trainer, ratio: float):
    """The trainer's own optimizer class and settings, with LoRA+ parameter groups: every lora_B
    (and 1-d adapter parameter) at `ratio` times the learning rate of lora_A."""
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer

    if ratio < 1:
        raise RecipeError(f"loraplus_lr_ratio is B's learning rate over A's and should be at least 1, got {ratio}")
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        raise RecipeError("loraplus_lr_ratio builds the optimizer before DeepSpeed / FSDP wrap the model; use DDP or one GPU")
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
    kwargs.pop("lr", None)
    return create_loraplus_optimizer(trainer.model, optimizer_cls, lr=trainer.args.learning_rate, loraplus_lr_ratio=ratio,
                                     loraplus_weight_decay=trainer.args.weight_decay, **kwargs)


def build(method_name: str, model, tokenizer, splits: Splits, config, run_args: RunArguments | None = None, registry=None):
    """The method's TRL trainer over its data, and the held-out measure that goes into the card."""
    how = method(method_name)  # its refusals ran before anything loaded (check_before_loading)
    max_length = getattr(config, "max_length", None) or 1024  # online RL configs bound prompt and completion instead
    train, held = datasets(how, tokenizer, splits, max_length)
    extra = {}
    if how.online:
        from posttrain import rl

        functions, weights = rl.rewards(rl.parse_specs(run_args.reward), config.reward_weights, run_args.gold,
                                        registry, device=getattr(model, "device", None))
        config = derived(config, reward_weights=weights)  # the recipe's, plus the gold measure's 0
        extra["reward_funcs"] = functions
    if getattr(config, "padding_free", False) and not getattr(config, "packing", False):
        config = derived(config, max_length=None)  # our rows are already cut to max_length; TRL refuses to cut them again
    trainer = how.trainer_class()(model=model, args=config, processing_class=tokenizer, train_dataset=train,
                                  eval_dataset=held, **extra)
    if "length" in getattr(train, "column_names", ()):  # keep it past the Trainer's unused-column removal: the sampler reads it
        trainer._set_signature_columns_if_needed()
        trainer._signature_columns = [*trainer._signature_columns, "length"]
    return held_out_measure(how, tokenizer, splits, max_length, trainer), trainer


def held_out_measure(how: Method, tokenizer, splits: Splits, max_length: int, trainer):
    """model -> {measure: value} for the card (posttrain.methods.MEASURES)."""
    pairs = [p for p in splits.eval if "chosen" in p]  # KTO's held-out rows may be unpaired
    if how.measure == "perplexity":
        conversations = [r["messages"] for r in splits.eval]
        return lambda m: {"eval_perplexity": perplexity(m, tokenizer, conversations, max_length)}
    if how.measure == "pairwise_accuracy":
        return lambda m: {"preference_accuracy": pairwise_accuracy(m, tokenizer, pairs, max_length)}
    if how.measure == "rollouts":  # the trainer's own rollouts on the held-out prompts: every reward (gold too), length
        return lambda m: {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()
                          if k.startswith(("eval_reward", "eval_completions/mean_length"))}
    return lambda m: {"preference_accuracy": preference_accuracy(m, tokenizer, pairs, max_length)} if pairs else {}


def final_evaluation(trainer) -> dict:
    """The held-out metrics of the trained weights: the trainer's own evaluation when its last one ran
    at the final step (eval_strategy "epoch" ends on one), else a new one: the same numbers, without
    scoring the held-out set twice (the judge's 20 s in scripts/real_base.sh)."""
    step = trainer.state.global_step
    for entry in reversed(trainer.state.log_history):
        if "eval_loss" in entry:
            if entry.get("step") == step:
                return {k: v for k, v in entry.items() if k not in ("step", "epoch")}
            break
    return trainer.evaluate()
