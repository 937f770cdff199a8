"""llama.cpp, the engine people run small models in on CPUs, through `llama-cpp-python` (built from
its PyPI sdist by `bash scripts/install.sh --llama-cpp`): loading a GGUF (with GGUF LoRAs over it),
greedy decoding of one or many sequences at once through its batch API, and quantizing. Optional:
everything here says in one line when llama.cpp is not installed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

from posttrain.errors import WorkbenchError

PIN = "llama-cpp-python==0.3.36"
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
        self._contexts: dict[tuple, Context] = {}

    def adapter(self, path: str | Path | None):
        """A GGUF LoRA over this model, loaded once (None: no adapter)."""
        if path is None:
            return None
        key = str(Path(path).resolve())
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
                                                max(per_row, ctx.per_row if ctx else 256), threads)
        return ctx

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


class Context:
    """A llama.cpp context over a Runner's model: `rows` sequences, each its own KV stream of up to
    `per_row` tokens (attention reads a row's own cache, not every row's), one LoRA or none."""

    def __init__(self, runner: Runner, adapter, rows: int, per_row: int, threads: int):
        import ctypes

        llama_cpp = self.llama_cpp = runner.llama_cpp
        self.runner, self.rows, self.per_row = runner, rows, per_row
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
        import numpy as np

        llama_cpp, vocab = self.llama_cpp, self.runner.vocab_size
        if len(prompts) > self.rows or max(len(p) for p in prompts) + max_new_tokens > self.per_row:
            raise WorkbenchError(f"{len(prompts)} rows of up to {max(len(p) for p in prompts) + max_new_tokens} tokens "
                                 f"exceed the context ({self.rows} rows of {self.per_row})")
        memory = llama_cpp.llama_get_memory(self.ctx)
        llama_cpp.llama_memory_clear(memory, True)
        batch = llama_cpp.llama_batch_init(512, 0, 1)
        last = np.empty((len(prompts), vocab), dtype=np.float32)  # each row's logits for its next token

        def run(items: list[tuple[int, int, int, bool]]) -> None:
            for start in range(0, len(items), 512):
                chunk = items[start:start + 512]
                for i, (row, token, pos, logits) in enumerate(chunk):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
                    batch.seq_id[i][0], batch.logits[i] = row, int(logits)
                batch.n_tokens = len(chunk)
                status = llama_cpp.llama_decode(self.ctx, batch)
                if status != 0:
                    raise WorkbenchError(f"llama.cpp's decode failed (status {status}) on {self.runner.path}")
                for i, (row, _, _, logits) in enumerate(chunk):
                    if logits:
                        last[row] = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, i), shape=(vocab,))

        try:
            run([(row, token, pos, pos == len(prompt) - 1)
                 for row, prompt in enumerate(prompts) for pos, token in enumerate(prompt)])
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
                    run([(row, token, len(prompts[row]) + steps - 1, True) for row, token in still])
        finally:
            llama_cpp.llama_batch_free(batch)

    def close(self) -> None:
        if self.ctx is not None:
            self.llama_cpp.llama_free(self.ctx)
            self.ctx = None
