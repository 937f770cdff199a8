"""Training at the speed the CPU allows: bf16 autocast where the hardware has native bf16 (and
only there, unless the recipe says), packed SFT rows that never see each other, batches of
similar length for the methods that cannot pack, and the card saying which precision ran."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import ROOT
from posttrain import fused_head, precision
from posttrain.train import parse_run, run

SFT_RECIPE = ROOT / "posttrain" / "recipes" / "sft_default.yaml"


@pytest.mark.parametrize("native", [True, False])
def test_the_hardware_decides_the_precision_unless_the_recipe_or_flags_do(monkeypatch, native, tmp_path):
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    _, config, _ = parse_run("sft", ["--config", str(SFT_RECIPE)])
    assert config.bf16 is native and not config.fp16
    _, forced, _ = parse_run("sft", ["--config", str(SFT_RECIPE), "--bf16", "false"])
    assert forced.bf16 is False  # the command line decides
    recipe = tmp_path / "r.yaml"
    recipe.write_text(SFT_RECIPE.read_text() + "\nbf16: true\n")
    _, chosen, _ = parse_run("sft", ["--config", str(recipe)])
    assert chosen.bf16 is True  # so does the recipe
    assert precision.precision_of(config) == ("bf16 mixed (autocast; fp32 adapter weights and optimizer state)"
                                              if native else "fp32")


def test_autocast_runs_the_forward_in_bf16_only_when_the_run_is_bf16(monkeypatch, tiny_registry, tmp_path):
    """What the Trainer does with the precision: its accelerator autocasts the forward (bf16 matmuls)
    while the LoRA weights stay fp32."""
    from trl import SFTTrainer

    dtypes = {}
    for native in (True, False):
        monkeypatch.setattr(precision, "native_bf16", lambda: native)
        run_args, config, model_args = parse_run("sft", [
            "--config", str(SFT_RECIPE), "--name", f"p-{native}", "--base", "tiny", "--registry", str(tiny_registry.root),
            "--max_steps", "1", "--max_rows", "8", "--output_dir", str(tmp_path / f"run-{native}"), "--lora_r", "4",
            "--lora_alpha", "8", "--save_strategy", "no", "--eval_strategy", "no"])
        seen = []
        original = SFTTrainer.compute_loss

        def spy(self, model, inputs, *args, **kwargs):
            if not seen:  # the first step: what one projection computes in, and what the adapter is stored in
                layer = next(m for n, m in model.named_modules() if n.endswith("q_proj.base_layer"))
                hook = layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
                seen.append({p.dtype for n, p in model.named_parameters() if p.requires_grad})
                try:
                    return original(self, model, inputs, *args, **kwargs)
                finally:
                    hook.remove()
            return original(self, model, inputs, *args, **kwargs)

        monkeypatch.setattr(SFTTrainer, "compute_loss", spy)
        entry = run("sft", run_args, config, model_args)
        monkeypatch.setattr(SFTTrainer, "compute_loss", original)
        dtypes[native] = (seen[0], seen[1])
        assert entry.card["precision"] == precision.precision_of(config)
    assert dtypes[True] == ({torch.float32}, torch.bfloat16)  # LoRA weights fp32, the matmul in bf16 (autocast)
    assert dtypes[False] == ({torch.float32}, torch.float32)


def test_packed_rows_keep_apart_their_loss_equals_each_row_alone(tiny_dir):
    """TRL's BFD packing concatenates rows with restarting position ids and no attention mask;
    transformers turns those into a block-diagonal causal mask. A packed row's token losses must
    equal the same row's alone, so no row ever attends to another."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir)).eval()
    rows = [{"input_ids": [5, 9, 11, 13, 17, 19], "labels": [-100, -100, 11, 13, 17, 19]},
            {"input_ids": [7, 23, 29, 31], "labels": [-100, 23, 29, 31]},
            {"input_ids": [37, 41, 43, 47, 53], "labels": [-100, -100, -100, 47, 53]}]

    def token_losses(batch) -> torch.Tensor:
        with torch.no_grad():
            inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
            logits = model(**inputs, use_cache=False).logits[0, :-1]  # as TRL trains (a cache turns the packed mask off)
        labels = batch["labels"][0, 1:]
        loss = torch.nn.functional.cross_entropy(logits.float(), labels.clamp(min=0), reduction="none")
        return loss[labels != -100]

    alone = torch.cat([token_losses(DataCollatorForLanguageModeling(pad_token_id=0)([row])) for row in rows])
    packed_batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(
        [{"input_ids": sum((r["input_ids"] for r in rows), []), "labels": sum((r["labels"] for r in rows), []),
          "seq_lengths": [len(r["input_ids"]) for r in rows]}])
    assert "attention_mask" not in packed_batch and packed_batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3,
                                                                                                   0, 1, 2, 3, 4]
    packed = token_losses(packed_batch)
    assert packed.shape == alone.shape == (9,)
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
    # the recipes' padding-free batches: the collator flattens separate rows the same way
    flattened = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows)
    assert torch.equal(flattened["position_ids"], packed_batch["position_ids"])
    torch.testing.assert_close(token_losses(flattened), alone, rtol=1e-5, atol=1e-5)
    # and the check can fail: the same tokens as ONE sequence (rows attending to each other) differ
    joined = token_losses(DataCollatorForLanguageModeling(pad_token_id=0)([{
        "input_ids": packed_batch["input_ids"][0].tolist(), "labels": packed_batch["labels"][0].tolist()}]))
    assert not torch.allclose(joined, alone, atol=1e-3)


