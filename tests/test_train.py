"""Training runs on the tiny model: each publishes one registry entry with its card metrics;
a killed run resumes; no half entry is ever listed."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from posttrain.registry import RegistryError
from posttrain.reward import bradley_terry_loss
from posttrain.train import RunArguments, run

SFT_DATA = ROOT / "data" / "sft"
PREF_DATA = ROOT / "data" / "preference"


def common(tmp_path, **overrides) -> dict:
    return {**dict(output_dir=str(tmp_path / "runs"), use_cpu=True, bf16=False, report_to="none", max_length=96,
                   per_device_train_batch_size=4, per_device_eval_batch_size=4, logging_steps=1,
                   save_strategy="no", seed=0), **overrides}


def sft(registry, tmp_path, name="t-sft", model_args=None, **overrides):
    from trl import ModelConfig, SFTConfig

    args = RunArguments(name=name, base="tiny", data=str(SFT_DATA / "train.jsonl"),
                        eval_data=str(SFT_DATA / "heldout.jsonl"), registry=str(registry.root))
    config = SFTConfig(**common(tmp_path / name, max_steps=8, learning_rate=2e-2, **overrides))
    return run("sft", args, config, model_args or ModelConfig(lora_r=4, lora_alpha=8))


def test_bradley_terry_loss_matches_hand_computation():
    # -log sigma(2 - 1) = log(1 + e^-1) = 0.31326; -log sigma(0 - 1) = log(1 + e^1) = 1.31326
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2, abs=1e-6)
    assert bradley_terry_loss(torch.tensor([5.0]), torch.tensor([5.0])).item() == pytest.approx(math.log(2))


def test_sft_publishes_an_adapter_with_its_card(tiny_registry, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    entry = sft(tiny_registry, tmp_path, report_to="tensorboard")
    assert list(tmp_path.rglob("events.out.tfevents*"))  # the training curves, for tensorboard
    history = json.loads((entry.path / "training_log.json").read_text())  # the Models tab draws these
    assert sum("loss" in h for h in history) == 8 and any("eval_loss" in h for h in history)
    card = entry.card
    assert card["method"] == "sft" and card["parent"] == "tiny" and card["base"] == "tiny"
    metrics = card["metrics"]
    assert metrics["eval_perplexity"] < metrics["parent_eval_perplexity"]
    assert math.isclose(metrics["eval_perplexity"], math.exp(metrics["eval_loss"]), rel_tol=0.25)
    assert card["dataset_hash"].startswith("sha256:") and card["train_rows"] == 60 and card["eval_rows"] == 20
    assert 0 < card["trainable_share"] < 1 and card["steps"] == 8 and card["duration_s"] > 0
    assert card["config"]["lora_r"] == 4 and card["config"]["learning_rate"] == 2e-2
    base = AutoModelForCausalLM.from_pretrained(str(tiny_registry.get("tiny").path))
    PeftModel.from_pretrained(base, str(entry.path))  # plain PEFT loads it


def test_dpo_from_sft_on_a_plain_trl_pairs_file(tiny_registry, tmp_path):
    from trl import DPOConfig

    sft(tiny_registry, tmp_path)
    # A pairs file written by plain code in TRL's standard preference format.
    pairs = tmp_path / "pairs.jsonl"
    with open(pairs, "w") as handle:
        for row in map(json.loads, (PREF_DATA / "train.jsonl").read_text().splitlines()):
            handle.write(json.dumps({"prompt": row["prompt"][0]["content"], "chosen": row["chosen"][0]["content"],
                                     "rejected": row["rejected"][0]["content"]}) + "\n")
    args = RunArguments(name="t-dpo", base="tiny", parent="t-sft", data=str(pairs),
                        eval_data=str(PREF_DATA / "heldout.jsonl"), registry=str(tiny_registry.root))
    entry = run("dpo", args, DPOConfig(**common(tmp_path / "dpo", max_steps=6, learning_rate=1e-2, beta=0.1)))
    card = entry.card
    assert card["method"] == "dpo" and card["parent"] == "t-sft"
    metrics = card["metrics"]
    for key in ("preference_accuracy", "parent_preference_accuracy", "reward_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["preference_accuracy"] > metrics["parent_preference_accuracy"]
    assert not (entry.path / "ref").exists()  # only the trained adapter, not TRL's reference copy


def test_ipo_kto_and_reward_runs(tiny_registry, tmp_path):
    from trl import DPOConfig, KTOConfig, RewardConfig

    pref = dict(base="tiny", data=str(PREF_DATA / "train.jsonl"), eval_data=str(PREF_DATA / "heldout.jsonl"),
                registry=str(tiny_registry.root), max_rows=16)
    ipo = run("dpo", RunArguments(name="t-ipo", **pref),
              DPOConfig(**common(tmp_path / "ipo", max_steps=2, loss_type=["ipo"])))
    assert ipo.method == "ipo"
    kto = run("kto", RunArguments(name="t-kto", **pref), KTOConfig(**common(tmp_path / "kto", max_steps=2)))
    assert kto.method == "kto" and "preference_accuracy" in kto.card["metrics"]
    reward = run("reward", RunArguments(name="t-reward", **pref),
                 RewardConfig(**common(tmp_path / "reward", max_steps=20, learning_rate=1e-2)))
    assert reward.method == "reward"
    metrics = reward.card["metrics"]
    assert metrics["preference_accuracy"] >= metrics["parent_preference_accuracy"]


def test_reward_scorer_ranks_like_training(tiny_registry, tmp_path):
    from trl import RewardConfig

    from posttrain.reward import RewardScorer

    run("reward", RunArguments(name="t-rm", base="tiny", data=str(PREF_DATA / "train.jsonl"),
                               eval_data=str(PREF_DATA / "heldout.jsonl"), registry=str(tiny_registry.root)),
        RewardConfig(**common(tmp_path, max_steps=30, learning_rate=1e-2)))
    scorer = RewardScorer(tiny_registry, "t-rm")
    held = [json.loads(line) for line in (PREF_DATA / "heldout.jsonl").read_text().splitlines()]
    wins = 0
    for pair in held:
        chosen, rejected = scorer.score(pair["prompt"], [pair["chosen"][0]["content"], pair["rejected"][0]["content"]])
        wins += chosen > rejected
    assert wins / len(held) == pytest.approx(tiny_registry.get("t-rm").card["metrics"]["preference_accuracy"], abs=0.051)
    with pytest.raises(ValueError, match="not a reward model"):
        RewardScorer(tiny_registry, "ad-a")


def test_an_evaluation_at_the_final_step_is_not_run_again_for_the_card(tiny_registry, tmp_path):
    from trl import RewardConfig

    pref = dict(base="tiny", data=str(PREF_DATA / "train.jsonl"), eval_data=str(PREF_DATA / "heldout.jsonl"),
                registry=str(tiny_registry.root), max_rows=16)
    ends_on_one = run("reward", RunArguments(name="t-rm-steps", **pref), RewardConfig(**common(
        tmp_path / "steps", max_steps=4, eval_strategy="steps", eval_steps=2, learning_rate=1e-2)))
    evals = [h for h in json.loads((ends_on_one.path / "training_log.json").read_text()) if "eval_loss" in h]
    assert [h["step"] for h in evals] == [2, 4]  # not [2, 4, 4]
    assert ends_on_one.card["metrics"]["eval_loss"] == round(evals[-1]["eval_loss"], 4)
    assert "epoch" not in ends_on_one.card["metrics"]
    without = run("reward", RunArguments(name="t-rm-no", **pref), RewardConfig(**common(
        tmp_path / "no", max_steps=3, eval_strategy="no", learning_rate=1e-2)))
    evals = [h for h in json.loads((without.path / "training_log.json").read_text()) if "eval_loss" in h]
    assert [h["step"] for h in evals] == [3] and without.card["metrics"]["eval_loss"] == round(evals[0]["eval_loss"], 4)


def test_bad_runs_are_refused_before_training(tiny_registry, tmp_path):
    from trl import DPOConfig

    with pytest.raises(RegistryError, match="already exists"):
        sft(tiny_registry, tmp_path, name="ad-a")
    args = RunArguments(name="t-x", base="tiny", data=str(SFT_DATA / "train.jsonl"), registry=str(tiny_registry.root))
    with pytest.raises(ValueError, match="dpo needs preference data"):
        run("dpo", args, DPOConfig(**common(tmp_path, max_steps=1)))
    assert "t-x" not in tiny_registry.names()


def test_trackio_logs_a_run_offline_beside_tensorboard(tiny_registry, tmp_path):
    """report_to trackio, as any recipe can set it: the run lands in trackio's local store (its
    folder is read once per process, hence a process of its own), with no network. (Tensorboard:
    test_sft_publishes_an_adapter_with_its_card.)"""
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "sft", "--config",
                          str(ROOT / "posttrain" / "recipes" / "sft_default.yaml"), "--name", "t-tracked", "--base", "tiny",
                          "--registry", str(tiny_registry.root), "--output_dir", str(tmp_path / "runs"), "--max_steps", "2",
                          "--report_to", "trackio", "--project", "workbench-test", "--lora_r", "4",
                          "--max_length", "96", "--eval_strategy", "no", "--save_strategy", "no"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list((tmp_path / "trackio").rglob("*.db")), list((tmp_path / "trackio").rglob("*"))


def test_killed_run_resumes_and_never_lists_a_half_entry(tiny_registry, tmp_path):
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "sft", "--config",
               str(ROOT / "posttrain" / "recipes" / "sft_default.yaml"), "--name", "t-resume", "--base", "tiny",
               "--registry", str(tiny_registry.root), "--output_dir", str(tmp_path / "runs"), "--max_steps", "40",
               "--save_steps", "1", "--save_total_limit", "2", "--eval_strategy", "no", "--lora_r", "4",
               "--per_device_train_batch_size", "2", "--max_length", "96"]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((tmp_path / "runs").glob("checkpoint-3")) and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert "t-resume" not in tiny_registry.names()
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "runs").glob("checkpoint-*"))
    assert saved and saved[-1] < 40
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {tmp_path / 'runs'}/checkpoint-" in second.stderr
    assert tiny_registry.get("t-resume").card["steps"] == 40


def test_merge_checks_logits_then_publishes(tiny_registry, tmp_path):
    from posttrain.engine import Engine, SamplingParams
    from posttrain.merge import MergeMismatch, merge

    entry, report = merge(tiny_registry, "ad-a", "ad-a-merged")
    assert report.max_abs_logit_diff <= 1e-3 and entry.method == "merged" and not entry.is_adapter
    assert entry.card["parent"] == "ad-a" and entry.card["metrics"]["merge_max_abs_logit_diff"] <= 1e-3
    greedy = SamplingParams(max_new_tokens=6, min_new_tokens=6, temperature=0)
    (via_adapter,) = Engine(tiny_registry, "tiny", quantize=False).generate(["hello world"], ["ad-a"], greedy)
    (via_merged,) = Engine(tiny_registry, "ad-a-merged", quantize=False).generate(["hello world"], ["__base__"], greedy)
    assert via_adapter.text == via_merged.text
    with pytest.raises(MergeMismatch, match="not published"):
        merge(tiny_registry, "ad-b", "ad-b-merged", tolerance=-1.0)
    assert "ad-b-merged" not in tiny_registry.names()


@pytest.mark.parametrize("recipe", sorted((ROOT / "posttrain" / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_parses_into_its_configs(recipe):
    from trl import ModelConfig, TrlParser

    from posttrain.methods import METHOD_NAMES
    from posttrain.recipe import trainer_config_class

    method_name = next(k for k in METHOD_NAMES if recipe.name.startswith(k) or (k == "sft" and recipe.name.startswith("qlora")))
    run_args, config, model_args = TrlParser((RunArguments, trainer_config_class(method_name), ModelConfig)).parse_args_and_config(
        args=["--config", str(recipe), "--bf16", "false"])  # GPU recipes: bf16 is checked against this CPU
    assert run_args.name and run_args.base and run_args.data
    if recipe.name.startswith("qlora"):
        assert run_args.quantize and config.optim == "paged_adamw_8bit" and config.gradient_checkpointing
        assert (model_args.lora_r, model_args.lora_alpha) == (16, 32) and len(model_args.lora_target_modules) == 7


def test_trls_reward_trainer_computes_our_bradley_terry_loss_and_refuses_options_without_effect(tiny_registry, tmp_path):
    """The reward run trains with TRL's RewardTrainer; its loss on a batch is the hand-written
    Bradley-Terry loss of the same rewards, and a RewardConfig option that could not act is refused."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import RewardConfig, RewardTrainer

    from posttrain.errors import RecipeError
    from posttrain.reward import load_reward_model, rewards

    base = tiny_registry.get("tiny")
    model, tokenizer = load_reward_model(base.path, lora=LoraConfig(r=4, lora_alpha=8, task_type="SEQ_CLS",
                                                                    target_modules=["q_proj", "v_proj"]))
    pairs = [json.loads(line) for line in (PREF_DATA / "heldout.jsonl").read_text().splitlines()[:4]]
    trainer = RewardTrainer(model=model, args=RewardConfig(**common(tmp_path, max_steps=1)), processing_class=tokenizer,
                            train_dataset=Dataset.from_list(pairs))
    batch = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(4)]))
    with torch.no_grad():
        theirs = trainer.compute_loss(model, batch)
        scores = rewards(model, batch["input_ids"], batch["attention_mask"])
    ours = bradley_terry_loss(*scores.chunk(2))
    assert theirs.item() == pytest.approx(ours.item(), abs=1e-6)
    args = RunArguments(name="t-rm-bad", base="tiny", data=str(PREF_DATA / "train.jsonl"), registry=str(tiny_registry.root))
    with pytest.raises(RecipeError, match="chat_template_path has no effect.*chat_template"):
        run("reward", args, RewardConfig(**common(tmp_path / "bad", max_steps=1, chat_template_path="x.jinja")))
    assert "t-rm-bad" not in tiny_registry.names()


