"""Generation over ONE shared base with many LoRA adapters attached by registry name.

Every row of a batch picks its own adapter (or the plain base), so a battle's two answers come
from one batched forward pass per token. LoRA runs as two batched matmuls per layer over
per-row gathered weights, instead of PEFT's per-adapter loop. Never writes to the registry."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from posttrain.errors import WorkbenchError
from posttrain.models import load_base, load_tokenizer
from posttrain.registry import ADAPTER_WEIGHTS, LORA_A_KEY, Registry, read_adapter_config

log = logging.getLogger(__name__)

BASE = "__base__"  # the plain base, no adapter


class EngineError(WorkbenchError, ValueError):
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

    def sampler(self) -> "LogitsProcessor | None":
        """The last logits processor, which samples (None when greedy): see posttrain/sampling.py,
        transformers' sampler sorts the whole vocabulary every token."""
        from posttrain.sampling import NucleusSampler

        return NucleusSampler(self.temperature, self.top_p, self.top_k, seed=self.seed) if self.temperature > 0 else None

    def logits_processors(self, prompt_length: int, eos_ids: list[int], device, sample: bool = True) -> "LogitsProcessorList":
        """The processors `generate` would build from generate_kwargs: repetition penalty, minimum
        length, then the sampler (none of them when greedy and plain; `sample=False` leaves the
        sampler out, for a loop that calls its `choose` itself)."""
        from transformers import LogitsProcessorList, MinNewTokensLengthLogitsProcessor, RepetitionPenaltyLogitsProcessor

        processors = LogitsProcessorList()
        if self.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(self.repetition_penalty))
        if self.min_new_tokens > 0:
            processors.append(MinNewTokensLengthLogitsProcessor(
                prompt_length, min(self.min_new_tokens, self.max_new_tokens), eos_ids, device=device))
        if sample and (sampler := self.sampler()) is not None:
            processors.append(sampler)
        return processors

    def generate_kwargs(self) -> dict:
        """`generate` runs greedy: with a temperature, the last logits processor samples."""
        from transformers import LogitsProcessorList

        kwargs = dict(
            max_new_tokens=self.max_new_tokens,
            min_new_tokens=min(self.min_new_tokens, self.max_new_tokens),
            repetition_penalty=self.repetition_penalty,
            do_sample=False,
        )
        if (sampler := self.sampler()) is not None:
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        return kwargs


@dataclass
class Answer:
    model: str
    text: str
    new_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length" (hit max_new_tokens)
    prompt_tokens: int
    truncated_tokens: int = 0  # prompt tokens cut to fit the context; 0 when none
    prompted: str = ""  # how a base without a chat template was prompted (empty: with its own template)

    @property
    def notice(self) -> str:
        notes = [f"prompt truncated: {self.truncated_tokens} tokens cut to fit the context"] if self.truncated_tokens else []
        return "; ".join(notes + ([self.prompted] if self.prompted else []))