def test_the_project_recipes_train_sft_padding_free_and_group_the_rest_by_length(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    for recipe in ("sft_default", "sft_gemma3_270m"):
        _, config, _ = parse_run("sft", ["--config", str(ROOT / "posttrain" / "recipes" / f"{recipe}.yaml")])
        assert config.padding_free and not config.packing and config.bf16
    for kind, recipe in (("dpo", "dpo_default"), ("dpo", "dpo_gemma3_270m"), ("reward", "reward_default"),
                         ("orpo", "orpo_default"), ("simpo", "simpo_default")):
        _, config, _ = parse_run(kind, ["--config", str(ROOT / "posttrain" / "recipes" / f"{recipe}.yaml")])
        assert config.train_sampling_strategy == "group_by_length" and config.bf16, recipe


@pytest.mark.parametrize("layout", ["padding_free", "packing"])
def test_an_sft_run_without_padding_trains_and_says_how(layout, tiny_registry, tmp_path, monkeypatch):
    """An SFT step on padding-free batches (the recipes' way) and on BFD-packed rows: the card
    records the layout and the precision; the training log has its losses."""
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    flags = ["--packing", "true", "--packing_strategy", "bfd", "--padding_free", "false"] if layout == "packing" else []
    run_args, config, model_args = parse_run("sft", [
        "--config", str(SFT_RECIPE), "--name", layout.replace("_", "-"), "--base", "tiny", "--registry", str(tiny_registry.root),
        "--max_steps", "2", "--max_rows", "16", "--output_dir", str(tmp_path / "run"), "--lora_r", "4", "--lora_alpha", "8",
        "--save_strategy", "no", "--eval_strategy", "no", "--logging_steps", "1", *flags])
    entry = run("sft", run_args, config, model_args)
    card = entry.card
    assert card["config"][layout] is True and card["precision"].startswith("bf16 mixed")
    history = json.loads((entry.path / "training_log.json").read_text())
    assert sum("loss" in h for h in history) == 2 and all(h["loss"] > 0 for h in history if "loss" in h)


@pytest.mark.parametrize("kind", ["dpo", "reward", "orpo"])
def test_pair_methods_train_with_batches_grouped_by_length(kind, tiny_registry, tmp_path, monkeypatch):
    """DPO, ORPO, SimPO and the reward model cannot pack (each side is scored whole): their project
    recipes sample batches of similar length from the `length` column the run adds. (KTO keeps
    TRL's sequential order: its KL term pairs each completion with its batch neighbours.)"""
    from transformers import trainer_pt_utils

    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    made = []
    original = trainer_pt_utils.LengthGroupedSampler.__init__

    def spy(self, batch_size, dataset=None, lengths=None, **kwargs):
        made.append(list(lengths))
        original(self, batch_size, dataset=dataset, lengths=lengths, **kwargs)

    monkeypatch.setattr(trainer_pt_utils.LengthGroupedSampler, "__init__", spy)
    args = ["--config", str(ROOT / "posttrain" / "recipes" / f"{kind}_default.yaml"), "--name", f"g-{kind}", "--base", "tiny",
            "--registry", str(tiny_registry.root), "--max_steps", "1", "--max_rows", "12", "--output_dir", str(tmp_path / "run"),
            "--lora_r", "4", "--lora_alpha", "8", "--save_strategy", "no", "--eval_strategy", "no",
            "--data", str(ROOT / "data" / "preference" / "train.jsonl"), "--eval_data", str(ROOT / "data" / "preference" / "heldout.jsonl")]
    if kind != "reward":
        args += ["--parent", "ad-a"]
    entry = run(kind, *parse_run(kind, args))
    assert made and len(made[0]) >= 9 and all(n > 0 for n in made[0]) and len(set(made[0])) > 1
    assert entry.card["precision"].startswith("bf16 mixed") and entry.card["steps"] == 1


def fused_step(model, input_ids, labels, bf16: bool, fast: bool):
    """One fused-head forward and backward (TRL's, as its trainers call it): the per-token
    log-probabilities, the loss, the gradient of every trainable weight, and how many positions
    the head scored."""
    from trl.trainer import utils as trl_utils

    scored = []
    stock = trl_utils._ChunkedLogProbFunction

    class Spy(stock):
        @staticmethod
        def forward(ctx, hidden, *args):
            scored.append(hidden.shape[0])
            return stock.forward(ctx, hidden, *args)

    model.zero_grad(set_to_none=True)
    trl_utils._ChunkedLogProbFunction = Spy
    try:
        with fused_head.cpu_fast_head(fast), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=input_ids, labels=labels, fused_lm_head=True)
            out.loss.backward()
    finally:
        trl_utils._ChunkedLogProbFunction = stock
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.log_probs.detach(), float(out.loss.detach()), grads, scored[0]


