"""Training on several processes: a real 2-rank DDP run on the CPU (gloo) through torchrun, which
must train, and publish exactly one registry entry; the accelerate configs we ship validate."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from posttrain.registry import Registry

CONFIGS = sorted((ROOT / "posttrain" / "accelerate").glob("*.yaml"))


def test_two_process_ddp_trains_and_publishes_exactly_once(tiny_registry, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(ROOT / "scripts" / "train.py"), "sft", "--name", "ddp-sft",
         "--base", "tiny", "--registry", str(tiny_registry.root), "--data", str(ROOT / "data" / "sft" / "train.jsonl"),
         "--eval_data", str(ROOT / "data" / "sft" / "heldout.jsonl"), "--output_dir", str(tmp_path / "runs"),
         "--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--max_length", "96",
         "--per_device_train_batch_size", "4", "--max_steps", "16", "--learning_rate", "3e-2", "--logging_steps", "2",
         "--save_strategy", "no", "--lora_r", "4", "--lora_alpha", "8", "--seed", "0"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("published ddp-sft") == 1  # one rank reports
    registry = Registry(tiny_registry.root)
    assert sorted(registry.names()) == ["ad-a", "ad-b", "ddp-sft", "tiny"]
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".")]  # no second writer's leftovers
    card = registry.get("ddp-sft").card
    assert card["world_size"] == 2 and card["distributed"] == "MULTI_CPU"
    metrics = card["metrics"]
    assert metrics["train_loss"] < metrics["train_loss_first"]
    assert metrics["eval_perplexity"] < metrics["parent_eval_perplexity"]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_accelerate_configs_validate(config, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig

    from posttrain import models

    loaded = ClusterConfig.from_yaml_file(str(config))  # refuses unknown keys
    kind = str(loaded.distributed_type).rsplit(".", 1)[-1]
    assert kind == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "fsdp_qlora": "FSDP", "zero3": "DEEPSPEED"}[config.stem]
    assert loaded.mixed_precision == "bf16" and loaded.num_processes >= 2
    if config.stem == "zero3":
        assert loaded.deepspeed_config["zero_stage"] == 3
    if config.stem == "fsdp_qlora":  # what `accelerate launch` exports for an FSDP config
        monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
        assert models.nf4_config().bnb_4bit_quant_storage == models.compute_dtype()
        assert models.device_map() is None  # FSDP places the shards
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    assert models.nf4_config().bnb_4bit_quant_storage == torch.uint8
