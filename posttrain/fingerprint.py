"""Resuming a killed run: the last complete checkpoint, and the run's fingerprint (every setting
that changes what it learns), so a resume with other settings is refused instead of mixing two
runs in one output folder. Version 2 fingerprints; version 1's are still read."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from posttrain.recipe import RunArguments, model_settings, quantized
from posttrain.registry import RegistryError

log = logging.getLogger(__name__)


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest checkpoint that was fully written. The Trainer writes trainer_state.json last,
    so a run killed mid-save leaves a folder without it (or with it half-written): skip those."""
    if not output_dir.is_dir():
        return None
    numbered = [(int(p.name.split("-")[1]), p) for p in output_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    for _, folder in sorted(numbered, reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            return str(folder)
        except (OSError, ValueError):
            log.warning("skipping incomplete checkpoint %s", folder)
    return None


FINGERPRINT = "fingerprint.json"


# TRL config fields that cannot change what a run learns: where and how often it logs, saves,
# evaluates and pushes, how long it trains (a longer run is a resume), and run-time plumbing. Every
# other field, of the recipe, of TRL's config and of its ModelConfig, is in the fingerprint.
NOT_FINGERPRINTED = frozenset({
    "output_dir", "overwrite_output_dir", "logging_dir", "logging_strategy", "logging_steps", "logging_first_step",
    "logging_nan_inf_filter", "log_level", "log_level_replica", "log_on_each_node", "report_to", "run_name",
    "disable_tqdm", "project", "trackio_space_id", "trackio_bucket_id", "save_strategy", "save_steps",
    "save_total_limit", "save_safetensors", "save_on_each_node", "save_only_model", "eval_strategy", "eval_steps",
    "eval_delay", "eval_on_start", "per_device_eval_batch_size", "eval_accumulation_steps", "eval_do_concat_batches",
    "prediction_loss_only", "include_for_metrics", "include_num_input_tokens_seen", "batch_eval_metrics",
    "max_steps", "num_train_epochs", "resume_from_checkpoint", "ignore_data_skip", "restore_callback_states_from_checkpoint",
    "push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push", "hub_revision",
    "dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers", "dataloader_pin_memory",
    "local_rank", "ddp_timeout", "skip_memory_metrics", "log_completions", "num_completions_to_print",
    "activation_offloading",
})


RUN_NOT_FINGERPRINTED = frozenset({"registry", "recipe"})  # where the registry lives; the recipe file's name


def fingerprint_fields(run_args: RunArguments, config, info: dict, model_args=None) -> dict:
    """What decides a run's result: every field of the recipe's RunArguments, TRL's config and its
    ModelConfig but the named few above, and the data's hashes."""
    from dataclasses import fields

    trl_fields = {f.name: getattr(config, f.name) for f in fields(config)
                  if f.name not in NOT_FINGERPRINTED and not f.name.startswith("_")}
    return {"run": {k: v for k, v in asdict(run_args).items() if k not in RUN_NOT_FINGERPRINTED},
            "trl": trl_fields, "model": asdict(model_settings(model_args)),
            "dataset_hash": info.get("dataset_hash"), "eval_dataset_hash": info.get("eval_dataset_hash")}


def fingerprint_of(run_args: RunArguments, config, info: dict, model_args=None) -> str:
    """sha256 of `fingerprint_fields`."""
    import hashlib

    fields = fingerprint_fields(run_args, config, info, model_args)
    return "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint_v1(run_args: RunArguments, config, info: dict, model_args=None) -> str:
    """The fingerprint before 2026-12-01 (an allow-list of fields): checkpoints a previous version
    left are still resumed when their run is unchanged by that measure."""
    import hashlib

    chosen = {k: v for k, v in run_config(run_args, config, model_args).items() if k not in ("max_steps", "num_train_epochs")}
    fields = {**chosen, **{k: v for k, v in asdict(run_args).items() if k not in ("registry", "recipe")},
              "dataset_hash": info.get("dataset_hash"), "eval_dataset_hash": info.get("eval_dataset_hash")}
    return "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


FINGERPRINT_VERSION = 2


def check_fingerprint(output_dir: Path, run_args: RunArguments, config, info: dict, model_args=None) -> str:
    """Refuse to resume checkpoints that another recipe or other data produced."""
    fingerprint = fingerprint_of(run_args, config, info, model_args)
    path = output_dir / FINGERPRINT
    if last_complete_checkpoint(output_dir) and path.is_file():
        stored = json.loads(path.read_text())
        mine = fingerprint if stored.get("version") == FINGERPRINT_VERSION else fingerprint_v1(run_args, config, info, model_args)
        if stored.get("fingerprint") != mine:
            raise RegistryError(
                f"{output_dir} holds checkpoints of a run with another recipe or other data ({stored.get('fingerprint')} "
                f"!= {mine}); to start fresh remove it (rm -r {output_dir}) or pass --output_dir NEW_FOLDER")
    return fingerprint


def write_fingerprint(output_dir: Path, fingerprint: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / FINGERPRINT).write_text(json.dumps({"fingerprint": fingerprint, "version": FINGERPRINT_VERSION}) + "\n")


def run_config(run_args: RunArguments, config, model_args=None) -> dict:
    keys = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
            "gradient_accumulation_steps", "max_length", "packing", "padding_free", "gradient_checkpointing",
            "optim", "lr_scheduler_type", "seed", "beta", "loss_type", "center_rewards_coefficient", "disable_dropout",
            "simpo_gamma", "cpo_alpha")
    chosen = {k: getattr(config, k) for k in keys if hasattr(config, k)}
    chosen = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in chosen.items()}
    model_args = model_settings(model_args)
    adapter = {k: v for k, v in asdict(model_args).items()
               if k.startswith(("lora_", "use_dora", "use_rslora", "load_in_4bit", "bnb_", "use_bnb")) and v is not None}
    return {**chosen, **adapter, "quantize": quantized(run_args, model_args),
            **({"loraplus_lr_ratio": run_args.loraplus_lr_ratio} if run_args.loraplus_lr_ratio is not None else {})}
