"""The GPU proof script in its dry mode (tiny shapes on the CPU: every step must run), and the
checks that need CUDA, skipped without it."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_gpu_check_dry_run_completes_every_step(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry", "--out", str(tmp_path), "--json"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for name in ("build", "train_plain", "train_ours", "adapter", "decode_plain_peft", "decode_engine_eager"):
        assert "error" not in results[name], (name, results[name])
    assert results["train_ours"]["tokens_per_s"] > 0 and results["decode_engine_eager"]["single_tokens_per_s"] > 0
    assert json.loads((tmp_path / "gpu_check.json").read_text())["train_plain"]["loss"] > 0


def test_gpu_check_refuses_to_measure_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--dry" in out.stderr


@cuda
def test_compiled_decode_answers_as_eager(tiny_registry):
    from posttrain.engine import Engine, SamplingParams

    params = SamplingParams(max_new_tokens=12, min_new_tokens=12, temperature=0)
    eager = Engine(tiny_registry, "tiny", quantize=False).battle("hello world", "ad-a", "ad-b", params)
    compiled = Engine(tiny_registry, "tiny", quantize=False, compile=True).battle("hello world", "ad-a", "ad-b", params)
    assert [a.text for a in compiled] == [a.text for a in eager]


@cuda
def test_qlora_keeps_the_compute_dtype_on_gpu(tiny_registry):
    from posttrain.train import RunArguments, load_trainable

    from trl import ModelConfig

    run = RunArguments(name="x", base="tiny", registry=str(tiny_registry.root), quantize=True)
    model = load_trainable(tiny_registry.get("tiny"), None, run, gradient_checkpointing=True,
                           model_args=ModelConfig(lora_r=4, lora_alpha=8))
    assert model.get_base_model().get_output_embeddings().weight.dtype == torch.bfloat16
    assert not any(p.dtype == torch.float32 and not p.requires_grad for p in model.parameters())