def test_the_fused_head_scores_only_labelled_positions_on_a_cpu_with_the_same_numbers(tmp_path):
    """TRL scores every position on a device without Triton; under cpu_fast_head it scores only
    the labelled ones (prompt and padding skipped) and every log-probability, the loss and the
    gradients stay exactly what they were. Outside the context TRL's own behaviour is back."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from posttrain.tiny import make_tiny_model

    model = AutoModelForCausalLM.from_pretrained(str(make_tiny_model(tmp_path / "tiny")))
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))  # what DPO asks for
    torch.manual_seed(0)
    input_ids = torch.randint(3, model.config.vocab_size, (3, 12))
    labels = input_ids.clone()
    labels[:, :5] = -100  # the prompt
    labels[1, 9:] = -100  # padding
    stock = fused_step(model, input_ids, labels, bf16=False, fast=False)
    fast = fused_step(model, input_ids, labels, bf16=False, fast=True)
    assert stock[3] == 3 * 11 and fast[3] == int((labels[:, 1:] != -100).sum()) == 3 * 7 - 3  # 4 prompt positions per row after the shift, 3 of padding
    assert torch.equal(stock[0], fast[0]) and stock[1] == fast[1]
    assert stock[2].keys() == fast[2].keys() and all(torch.allclose(stock[2][n], fast[2][n], atol=1e-7) for n in stock[2])
    assert fused_step(model, input_ids, labels, bf16=False, fast=False)[3] == 3 * 11  # restored after the context


def test_the_fused_heads_bf16_gradient_stays_within_bf16_noise(tmp_path):
    """Under bf16 autocast the CPU path multiplies the head's gradient in bf16 (added into fp32):
    the gradient stays as close to the fp32 step's as TRL's stock bf16 step is."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from posttrain.tiny import make_tiny_model

    model = AutoModelForCausalLM.from_pretrained(str(make_tiny_model(tmp_path / "tiny", hidden=64)))
    add_fused_lm_head(model)
    torch.manual_seed(0)
    input_ids = torch.randint(3, model.config.vocab_size, (4, 32))
    labels = input_ids.clone()
    labels[:, :8] = -100
    exact = fused_step(model, input_ids, labels, bf16=False, fast=False)[2]
    distance = lambda grads: (sum(float((grads[n] - exact[n]).norm() ** 2) for n in exact)
                              / sum(float(exact[n].norm() ** 2) for n in exact)) ** 0.5
    stock, fast = (distance(fused_step(model, input_ids, labels, bf16=True, fast=f)[2]) for f in (False, True))
    assert 0 < fast < max(2 * stock, 0.02), (stock, fast)


