"""Shared fixtures: a tiny random Llama (hidden size 16) with a tiny BPE tokenizer for fast logic
tests, and the real embedded default base for behaviour tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog", "hello world, how are you today?",
    "write a poem about the sea and the sky", "two plus two is four; three times three is nine",
    "system user assistant answer question reply", "python code: def add(a, b): return a + b",
]
ROOT = Path(__file__).resolve().parents[1]


def make_tokenizer(chat_template: str = CHATML, extra_special=()):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", *extra_special]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS * 5, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<|im_end|>", additional_special_tokens=list(extra_special) or None,
    )
    fast.chat_template = chat_template
    fast.model_max_length = 128
    return fast


def make_tiny_model(folder: Path, hidden: int = 16, layers: int = 2, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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