def test_orpo_and_simpo_train_from_an_sft_parent_and_publish_with_their_cards(tiny_registry, tmp_path):
    from trl.experimental.cpo import CPOConfig
    from trl.experimental.orpo import ORPOConfig

    from posttrain.errors import RecipeError

    sft(tiny_registry, tmp_path, name="t-sft-parent")
    pref = dict(base="tiny", parent="t-sft-parent", data=str(PREF_DATA / "train.jsonl"),
                eval_data=str(PREF_DATA / "heldout.jsonl"), registry=str(tiny_registry.root), max_rows=16)
    orpo = run("orpo", RunArguments(name="t-orpo", **pref),
               ORPOConfig(**common(tmp_path / "orpo", max_steps=2)))
    simpo = run("simpo", RunArguments(name="t-simpo", **pref),
                CPOConfig(**common(tmp_path / "simpo", max_steps=2, loss_type="simpo", cpo_alpha=0.0)))
    for entry, method in ((orpo, "orpo"), (simpo, "simpo")):
        card = entry.card
        assert card["method"] == method and card["parent"] == "t-sft-parent" and card["steps"] == 2
        assert {"preference_accuracy", "parent_preference_accuracy"} <= set(card["metrics"])
    assert simpo.card["config"]["loss_type"] == "simpo" and simpo.card["config"]["cpo_alpha"] == 0.0
    with pytest.raises(RecipeError, match="loss_type simpo"):
        run("simpo", RunArguments(name="t-cpo", **pref), CPOConfig(**common(tmp_path / "cpo", max_steps=1)))