@pytest.mark.parametrize("method_name", ["sft", "dpo"])
def test_the_training_bench_trains_both_lanes_on_the_same_epoch(method_name, tiny_registry, tmp_path):
    """`bench.py --only train` on the tiny base: by default each lane trains exactly one epoch of the
    same rows (the same real tokens), and the report carries the issue's keys for both lanes."""
    from posttrain import trainbench

    out = trainbench.compare(method_name, "tiny", str(tiny_registry.root), tmp_path, None, say=lambda _: None)
    prefix = "train" if method_name == "sft" else method_name
    assert out[f"{prefix}_trained_tokens_plain"] == out[f"{prefix}_trained_tokens_fast"] > 0
    for key in ("tokens_per_s_plain", "tokens_per_s_fast", "speedup", "heldout_loss_plain", "heldout_loss_fast",
                "peak_rss_mb_plain", "peak_rss_mb_fast"):
        assert out[f"{prefix}_{key}"] > 0, key
    assert out[f"{prefix}_bf16_plain"] is False
    if method_name == "sft":
        assert out["train_padding_share_fast"] == 0.0 < out["train_padding_share_plain"]


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_the_cpu_folds_of_the_fused_head_match_trls_own(scale):
    """The leaner CPU folds of a bf16 logit tile give TRL's statistics and gradient (fp32 math in
    both; only the order of a few products differs), targets inside the tile and outside it."""
    torch.manual_seed(0)
    n, cols, start = 6, 512, 1024
    tile = (torch.randn(n, cols) * 4).bfloat16()
    targets = torch.tensor([1024, 1100, 1535, 3, 5000, 1300])  # two rows' targets lie in other tiles
    flags = dict(HAS_SOFTCAP=False, HAS_ENTROPY=True, HAS_LOG_SUM_SQ_PROBS=False, HAS_MEAN_LOGITS=True, HAS_IS_TOP1=True,
                 BLOCK_SIZE=1024)

    def fold(function):
        torch.manual_seed(1)  # the same running statistics for both folds
        stats = [torch.full((n,), -math.inf), torch.rand(n) + 1, torch.rand(n), torch.zeros(n), torch.zeros(n),
                 torch.full((n,), -math.inf), torch.zeros(n)]
        stats[0][:] = 2.0  # a running maximum from an earlier tile
        function(tile.clone(), cols, targets, *stats, start, cols, scale, 1.0, 0.8, **flags)
        return stats

    for ours, theirs in zip(fold(fused_head.forward_tile), fold(fused_head._stock_forward_tile)):
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5), (ours, theirs)

    log_z, grad_logprobs = torch.randn(n) + 8, torch.randn(n)
    grads = []
    for function in (fused_head.backward_tile, fused_head._stock_backward_tile):
        out = tile.clone()
        function(out, cols, targets, log_z, log_z, grad_logprobs, None, start, cols, scale, 1.0, 0.8,
                 HAS_SOFTCAP=False, HAS_LOGPROB_GRAD=True, HAS_ENTROPY_GRAD=False, BLOCK_SIZE=1024)
        grads.append(out.float())
    assert torch.allclose(grads[0], grads[1], rtol=1e-2, atol=1e-6)  # both rounded to the bf16 tile
    assert (grads[0] != 0).any()
