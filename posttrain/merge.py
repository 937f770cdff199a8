"""Merge a LoRA adapter into its base's full-precision weights and publish the merged model as a
new registry entry, only after checking that the merged model's logits match the adapter's."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posttrain.models import load_tokenizer
from posttrain.registry import Entry, Registry, RegistryError, folder_hash

PROBES = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain photosynthesis to a child in two sentences.",
]


class MergeMismatch(RegistryError):
    """The merged model does not reproduce the adapter; nothing was published."""


@dataclass(frozen=True)
class MergeReport:
    max_abs_logit_diff: float
    tolerance: float


def stored_dtype(folder) -> torch.dtype:
    """The dtype a model folder's weights are stored in (its config's, else its first tensor's)."""
    import json
    from pathlib import Path

    config = json.loads((Path(folder) / "config.json").read_text())
    name = config.get("dtype") or config.get("torch_dtype")
    if name:
        return getattr(torch, str(name).removeprefix("torch."))
    from safetensors import safe_open

    with safe_open(str(next(Path(folder).glob("*.safetensors"))), "pt") as handle:
        return handle.get_tensor(next(iter(handle.keys()))).dtype


@torch.no_grad()
def merge(registry: Registry, adapter: str, name: str, tolerance: float = 1e-3) -> tuple[Entry, MergeReport]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, GenerationConfig

    entry = registry.get(adapter)
    if not entry.is_adapter or entry.method == "reward":
        raise RegistryError(f"{adapter!r} is not a causal-LM adapter entry (method {entry.method!r})")
    if name in registry:
        raise RegistryError(f"entry {name!r} already exists in {registry.root}")
    base = registry.get(entry.base)
    tokenizer = load_tokenizer(registry.tokenizer_path(entry))  # the chat template it was trained with
    source_dtype = stored_dtype(base.path)
    # Merged and checked in fp32 (merging into 4-bit or bf16 weights would round the adapter
    # away), written in the base's own dtype: a bf16 8B stays 16 GB on disk.
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(base.path), dtype=torch.float32), str(entry.path)).eval()
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in PROBES]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with_adapter = model(**batch).logits
    merged = model.merge_and_unload()
    diff = (merged(**batch).logits - with_adapter).abs()
    worst = float(diff[batch["attention_mask"].bool()].max())
    report = MergeReport(worst, tolerance)
    if not worst <= tolerance:
        raise MergeMismatch(f"merged {adapter!r} differs from the adapter by {worst:.2e} in logits (> {tolerance:.0e}); not published")

    def write(tmp):
        merged.to(source_dtype).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if (entry.path / "generation_config.json").is_file():  # stop at the adapter's end of turn
            GenerationConfig.from_pretrained(str(entry.path)).save_pretrained(tmp)
        card.update(base_hash=folder_hash(tmp))

    card = {"method": "merged", "base": name, "base_model": entry.card.get("base_model"), "parent": adapter,
            "metrics": {**entry.card.get("metrics", {}), "merge_max_abs_logit_diff": worst}}
    return registry.publish(name, write, card), report
