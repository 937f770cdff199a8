"""TRL's fused LM head, made fast on a CPU.

TRL 1.16 computes the training log-probabilities without materialising the logits
(`trl.kernels.chunked_logprob.ChunkedLogProbFunction`, used by SFT, DPO and its family, KTO, GRPO
and RLOO). Two of its choices are made for GPUs and cost a CPU most of a step:

- it scores only the positions that carry a label (`labels != -100`) on Triton devices alone;
  elsewhere it scores every position, the prompt's and the padding's too, so that the tile
  shapes stay fixed for compilers (Neuron). Eager CPU code does not recompile: compacting there
  gives the same log-probabilities (a test checks it to the bit) for the labelled positions only.
  On Gemma 3, whose tied 262,144 x 640 head is most of the model's multiply-adds, that halved a DPO
  step of the demo pairs (half of each row is prompt or padding).
- its backward accumulates the gradient GEMMs in fp32 by upcasting both bf16 operands, because
  CUDA can multiply bf16 into an fp32 output and a CPU cannot (`addmm(out_dtype=...)` is CUDA only).
  On a CPU under bf16 autocast the GEMM runs in bf16 here and is added into the fp32 accumulator:
  one rounding per 32,768-token vocabulary chunk (8 on Gemma), the precision every bf16 step has
  anyway (measured: the adapter's gradient moves by 1.1% relative, against 2.8% between bf16 and
  fp32 steps).

`cpu_fast_head()` applies both while a run trains and restores TRL's own behaviour after, so the
GPU path is untouched (Triton devices already compact; CUDA keeps the fp32-output GEMM) and the
training bench can run TRL's stock path beside this one in one process.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import trl.kernels.chunked_logprob as chunked
import trl.trainer.utils as trl_utils

_stock_use_triton = chunked._use_triton
_stock_addmm_fp32 = chunked._addmm_fp32


def compacting(device: torch.device) -> bool:
    """Whether the fused head scores only the labelled positions: always on a CPU (eager, no
    recompilation), and wherever TRL already does (Triton devices)."""
    return device.type == "cpu" or _stock_use_triton(device)


def addmm_fp32(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """`acc += a @ b` into an fp32 `acc`: on a CPU with bf16 operands the product is a bf16 GEMM
    (a third of the fp32 one's time here); everywhere else TRL's own."""
    if acc.device.type == "cpu" and a.dtype == torch.bfloat16 and b.dtype == torch.bfloat16:
        acc.add_(torch.mm(a, b))
    else:
        _stock_addmm_fp32(acc, a, b)


@contextmanager
def cpu_fast_head(enabled: bool = True):
    """TRL's fused LM head with CPU compaction and bf16 gradient GEMMs while inside; TRL's stock
    behaviour again after (or throughout, with `enabled=False`)."""
    if not enabled:
        yield
        return
    saved = trl_utils._use_triton, chunked._addmm_fp32
    trl_utils._use_triton, chunked._addmm_fp32 = compacting, addmm_fp32
    try:
        yield
    finally:
        trl_utils._use_triton, chunked._addmm_fp32 = saved
