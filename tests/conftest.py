"""Shared fixtures: a tiny random Llama (hidden size 16) with a tiny BPE tokenizer for fast logic
tests, and the real embedded default base for behaviour tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from posttrain.tiny import CHATML, make_tiny_model, make_tokenizer  # noqa: F401 (tests import them from here)

ROOT = Path(__file__).resolve().parents[1]


def make_lora(base_dir: Path, out_dir: Path, seed: int, r: int = 4, alpha: int = 8, **kwargs) -> Path:
    """A plain PEFT LoRA adapter with random, non-zero weights (as if trained)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=kwargs.pop("target_modules", "all-linear"),
                        init_lora_weights=False, **kwargs)
    peft_model = get_peft_model(model, config)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    peft_model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture()
def tiny_registry(tmp_path, tiny_dir):
    """A registry holding the tiny base as entry 'tiny' and two adapters 'ad-a', 'ad-b'."""
    from posttrain.registry import Registry

    registry = Registry(tmp_path / "registry")
    registry.import_base(tiny_dir, "tiny")
    for i, name in enumerate(["ad-a", "ad-b"]):
        registry.import_adapter(make_lora(tiny_dir, tmp_path / name, seed=i + 1), name, base="tiny", method="sft")
    return registry


@pytest.fixture(scope="session")
def default_base():
    """The real embedded base, imported once into the project registry and reused."""
    from posttrain.registry import Registry

    registry = Registry(os.environ.get("REGISTRY_DIR", ROOT / "registry"))
    return registry, registry.import_default_base()


@pytest.fixture()
def real_registry(tmp_path, default_base):
    """A scratch registry that links the real base (no copy), for tests that add entries."""
    from posttrain.registry import Registry

    _, base = default_base
    registry = Registry(tmp_path / "registry")
    registry.root.mkdir()
    (registry.root / base.name).symlink_to(base.path.resolve())
    return registry
