"""Generation over ONE shared base with many LoRA adapters attached by registry name.

Every row of a batch picks its own adapter (or the plain base), so a battle's two answers come
from one batched forward pass per token. LoRA runs as two batched matmuls per layer over
per-row gathered weights, instead of PEFT's per-adapter loop. Never writes to the registry."""

from __future__ import annotations

import logging
import queue
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from posttrain.models import load_base, load_tokenizer
from posttrain.registry import ADAPTER_WEIGHTS, LORA_A_KEY, Registry, read_adapter_config

log = logging.getLogger(__name__)

BASE = "__base__"  # the plain base, no adapter


class EngineError(ValueError):
    """A generation request or adapter the engine cannot serve; says which and why."""


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 0.95
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0
    min_new_tokens: int = 0  # benchmarks force equal lengths with this

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise EngineError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise EngineError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise EngineError(f"top_p must be in (0, 1], got {self.top_p}")

    def generate_kwargs(self) -> dict:
        kwargs = dict(
            max_new_tokens=self.max_new_tokens,
            min_new_tokens=min(self.min_new_tokens, self.max_new_tokens),
            repetition_penalty=self.repetition_penalty,
            do_sample=self.temperature > 0,
        )
        if self.temperature > 0:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or None)
        return kwargs


@dataclass
class Answer:
    model: str
    text: str
    new_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length" (hit max_new_tokens)
    prompt_tokens: int
    truncated_tokens: int = 0  # prompt tokens cut to fit the context; 0 when none

    @property
    def notice(self) -> str:
        if not self.truncated_tokens:
            return ""
        return f"prompt truncated: {self.truncated_tokens} tokens cut to fit the context"


class MultiLoraLinear(nn.Module):
    """A base linear layer (fp or 4-bit) plus stacked LoRA weights, one slot per adapter.

    Slot 0 is the plain base (zeros). The scaling factor is folded into B, and ranks are padded
    with zeros to the largest one, which leaves every product exact. `route` picks each batch
    row's slot once per generate call, so the per-token cost is two batched matmuls."""

    def __init__(self, base_layer: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.base_layer = base_layer
        self.dtype = dtype
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.lora_A: torch.Tensor | None = None  # [slots, r, in]
        self.lora_B: torch.Tensor | None = None  # [slots, out, r]
        self._routed: tuple[torch.Tensor, torch.Tensor] | None = None  # per-row A^T, B^T

    def route(self, index: torch.Tensor | None) -> None:
        if index is None or self.lora_A is None:
            self._routed = None
        else:
            self._routed = (
                self.lora_A[index].transpose(1, 2).contiguous(),
                self.lora_B[index].transpose(1, 2).contiguous(),
            )

    def add_slot(self, a: torch.Tensor | None, b: torch.Tensor | None, slots: int, device) -> None:
        """Append one adapter's (A, scaled B) as slot number `slots - 1`; None = not targeted."""
        rank = max(a.shape[0] if a is not None else 0, self.lora_A.shape[1] if self.lora_A is not None else 0)
        stack_a = torch.zeros(slots, rank, self.in_features, device=device, dtype=self.dtype)
        stack_b = torch.zeros(slots, self.out_features, rank, device=device, dtype=self.dtype)
        if self.lora_A is not None:
            old_slots, old_rank = self.lora_A.shape[:2]
            stack_a[:old_slots, :old_rank] = self.lora_A
            stack_b[:old_slots, :, :old_rank] = self.lora_B
        if a is not None:
            stack_a[-1, : a.shape[0]] = a
            stack_b[-1, :, : b.shape[1]] = b
        self.lora_A, self.lora_B = stack_a, stack_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        if self._routed is None:
            return y
        a_t, b_t = self._routed  # [batch, in, r], [batch, r, out]
        if a_t.shape[0] != x.shape[0]:
            raise EngineError(f"batch has {x.shape[0]} rows but {a_t.shape[0]} adapter choices")
        delta = torch.bmm(torch.bmm(x.to(a_t.dtype), a_t), b_t)
        return y + delta.to(y.dtype)


def _alpha_for(module: str, config: dict) -> float:
    # Same matching rule as PEFT's alpha_pattern: the key matches the module path's tail.
    for pattern, alpha in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return float(alpha)
    return float(config["lora_alpha"])


def read_lora(adapter_dir: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module path: (A [r, in], B·scale [out, r])} from a plain PEFT LoRA folder."""
    from safetensors.torch import load_file

    config = read_adapter_config(adapter_dir)
    unsupported = [k for k in ("use_dora", "lora_bias") if config.get(k)]
    if config.get("bias", "none") != "none":
        unsupported.append(f"bias={config['bias']}")
    if config.get("modules_to_save"):
        unsupported.append(f"modules_to_save={config['modules_to_save']}")
    if unsupported:
        raise EngineError(f"{adapter_dir}: adapter options the engine cannot serve: {', '.join(unsupported)}")
    tensors = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    layers = {}
    for key, a in tensors.items():
        if "lora_embedding" in key:
            raise EngineError(f"{adapter_dir}: LoRA on embeddings ({key}) is not supported by the engine")
        match = LORA_A_KEY.match(key)
        if not match:
            continue
        module = match.group(1)
        b = tensors[key.replace(".lora_A", ".lora_B")]
        rank = a.shape[0]
        alpha = _alpha_for(module, config)
        scale = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
        layers[module] = (a.float(), b.float() * scale)
    return layers


class _BatchStreamer:
    """transformers streamer for a batch: collects each row's new tokens until its end of turn."""

    def __init__(self, rows: int, eos_ids: set[int], notify: bool = False):
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.done = [False] * rows
        self.eos_ids = eos_ids
        self.notify = notify  # only a streaming consumer wants an update per token
        self.updates: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt ids
            self._prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self.tokens), -1)[:, -1].tolist()):
            if self.done[row]:
                continue
            if token in self.eos_ids:
                self.done[row] = True
            else:
                self.tokens[row].append(token)
        if self.notify:
            self.updates.put(True)

    def end(self) -> None:
        self.updates.put(None)