class MultiLoraLinear(nn.Module):
    """A base linear layer (fp or 4-bit) plus stacked LoRA weights, one slot per adapter.

    Slot 0 is the plain base (zeros). The scaling factor is folded into B, and ranks are padded
    with zeros to the largest one, which leaves every product exact. `route` gathers each batch
    row's weights once per generate call (into buffers that keep their address for a given batch
    size when a compiled, CUDA-graphed decode step reads them in place); per token the cost is two
    batched matmuls, or two plain ones when every row shares one adapter.

    DoRA (Liu et al. 2024) rows also scale each output feature by f = m / ||W + s·BA|| (the
    learned magnitude over the column norm of the adapted weight, fixed at inference, computed
    once when the adapter loads): y = f·(W x) + f·s·B A x (+ bias), exactly PEFT's unmerged DoRA
    forward. Plain LoRA and base rows have f = 1; a layer no DoRA adapter touches skips it."""

    def __init__(self, base_layer: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.base_layer = base_layer
        self.dtype = dtype
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.lora_A: torch.Tensor | None = None  # [slots, in, r]  (A transposed)
        self.lora_B: torch.Tensor | None = None  # [slots, r, out] (B·scale transposed)
        self.dora_scale: torch.Tensor | None = None  # [slots, out]: f per slot (1 for non-DoRA slots)
        self._routed: tuple[torch.Tensor, torch.Tensor] | None = None  # per-row A^T, B^T
        self._routed_scale: torch.Tensor | None = None  # per-row f, [batch, 1, out]
        self._buffers_by_rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def route(self, index: torch.Tensor | None, fixed_buffers: bool = False) -> None:
        """Choose each batch row's adapter slot (None: the plain base for every row). A compiled,
        CUDA-graphed decode reads the rows' weights in place: `fixed_buffers` keeps one buffer per
        batch size for it."""
        if index is None or self.lora_A is None:
            self._routed = None
            return
        if not fixed_buffers:
            first = int(index[0])
            if bool((index == first).all()):  # one adapter for every row: its weights as they are, no per-row copy
                self._routed = (self.lora_A[first], self.lora_B[first])
                self._routed_scale = None if self.dora_scale is None else self.dora_scale[first]
            else:  # rows leave a shrinking batch at every size: fresh gathers, nothing kept per size
                self._routed = (self.lora_A.index_select(0, index), self.lora_B.index_select(0, index))
                self._routed_scale = None if self.dora_scale is None else self.dora_scale.index_select(0, index).unsqueeze(1)
            return
        rows = index.shape[0]
        buffers = self._buffers_by_rows.get(rows)
        if buffers is None or buffers[0].shape[2] != self.lora_A.shape[2]:
            buffers = (self.lora_A.new_empty((rows, *self.lora_A.shape[1:])),
                       self.lora_B.new_empty((rows, *self.lora_B.shape[1:])))
            self._buffers_by_rows[rows] = buffers
        torch.index_select(self.lora_A, 0, index, out=buffers[0])
        torch.index_select(self.lora_B, 0, index, out=buffers[1])
        self._routed = buffers
        self._routed_scale = None if self.dora_scale is None else self.dora_scale.index_select(0, index).unsqueeze(1)

    def add_slot(self, a: torch.Tensor | None, b: torch.Tensor | None, slots: int, device) -> None:
        """Append one adapter's (A, scaled B) as slot number `slots - 1`; None = not targeted."""
        rank = max(a.shape[0] if a is not None else 0, self.lora_A.shape[2] if self.lora_A is not None else 0)
        stack_a = torch.zeros(slots, self.in_features, rank, device=device, dtype=self.dtype)
        stack_b = torch.zeros(slots, rank, self.out_features, device=device, dtype=self.dtype)
        if self.lora_A is not None:
            old_slots, _, old_rank = self.lora_A.shape
            stack_a[:old_slots, :, :old_rank] = self.lora_A
            stack_b[:old_slots, :old_rank] = self.lora_B
        if a is not None:
            stack_a[-1, :, : a.shape[0]] = a.T
            stack_b[-1, : b.shape[1]] = b.T
        self.lora_A, self.lora_B = stack_a, stack_b
        if self.dora_scale is not None:  # a later non-DoRA slot keeps f = 1
            grown = torch.ones(slots, self.out_features, device=device, dtype=self.dtype)
            grown[: self.dora_scale.shape[0]] = self.dora_scale
            self.dora_scale = grown
        self._buffers_by_rows.clear()

    def set_dora(self, slot: int, magnitude: torch.Tensor, a: torch.Tensor, b_scaled: torch.Tensor) -> None:
        """Make `slot` a DoRA slot: f = m / ||W + s·B A|| per output feature, W dequantized once."""
        from peft.utils.integrations import dequantize_module_weight

        weight = dequantize_module_weight(self.base_layer).float()
        adapted = weight + (b_scaled.float() @ a.float()).to(weight.device)
        norm = adapted.norm(p=2, dim=1)
        if self.dora_scale is None:
            self.dora_scale = torch.ones(self.lora_A.shape[0], self.out_features, device=self.lora_A.device, dtype=self.dtype)
        self.dora_scale[slot] = (magnitude.float().to(norm.device) / norm).to(self.dora_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        if self._routed is None:
            return y
        a_t, b_t = self._routed  # [batch, in, r], [batch, r, out]; [in, r], [r, out] when every row shares one
        if a_t.dim() == 2:
            delta = x.to(a_t.dtype) @ a_t @ b_t
        elif a_t.shape[0] != x.shape[0]:
            raise EngineError(f"batch has {x.shape[0]} rows but {a_t.shape[0]} adapter choices")
        else:
            delta = torch.bmm(torch.bmm(x.to(a_t.dtype), a_t), b_t)
        if self._routed_scale is None:
            return y + delta.to(y.dtype)
        f = self._routed_scale  # DoRA: f·(W x) + f·delta; the bias is not scaled
        bias = self.base_layer.bias
        unbiased = y if bias is None else y - bias
        return (unbiased.to(f.dtype) * f + delta * f).to(y.dtype) + (0 if bias is None else bias)


class MultiTokenEmbedding(nn.Module):
    """The input embedding (and, for a tied or trained head, the output head) with per-adapter
    replacement rows: what PEFT's `trainable_token_indices` trains (a template's special tokens
    that the base never learned). Rows routed to a slot see that slot's rows for its tokens."""

    def __init__(self, base_layer: nn.Module, head: bool):
        super().__init__()
        self.base_layer = base_layer
        self.head = head  # True: an output head (logits), False: an input embedding
        self.slots: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # slot -> (ids [k], rows [k, hidden])
        self._index: torch.Tensor | None = None

    def route(self, index: torch.Tensor | None, fixed_buffers: bool = False) -> None:
        self._index = index  # (no per-row copy to keep: the rows' slots are compared at each step)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        if self._index is None:
            return y
        for slot, (ids, rows) in self.slots.items():
            mine = self._index == slot
            if not bool(mine.any()):
                continue
            if self.head:  # logits of the replaced tokens from the replaced rows
                y[mine] = y[mine].index_copy(-1, ids, (x[mine].to(rows.dtype) @ rows.T).to(y.dtype))
            else:
                match = x[mine].unsqueeze(-1) == ids  # [rows, seq, k]
                found = match.any(-1, keepdim=True)
                y[mine] = torch.where(found, rows[match.float().argmax(-1)].to(y.dtype), y[mine])
        return y


def _alpha_for(module: str, config: dict) -> float:
    # Same matching rule as PEFT's alpha_pattern: the key matches the module path's tail.
    for pattern, alpha in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return float(alpha)
    return float(config["lora_alpha"])


DORA_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_magnitude_vector(?:\.[^.]+)?(?:\.weight)?$")
TOKEN_KEY = re.compile(r"^base_model\.model\.(.+)\.token_adapter\.trainable_tokens_delta(?:\.[^.]+)?$")


@dataclass
class AdapterWeights:
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]  # module path -> (A [r, in], B·scale [out, r])
    tokens: dict[str, tuple[torch.Tensor, torch.Tensor]]  # module path -> (ids [k], rows [k, hidden])
    magnitude: dict[str, torch.Tensor] = field(default_factory=dict)  # DoRA: module path -> m [out]


def read_adapter(adapter_dir: Path) -> AdapterWeights:
    """LoRA weights (plain, rsLoRA or DoRA), and trained token rows (PEFT `trainable_token_indices`)
    of a PEFT folder."""
    from safetensors.torch import load_file

    config = read_adapter_config(adapter_dir)
    unsupported = [k for k in ("lora_bias",) if config.get(k)]
    if config.get("bias", "none") != "none":
        unsupported.append(f"bias={config['bias']}")
    if config.get("modules_to_save"):
        unsupported.append(f"modules_to_save={config['modules_to_save']}")
    if unsupported:
        raise EngineError(f"{adapter_dir}: adapter options the engine cannot serve: {', '.join(unsupported)}")
    tensors = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    indices = config.get("trainable_token_indices") or {}
    weights = AdapterWeights({}, {})
    for key, value in tensors.items():
        if "lora_embedding" in key:
            raise EngineError(f"{adapter_dir}: LoRA on embeddings ({key}) is not supported by the engine")
        token = TOKEN_KEY.match(key)
        if token:
            module = token.group(1)
            ids = indices.get(module.rsplit(".", 1)[-1]) if isinstance(indices, dict) else indices
            if ids is None or len(ids) != value.shape[0]:
                raise EngineError(f"{adapter_dir}: {key} has {value.shape[0]} rows but trainable_token_indices {indices}")
            weights.tokens[module] = (torch.tensor(ids, dtype=torch.long), value.float())
            continue
        magnitude = DORA_KEY.match(key)
        if magnitude:
            weights.magnitude[magnitude.group(1)] = value.float()
            continue
        match = LORA_A_KEY.match(key)
        if not match:
            continue
        module = match.group(1)
        b = tensors[key.replace(".lora_A", ".lora_B")]
        rank = value.shape[0]
        alpha = _alpha_for(module, config)
        scale = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
        weights.lora[module] = (value.float(), b.float() * scale)
    if config.get("use_dora") and set(weights.magnitude) != set(weights.lora):
        raise EngineError(f"{adapter_dir}: a DoRA adapter needs a magnitude vector for every LoRA module")
    return weights


def read_lora(adapter_dir: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module path: (A [r, in], B·scale [out, r])} from a plain PEFT LoRA folder."""
    return read_adapter(adapter_dir).lora


BASE_PROMPTS = ("template", "completion")  # how a base without a chat template is prompted
BLANK_LINE = re.compile(r"(?<=\S)[ \t]*\n[ \t]*\n")  # the end of a completion's answer: a blank line after text


def completion_text(messages: list[dict]) -> str:
    """A conversation as plain text for a pretrained base: each message a paragraph, the answer next."""
    return "\n\n".join(str(m["content"]).strip() for m in messages) + "\n\n"


def stop_ids(eos, tokenizer) -> set[int]:
    """The ids a row stops on: the generation config's eos (one id or a list), the tokenizer's eos,
    and, under a chat template, its end-of-turn token."""
    ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    if getattr(tokenizer, "chat_template", None):
        from posttrain.templates import end_of_turn_id

        ids.add(end_of_turn_id(tokenizer))
    ids.discard(None)
    return ids


def adapter_stop_ids(adapter_dir: Path) -> set[int]:
    """End-of-turn ids an adapter recorded in its generation_config.json (none when absent)."""
    path = adapter_dir / "generation_config.json"
    if not path.is_file():
        return set()
    eos = json.loads(path.read_text()).get("eos_token_id")
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


class _BatchStreamer:
    """transformers streamer for a batch: collects each row's new tokens until its end of turn."""

    def __init__(self, rows: int, eos_ids: set[int], notify: bool = False, paragraph_rows: dict | None = None):
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.done = [False] * rows
        self.eos_ids = eos_ids
        self.paragraph_rows = paragraph_rows or {}  # row -> its tokenizer: the answer ends at a blank line
        self.notify = notify  # only a streaming consumer wants an update per token
        self.updates: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt ids
            self._prompt_seen = True
            return
        self.take(range(len(self.tokens)), value.reshape(len(self.tokens), -1)[:, -1].tolist())

    def take(self, rows: Sequence[int], tokens: Sequence[int]) -> None:
        """The next token of each of `rows` (the batch's row numbers)."""
        for row, token in zip(rows, tokens):
            if self.done[row]:
                continue
            if token in self.eos_ids:
                self.done[row] = True
            else:
                self.tokens[row].append(token)
                if row in self.paragraph_rows and BLANK_LINE.search(self.paragraph_rows[row].decode(self.tokens[row])):
                    self.done[row] = True  # a completion: the answer's paragraph ended
        if self.notify:
            self.updates.put(True)

    def end(self) -> None:
        self.updates.put(None)


class _RowsDone:
    """A stopping criterion: each row ends when the streamer saw its end (an end of turn, or a
    completion's blank line), so a batch stops once every row has."""

    def __init__(self, streamer: _BatchStreamer):
        self.streamer = streamer

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.tensor(self.streamer.done, dtype=torch.bool, device=input_ids.device)


class Engine:
    """One base loaded once (NF4 when possible), any number of registry adapters attached.

    On a GPU, `compile=True` (or ENGINE_COMPILE=1) decodes with a static KV cache and a
    torch.compile'd, CUDA-graphed step; adapters stay routed per row through fixed buffers."""

    scores = True  # teacher-forced likelihoods for held-out metrics (backend.Generator)
    drop_finished_rows = True  # decode with _decode_shrinking (False: transformers' generate, the reference)

    def __init__(self, registry: Registry, base: str, quantize: bool = True, compile: bool | None = None,
                 base_prompt: str = "template"):
        if base_prompt not in BASE_PROMPTS:
            raise EngineError(f"base prompt must be one of {', '.join(BASE_PROMPTS)}, got {base_prompt!r}")
        self.base_prompt = base_prompt  # how a base without a chat template is prompted
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
        self._layers: dict[str, nn.Module] = {}
        self._slots = [BASE]
        self._tokenizers = [self.tokenizer]  # per slot: an adapter's own chat template wins
        self._lock = threading.Lock()  # one shared model: one generation at a time
        config = self.model.config
        self.context_length = min(
            getattr(config, "max_position_embeddings", 2048) or 2048, self.tokenizer.model_max_length
        )
        self.eos_ids = stop_ids(self.model.generation_config.eos_token_id, self.tokenizer)
        if compile is None:
            compile = os.environ.get("ENGINE_COMPILE", "0") == "1"
        self.compile = bool(compile) and self.device.type == "cuda"
        if self.compile:
            self.enable_compiled_decode()
        log.info("engine: base %s loaded as %s (%s)%s", base, self.quantization, loaded.reason,
                 ", compiled static-cache decode" if self.compile else "")

    def enable_compiled_decode(self) -> None:
        """Static KV cache + torch.compile (reduce-overhead: CUDA graphs) for the decode steps.
        transformers skips auto-compilation for bitsandbytes models; its 4-bit ops are torch
        custom ops that compile, so we ask for it."""
        from transformers import CompileConfig

        quantizer = getattr(self.model, "hf_quantizer", None)
        if quantizer is not None and not quantizer.is_compileable:
            quantizer.__class__ = type(f"Compileable{type(quantizer).__name__}", (type(quantizer),),
                                       {"is_compileable": property(lambda _: True)})
        config = self.model.generation_config
        config.cache_implementation = "static"
        # One cache size, so no recompilation per request length; sized for arena prompts plus
        # answers, not the whole context: every decode step attends over all of it.
        config.max_cache_len = min(self.context_length, 1024)
        config.compile_config = CompileConfig(fullgraph=False, dynamic=False, mode="reduce-overhead")
        self.compile = True

    # ---- adapters ------------------------------------------------------------------------
    @property
    def adapters(self) -> list[str]:
        return self._slots[1:]

    def ensure_model(self, name: str) -> None:
        """Make `name` ready to answer (load its adapter onto the shared base); refuse an unknown
        entry or an adapter of another base with EngineError / RegistryError."""
        self.adapter_index(name)

    def adapter_index(self, name: str) -> int:
        """The row index of `name` among the loaded adapters (0: the base), loading it first."""
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
        weights = read_adapter(entry.path)
        modules = dict(self.model.named_modules())
        missing = [m for m in [*weights.lora, *weights.tokens] if m not in modules and m not in self._layers]
        if missing:
            raise EngineError(f"adapter {name!r} targets modules missing from base {self.base_name!r}: {missing[:3]}")
        tokenizer = self.tokenizer
        if self.registry.tokenizer_path(entry) == entry.path:  # the template it was trained with
            tokenizer = load_tokenizer(entry.path)
            tokenizer.padding_side = "left"
        tokens = dict(weights.tokens)
        if self.model.config.tie_word_embeddings and len(tokens) == 1:  # PEFT ties the head to it
            (module, value), = tokens.items()
            head = self._module_name(self.model.get_output_embeddings())
            tokens.setdefault(head, value)
        with self._lock:
            self._slots.append(name)
            self._tokenizers.append(tokenizer)
            self.eos_ids |= adapter_stop_ids(entry.path)
            for module in weights.lora:
                if module not in self._layers:
                    self._wrap(module)
            for module, layer in self._layers.items():
                if isinstance(layer, MultiLoraLinear):
                    a, b = weights.lora.get(module, (None, None))
                    layer.add_slot(
                        None if a is None else a.to(self.device), None if b is None else b.to(self.device),
                        len(self._slots), self.device,
                    )
                    if module in weights.magnitude:
                        layer.set_dora(len(self._slots) - 1, weights.magnitude[module].to(self.device), a, b)
            for module, (ids, rows) in tokens.items():
                layer = self._layers.get(module) or self._wrap_tokens(module)
                layer.slots[len(self._slots) - 1] = (ids.to(self.device), rows.to(self.device, self.dtype))

    def _module_name(self, module: nn.Module) -> str:
        return next(n for n, m in self.model.named_modules() if m is module or getattr(m, "base_layer", None) is module)

    def _wrap(self, module: str) -> None:
        parent_name, _, child = module.rpartition(".")
        parent = self.model.get_submodule(parent_name)
        layer = MultiLoraLinear(getattr(parent, child), self.dtype)
        # Zero slots for the base and for earlier adapters, which do not touch this layer.
        layer.add_slot(None, None, len(self._slots) - 1, self.device)
        setattr(parent, child, layer)
        self._layers[module] = layer

    def _wrap_tokens(self, module: str) -> MultiTokenEmbedding:
        parent_name, _, child = module.rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        base_layer = getattr(parent, child)
        layer = MultiTokenEmbedding(base_layer, head=base_layer is not self.model.get_input_embeddings())
        setattr(parent, child, layer)
        self._layers[module] = layer
        return layer

    def _route(self, index: torch.Tensor | None) -> None:
        # All-base batches skip LoRA entirely; otherwise every layer gathers its rows' weights.
        if index is not None and not bool(index.any()):
            index = None
        for layer in self._layers.values():
            layer.route(index, fixed_buffers=self.compile)

    # ---- prompts -------------------------------------------------------------------------
    def _render(self, messages: list[dict], tokenizer) -> list[int]:
        if tokenizer is None:  # a base without a chat template, as a plain completion
            return self.tokenizer(completion_text(messages))["input_ids"]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prompt_tokenizer(self, model: str):
        """The tokenizer whose chat template renders `model`'s prompts, and how that was chosen. The
        plain base of a pretrained model has none: it borrows the template of the first loaded
        adapter that has one (the seed's and LLaMA-Factory's practice), or, with base_prompt
        "completion", is prompted with the plain text (None)."""
        tokenizer = self._tokenizers[self.adapter_index(model)]
        if getattr(tokenizer, "chat_template", None):
            return tokenizer, ""
        if self.base_prompt == "completion":
            return None, "prompted as a plain completion (the base has no chat template; the answer ends at a blank line)"
        for name, other in zip(self._slots, self._tokenizers):
            if getattr(other, "chat_template", None):
                return other, f"prompted with the chat template of {name!r} (the base has none)"
        raise EngineError(
            f"base {self.base_name!r} has no chat template, so its plain rows cannot be prompted as a chat; battle it "
            "beside one of its adapters (it borrows the template they were trained with), or prompt it as a plain "
            "completion (--base-prompt completion)")

    def base_prompting(self, models: Sequence[str]) -> str | None:
        """How the plain base is prompted among `models` (None when it is not among them)."""
        if not any(m in (BASE, self.base_name) for m in models):
            return None
        for m in models:
            self.adapter_index(m)  # load them: the borrowed template is the first loaded adapter's
        return self._prompt_tokenizer(BASE)[1] or "its own chat template"

    def prepare(self, prompt: str | list[dict], max_new_tokens: int, model: str = BASE) -> tuple[list[int], int]:
        """Token ids of a prompt with the chat template `model` was trained with; the last
        message's text is cut from its end when the whole would not fit the context with
        `max_new_tokens` after it."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if not messages or not str(messages[-1].get("content", "")).strip():
            raise EngineError("empty prompt")
        tokenizer, _ = self._prompt_tokenizer(model)
        budget = self.context_length - max_new_tokens
        ids = self._render(messages, tokenizer)
        if len(ids) <= budget:
            return ids, 0
        content_ids = (tokenizer or self.tokenizer)(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        overhead = len(ids) - len(content_ids)
        keep = budget - overhead
        while keep > 0:
            cut = (tokenizer or self.tokenizer).decode(content_ids[:keep])
            ids = self._render(messages[:-1] + [{**messages[-1], "content": cut}], tokenizer)
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
        slots = [self.adapter_index(m) for m in models]
        return [self.prepare(p, params.max_new_tokens, m) for p, m in zip(prompts, models)], slots

    def _run(self, prepared, slots, params: SamplingParams, streamer: "_BatchStreamer") -> None:
        """One batched generation; row i uses adapter slot slots[i]. The compiled decode (a static
        cache) runs transformers' generate; otherwise `_decode_shrinking` drops each row from the
        batch as it ends."""
        batch = self.tokenizer.pad(
            {"input_ids": [ids for ids, _ in prepared]}, padding=True, return_tensors="pt"
        ).to(self.device)
        with self._lock, torch.inference_mode():
            torch.manual_seed(params.seed)
            self._route(torch.tensor(slots, device=self.device))
            try:
                if self.compile or not self.drop_finished_rows:
                    from transformers import StoppingCriteriaList

                    self.model.generate(
                        **batch, streamer=streamer, pad_token_id=self.tokenizer.pad_token_id,
                        eos_token_id=sorted(self.eos_ids), stopping_criteria=StoppingCriteriaList([_RowsDone(streamer)]),
                        **params.generate_kwargs(),
                    )
                else:
                    self._decode_shrinking(batch["input_ids"], batch["attention_mask"], slots, params, streamer)
            finally:
                self._route(None)

    def _decode_shrinking(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, slots: list[int],
                          params: SamplingParams, streamer: "_BatchStreamer") -> None:
        """Greedy or sampled decoding that drops a row from the batch (its KV cache, mask and
        adapter route) as soon as it ends. transformers' generate keeps every row until the last
        one ends, and on a CPU a decode step costs in proportion to its rows (the LM head over the
        vocabulary dominates): a batch whose answers mostly end early pays for its longest one on
        every row. Same tokens as generate's greedy search with the same logits processors (a
        test compares them)."""
        from transformers import DynamicCache

        processors = params.logits_processors(input_ids.shape[1], sorted(self.eos_ids), self.device, sample=False)
        sampler = params.sampler()  # draws the ids itself: no [rows, vocab] of -inf around each one
        alive = torch.arange(input_ids.shape[0], device=self.device)  # batch row -> streamer row
        route = torch.tensor(slots, device=self.device)
        cache = DynamicCache(config=self.model.config)
        step_ids = input_ids
        step_positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # the prompt's; then each new token's
        for _ in range(params.max_new_tokens):
            out = self.model(input_ids=step_ids, attention_mask=attention_mask, position_ids=step_positions,
                             cache=cache, use_cache=True, logits_to_keep=1)
            scores = processors(input_ids, out.logits[:, -1].float())
            chosen = sampler.choose(scores) if sampler is not None else scores.argmax(-1)
            rows = alive.tolist()
            streamer.take(rows, chosen.tolist())
            keep = torch.tensor([not streamer.done[row] for row in rows], device=self.device)
            if not bool(keep.any()):
                break
            next_positions = step_positions[:, -1:] + 1
            if not bool(keep.all()):
                kept = keep.nonzero().squeeze(-1)
                cache.batch_select_indices(kept)
                alive, route, chosen = alive[kept], route[kept], chosen[kept]
                input_ids, attention_mask, next_positions = input_ids[kept], attention_mask[kept], next_positions[kept]
                self._route(route)
            input_ids = torch.cat([input_ids, chosen[:, None]], dim=-1)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(alive), 1)], dim=-1)
            step_ids, step_positions = chosen[:, None], next_positions

    def _answers(self, models, prepared, streamer: "_BatchStreamer") -> list[Answer]:
        return [
            Answer(
                model=models[i],
                text=self._decode(models[i], streamer.tokens[i], i in streamer.paragraph_rows),
                new_tokens=len(streamer.tokens[i]) + int(streamer.done[i]),
                finish_reason="stop" if streamer.done[i] else "length",
                prompt_tokens=len(prepared[i][0]), truncated_tokens=prepared[i][1],
                prompted=self._prompt_tokenizer(models[i])[1],
            )
            for i in range(len(models))
        ]

    def _decode(self, model: str, tokens: list[int], paragraph: bool) -> str:
        text = self._tokenizers[self.adapter_index(model)].decode(tokens, skip_special_tokens=True)
        return BLANK_LINE.split(text)[0].strip() if paragraph else text

    def _paragraph_rows(self, models) -> dict:
        """Rows prompted as plain completions, whose answers end at a blank line."""
        return {i: self.tokenizer for i, m in enumerate(models) if self._prompt_tokenizer(m)[0] is None}

    def generate(self, prompts: Sequence[str | list[dict]], models: Sequence[str], params: SamplingParams) -> list[Answer]:
        """Row i answers prompts[i] with models[i]; all rows in ONE batched generate call."""
        prepared, slots = self._start(prompts, models, params)
        streamer = _BatchStreamer(len(prompts), self.eos_ids, paragraph_rows=self._paragraph_rows(models))
        self._run(prepared, slots, params, streamer)
        return self._answers(models, prepared, streamer)

    def stream(
        self, prompts: Sequence[str | list[dict]], models: Sequence[str], params: SamplingParams
    ) -> Iterator[list[Answer]]:
        """Like generate, but yields every row's answer so far as tokens arrive (the final
        answers last). Updates that arrive while the consumer is busy are merged."""
        prepared, slots = self._start(prompts, models, params)
        streamer = _BatchStreamer(len(prompts), self.eos_ids, notify=True, paragraph_rows=self._paragraph_rows(models))
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

    def label_logprobs(self, model: str, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log p(labels) with every row on `model` (held-out metrics use it),
        through the chunked head of posttrain.heldout: no [batch, seq, vocab] fp32 tensor."""
        from posttrain.heldout import label_logprobs

        slot = self.adapter_index(model)
        with self._lock, torch.inference_mode():
            self._route(torch.full((input_ids.shape[0],), slot, device=self.device))
            try:
                return label_logprobs(self.model, input_ids.to(self.device), attention_mask.to(self.device),
                                      labels.to(self.device))
            finally:
                self._route(None)

    def tokenizer_for(self, model: str):
        """The tokenizer (and so the chat template) `model` renders prompts with: a base without a
        template has its adapters' (as in battles), unless it is prompted as a plain completion."""
        tokenizer = self._tokenizers[self.adapter_index(model)]
        if getattr(tokenizer, "chat_template", None) or self.base_prompt == "completion":
            return tokenizer
        return self._prompt_tokenizer(model)[0]

    def battle(self, prompt: str | list[dict], model_a: str, model_b: str, params: SamplingParams) -> tuple[Answer, Answer]:
        """Both sides of a battle in one batched call."""
        a, b = self.generate([prompt, prompt], [model_a, model_b], params)
        return a, b