def test_dora_rslora_and_loraplus_recipes_train_and_are_recorded(tiny_registry, tmp_path):
    """DoRA and rsLoRA come from TRL's ModelConfig, LoRA+ from the recipe's loraplus_lr_ratio
    (PEFT's optimizer); each is on the card, the engine serves the DoRA child, and LoRA+ moves B
    further than plain LoRA from the same start."""
    from safetensors.torch import load_file
    from trl import ModelConfig, SFTConfig

    from posttrain.engine import Engine, SamplingParams

    dora = sft(tiny_registry, tmp_path, name="t-dora", model_args=ModelConfig(lora_r=4, lora_alpha=8, use_dora=True))
    rslora = sft(tiny_registry, tmp_path, name="t-rslora", model_args=ModelConfig(lora_r=4, lora_alpha=8, use_rslora=True))
    assert dora.card["config"]["use_dora"] and rslora.card["config"]["use_rslora"]
    assert any("lora_magnitude_vector" in k for k in load_file(str(dora.path / "adapter_model.safetensors")))
    engine = Engine(tiny_registry, "tiny", quantize=False)
    a, b = engine.battle("hello world", "t-dora", "t-rslora", SamplingParams(max_new_tokens=4, temperature=0))
    assert a.model == "t-dora" and b.model == "t-rslora"

    def b_norm(name: str, ratio: float | None) -> float:
        args = RunArguments(name=name, base="tiny", data=str(SFT_DATA / "train.jsonl"), registry=str(tiny_registry.root),
                            loraplus_lr_ratio=ratio)
        entry = run("sft", args, SFTConfig(**common(tmp_path / name, max_steps=4, learning_rate=1e-3, eval_strategy="no")),
                    ModelConfig(lora_r=4, lora_alpha=8))
        weights = load_file(str(entry.path / "adapter_model.safetensors"))
        return sum(float(v.norm()) for k, v in weights.items() if "lora_B" in k), entry

    plain, _ = b_norm("t-plain", None)
    plus, entry = b_norm("t-plus", 16.0)
    assert entry.card["config"]["loraplus_lr_ratio"] == 16.0
    assert plus > 3 * plain  # B starts at zero; at 16x its learning rate it moves much further