class Engine:
    """One base loaded once (NF4 when possible), any number of registry adapters attached."""

    def __init__(self, registry: Registry, base: str, quantize: bool = True):
        self.registry = registry
        entry = registry.get(base)
        if entry.is_adapter:
            raise EngineError(f"{base!r} is an adapter (on base {entry.base!r}); the engine needs a base entry")
        self.base_name = base
        self.tokenizer = load_tokenizer(entry.path)
        self.tokenizer.padding_side = "left"
        loaded = load_base(entry.path, quantize=quantize)
        self.model, self.quantization = loaded.model, loaded.quantization
        self.device = next(self.model.parameters()).device
        # LoRA math in the model's dtype on a GPU; fp32 on a CPU, where small bf16 bmm calls
        # cost ~8x their fp32 twins (measured: 38 us vs 5 us per call).
        self.dtype = self.model.get_input_embeddings().weight.dtype if self.device.type == "cuda" else torch.float32
        self._layers: dict[str, MultiLoraLinear] = {}
        self._slots = [BASE]
        self._lock = threading.Lock()  # one shared model: one generation at a time
        config = self.model.config
        self.context_length = min(
            getattr(config, "max_position_embeddings", 2048) or 2048, self.tokenizer.model_max_length
        )
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        log.info("engine: base %s loaded as %s (%s)", base, self.quantization, loaded.reason)

    # ---- adapters ------------------------------------------------------------------------
    @property
    def adapters(self) -> list[str]:
        return self._slots[1:]

    def slot(self, name: str) -> int:
        if name in (BASE, self.base_name):
            return 0
        if name not in self._slots:
            self.load_adapter(name)
        return self._slots.index(name)

    def load_adapter(self, name: str) -> None:
        entry = self.registry.get(name)
        if not entry.is_adapter:
            raise EngineError(f"{name!r} is not an adapter entry (method {entry.method!r})")
        if entry.base != self.base_name:
            raise EngineError(
                f"adapter {name!r} was trained on base {entry.base!r} "
                f"({entry.card.get('base_model')}), but this engine runs base {self.base_name!r}"
            )
        lora = read_lora(entry.path)
        modules = dict(self.model.named_modules())
        missing = [m for m in lora if m not in modules and m not in self._layers]
        if missing:
            raise EngineError(f"adapter {name!r} targets modules missing from base {self.base_name!r}: {missing[:3]}")
        with self._lock:
            self._slots.append(name)
            for module in lora:
                if module not in self._layers:
                    self._wrap(module)
            for module, layer in self._layers.items():
                a, b = lora.get(module, (None, None))
                layer.add_slot(
                    None if a is None else a.to(self.device), None if b is None else b.to(self.device),
                    len(self._slots), self.device,
                )

    def _wrap(self, module: str) -> None:
        parent_name, _, child = module.rpartition(".")
        parent = self.model.get_submodule(parent_name)
        layer = MultiLoraLinear(getattr(parent, child), self.dtype)
        # Zero slots for the base and for earlier adapters, which do not touch this layer.
        layer.add_slot(None, None, len(self._slots) - 1, self.device)
        setattr(parent, child, layer)
        self._layers[module] = layer

    def _route(self, index: torch.Tensor | None) -> None:
        # All-base batches skip LoRA entirely; otherwise every layer gathers its rows' weights.
        if index is not None and not bool(index.any()):
            index = None
        for layer in self._layers.values():
            layer.route(index)

    # ---- prompts -------------------------------------------------------------------------
    def _render(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prepare(self, prompt: str | list[dict], max_new_tokens: int) -> tuple[list[int], int]:
        """Token ids of a prompt with its chat template; the last message's text is cut from its
        end when the whole would not fit the context with `max_new_tokens` after it."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if not messages or not str(messages[-1].get("content", "")).strip():
            raise EngineError("empty prompt")
        budget = self.context_length - max_new_tokens
        ids = self._render(messages)
        if len(ids) <= budget:
            return ids, 0
        content_ids = self.tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        overhead = len(ids) - len(content_ids)
        keep = budget - overhead
        while keep > 0:
            cut = self.tokenizer.decode(content_ids[:keep])
            ids = self._render(messages[:-1] + [{**messages[-1], "content": cut}])
            if len(ids) <= budget:
                return ids, len(content_ids) - keep
            keep -= len(ids) - budget
        raise EngineError(
            f"prompt does not fit: {overhead} tokens of template and earlier turns plus {max_new_tokens} "
            f"new tokens exceed the context of {self.context_length}"
        )

    # ---- generation ----------------------------------------------------------------------
    def _start(self, prompts, models, params) -> tuple[list[tuple[list[int], int]], list[int]]:
        if len(prompts) != len(models) or not prompts:
            raise EngineError(f"need one model per prompt, got {len(prompts)} prompts and {len(models)} models")
        slots = [self.slot(m) for m in models]
        return [self.prepare(p, params.max_new_tokens) for p in prompts], slots

    def _run(self, prepared, slots, params: SamplingParams, streamer: "_BatchStreamer") -> None:
        """One batched generate call; row i uses adapter slot slots[i]."""
        batch = self.tokenizer.pad(
            {"input_ids": [ids for ids, _ in prepared]}, padding=True, return_tensors="pt"
        ).to(self.device)
        with self._lock, torch.inference_mode():
            torch.manual_seed(params.seed)
            self._route(torch.tensor(slots, device=self.device))
            try:
                self.model.generate(
                    **batch, streamer=streamer, pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=sorted(self.eos_ids), **params.generate_kwargs(),
                )
            finally:
                self._route(None)

    def _answers(self, models, prepared, streamer: "_BatchStreamer") -> list[Answer]:
        return [
            Answer(
                model=models[i], text=self.tokenizer.decode(streamer.tokens[i], skip_special_tokens=True),
                new_tokens=len(streamer.tokens[i]) + int(streamer.done[i]),
                finish_reason="stop" if streamer.done[i] else "length",
                prompt_tokens=len(prepared[i][0]), truncated_tokens=prepared[i][1],
            )
            for i in range(len(models))
        ]

    def generate(self, prompts: Sequence[str | list[dict]], models: Sequence[str], params: SamplingParams) -> list[Answer]:
        """Row i answers prompts[i] with models[i]; all rows in ONE batched generate call."""
        prepared, slots = self._start(prompts, models, params)
        streamer = _BatchStreamer(len(prompts), self.eos_ids)
        self._run(prepared, slots, params, streamer)
        return self._answers(models, prepared, streamer)

    def stream(
        self, prompts: Sequence[str | list[dict]], models: Sequence[str], params: SamplingParams
    ) -> Iterator[list[Answer]]:
        """Like generate, but yields every row's answer so far as tokens arrive (the final
        answers last). Updates that arrive while the consumer is busy are merged."""
        prepared, slots = self._start(prompts, models, params)
        streamer = _BatchStreamer(len(prompts), self.eos_ids, notify=True)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._run(prepared, slots, params, streamer)
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
            finally:
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        finished = False
        while not finished:
            finished = streamer.updates.get() is None
            while not finished and not streamer.updates.empty():
                finished = streamer.updates.get() is None
            if not finished:
                yield self._answers(models, prepared, streamer)
        thread.join()
        if errors:
            raise errors[0]
        yield self._answers(models, prepared, streamer)

    def forward(self, model: str, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """A teacher-forced forward pass with every row on `model` (held-out metrics use it)."""
        slot = self.slot(model)
        with self._lock, torch.inference_mode():
            self._route(torch.full((input_ids.shape[0],), slot, device=self.device))
            try:
                return self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device))
            finally:
                self._route(None)

    def battle(self, prompt: str | list[dict], model_a: str, model_b: str, params: SamplingParams) -> tuple[Answer, Answer]:
        """Both sides of a battle in one batched call."""
        a, b = self.generate([prompt, prompt], [model_a, model_b], params)
        return a, b
