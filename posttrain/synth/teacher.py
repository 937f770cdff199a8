"""Teachers that complete prompts: a registry model through the shared engine (offline), or an
OpenAI-compatible endpoint through posttrain.chat_api (requests in parallel under request and
token rate limits, retries, and an on-disk cache so a rerun never pays twice)."""

from __future__ import annotations

import os
from pathlib import Path

from posttrain.chat_api import ChatClient
from posttrain.errors import SettingsError
from posttrain.backend import Generator
from posttrain.engine import SamplingParams
from posttrain.synth.clean import Cut


class LocalTeacher:
    """A registry entry (or the plain base) on the shared engine, rows batched per call. `complete`
    returns each answer as text, a `Cut` where it stopped at max_new_tokens (both teachers)."""

    def __init__(self, engine: Generator, model: str, max_new_tokens: int = 160, temperature: float = 0.9,
                 batch_size: int = 8):
        engine.ensure_model(model)
        self.engine, self.model, self.batch_size = engine, model, batch_size
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.name = f"local:{model}"

    def complete(self, prompts: list[str], seed: int) -> list[str]:
        out = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=seed + start)
            out += [Cut(a.text) if a.finish_reason == "length" else a.text
                    for a in self.engine.generate(chunk, [self.model] * len(chunk), params)]
        return out


class OpenAITeacher:
    """Any OpenAI-compatible /chat/completions endpoint (base URL, key, model from the environment),
    `concurrency` requests in flight under the request and token rate limits."""

    def __init__(self, base_url: str, model: str, api_key: str = "", cache: str | Path = "synth_cache.sqlite",
                 requests_per_minute: float = 60, tokens_per_minute: float | None = None, concurrency: int = 32,
                 retries: int = 5, temperature: float = 0.9, max_tokens: int = 400):
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens
        self.client = ChatClient(base_url, api_key, concurrency=concurrency, requests_per_minute=requests_per_minute,
                                 tokens_per_minute=tokens_per_minute, retries=retries, cache=cache)
        self.name = f"openai:{model}"

    @classmethod
    def from_env(cls, **kwargs) -> "OpenAITeacher":
        missing = [k for k in ("TEACHER_BASE_URL", "TEACHER_MODEL") if not os.environ.get(k)]
        if missing:
            raise SettingsError(f"the API teacher needs {', '.join(missing)} in the environment")
        return cls(os.environ["TEACHER_BASE_URL"], os.environ["TEACHER_MODEL"], os.environ.get("TEACHER_API_KEY", ""), **kwargs)

    def complete(self, prompts: list[str], seed: int) -> list[str]:
        bodies = [{"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": seed + i,
                   "messages": [{"role": "user", "content": prompt}]} for i, prompt in enumerate(prompts)]
        return [Cut(reply["text"]) if reply.get("finish_reason") == "length" else reply["text"]
                for reply in self.client.complete_many(bodies)]
