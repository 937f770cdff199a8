"""Where answers come from: the in-process Engine (one shared 4-bit base, adapters routed per
row), llama.cpp over the base's own GGUF (posttrain/llamacpp_generator.py), or an OpenAI-compatible multi-LoRA server (vLLM, SGLang) that serves the base and every
registry adapter under its registry name. Both satisfy `Generator` (ensure_model, generate, stream,
battle), so campaigns, the demo, evaluation and the teacher never ask which they hold.

    GENERATION_BACKEND=openai GENERATION_BASE_URL=http://gpu-box:8000/v1 [GENERATION_API_KEY=...]"""

from __future__ import annotations

import os
import queue
import threading
from typing import Iterator, Protocol, Sequence, runtime_checkable

from posttrain.chat_api import APIError, ChatClient
from posttrain.engine import BASE, Answer, Engine, EngineError, SamplingParams
from posttrain.registry import Registry, RegistryError

BACKENDS = ("engine", "openai", "llamacpp")


@runtime_checkable
class Generator(Protocol):
    """What answers prompts for campaigns, the demo, evaluation and the teacher: the in-process
    Engine or an OpenAI-compatible server (OpenAIGenerator). A prompt is a user text or a list of
    chat messages; models are registry names (BASE or the base's own name: no adapter)."""

    base_name: str
    quantization: str
    scores: bool  # it can teacher-force (likelihoods: perplexity, implicit rewards); a server returns text only

    @property
    def adapters(self) -> list[str]:
        """The adapters made ready so far."""

    def ensure_model(self, model: str) -> None:
        """Refuse (EngineError) a model this generator cannot answer with, before anything is
        generated or stored; the Engine loads its adapter, a server is asked what it serves."""

    def generate(self, prompts: Sequence[str | list[dict]], models: Sequence[str], params: SamplingParams) -> list[Answer]:
        """One answer per (prompt, model) row."""

    def stream(self, prompts: Sequence[str | list[dict]], models: Sequence[str],
               params: SamplingParams) -> Iterator[list[Answer]]:
        """Every row's answer so far as tokens arrive; the final answers last."""

    def battle(self, prompt: str | list[dict], model_a: str, model_b: str, params: SamplingParams) -> tuple[Answer, Answer]:
        """Both sides of a battle at once."""


class OpenAIGenerator:
    """The Engine's protocol over a server; both sides of a battle go out concurrently."""

    def __init__(self, registry: Registry, base: str, base_url: str, api_key: str = "", concurrency: int = 16):
        entry = registry.get(base)
        if entry.is_adapter:
            raise EngineError(f"{base!r} is an adapter (on base {entry.base!r}); the backend needs a base entry")
        self.registry, self.base_name, self.base_url = registry, base, base_url
        self.client = ChatClient(base_url, api_key, concurrency=concurrency, retries=3)
        self.quantization = f"served by {base_url}"
        self.scores = False  # a server returns text, not teacher-forced likelihoods
        self._served: set[str] | None = None
        self._checked: list[str] = []

    # ---- models ---------------------------------------------------------------------------
    def served(self) -> set[str]:
        if self._served is None:
            try:
                self._served = set(self.client.models())
            except APIError as exc:
                raise EngineError(f"generation server {self.base_url} is unreachable: {exc}") from None
        return self._served

    def _server_name(self, model: str) -> str:
        """Registry names are the served names (`scripts/serve.py` starts the server that way)."""
        return self.base_name if model in (BASE, self.base_name) else model

    def ensure_model(self, model: str) -> None:
        """Refuse, before anything is generated or stored, a model the registry or the server lacks."""
        self.served_model(model)

    def served_model(self, model: str) -> str:
        """The name the server answers `model` under, once the registry and the server both have it."""
        if model not in (BASE, self.base_name):
            entry = self.registry.get(model)
            if not entry.is_adapter or entry.method == "reward":
                raise EngineError(f"{model!r} is not a generating adapter entry (method {entry.method!r})")
            if entry.base != self.base_name:
                raise EngineError(f"adapter {model!r} was trained on base {entry.base!r}, but the server runs {self.base_name!r}")
        name = self._server_name(model)
        if name not in self.served():
            raise EngineError(
                f"generation server {self.base_url} does not serve {name!r} (it serves: {', '.join(sorted(self.served()))}); "
                "restart it with the command `python scripts/serve.py vllm-command` prints")
        if model not in self._checked:
            self._checked.append(model)
        return name

    @property
    def adapters(self) -> list[str]:
        return [m for m in self._checked if m not in (BASE, self.base_name)]

    # ---- requests -------------------------------------------------------------------------
    def _body(self, prompt: str | list[dict], model: str, params: SamplingParams) -> dict:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if not messages or not str(messages[-1].get("content", "")).strip():
            raise EngineError("empty prompt")
        body = {"model": self.served_model(model), "messages": messages, "max_tokens": params.max_new_tokens,
                "temperature": params.temperature, "seed": params.seed}
        if params.temperature > 0:
            body["top_p"] = params.top_p
            if params.top_k:
                body["top_k"] = params.top_k  # vLLM / SGLang sampling extensions
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty
        if params.min_new_tokens:
            body["min_tokens"] = params.min_new_tokens
        return body

    @staticmethod
    def _answer(model: str, reply: dict) -> Answer:
        usage = reply.get("usage") or {}
        return Answer(model=model, text=reply["text"], new_tokens=int(usage.get("completion_tokens") or 0),
                      finish_reason="length" if reply.get("finish_reason") == "length" else "stop",
                      prompt_tokens=int(usage.get("prompt_tokens") or 0))

    def generate(self, prompts: Sequence[str | list[dict]], models: Sequence[str], params: SamplingParams) -> list[Answer]:
        if len(prompts) != len(models) or not prompts:
            raise EngineError(f"need one model per prompt, got {len(prompts)} prompts and {len(models)} models")
        bodies = [self._body(p, m, params) for p, m in zip(prompts, models)]
        try:
            replies = self.client.complete_many(bodies)
        except APIError as exc:
            raise EngineError(str(exc)) from None
        return [self._answer(m, r) for m, r in zip(models, replies)]

    def stream(self, prompts: Sequence[str | list[dict]], models: Sequence[str], params: SamplingParams) -> Iterator[list[Answer]]:
        """Every row's answer so far as deltas arrive (rows stream concurrently); finals last."""
        bodies = [self._body(p, m, params) for p, m in zip(prompts, models)]
        texts, finish = [""] * len(bodies), [None] * len(bodies)
        counts = [0] * len(bodies)
        updates: queue.Queue = queue.Queue()

        def run(row: int) -> None:
            try:
                for delta in self.client.stream(bodies[row]):
                    updates.put((row, delta, None))
            except Exception as exc:  # re-raised in the caller's thread
                updates.put((row, None, exc))
            updates.put((row, None, None))

        for row in range(len(bodies)):
            threading.Thread(target=run, args=(row,), daemon=True).start()
        running = len(bodies)
        while running:
            row, delta, error = updates.get()
            if error is not None:
                raise EngineError(f"generation server {self.base_url}: {error}")
            if delta is None:
                running -= 1
                continue
            texts[row] += delta["text"]
            counts[row] += 1 if delta["text"] else 0
            finish[row] = delta["finish_reason"] or finish[row]
            yield self._partial(models, texts, counts, finish)
        yield self._partial(models, texts, counts, finish)

    def _partial(self, models, texts, counts, finish) -> list[Answer]:
        return [Answer(model=m, text=t, new_tokens=n, finish_reason="length" if f == "length" else "stop", prompt_tokens=0)
                for m, t, n, f in zip(models, texts, counts, finish)]

    def battle(self, prompt: str | list[dict], model_a: str, model_b: str, params: SamplingParams) -> tuple[Answer, Answer]:
        a, b = self.generate([prompt, prompt], [model_a, model_b], params)
        return a, b


