"""llama.cpp, the engine people run small models in on CPUs, through `llama-cpp-python` (built from
its PyPI sdist by `bash scripts/install.sh --llama-cpp`): loading a GGUF (with GGUF LoRAs over it),
greedy decoding of one or many sequences at once through its batch API, and quantizing. Optional:
everything here says in one line when llama.cpp is not installed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

from posttrain.errors import WorkbenchError

PIN = "llama-cpp-python==0.3.36"
INSTALL = "bash scripts/install.sh --llama-cpp"  # builds PIN from source (about 25 minutes on 2 cores)


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
    """One GGUF loaded in llama.cpp, with a GGUF LoRA over it or none, decoding greedily: every row
    its own sequence in one shared KV cache, all rows advanced by one `llama_decode` per step (the
    batch API the server's parallel slots use). Rows are token ids already rendered with the chat
    template, so llama.cpp sees exactly the prompts the engine sees."""

    def __init__(self, model: str | Path, lora: str | Path | None = None, threads: int = 2, quiet: bool = True):
        llama_cpp = self.llama_cpp = require("llama.cpp generation")
        if quiet:
            from llama_cpp import _logger

            _logger.set_verbose(False)
        llama_cpp.llama_backend_init()
        self.path = Path(model)
        self.model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), llama_cpp.llama_model_default_params())
        if not self.model:
            raise WorkbenchError(f"llama.cpp could not load {self.path}")
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.threads = threads
        self.ctx, self.per_row, self.n_seq = None, 0, 0
        self.adapters: dict[str, object] = {}
        self.lora = None
        self.use_lora(lora)

    # ---- resources ------------------------------------------------------------------------------
    def _context(self, per_row: int, rows: int) -> None:
        """A context of `rows` sequences of up to `per_row` tokens each (made anew only to grow), each
        sequence its own KV stream: attention reads a row's own cache, not every row's."""
        llama_cpp = self.llama_cpp
        if self.ctx is not None and per_row <= self.per_row and rows <= self.n_seq:
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
            return
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
        self.per_row = max(per_row, self.per_row, 256)
        self.n_seq = max(rows, self.n_seq, 1)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.per_row * self.n_seq
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = self.n_seq
        params.n_threads = params.n_threads_batch = self.threads
        params.kv_unified = False
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise WorkbenchError(f"llama.cpp could not make a context of {rows} rows of {per_row} tokens")
        self._apply_lora()

    def use_lora(self, path: str | Path | None) -> None:
        """Apply a GGUF LoRA over the model (None: the model alone); each file is loaded once."""
        key = None if path is None else str(Path(path).resolve())
        if key is not None and key not in self.adapters:
            adapter = self.llama_cpp.llama_adapter_lora_init(self.model, key.encode())
            if not adapter:
                raise WorkbenchError(f"llama.cpp could not load the LoRA {path} over {self.path}")
            self.adapters[key] = adapter
        self.lora = key
        if self.ctx is not None:
            self._apply_lora()

    def _apply_lora(self) -> None:
        import ctypes

        llama_cpp = self.llama_cpp
        if self.lora is None:
            status = llama_cpp.llama_set_adapters_lora(self.ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.adapters[self.lora])
            status = llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, (ctypes.c_float * 1)(1.0))
        if status != 0:
            raise WorkbenchError(f"llama.cpp refused the LoRA {self.lora} (status {status})")

    def close(self) -> None:
        llama_cpp = self.llama_cpp
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        for adapter in self.adapters.values():
            llama_cpp.llama_adapter_lora_free(adapter)
        self.adapters.clear()
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- decoding ------------------------------------------------------------------------------
    def greedy(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop: Iterable[int] = (),
               on_step: Callable[[list[list[int]]], None] | None = None) -> list[list[int]]:
        """Each prompt's greedy continuation (its stop token included when it ended on one),
        `on_step` called with every row's tokens so far after each step."""
        import numpy as np

        llama_cpp = self.llama_cpp
        stop = set(stop)
        rows = len(prompts)
        if rows == 0:
            return []
        self._context(max(len(p) for p in prompts) + max_new_tokens, rows)
        memory = llama_cpp.llama_get_memory(self.ctx)
        batch = llama_cpp.llama_batch_init(512, 0, 1)
        out: list[list[int]] = [[] for _ in prompts]
        next_token: dict[int, int] = {}

        def decode(items: list[tuple[int, int, int, bool]]) -> None:
            """items: (row, token, position, wants logits); the rows' next tokens from the logits."""
            for start in range(0, len(items), 512):
                chunk = items[start:start + 512]
                for i, (row, token, pos, logits) in enumerate(chunk):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
                    batch.seq_id[i][0], batch.logits[i] = row, int(logits)
                batch.n_tokens = len(chunk)
                status = llama_cpp.llama_decode(self.ctx, batch)
                if status != 0:
                    raise WorkbenchError(f"llama.cpp's decode failed (status {status}) on {self.path}")
                for i, (row, _, _, logits) in enumerate(chunk):
                    if logits:
                        scores = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, i), shape=(self.vocab_size,))
                        next_token[row] = int(scores.argmax())

        try:
            decode([(row, token, pos, pos == len(prompt) - 1)
                    for row, prompt in enumerate(prompts) for pos, token in enumerate(prompt)])
            alive = list(range(rows))
            while alive:
                still = []
                for row in alive:
                    token = next_token[row]
                    out[row].append(token)
                    if token in stop or len(out[row]) >= max_new_tokens:
                        llama_cpp.llama_memory_seq_rm(memory, row, -1, -1)  # its cache is free for the others
                    else:
                        still.append(row)
                alive = still
                if on_step is not None:
                    on_step(out)
                if alive:
                    decode([(row, out[row][-1], len(prompts[row]) + len(out[row]) - 1, True) for row in alive])
        finally:
            llama_cpp.llama_batch_free(batch)
        return out
