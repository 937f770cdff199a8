"""The reward model: a one-logit sequence-classification head over the base (LoRA + trained
head), trained by TRL's RewardTrainer (posttrain.train) with the pairwise Bradley-Terry loss
written out below (the documented loss, and the tests' oracle for TRL's), and a scorer that the
evals use as an automatic judge. Never generates text."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from posttrain.models import compute_dtype, device_map, load_tokenizer, nf4_config
from posttrain.registry import RegistryError


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """-log sigma(r_chosen - r_rejected): the negative log-likelihood, under the Bradley-Terry
    model P(chosen > rejected) = sigma(r_chosen - r_rejected), of the observed preferences."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def conversation_ids(tokenizer, prompt: list[dict], reply: list[dict], max_length: int) -> list[int]:
    """The whole rendered conversation; over-long ones keep their end, where the reply is."""
    text = tokenizer.apply_chat_template(prompt + reply, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[-max_length:]


def pair_rows(tokenizer, pairs: list[dict], max_length: int) -> list[dict]:
    return [{"chosen_ids": conversation_ids(tokenizer, p["prompt"], p["chosen"], max_length),
             "rejected_ids": conversation_ids(tokenizer, p["prompt"], p["rejected"], max_length)} for p in pairs]


@dataclass
class PairCollator:
    """Stacks a batch of pairs as [chosen..., rejected...], right-padded."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict:
        sequences = [r["chosen_ids"] for r in rows] + [r["rejected_ids"] for r in rows]
        return pad(sequences, self.pad_id)


def pad(sequences: list[list[int]], pad_id: int) -> dict:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One scalar per sequence: the head's logit at the rightmost non-pad token (transformers'
    pooling), i.e. after the reply's end-of-turn marker."""
    return model(input_ids=input_ids, attention_mask=attention_mask).logits.squeeze(-1)


@torch.no_grad()
def score_pairs(model, tokenizer, pairs: list[dict], max_length: int = 1024, batch_size: int = 8) -> list[tuple[float, float]]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = pair_rows(tokenizer, pairs, max_length)
    out = []
    for start in range(0, len(rows), batch_size):
        batch = PairCollator(tokenizer.pad_token_id)(rows[start : start + batch_size])
        scores = rewards(model, batch["input_ids"].to(device), batch["attention_mask"].to(device)).float()
        chosen, rejected = scores.chunk(2)
        out += list(zip(chosen.tolist(), rejected.tolist()))
    model.train(was_training)
    return out


def pairwise_accuracy(model, tokenizer, pairs: list[dict], max_length: int = 1024) -> float:
    """Share of pairs the reward model ranks as people did (ties count half)."""
    scored = score_pairs(model, tokenizer, pairs, max_length)
    return sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in scored) / len(scored)


def load_reward_model(base_path, adapter_path=None, lora=None, trainable: bool = False, quantize: bool = False,
                      device: str | torch.device | None = None):
    """A one-logit classifier over the base; with `adapter_path`, the trained reward adapter.
    `quantize` loads the base in NF4 (scoring beside a 4-bit engine on one GPU); `device`
    defaults to this process's GPU when there is one (models.device_map)."""
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(base_path)
    if device is None:
        placement = device_map()  # this rank's GPU when training
    else:
        placement = None if torch.device(device).type == "cpu" else {"": torch.device(device)}
    kwargs = {"quantization_config": nf4_config(), "dtype": compute_dtype()} if quantize else \
        {"dtype": compute_dtype(quantized=False)}
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base_path), num_labels=1, device_map=placement, **kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    if adapter_path is not None:
        model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=trainable)
    elif lora is not None:
        model = get_peft_model(model, lora)
    return model, tokenizer


class RewardScorer:
    """Scores replies with a registry reward entry: higher is better."""

    def __init__(self, registry, name: str, max_length: int = 1024, quantize: bool = False, device=None):
        """`device`: where the engine runs (engine.device), so judge and engine share the GPU."""
        entry = registry.get(name)
        if entry.method != "reward":
            raise RegistryError(f"{name!r} is a {entry.method!r} entry, not a reward model; train one: scripts/train.py reward")
        self.model, self.tokenizer = load_reward_model(registry.get(entry.base).path, entry.path,
                                                       quantize=quantize, device=device)
        self.model.eval()
        self.max_length = max_length

    @torch.no_grad()
    def score(self, prompt: str | list[dict], replies: list[str]) -> list[float]:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        sequences = [conversation_ids(self.tokenizer, messages, [{"role": "assistant", "content": r}], self.max_length)
                     for r in replies]
        batch = pad(sequences, self.tokenizer.pad_token_id)
        device = next(self.model.parameters()).device
        return rewards(self.model, batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().tolist()
