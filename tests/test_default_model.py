"""Behaviour on the real embedded default base (SmolLM2-135M-Instruct from PyPI), in 4-bit."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, make_lora
from posttrain.engine import BASE, Engine, SamplingParams

GREEDY = SamplingParams(max_new_tokens=24, temperature=0)


@pytest.fixture(scope="module")
def engine_4bit(default_base):
    registry, base = default_base
    return Engine(registry, base.name)


def test_default_base_card(default_base):
    _, base = default_base
    card = base.card
    assert card["method"] == "base" and card["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card["architecture"] == "LlamaForCausalLM"
    assert 134_000_000 < card["parameters"] < 135_000_000
    assert card["base_hash"].startswith("sha256:")
    assert "quantization_config" not in json.loads((base.path / "config.json").read_text())


def test_four_bit_base_answers_sensibly(engine_4bit):
    assert engine_4bit.quantization == "nf4"
    layer = engine_4bit.model.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == "Linear4bit" and layer.weight.quant_state.nested  # double quant
    (answer,) = engine_4bit.generate(["What is the capital of France?"], [BASE], GREEDY)
    assert "Paris" in answer.text and answer.new_tokens == 24


def test_battle_adapter_vs_base_in_one_call(default_base, engine_4bit, tmp_path):
    registry, base = default_base
    from posttrain.registry import Registry

    scratch = Registry(tmp_path / "registry")
    scratch.root.mkdir()
    (scratch.root / base.name).symlink_to(base.path.resolve())
    scratch.import_adapter(make_lora(base.path, tmp_path / "lora", seed=1, r=8, target_modules=["q_proj", "v_proj"]),
                           "noisy", base=base.name)
    engine_4bit.registry = scratch  # same loaded base, adapters now looked up in the scratch registry
    plain, noisy = engine_4bit.battle("Name a fruit.", BASE, "noisy", GREEDY)
    assert plain.text and noisy.text and plain.text != noisy.text
    assert engine_4bit.adapters == ["noisy"]


def test_bench_prints_the_battle_ratio_as_json(default_base):
    registry, _ = default_base
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--only", "battle", "--tokens", "4", "--repeats", "1",
         "--json", "--registry", str(registry.root)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["new_tokens"] == 4 and figures["quantization"] == "nf4"
    assert figures["battle_over_single"] == pytest.approx(figures["battle_s"] / figures["single_s"], rel=0.02)


def test_bench_times_the_sampler_against_transformers_on_real_logits(default_base):
    registry, _ = default_base
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--only", "sampling", "--json", "--registry",
                          str(registry.root)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["sampling_vocab"] == 49152 and figures["sampling_rows"] == 32
    assert figures["sampling_speedup"] == pytest.approx(figures["sampling_transformers_ms"] / figures["sampling_engine_ms"], rel=0.05)


def test_bench_times_the_shrinking_decode_against_generate_with_the_same_answers(default_base):
    registry, _ = default_base
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--only", "decode", "--rows", "6", "--json",
                          "--registry", str(registry.root)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["decode_rows"] == 6 and figures["decode_same_answers"] == 6
    assert 6 <= figures["decode_new_tokens"] <= 6 * 128
    assert figures["decode_speedup"] == pytest.approx(figures["decode_generate_s"] / figures["decode_engine_s"], rel=0.02)
    refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--only", "decode", "--model", "no-such-model",
                              "--registry", str(registry.root)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert refused.returncode != 0 and "no-such-model" in refused.stderr.splitlines()[-1]
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_reward_recipe_through_trls_reward_trainer_keeps_its_heldout_accuracy(real_registry, tmp_path):
    """The project's reward recipe on the real base and the demo pairs, trained by TRL's
    RewardTrainer: the held-out pairwise accuracy the hand-written trainer reached (1.00 with the
    full recipe) is still reached in a few steps."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "reward", "--config",
         str(ROOT / "posttrain" / "recipes" / "reward_default.yaml"), "--name", "rm-check", "--registry",
         str(real_registry.root), "--output_dir", str(tmp_path / "runs"), "--max_steps", "10", "--eval_strategy", "no",
         "--save_strategy", "no"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = real_registry.get("rm-check").card["metrics"]
    assert metrics["preference_accuracy"] >= 0.9 and metrics["preference_accuracy"] >= metrics["parent_preference_accuracy"]
