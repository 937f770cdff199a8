"""Temperature / top-k / top-p sampling over a large vocabulary without sorting it.

transformers samples by sorting every row's whole vocabulary for top-p and drawing with
`torch.multinomial` over all of it. With Gemma's 262,144 tokens and 32 rows on a CPU that is
~0.45 s per decoded token (sort 0.27 s, the draw's exponential noise 0.18 s), three times the
model's own forward pass. The nucleus of a trained model is a few dozen tokens, so this sampler
takes the top 256 candidates (`torch.topk`, ~10 ms), normalises them against the row's full
log-partition (one pass through a buffer kept across decode steps), and cuts the nucleus there:
exactly transformers' nucleus whenever the candidates hold at least `top_p` of the mass. A row
whose candidates do not (a flat distribution: about one row-step in ten of Gemma's answers at
temperature 0.9, nuclei of up to ~6,600 tokens) is cut in its top 8,192 (~3 ms a row, a sort of
the row costs ~22 ms), and only a row flatter still in its full sort. It then draws the token
itself: `choose` gives the engine's own decode loop the token ids, and as a `LogitsProcessor` it
hands `generate` a row whose only finite score is that token, so `generate` runs greedy (an
argmax, ~4 ms) and never touches the vocabulary again.

Same distribution as `TemperatureLogitsWarper -> TopKLogitsWarper -> TopPLogitsWarper ->
multinomial` (a test compares the kept tokens and their probabilities); its own seeded generator,
so a seed gives the same answers on every run."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

CANDIDATES = 256  # tokens ranked before the nucleus is cut: enough for any peaked distribution
WIDE = 8192  # where a flat row's nucleus is cut before its whole vocabulary is sorted


class NucleusSampler(LogitsProcessor):
    """A `LogitsProcessor` that samples: after the other processors (repetition penalty, minimum
    length), every row keeps one finite score, its sampled token's."""

    def __init__(self, temperature: float, top_p: float = 1.0, top_k: int = 0, seed: int = 0,
                 candidates: int = CANDIDATES, wide: int = WIDE):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 to sample, got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.candidates, self.wide, self.seed = candidates, max(wide, candidates), seed
        self._generator: torch.Generator | None = None
        self._scratch: torch.Tensor | None = None  # the log-partition's buffer, reused while the batch shrinks

    def distribution(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token ids, probabilities) per row, [rows, k] each: the tokens the warpers keep (zero
        probability for the rest of the k)."""
        scores = scores.float()
        vocab = scores.shape[-1]
        if self.top_p >= 1.0 and not self.top_k:  # the whole vocabulary
            return torch.arange(vocab, device=scores.device).expand_as(scores), torch.softmax(scores / self.temperature, dim=-1)
        k = min(self.top_k or self.candidates, vocab)
        values, ids = torch.topk(scores, k, dim=-1)
        log_z = self._log_partition(values if self.top_k else scores, values[:, :1])
        probs = self._probs(values, log_z)
        if self.top_p < 1.0:  # never short with top-k: its k hold all the mass
            probs, short = self._cut(probs)
            if short.any():
                return self._widen(scores, log_z, short, ids, probs)
        return ids, probs

    def _probs(self, values: torch.Tensor, log_z: torch.Tensor) -> torch.Tensor:
        return (values / self.temperature - log_z).exp()

    def _log_partition(self, scores: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        """logsumexp(scores / T) per row, [rows, 1], given each row's highest score: one pass
        through a scratch buffer the decode steps share (a fresh [rows, vocab] float tensor costs
        a page fault per 4 KiB on every step)."""
        rows, vocab = scores.shape
        scratch = self._scratch
        if scratch is None or scratch.shape[0] < rows or scratch.shape[1] != vocab or scratch.device != scores.device:
            scratch = self._scratch = torch.empty_like(scores)
        out = scratch[:rows]
        torch.sub(scores, top, out=out)
        out.mul_(1.0 / self.temperature).exp_()
        return top / self.temperature + out.sum(-1, keepdim=True).log()

    def _cut(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The nucleus within probs (each row's tokens highest first): transformers keeps a token
        while the mass ranked strictly above it is < top_p. Also says which rows' nucleus may
        reach past these tokens."""
        above = probs.cumsum(-1) - probs
        short = above[:, -1] + probs[:, -1] < self.top_p
        return probs.masked_fill(above >= self.top_p, 0.0), short

    def _widen(self, scores, log_z, short, ids, probs):
        """Rows whose nucleus reaches past the candidates, cut in their top `wide` tokens (and a row
        flatter still in its whole sorted vocabulary); returned padded to the widest nucleus
        beside the other rows' (already cut) candidates."""
        flat, flat_log_z = scores[short], log_z[short]
        values, wide_ids = torch.topk(flat, min(self.wide, scores.shape[-1]), dim=-1)
        wide_probs, still = self._cut(self._probs(values, flat_log_z))
        if still.any():
            values, order = torch.sort(flat[still], dim=-1, descending=True)
            full, _ = self._cut(self._probs(values, flat_log_z[still]))
            width = max(int((full > 0).sum(-1).max()), wide_ids.shape[-1])
            wide_ids, wide_probs = self._pad(wide_ids, width), self._pad(wide_probs, width)
            wide_ids[still], wide_probs[still] = order[:, :width], full[:, :width]
        width = max(int((wide_probs > 0).sum(-1).max()), ids.shape[-1])
        out_ids, out_probs = self._pad(ids, width), self._pad(probs, width)
        out_ids[short], out_probs[short] = wide_ids[:, :width], wide_probs[:, :width]
        return out_ids, out_probs

    @staticmethod
    def _pad(x: torch.Tensor, width: int) -> torch.Tensor:
        """x's first `width` columns, zero-padded on the right to `width` (a new tensor)."""
        out = x.new_zeros(x.shape[0], width)
        out[:, : min(width, x.shape[-1])] = x[:, :width]
        return out

    def choose(self, scores: torch.Tensor) -> torch.Tensor:
        """One sampled token id per row, [rows]: what the engine's decode loop feeds back."""
        if self._generator is None or self._generator.device != scores.device:
            self._generator = torch.Generator(device=scores.device).manual_seed(self.seed)
        if self.top_p >= 1.0 and not self.top_k:
            return self._draw_whole(scores.float())
        ids, probs = self.distribution(scores)
        return ids.gather(-1, torch.multinomial(probs, 1, generator=self._generator)).squeeze(-1)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        chosen = self.choose(scores)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, chosen[:, None], 0.0)

    def _draw_whole(self, scores: torch.Tensor) -> torch.Tensor:
        """A draw from the whole vocabulary in two stages: the candidates with their mass m, the
        rest (the full softmax, candidates removed) with 1 - m; only the rows that land in the
        rest pay for the whole vocabulary."""
        values, ids = torch.topk(scores, min(self.candidates, scores.shape[-1]), dim=-1)
        probs = self._probs(values, self._log_partition(scores, values[:, :1]))
        chosen = ids.gather(-1, torch.multinomial(probs, 1, generator=self._generator))
        tail = torch.rand(scores.shape[0], device=scores.device, generator=self._generator) >= probs.sum(-1)
        if tail.any():
            rest = torch.softmax(scores[tail] / self.temperature, dim=-1).scatter(-1, ids[tail], 0.0)
            chosen[tail] = torch.multinomial(rest, 1, generator=self._generator)
        return chosen.squeeze(-1)
