"""Which precision a training run computes in: bf16 mixed precision (autocast; LoRA weights,
gradients and optimizer state stay fp32) wherever the hardware has native bf16 (a GPU that
supports it, a CPU with AVX512-BF16 or AMX), fp32 elsewhere. A recipe or command line that sets
`bf16` or `fp16` itself decides; this only fills the field when nobody did."""

from __future__ import annotations

import torch

PRECISION_FIELDS = ("bf16", "fp16")


def native_bf16() -> bool:
    """bf16 matmuls in hardware: a GPU that supports bf16, or a CPU with AVX512-BF16 / AMX
    (oneDNN's check; emulated bf16 on other CPUs is slower than fp32)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def given(fields: dict, argv: list[str]) -> bool:
    """Whether the recipe's fields or the command line set bf16 or fp16."""
    flags = {f"--{name}" for name in PRECISION_FIELDS}
    return any(name in fields for name in PRECISION_FIELDS) or any(a.split("=", 1)[0] in flags for a in argv)


def with_precision(argv: list[str], recipe_fields: dict) -> list[str]:
    """`argv` plus `--bf16 true|false` from the hardware when neither the recipe nor `argv` chose
    (TRL's own default is bf16 everywhere, which on a CPU without native bf16 is emulated and slow)."""
    return argv if given(recipe_fields, argv) else [*argv, "--bf16", "true" if native_bf16() else "false"]


def precision_of(config) -> str:
    """The card's words for a config's precision."""
    if getattr(config, "bf16", False):
        return "bf16 mixed (autocast; fp32 adapter weights and optimizer state)"
    if getattr(config, "fp16", False):
        return "fp16 mixed (autocast; fp32 adapter weights and optimizer state)"
    return "fp32"
