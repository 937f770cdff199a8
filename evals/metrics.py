"""Held-out metrics of registry entries, measured through the shared engine (one 4-bit base,
adapters routed per call): perplexity on domain conversations and on general text, preference
accuracy on held-out pairs (the policy's length-normalised likelihood; a reward model's score
when one is given), and rule-checked task accuracy from greedy answers."""

from __future__ import annotations

import torch

from posttrain.engine import Engine, SamplingParams
from posttrain.heldout import pair_logprobs, perplexity, preference_accuracy, reward_margin, text_perplexity


class RoutedModel:
    """The engine's shared model with every batch row routed to one entry: what the pure metric
    functions in posttrain.heldout expect of a model."""

    def __init__(self, engine: Engine, name: str):
        self.engine, self.name, self.training = engine, name, False

    def label_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
        return self.engine.label_logprobs(self.name, input_ids, attention_mask, labels)

    def parameters(self):
        return self.engine.model.parameters()

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self


def task_accuracy(engine: Engine, name: str, tasks: list[dict], max_new_tokens: int = 48) -> float:
    """Share of greedy answers that contain every word a task's `must_contain` lists."""
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0)
    answers = []
    for start in range(0, len(tasks), 8):
        chunk = tasks[start : start + 8]
        answers += engine.generate([t["prompt"] for t in chunk], [name] * len(chunk), params)
    hits = [all(word.lower() in a.text.lower() for word in t["must_contain"]) for t, a in zip(tasks, answers)]
    return sum(hits) / len(hits)


def measure(engine: Engine, name: str, sft_heldout: list[dict], general: list[str], pairs: list[dict],
            tasks: list[dict], reward_scorer=None) -> dict:
    """Every held-out metric of one entry (or the plain base)."""
    model = RoutedModel(engine, name)
    tokenizer = engine.tokenizer_for(name)
    metrics = {
        "domain_perplexity": perplexity(model, tokenizer, [r["messages"] for r in sft_heldout]),
        "general_perplexity": text_perplexity(model, tokenizer, general),
        "preference_accuracy": preference_accuracy(model, tokenizer, pairs),
        "task_accuracy": task_accuracy(engine, name, tasks),
    }
    return {k: round(v, 4) for k, v in metrics.items()}


def implicit_reward_margin(engine: Engine, model: str, parent: str, pairs: list[dict]) -> float:
    """The child's mean implicit reward margin over its parent on held-out pairs (beta = 1): how far
    preference training moved chosen above rejected, relative to where the parent had them."""
    tokenizer = engine.tokenizer_for(model)
    child = pair_logprobs(RoutedModel(engine, model), tokenizer, pairs)
    reference = pair_logprobs(RoutedModel(engine, parent), tokenizer, pairs)
    return round(reward_margin(child, reference), 4)
