"""Measures a training run writes into its registry card: perplexity on held-out conversations
(assistant tokens only) and preference accuracy on held-out pairs. Pure functions of a model,
a tokenizer and rows; they never train and never touch the registry."""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F

from posttrain.chat import IGNORE_INDEX, Example, build_example


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def token_logprobs(model, examples: list[Example], pad_id: int, batch_size: int = 8) -> list[tuple[float, int]]:
    """(sum of log p(label), number of labelled tokens) per example, teacher-forced."""
    device = next(model.parameters()).device
    out = []
    was_training = model.training
    model.eval()
    for batch in _batches(examples, batch_size):
        width = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, example in enumerate(batch):  # right padding: positions stay 0..n-1
            n = len(example.input_ids)
            ids[row, :n], labels[row, :n], mask[row, :n] = (
                torch.tensor(example.input_ids), torch.tensor(example.labels), 1)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        # Token t is predicted from position t-1.
        logp = F.log_softmax(logits[:, :-1], dim=-1)
        target = labels[:, 1:].to(device)
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        keep = target != IGNORE_INDEX
        for row in range(len(batch)):
            out.append((picked[row][keep[row]].sum().item(), int(keep[row].sum().item())))
    model.train(was_training)
    return out


def perplexity(model, tokenizer, conversations: list[list[dict]], max_length: int = 1024, batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood per assistant token), pooled over all conversations."""
    examples = [build_example(tokenizer, c, max_length) for c in conversations]
    scored = token_logprobs(model, examples, tokenizer.pad_token_id, batch_size)
    total, count = sum(s for s, _ in scored), sum(n for _, n in scored)
    return math.exp(-total / count)


def preference_accuracy(model, tokenizer, pairs: list[dict], max_length: int = 1024, batch_size: int = 8) -> float:
    """Share of pairs where the length-normalised log-likelihood of `chosen` beats `rejected`
    (ties count half), each reply scored after the pair's prompt."""
    examples = []
    for pair in pairs:
        for side in ("chosen", "rejected"):
            examples.append(build_example(tokenizer, pair["prompt"] + pair[side], max_length))
    scored = token_logprobs(model, examples, tokenizer.pad_token_id, batch_size)
    wins = 0.0
    for i in range(0, len(scored), 2):
        (chosen, n_c), (rejected, n_r) = scored[i], scored[i + 1]
        margin = chosen / n_c - rejected / n_r
        wins += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
    return wins / len(pairs)


def text_perplexity(model, tokenizer, texts: list[str], max_length: int = 1024, batch_size: int = 8) -> float:
    """Perplexity on plain text (no chat template), every token scored: the general-text check
    for forgetting."""
    examples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
        examples.append(Example(ids, list(ids)))
    scored = token_logprobs(model, examples, tokenizer.pad_token_id, batch_size)
    return math.exp(-sum(s for s, _ in scored) / sum(n for _, n in scored))
