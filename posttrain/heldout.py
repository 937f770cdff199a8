"""Measures a training run writes into its registry card: perplexity on held-out conversations
(assistant tokens only) and preference accuracy on held-out pairs. Pure functions of a model,
a tokenizer and rows; they never train and never touch the registry."""

from __future__ import annotations

import math
from typing import Iterable

import torch

from posttrain.chat import IGNORE_INDEX, Example, build_example


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _decoder_and_head(model):
    """The transformer body (last hidden state) and the output head of a causal LM, also when it
    is wrapped by PEFT."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def label_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                   max_elements: int = 1 << 25) -> torch.Tensor:
    """log p(labels[t] | tokens < t) per position (0 where a label is IGNORE_INDEX). The head runs
    only over the labelled positions (a held-out answer is often half of its padded batch, and on
    Gemma's 262,144-token vocabulary the head costs more than the rest of the model), a few at a
    time, so the fp32 logits never exceed `max_elements` values (128 MB) instead of
    [batch, seq, vocab] (GBs at a 128k vocabulary)."""
    decoder, head = _decoder_and_head(model)
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, :-1]
    target = labels[:, 1:]  # token t is predicted from position t-1
    out = torch.zeros(target.shape, dtype=torch.float32, device=hidden.device)
    where = (target != IGNORE_INDEX).nonzero(as_tuple=True)
    states, wanted = hidden[where], target[where]
    vocab = head.out_features if hasattr(head, "out_features") else head.weight.shape[0]
    step = max(1, max_elements // max(1, vocab))
    picked = torch.empty(wanted.shape, dtype=torch.float32, device=hidden.device)
    for start in range(0, len(wanted), step):
        logits = head(states[start : start + step]).float()
        picked[start : start + step] = logits.gather(-1, wanted[start : start + step, None]).squeeze(-1) - logits.logsumexp(-1)
    out[where] = picked
    return out


@torch.no_grad()
def token_logprobs(model, examples: list[Example], pad_id: int, batch_size: int = 8) -> list[tuple[float, int]]:
    """(sum of log p(label), number of labelled tokens) per example, teacher-forced. `model` is a
    causal LM, or anything with a `label_logprobs(input_ids, attention_mask, labels)` method."""
    score = getattr(model, "label_logprobs", None)
    if score is None:
        device = next(model.parameters()).device
        score = lambda ids, mask, labels: label_logprobs(model, ids.to(device), mask.to(device), labels.to(device))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids), reverse=True)
    for indices in _batches(order, batch_size):  # rows of like length together: little padding
        batch = [examples[i] for i in indices]
        width = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, example in enumerate(batch):  # right padding: positions stay 0..n-1
            n = len(example.input_ids)
            ids[row, :n], labels[row, :n], mask[row, :n] = (
                torch.tensor(example.input_ids), torch.tensor(example.labels), 1)
        picked = score(ids, mask, labels).cpu()
        keep = labels[:, 1:] != IGNORE_INDEX
        for row, i in enumerate(indices):
            out[i] = (picked[row][keep[row]].sum().item(), int(keep[row].sum().item()))
    model.train(was_training)
    return out


def fitting(tokenizer, rows: list, texts, max_length: int) -> tuple[list[list[Example]], int]:
    """The examples of each row (`texts(row)` -> conversations) whose every conversation fits
    `max_length` tokens whole, and how many rows were skipped for being longer: a truncated
    held-out row would be scored on a different text, and one with no answer left would abort."""
    kept, skipped = [], 0
    for row in rows:
        examples = [build_example(tokenizer, messages) for messages in texts(row)]
        if any(len(e.input_ids) > max_length for e in examples):
            skipped += 1
        else:
            kept.append(examples)
    return kept, skipped


def pair_sides(pair: dict) -> list[list[dict]]:
    """A preference pair as the two conversations it scores: prompt + chosen, prompt + rejected."""
    return [pair["prompt"] + pair["chosen"], pair["prompt"] + pair["rejected"]]


def too_long(tokenizer, rows: list, kind: str, max_length: int) -> int:
    """How many held-out rows the metrics skip as longer than max_length (for the card)."""
    return fitting(tokenizer, rows, (lambda r: [r["messages"]]) if kind == "sft" else pair_sides, max_length)[1]


def perplexity(model, tokenizer, conversations: list[list[dict]], max_length: int = 1024, batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood per assistant token), pooled over all conversations that
    fit max_length."""
    kept, _ = fitting(tokenizer, conversations, lambda c: [c], max_length)
    if not kept:  # every row longer than max_length: nothing to measure (the card counts them)
        return float("nan")
    scored = token_logprobs(model, [e for (e,) in kept], tokenizer.pad_token_id, batch_size)
    total, count = sum(s for s, _ in scored), sum(n for _, n in scored)
    return math.exp(-total / count)


def pair_logprobs(model, tokenizer, pairs: list[dict], max_length: int = 1024,
                  batch_size: int = 8) -> list[tuple[tuple[float, int], tuple[float, int]]]:
    """((log p(chosen), tokens), (log p(rejected), tokens)) per pair that fits max_length, each
    reply scored after the pair's prompt (longer pairs are skipped)."""
    kept, _ = fitting(tokenizer, pairs, pair_sides, max_length)
    scored = token_logprobs(model, [e for pair in kept for e in pair], tokenizer.pad_token_id, batch_size) if kept else []
    return [(scored[i], scored[i + 1]) for i in range(0, len(scored), 2)]


def preference_accuracy(model, tokenizer, pairs: list[dict], max_length: int = 1024, batch_size: int = 8) -> float:
    """Share of pairs where the length-normalised log-likelihood of `chosen` beats `rejected`
    (ties count half), each reply scored after the pair's prompt; pairs longer than max_length
    are skipped."""
    scored = pair_logprobs(model, tokenizer, pairs, max_length, batch_size)
    if not scored:
        return float("nan")
    wins = 0.0
    for (chosen, n_c), (rejected, n_r) in scored:
        margin = chosen / n_c - rejected / n_r
        wins += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
    return wins / len(scored)


def reward_margin(policy: list, reference: list) -> float:
    """DPO's implicit reward margin with beta = 1, averaged over pairs: [log pi(c) - log ref(c)] -
    [log pi(r) - log ref(r)], from pair_logprobs of the policy and of its reference (the parent)."""
    if not policy or len(policy) != len(reference):
        return float("nan")
    margins = [(pc - rc) - (pr - rr) for ((pc, _), (pr, _)), ((rc, _), (rr, _)) in zip(policy, reference)]
    return sum(margins) / len(margins)


def text_perplexity(model, tokenizer, texts: list[str], max_length: int = 1024, batch_size: int = 8) -> float:
    """Perplexity on plain text (no chat template), every token scored: the general-text check
    for forgetting."""
    examples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
        examples.append(Example(ids, list(ids)))
    scored = token_logprobs(model, examples, tokenizer.pad_token_id, batch_size)
    return math.exp(-sum(s for s, _ in scored) / sum(n for _, n in scored))