def make_generator(registry: Registry, base: str, quantize: bool = True, backend: str | None = None,
                   base_url: str | None = None, api_key: str | None = None, base_prompt: str | None = None):
    """The Engine, or the server named by GENERATION_BACKEND / GENERATION_BASE_URL / GENERATION_API_KEY
    (flags given here win over the environment)."""
    backend = backend or os.environ.get("GENERATION_BACKEND", "engine")
    if backend not in BACKENDS:
        raise EngineError(f"GENERATION_BACKEND={backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "engine":
        return Engine(registry, base, quantize=quantize, base_prompt=base_prompt or os.environ.get("BASE_PROMPT", "template"))
    if backend == "llamacpp":
        from posttrain.llamacpp_generator import LlamaCppGenerator

        return LlamaCppGenerator(registry, base, base_prompt=base_prompt or os.environ.get("BASE_PROMPT", "template"))
    base_url = base_url or os.environ.get("GENERATION_BASE_URL")
    if not base_url:
        raise EngineError("GENERATION_BACKEND=openai needs GENERATION_BASE_URL (e.g. http://localhost:8000/v1)")
    try:
        return OpenAIGenerator(registry, base, base_url, api_key if api_key is not None else os.environ.get("GENERATION_API_KEY", ""))
    except RegistryError as exc:
        raise EngineError(str(exc)) from None


def add_flags(parser) -> None:
    """--generation-backend / --generation-base-url / --generation-api-key, defaults from the environment."""
    parser.add_argument("--generation-backend", choices=BACKENDS, default=os.environ.get("GENERATION_BACKEND", "engine"),
                        help="engine: in-process shared base; openai: an OpenAI-compatible server; llamacpp: the base's "
                             "GGUF in llama.cpp, adapters as GGUF LoRAs (install.sh --llama-cpp) (env GENERATION_BACKEND)")
    parser.add_argument("--generation-base-url", default=os.environ.get("GENERATION_BASE_URL"),
                        help="the server's /v1 URL (env GENERATION_BASE_URL)")
    parser.add_argument("--generation-api-key", default=os.environ.get("GENERATION_API_KEY", ""),
                        help="(env GENERATION_API_KEY)")
    parser.add_argument("--base-prompt", choices=["template", "completion"], default=os.environ.get("BASE_PROMPT", "template"),
                        help="a base without a chat template: borrow its adapters' template, or prompt it as plain "
                             "completion, ending at a blank line (env BASE_PROMPT)")


def from_flags(args, registry: Registry, base: str, quantize: bool = True):
    return make_generator(registry, base, quantize=quantize, backend=args.generation_backend,
                          base_url=args.generation_base_url, api_key=args.generation_api_key,
                          base_prompt=getattr(args, "base_prompt", None))
