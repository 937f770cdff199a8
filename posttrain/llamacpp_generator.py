"""The `llamacpp` generation backend: the base's own GGUF loaded once in llama.cpp, each registry
adapter exported once as a GGUF LoRA and applied per request, behind the Engine's `Generator`
protocol (generate, stream, battle), so battles, campaigns, IFEval and the demo run through it
unchanged. Prompts are rendered exactly as the Engine renders them (it is the Engine's own prompt
code); only the decoding moves to llama.cpp, where the rows of one model share one batched decode
and the two sides of a battle decode in parallel, one thread each.

    --generation-backend llamacpp      (or GENERATION_BACKEND=llamacpp; needs install.sh --llama-cpp)"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from posttrain.engine import (BASE, BASE_PROMPTS, Engine, EngineError, SamplingParams, adapter_stop_ids, read_adapter,
                              stop_ids)
from posttrain.errors import WorkbenchError
from posttrain.llamacpp import Runner, TokenRows
from posttrain.models import load_tokenizer
from posttrain.registry import Registry
from posttrain.ship import gguf_file


class LlamaCppGenerator(Engine):
    """The Engine's protocol with llama.cpp decoding; no PyTorch model is loaded."""

    scores = False  # llama.cpp returns tokens here, not teacher-forced likelihoods

    def __init__(self, registry: Registry, base: str, threads: int | None = None, base_prompt: str = "template"):
        if base_prompt not in BASE_PROMPTS:
            raise EngineError(f"base prompt must be one of {', '.join(BASE_PROMPTS)}, got {base_prompt!r}")
        entry = registry.get(base)
        if entry.is_adapter:
            raise EngineError(f"{base!r} is an adapter (on base {entry.base!r}); the backend needs a base entry")
        try:
            self.gguf = gguf_file.source_gguf(entry)
        except gguf_file.GGUFExportError as exc:
            raise EngineError(f"the llamacpp backend runs a base's own GGUF: {exc}") from None
        self.registry, self.base_name, self.base_prompt = registry, base, base_prompt
        self.tokenizer = load_tokenizer(entry.path)
        self.tokenizer.padding_side = "left"
        self.runner = Runner(self.gguf, threads=threads or torch.get_num_threads())
        self.quantization = f"llama.cpp ({self.gguf.name})"
        self.device, self.dtype, self.compile = torch.device("cpu"), torch.float32, False
        self._layers: dict = {}
        self._slots, self._tokenizers, self._loras = [BASE], [self.tokenizer], [None]
        self._lock = threading.Lock()
        self._cache = tempfile.TemporaryDirectory(prefix="llamacpp-loras-")  # the adapters' GGUF LoRAs
        logging.getLogger("gguf").setLevel(logging.WARNING)  # its writer's "Writing the following files" per adapter
        config = json.loads((entry.path / "config.json").read_text())
        self.tied = bool(config.get("tie_word_embeddings", config.get("text_config", {}).get("tie_word_embeddings", True)))
        config = config.get("text_config", config)
        self.context_length = min(config.get("max_position_embeddings") or 2048, self.tokenizer.model_max_length)
        eos = config.get("eos_token_id")
        if (entry.path / "generation_config.json").is_file():
            eos = json.loads((entry.path / "generation_config.json").read_text()).get("eos_token_id", eos)
        self.eos_ids = stop_ids(eos, self.tokenizer)

    # ---- adapters ------------------------------------------------------------------------
    def load_adapter(self, name: str) -> None:
        entry = self.registry.get(name)
        if not entry.is_adapter:
            raise EngineError(f"{name!r} is not an adapter entry (method {entry.method!r})")
        if entry.base != self.base_name:
            raise EngineError(f"adapter {name!r} was trained on base {entry.base!r} "
                              f"({entry.card.get('base_model')}), but this backend runs base {self.base_name!r}")
        try:
            lora = gguf_file.export_lora_gguf(self.registry, name, Path(self._cache.name) / f"{name}.gguf",
                                              token_rows="omit", beside=False).path
        except gguf_file.GGUFExportError as exc:
            raise EngineError(f"the llamacpp backend cannot serve {name!r}: {exc}") from None
        # llama.cpp reads it now: a file it refuses fails here, not mid-battle
        self.runner.adapter(lora, self._token_rows(name, entry.path))
        tokenizer = self.tokenizer
        if self.registry.tokenizer_path(entry) == entry.path:  # the template it was trained with
            tokenizer = load_tokenizer(entry.path)
            tokenizer.padding_side = "left"
        with self._lock:
            self._slots.append(name)
            self._tokenizers.append(tokenizer)
            self._loras.append(lora)
            self.eos_ids |= adapter_stop_ids(entry.path)

    def _token_rows(self, name: str, adapter_dir: Path) -> TokenRows | None:
        """The embedding rows the adapter replaces (its template's turn tokens) in the input and the
        head, carried beside its GGUF LoRA (the head's are the input's when the base ties them and
        PEFT saved one module, as the Engine reads them); None when it replaces none."""
        tokens = read_adapter(adapter_dir).tokens
        if not tokens:
            return None
        inputs = [m for m in tokens if m.endswith("embed_tokens")]
        heads = [m for m in tokens if m.endswith("lm_head")]
        if len(inputs) > 1 or len(heads) > 1 or len(inputs) + len(heads) != len(tokens):
            raise EngineError(f"the llamacpp backend carries trained token rows of the input embedding and the "
                              f"head only; {name!r} trains rows of {', '.join(sorted(tokens))}")
        head = tokens[heads[0]] if heads else tokens[inputs[0]] if self.tied else None
        try:
            return TokenRows(self.runner, tokens[inputs[0]] if inputs else None, head)
        except WorkbenchError as exc:
            raise EngineError(f"the llamacpp backend cannot serve {name!r}: {exc}") from None

    def label_logprobs(self, *args, **kwargs):
        raise EngineError("the llamacpp backend generates only; likelihoods (perplexity, implicit rewards) need "
                          "--generation-backend engine")

    # ---- decoding --------------------------------------------------------------------------
    def _chooser(self, params: SamplingParams, prepared):
        """rows, logits -> next tokens: argmax when greedy and plain, else the Engine's own logits
        processors and sampler over each row's prompt (left-padded as the Engine pads) and answer."""
        processors = params.logits_processors(max(len(ids) for ids, _ in prepared), sorted(self.eos_ids), self.device,
                                              sample=False)
        sampler = params.sampler()
        if not processors and sampler is None:
            return lambda rows, logits, answers: np.asarray(logits).argmax(-1).tolist()
        width = max(len(ids) for ids, _ in prepared)
        pad = self.tokenizer.pad_token_id or 0
        padded = [[pad] * (width - len(ids)) + list(ids) for ids, _ in prepared]

        def choose(rows, logits, answers):
            scores = torch.from_numpy(np.array(logits, dtype=np.float32))
            if processors:
                input_ids = torch.tensor([padded[row] + answers[row] for row in rows])
                scores = processors(input_ids, scores)
            return (sampler.choose(scores) if sampler is not None else scores.argmax(-1)).tolist()

        return choose

    def _run(self, prepared, slots, params: SamplingParams, streamer) -> None:
        """Rows grouped by model: each group one context (its LoRA applied) and one batched decode;
        several groups (a battle's two sides) decode in parallel threads, the cores split between them."""
        groups: dict[int, list[int]] = {}
        for row, slot in enumerate(slots):
            groups.setdefault(slot, []).append(row)
        threads = max(1, self.runner.threads // len(groups))
        answers: dict[int, list[int]] = {row: [] for row in range(len(prepared))}
        errors: list[BaseException] = []

        with self._lock:
            torch.manual_seed(params.seed)
            work = []
            for slot, rows in groups.items():
                longest = max(len(prepared[row][0]) for row in rows) + params.max_new_tokens
                work.append((self.runner.context(self._loras[slot], len(rows), longest, threads), rows))

            def run(ctx, rows) -> None:
                choose = self._chooser(params, prepared)  # its own sampler: threads draw independently

                def take(local, tokens):
                    for i, token in zip(local, tokens):
                        answers[rows[i]].append(token)
                    streamer.take([rows[i] for i in local], tokens)

                try:
                    ctx.decode([prepared[row][0] for row in rows], params.max_new_tokens,
                               lambda local, logits: choose([rows[i] for i in local], logits, answers),
                               take, lambda i: streamer.done[rows[i]])
                except BaseException as exc:  # re-raised in the caller's thread
                    errors.append(exc)

            if len(work) == 1:
                run(*work[0])
            else:
                pool = [threading.Thread(target=run, args=job, daemon=True) for job in work]
                for thread in pool:
                    thread.start()
                for thread in pool:
                    thread.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        self.runner.close()
        self._cache.cleanup()
