"""TRL's fused LM head, made fast on a CPU.

TRL 1.16 computes the training log-probabilities without materialising the logits
(`trl.kernels.chunked_logprob.ChunkedLogProbFunction`, used by SFT, DPO and its family, KTO, GRPO
and RLOO). Three of its choices are made for GPUs and cost a CPU most of a step:

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
- its CPU fold of each [tokens, 32,768] logit tile (TRL's Triton kernel, written in torch ops for
  devices without Triton) makes a dozen passes over the tile; the backward's turns one read into
  the gradient in five (in place, the target's term added at one index per row), the forward's
  drops multiplications by 1 and a temporary, and takes the maximum before each target only
  in the tile that holds it. bf16 tiles only: an fp32 run keeps TRL's fold.

`cpu_fast_head()` applies these while a run trains and restores TRL's own behaviour after, so the
GPU path is untouched (Triton devices already compact; CUDA keeps the fp32-output GEMM) and the
training bench can run TRL's stock path beside this one in one process.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import trl.kernels.chunked_logprob as chunked
import trl.trainer.utils as trl_utils

_stock_use_triton = chunked._use_triton
_stock_addmm_fp32 = chunked._addmm_fp32
_stock_forward_tile = chunked._forward_tile
_stock_backward_tile = chunked._backward_tile


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


def forward_tile(tile, tile_stride, targets, running_max, sum_exp, x_sum_exp, sq_sum_exp, z_sum, max_before_target,
                 target_logit, vocab_start, n_cols, logit_scale, softcap, inv_t, HAS_SOFTCAP, HAS_ENTROPY,
                 HAS_LOG_SUM_SQ_PROBS, HAS_MEAN_LOGITS, HAS_IS_TOP1, BLOCK_SIZE):
    """TRL's `_forward_tile` (one vocabulary chunk folded into the online-logsumexp statistics)
    with fewer passes over the tile; TRL's own for fp32 tiles, softcapping and WPO's extra sum."""
    if HAS_SOFTCAP or HAS_LOG_SUM_SQ_PROBS or tile.dtype != torch.bfloat16:
        return _stock_forward_tile(tile, tile_stride, targets, running_max, sum_exp, x_sum_exp, sq_sum_exp, z_sum,
                                   max_before_target, target_logit, vocab_start, n_cols, logit_scale, softcap, inv_t,
                                   HAS_SOFTCAP, HAS_ENTROPY, HAS_LOG_SUM_SQ_PROBS, HAS_MEAN_LOGITS, HAS_IS_TOP1, BLOCK_SIZE)
    z = scaled(tile.float(), logit_scale, inv_t)
    local = targets - vocab_start
    if HAS_MEAN_LOGITS:
        z_sum += z.sum(-1)
    in_tile = (local >= 0) & (local < n_cols)
    tile_max = z.amax(-1)
    if HAS_IS_TOP1:  # the first maximum: a tie with an earlier token is not a top-1 prediction
        # Every column lies before a target in a later tile, none before one in an earlier tile;
        # only the rows whose target is here need a partial maximum.
        before = torch.where(local >= n_cols, tile_max, torch.full_like(tile_max, -math.inf))
        rows = in_tile.nonzero().squeeze(-1)
        if len(rows):
            prefix = torch.arange(n_cols, device=z.device) < local[rows].unsqueeze(-1)
            before[rows] = z[rows].masked_fill(~prefix, -math.inf).amax(-1)
        max_before_target.copy_(torch.maximum(max_before_target, before))
    new_m = torch.maximum(running_max, tile_max)
    rescale = torch.exp(running_max - new_m)
    e = (z - new_m.unsqueeze(-1)).exp_()
    sum_exp.mul_(rescale).add_(e.sum(-1))
    if HAS_ENTROPY:
        x_sum_exp.mul_(rescale).add_((e * z).sum(-1))
    running_max.copy_(new_m)
    target_z = z.gather(-1, local.clamp(0, n_cols - 1).unsqueeze(-1)).squeeze(-1)
    target_logit.copy_(torch.where(in_tile, target_z, target_logit))


def backward_tile(tile, tile_stride, targets, log_z, entropy, grad_logprobs, grad_entropy, vocab_start, n_cols,
                  logit_scale, softcap, inv_t, HAS_SOFTCAP, HAS_LOGPROB_GRAD, HAS_ENTROPY_GRAD, BLOCK_SIZE):
    """TRL's `_backward_tile` (the tile turned into the logits' gradient, in place) for the
    log-probabilities' gradient alone: g (1[j = target] - p_j) / T * scale, in five passes;
    TRL's own for fp32 tiles, softcapping and an entropy gradient."""
    if HAS_SOFTCAP or HAS_ENTROPY_GRAD or not HAS_LOGPROB_GRAD or tile.dtype != torch.bfloat16:
        return _stock_backward_tile(tile, tile_stride, targets, log_z, entropy, grad_logprobs, grad_entropy, vocab_start,
                                    n_cols, logit_scale, softcap, inv_t, HAS_SOFTCAP, HAS_LOGPROB_GRAD,
                                    HAS_ENTROPY_GRAD, BLOCK_SIZE)
    grad = scaled(tile.float(), logit_scale, inv_t).sub_(log_z.unsqueeze(-1)).exp_()  # p
    grad.mul_(-grad_logprobs.unsqueeze(-1))
    local = targets - vocab_start
    rows = ((local >= 0) & (local < n_cols)).nonzero().squeeze(-1)
    grad[rows, local[rows]] += grad_logprobs[rows]
    tile.copy_(scaled(grad, inv_t, logit_scale))


def scaled(z: torch.Tensor, first: float, second: float) -> torch.Tensor:
    """z * first * second in place, skipping factors of 1 (TRL's order of the two products)."""
    if first != 1:
        z.mul_(first)
    if second != 1:
        z.mul_(second)
    return z


@contextmanager
def cpu_fast_head(enabled: bool = True):
    """TRL's fused LM head with CPU compaction and bf16 gradient GEMMs while inside; TRL's stock
    behaviour again after (or throughout, with `enabled=False`)."""
    if not enabled:
        yield
        return
    saved = trl_utils._use_triton, chunked._addmm_fp32, chunked._forward_tile, chunked._backward_tile
    trl_utils._use_triton, chunked._addmm_fp32, chunked._forward_tile, chunked._backward_tile = (
        compacting, addmm_fp32, forward_tile, backward_tile)
    try:
        yield
    finally:
        trl_utils._use_triton, chunked._addmm_fp32, chunked._forward_tile, chunked._backward_tile = saved