def test_replay_mixes_general_rows_into_training_and_the_card_records_forgetting(tiny_registry, tmp_path):
    from trl import DPOConfig, ModelConfig, SFTConfig

    from posttrain.data import DataError

    replay = ROOT / "data" / "general_replay.jsonl"
    args = RunArguments(name="t-replay", base="tiny", data=str(SFT_DATA / "train.jsonl"),
                        eval_data=str(SFT_DATA / "heldout.jsonl"), registry=str(tiny_registry.root),
                        replay_data=str(replay), replay_ratio=0.5)
    entry = run("sft", args, SFTConfig(**common(tmp_path / "replay", max_steps=2)), ModelConfig(lora_r=4, lora_alpha=8))
    card = entry.card
    assert card["train_rows"] == 60 and card["replay_rows"] == 30 and card["replay_ratio"] == 0.5
    assert card["replay_data"] == str(replay)
    assert {"general_perplexity", "parent_general_perplexity"} <= set(card["metrics"])  # forgetting, before and after
    pref = RunArguments(name="t-replay-dpo", base="tiny", data=str(PREF_DATA / "train.jsonl"), registry=str(tiny_registry.root),
                        replay_data=str(replay), replay_ratio=0.5)
    with pytest.raises(DataError, match="dpo replays preference pairs.*plain text"):
        run("dpo", pref, DPOConfig(**common(tmp_path / "dpo", max_steps=1)))
    assert "t-replay-dpo" not in tiny_registry.names()
