"""The engine's sampler draws from exactly the distribution transformers' warpers leave."""

import pytest
import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from posttrain.sampling import NucleusSampler


def reference(scores: torch.Tensor, temperature: float, top_p: float, top_k: int) -> torch.Tensor:
    """transformers' own chain: the probabilities `multinomial` would draw from, [rows, vocab]."""
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)] + ([TopKLogitsWarper(top_k)] if top_k else [])
                                  + ([TopPLogitsWarper(top_p)] if top_p < 1 else []))
    return torch.softmax(warpers(None, scores.clone()), dim=-1)


def dense(sampler: NucleusSampler, scores: torch.Tensor) -> torch.Tensor:
    ids, probs = sampler.distribution(scores)
    return torch.zeros_like(scores).scatter_add_(-1, ids, probs)


def rows(vocab: int = 5000) -> torch.Tensor:
    torch.manual_seed(0)
    peaked = torch.randn(3, vocab) + torch.cat([torch.full((3, 20), 12.0), torch.zeros(3, vocab - 20)], dim=1)
    flat = torch.randn(2, vocab) * 0.1  # its nucleus spans thousands of tokens: past the candidates
    suppressed = torch.randn(1, vocab) * 3
    suppressed[0, :100] = float("-inf")  # as a minimum length or a bad-words processor leaves them
    return torch.cat([peaked, flat, suppressed])


@pytest.mark.parametrize("wide", [8192, 512])  # the flat rows' nucleus: within the wide window, past it (a full sort)
@pytest.mark.parametrize("temperature,top_p,top_k", [(0.9, 0.95, 0), (1.5, 0.9, 0), (0.7, 1.0, 0), (1.0, 0.8, 50), (0.9, 0.95, 3000), (1.2, 1.0, 40)])
def test_same_distribution_as_transformers_warpers(temperature, top_p, top_k, wide):
    scores = rows()
    sampler = NucleusSampler(temperature, top_p, top_k, candidates=64, wide=wide)
    ours, theirs = dense(sampler, scores), reference(scores, temperature, top_p, top_k)
    kept = theirs > 0
    for row, token in ((ours > 0) != kept).nonzero().tolist():  # the same tokens kept, but for float rounding at the cut:
        exact = torch.softmax(scores[row].double() / temperature, -1)
        assert abs(exact[exact > exact[token]].sum().item() - top_p) < 1e-5  # a token whose mass above IS top_p
    assert ((ours > 0) != kept).sum() <= 1
    # transformers renormalises the kept tokens before drawing; the draw is the same
    same = ((ours > 0) == kept).all(-1)
    assert torch.allclose((ours / ours.sum(-1, keepdim=True))[same], theirs[same], atol=1e-6)
    if top_p < 1 and not top_k:
        assert (kept[3:5].sum(-1) > 512).all()  # the flat rows did need the wide window (and at 512, the full sort)


def test_draws_follow_the_distribution_and_the_seed():
    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0, -9.0]]).repeat(4000, 1)
    sampler = NucleusSampler(1.0, 0.9, seed=3, candidates=3)
    out = sampler(None, scores)
    assert torch.isfinite(out).sum(-1).eq(1).all() and out.max() == 0  # one finite score per row: generate's argmax takes it
    picks = out.argmax(-1)
    expected = reference(scores[:1], 1.0, 0.9, 0)[0]
    counts = torch.bincount(picks, minlength=5).float() / len(picks)
    assert counts[3:].sum() == 0  # outside the nucleus: never drawn
    assert torch.allclose(counts, expected, atol=0.03)
    again = NucleusSampler(1.0, 0.9, seed=3, candidates=3)(None, scores)
    assert torch.equal(again, out)  # one seed, one draw
    assert torch.equal(NucleusSampler(1.0, 0.9, seed=3, candidates=3).choose(scores), picks)  # the engine's ids: the same draw


def test_the_scratch_buffer_follows_a_shrinking_batch():
    """The decode loop hands the sampler fewer rows as answers end: the log-partition's buffer is
    reused for them, and each row's distribution is the one it has alone."""
    scores = rows()
    sampler = NucleusSampler(0.9, 0.95, candidates=64)
    full = dense(sampler, scores)
    for keep in ([0, 3, 5], [4], [1, 2]):
        alone = torch.cat([dense(NucleusSampler(0.9, 0.95, candidates=64), scores[i : i + 1]) for i in keep])
        assert torch.allclose(dense(sampler, scores[keep]), alone, atol=1e-7)
        assert torch.allclose(full[keep], alone, atol=1e-7)


def test_without_top_p_the_whole_vocabulary_is_drawn_from():
    """top_p 1: the candidates are drawn with their mass, the rest of the vocabulary with its own."""
    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0, -2.0]]).repeat(6000, 1)
    out = NucleusSampler(1.0, 1.0, seed=5, candidates=2)(None, scores)
    counts = torch.bincount(out.argmax(-1), minlength=5).float() / len(out)
    assert torch.allclose(counts, torch.softmax(scores[0], -1), atol=0.02)
    assert (counts[2:] > 0).all()  # the tail past the two candidates is reached


@pytest.mark.parametrize("bad", [dict(temperature=0), dict(temperature=1.0, top_p=0), dict(temperature=1.0, top_k=-1)])
def test_refuses_settings_that_cannot_sample(bad):
    with pytest.raises(ValueError):
        NucleusSampler(**bad)
