"""llama.cpp, the engine people run small models in on CPUs, through `llama-cpp-python` (built from
its PyPI sdist by `bash scripts/install.sh --llama-cpp`): loading a GGUF (with GGUF LoRAs over it),
greedy decoding of one or many sequences at once through its batch API, and quantizing. Optional:
everything here says in one line when llama.cpp is not installed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from posttrain.errors import WorkbenchError

# Architectures whose graph scales token embeddings on the way in (llama.cpp's gemma*.cpp: by sqrt(n_embd),
# for token input only, not for embeddings passed in): inputs given as embeddings are pre-scaled the same way.
INPUT_SCALE = {"gemma": "sqrt", "gemma2": "sqrt", "gemma3": "sqrt", "llama": None}

PIN = "llama-cpp-python==0.3.36"
RUNTIME_PINS = (PIN, "diskcache==5.6.3")  # what a Space installs to run it (diskcache: its one unpinned dependency here)
INSTALL = "bash scripts/install.sh --llama-cpp"  # builds PIN from source (about 6 minutes on 2 idle cores)


class LlamaCppMissing(WorkbenchError):
    """llama.cpp is not installed here."""


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def require(what: str):
    """The llama_cpp module, or a one-line error saying what needed it and how to install it."""
    try:
        import llama_cpp
    except ImportError:
        raise LlamaCppMissing(f"{what} needs llama.cpp, which is not installed: {INSTALL} "
                              f"(builds {PIN} from its sdist)") from None
    return llama_cpp


class Runner:
    """One GGUF loaded once in llama.cpp, with GGUF LoRAs over it: each `Context` holds its own KV
    cache and adapter, every row its own sequence there, all rows advanced by one `llama_decode` per
    step (the batch API the server's parallel slots use). Contexts of one model may decode in
    parallel threads. Rows are token ids already rendered with the chat template, so llama.cpp sees
    exactly the prompts the engine sees."""

    def __init__(self, model: str | Path, lora: str | Path | None = None, threads: int = 2, quiet: bool = True):
        llama_cpp = self.llama_cpp = require("llama.cpp generation")
        if quiet:
            from llama_cpp import _logger

            _logger.set_verbose(False)
        llama_cpp.llama_backend_init()
        self.path = Path(model)
        if not self.path.is_file():
            raise WorkbenchError(f"{self.path}: no such GGUF file")
        self.model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), llama_cpp.llama_model_default_params())
        if not self.model:
            raise WorkbenchError(f"llama.cpp could not load {self.path}")
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.threads = threads
        self.lora = None if lora is None else str(Path(lora).resolve())
        self._adapters: dict[str, object] = {}
        self._token_rows: dict[str, TokenRows] = {}
        self._contexts: dict[tuple, Context] = {}
        self._base_rows: dict[int, np.ndarray] = {}  # token id -> the GGUF's own embedding row (dequantized)
        self._embedding = None  # the GGUF's token_embd, opened on first need

    def adapter(self, path: str | Path | None, token_rows: "TokenRows | None" = None):
        """A GGUF LoRA over this model, loaded once (None: no adapter), with the embedding rows it
        replaces (PEFT's trainable tokens) when it has any."""
        if path is None:
            return None
        key = str(Path(path).resolve())
        if token_rows is not None:
            self._token_rows[key] = token_rows
        if key not in self._adapters:
            adapter = self.llama_cpp.llama_adapter_lora_init(self.model, key.encode())
            if not adapter:
                raise WorkbenchError(f"llama.cpp could not load the LoRA {path} over {self.path}")
            self._adapters[key] = adapter
        return self._adapters[key]

    def context(self, lora: str | Path | None, rows: int, per_row: int, threads: int | None = None) -> "Context":
        """A context for `rows` sequences of up to `per_row` tokens under `lora`, kept for the next
        call (made anew only to grow)."""
        threads = threads or self.threads
        key = (None if lora is None else str(Path(lora).resolve()), threads)
        ctx = self._contexts.get(key)
        if ctx is None or rows > ctx.rows or per_row > ctx.per_row:
            if ctx is not None:
                ctx.close()
            ctx = self._contexts[key] = Context(self, self.adapter(lora), max(rows, ctx.rows if ctx else 1),
                                                max(per_row, ctx.per_row if ctx else 256), threads,
                                                None if key[0] is None else self._token_rows.get(key[0]))
        return ctx

    def meta(self, key: str) -> str | None:
        """A metadata value of the loaded GGUF (general.architecture, ...), None when absent."""
        import ctypes

        buffer = ctypes.create_string_buffer(256)
        size = self.llama_cpp.llama_model_meta_val_str(self.model, key.encode(), buffer, len(buffer))
        return buffer.value.decode() if size >= 0 else None

    def embedding_rows(self, ids: Sequence[int]) -> "np.ndarray":
        """The GGUF's own input embedding rows of `ids` ([len(ids), n_embd], float32, not yet scaled),
        dequantized once each from the file (what llama.cpp's get_rows reads)."""
        missing = sorted({int(i) for i in ids} - self._base_rows.keys())
        if missing:
            if self._embedding is None:
                from posttrain.ship import gguf_index

                self._embedding = gguf_index.Rows(self.path, "token_embd.weight")
            self._base_rows.update(zip(missing, self._embedding[missing]))
        return np.stack([self._base_rows[int(i)] for i in ids])

    def greedy(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop: Iterable[int] = (),
               on_step: Callable[[list[list[int]]], None] | None = None) -> list[list[int]]:
        """Each prompt's greedy continuation under the runner's LoRA (its stop token included when it
        ended on one), `on_step` called with every row's tokens so far after each step."""
        stop = set(stop)
        out: list[list[int]] = [[] for _ in prompts]
        if not prompts:
            return out

        def take(rows, tokens):
            for row, token in zip(rows, tokens):
                out[row].append(token)
            if on_step is not None:
                on_step(out)

        ctx = self.context(self.lora, len(prompts), max(len(p) for p in prompts) + max_new_tokens)
        ctx.decode(prompts, max_new_tokens, lambda rows, logits: logits.argmax(-1).tolist(), take,
                   lambda row: bool(out[row]) and out[row][-1] in stop)
        return out

    def close(self) -> None:
        for ctx in self._contexts.values():
            ctx.close()
        self._contexts.clear()
        for adapter in self._adapters.values():
            self.llama_cpp.llama_adapter_lora_free(adapter)
        self._adapters.clear()
        if self.model:
            self.llama_cpp.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TokenRows:
    """Embedding rows an adapter replaces (PEFT's `trainable_token_indices`: a chat template's turn
    tokens the pretrained base never learned), in the input embedding and the (tied or own) head,
    which a llama.cpp LoRA cannot carry (its LoRA on token_embd reaches the input, not the tied
    head). So a context with them takes its rows as embeddings (the replaced rows for those ids, the
    GGUF's own rows for the rest, scaled as the architecture scales its tokens), and the head's
    logits of the replaced ids are recomputed from the final hidden state llama.cpp returns too.
    inputs / head: (ids, rows [k, n_embd]), as lists, arrays or CPU tensors, or None."""

    def __init__(self, runner: Runner, inputs: tuple | None, head: tuple | None):
        arch = runner.meta("general.architecture")
        if arch not in INPUT_SCALE:
            raise WorkbenchError(f"trained token rows over llama.cpp are known for the {', '.join(INPUT_SCALE)} "
                                 f"architectures, not {arch!r}")
        self.runner, self.n_embd = runner, runner.llama_cpp.llama_model_n_embd(runner.model)
        (in_ids, in_rows), (self.ids, self.rows) = (self._checked(part) for part in (inputs, head))
        self.replaced = {int(i): row for i, row in zip(in_ids, in_rows)}
        self.scale = math.sqrt(self.n_embd) if INPUT_SCALE[arch] == "sqrt" else 1.0
        self.softcap = float(runner.meta(f"{arch}.final_logit_softcapping") or 0)

    def _checked(self, part: tuple | None) -> tuple[np.ndarray, np.ndarray]:
        ids, rows = part if part is not None else ([], np.zeros((0, self.n_embd)))
        ids, rows = np.asarray(ids, dtype=np.int64), np.asarray(rows, dtype=np.float32)
        if rows.shape != (len(ids), self.n_embd):
            raise WorkbenchError(f"{len(ids)} token rows of shape {rows.shape}, but {self.runner.path.name} "
                                 f"embeds in {self.n_embd} dimensions")
        return ids, rows

    def embed(self, tokens: Sequence[int]) -> np.ndarray:
        """[len(tokens), n_embd]: what llama.cpp's graph would make of these tokens, with the rows replaced."""
        out = self.runner.embedding_rows(tokens)
        for i, token in enumerate(tokens):
            row = self.replaced.get(int(token))
            if row is not None:
                out[i] = row
        return out * self.scale

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        """The head's logits of the replaced ids from the final (normed) hidden state."""
        logits = self.rows @ hidden
        return np.tanh(logits / self.softcap) * self.softcap if self.softcap else logits


class Context:
    """A llama.cpp context over a Runner's model: `rows` sequences, each its own KV stream of up to
    `per_row` tokens (attention reads a row's own cache, not every row's), one LoRA or none (and the
    token rows that LoRA replaces, if any)."""

    def __init__(self, runner: Runner, adapter, rows: int, per_row: int, threads: int, tokens: TokenRows | None = None):
        import ctypes

        llama_cpp = self.llama_cpp = runner.llama_cpp
        self.runner, self.rows, self.per_row, self.tokens = runner, rows, per_row, tokens
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = rows * per_row
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = rows
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = False
        self.ctx = llama_cpp.llama_init_from_model(runner.model, params)
        if not self.ctx:
            raise WorkbenchError(f"llama.cpp could not make a context of {rows} rows of {per_row} tokens")
        if adapter is not None:
            status = llama_cpp.llama_set_adapters_lora(self.ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter), 1,
                                                       (ctypes.c_float * 1)(1.0))
            if status != 0:
                raise WorkbenchError(f"llama.cpp refused a LoRA over {runner.path} (status {status})")

    def decode(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
               choose: Callable[[list[int], "np.ndarray"], list[int]],
               take: Callable[[list[int], list[int]], None], done: Callable[[int], bool]) -> None:
        """Prefill every prompt, then step: `choose(rows, logits [rows, vocab])` picks the rows' next
        tokens, `take(rows, tokens)` receives them, and a row leaves (its cache freed) once `done(row)`
        or after `max_new_tokens`."""
        llama_cpp = self.llama_cpp
        if len(prompts) > self.rows or max(len(p) for p in prompts) + max_new_tokens > self.per_row:
            raise WorkbenchError(f"{len(prompts)} rows of up to {max(len(p) for p in prompts) + max_new_tokens} tokens "
                                 f"exceed the context ({self.rows} rows of {self.per_row})")
        memory = llama_cpp.llama_get_memory(self.ctx)
        llama_cpp.llama_memory_clear(memory, True)
        batch = llama_cpp.llama_batch_init(512, 0 if self.tokens is None else self.tokens.n_embd, 1)
        last = np.empty((len(prompts), self.runner.vocab_size), dtype=np.float32)  # each row's logits for its next token
        try:
            prompt_items = [(row, token, pos, pos == len(prompt) - 1) for row, prompt in enumerate(prompts)
                            for pos, token in enumerate(prompt)]
            if self.tokens is None:
                self._run(batch, prompt_items, last)
            else:  # outputs only in chunks of outputs alone: with the hidden states on, llama.cpp outputs every position
                self._run(batch, [item for item in prompt_items if not item[3]], last)
                self._run(batch, [item for item in prompt_items if item[3]], last)
            alive, steps = list(range(len(prompts))), 0
            while alive:
                tokens = choose(alive, last[alive])
                take(alive, tokens)
                steps += 1
                still = []
                for row, token in zip(alive, tokens):
                    if done(row) or steps >= max_new_tokens:
                        llama_cpp.llama_memory_seq_rm(memory, row, -1, -1)
                    else:
                        still.append((row, token))
                alive = [row for row, _ in still]
                if alive:
                    self._run(batch, [(row, token, len(prompts[row]) + steps - 1, True) for row, token in still], last)
        finally:
            llama_cpp.llama_batch_free(batch)

    def _run(self, batch, items: list[tuple[int, int, int, bool]], last: np.ndarray) -> None:
        """Decode (row, token, position, wants logits) items, 512 at a time; a row's logits land in
        last[row]. With token rows: inputs as embeddings, and the replaced ids' logits recomputed."""
        llama_cpp, tokens = self.llama_cpp, self.tokens
        for start in range(0, len(items), 512):
            chunk = items[start:start + 512]
            for i, (row, token, pos, logits) in enumerate(chunk):
                batch.pos[i], batch.n_seq_id[i] = pos, 1
                batch.seq_id[i][0], batch.logits[i] = row, int(logits)
                if tokens is None:
                    batch.token[i] = token
            hidden = tokens is not None and chunk[0][3]
            if tokens is not None:
                inputs = np.ctypeslib.as_array(batch.embd, shape=(512, tokens.n_embd))
                inputs[:len(chunk)] = tokens.embed([token for _, token, _, _ in chunk])
                llama_cpp.llama_set_embeddings(self.ctx, hidden)
            batch.n_tokens = len(chunk)
            status = llama_cpp.llama_decode(self.ctx, batch)
            if status != 0:
                raise WorkbenchError(f"llama.cpp's decode failed (status {status}) on {self.runner.path}")
            for i, (row, _, _, logits) in enumerate(chunk):
                if logits:
                    last[row] = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, i), shape=(last.shape[1],))
                    if hidden:
                        state = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_ith(self.ctx, i), shape=(tokens.n_embd,))
                        last[row, tokens.ids] = tokens.logits(state)

    def close(self) -> None:
        if self.ctx is not None:
            self.llama_cpp.llama_free(self.ctx)
            self.ctx = None
