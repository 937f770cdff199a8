"""The registry card of a finished run: its method, lineage, recipe, data, precision, metrics
before and after, size and hardware."""

from __future__ import annotations

import platform
import resource

import torch

from posttrain.fingerprint import run_config
from posttrain.methods import Method
from posttrain.precision import precision_of
from posttrain.recipe import RunArguments, quantized
from posttrain.registry import Entry
from posttrain.splits import Splits, metrics_too_long


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def hardware() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def run_metrics(trainer, train_output, eval_metrics: dict, measured: dict, parent_metrics: dict) -> dict:
    """The card's metrics: the training loss (first and last logged), TRL's evaluation, the
    method's held-out measure after training and on the parent before it."""
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {
        # The last logged training loss: a resumed run's own average covers only its new steps.
        "train_loss": round(losses[-1] if losses else train_output.training_loss, 4),
        **({"train_loss_first": round(losses[0], 4)} if losses else {}),
        **{k: round(v, 4) for k, v in eval_metrics.items() if isinstance(v, (int, float)) and not k.endswith(("_runtime", "per_second"))},
        **{k: round(v, 4) for k, v in measured.items()},
        **{f"parent_{k}": round(v, 4) for k, v in parent_metrics.items()},
    }
    if "eval_rewards/accuracies" in eval_metrics:
        metrics["reward_accuracy"] = round(eval_metrics["eval_rewards/accuracies"], 4)
    return metrics


def card_of(how: Method, run_args: RunArguments, config, model_args, registry, base: Entry, parent: Entry | None,
            tokenizer, splits: Splits, eot: int | None) -> dict:
    """What the run was: method, lineage, recipe, template, data and configuration."""
    return {
        "method": how.card_name(config, quantized(run_args, model_args)),
        "base": base.name, "base_model": base.card.get("base_model"), "base_hash": base.card.get("base_hash"),
        **({"license": base.card["license"]} if base.card.get("license") else {}),
        "parent": parent.name if parent else base.name,
        "recipe": run_args.recipe,
        "chat_template": run_args.chat_template or (parent.card.get("chat_template") if parent else None) or "tokenizer",
        **({"end_of_turn_token": tokenizer.convert_ids_to_tokens(eot), "end_of_turn_id": eot} if eot is not None else {}),
        "eval_rows_too_long": 0 if how.online else metrics_too_long(how, tokenizer, splits.eval, config.max_length or 1024),
        **(rl_card(run_args, config, registry) if how.online else {}),
        "config": run_config(run_args, config, model_args),
        "precision": precision_of(config),
        **splits.info,
    }


def rl_card(run_args: RunArguments, config, registry) -> dict:
    """What an online RL round optimised: the rewards (each registry reward model's hash), their
    weights, the gold measure, the group size and the KL coefficient."""
    from posttrain import rl
    from posttrain.registry import folder_hash

    specs = rl.parse_specs(run_args.reward)
    versions = {}
    for spec in specs + ([run_args.gold] if run_args.gold else []):
        if spec.startswith("reward_model:"):
            entry = registry.get(spec.split(":", 1)[1])
            versions[spec] = folder_hash(entry.path, ("adapter_config.json", "*.safetensors"))
    return {"reward": specs, "reward_weights": list(config.reward_weights or []), "gold": run_args.gold,
            "reward_versions": versions, "group_size": config.num_generations, "kl_coefficient": config.beta}
