"""Teachers that complete prompts: a registry model through the shared engine (offline), or an
OpenAI-compatible endpoint with retries, backoff, a rate limit and an on-disk cache so a rerun
never pays twice for the same request."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

from posttrain.chat_api import chat_completion
from posttrain.engine import Engine, SamplingParams


class LocalTeacher:
    """A registry entry (or the plain base) on the shared engine, rows batched per call."""

    def __init__(self, engine: Engine, model: str, max_new_tokens: int = 160, temperature: float = 0.9,
                 batch_size: int = 8):
        engine.slot(model)
        self.engine, self.model, self.batch_size = engine, model, batch_size
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.name = f"local:{model}"

    def complete(self, prompts: list[str], seed: int) -> list[str]:
        out = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=seed + start)
            out += [a.text for a in self.engine.generate(chunk, [self.model] * len(chunk), params)]
        return out


class OpenAITeacher:
    """Any OpenAI-compatible /chat/completions endpoint (base URL, key, model from the environment)."""

    def __init__(self, base_url: str, model: str, api_key: str = "", cache: str | Path = "synth_cache.sqlite",
                 requests_per_minute: float = 60, retries: int = 5, temperature: float = 0.9, max_tokens: int = 400):
        self.base_url, self.model, self.api_key = base_url.rstrip("/"), model, api_key
        self.interval = 60.0 / requests_per_minute
        self.retries, self.temperature, self.max_tokens = retries, temperature, max_tokens
        self.cache = Path(cache)
        self.name = f"openai:{model}"
        self._last = 0.0
        with sqlite3.connect(self.cache) as con:
            con.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, text TEXT NOT NULL)")

    @classmethod
    def from_env(cls, **kwargs) -> "OpenAITeacher":
        missing = [k for k in ("TEACHER_BASE_URL", "TEACHER_MODEL") if not os.environ.get(k)]
        if missing:
            raise ValueError(f"the API teacher needs {', '.join(missing)} in the environment")
        return cls(os.environ["TEACHER_BASE_URL"], os.environ["TEACHER_MODEL"], os.environ.get("TEACHER_API_KEY", ""), **kwargs)

    def complete(self, prompts: list[str], seed: int) -> list[str]:
        return [self._one(prompt, seed + i) for i, prompt in enumerate(prompts)]

    def _wait_turn(self) -> None:
        """At most `requests_per_minute` requests, evenly spaced."""
        time.sleep(max(0.0, self._last + self.interval - time.monotonic()))
        self._last = time.monotonic()

    def _one(self, prompt: str, seed: int) -> str:
        body = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": seed,
                "messages": [{"role": "user", "content": prompt}]}
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with sqlite3.connect(self.cache) as con:
            row = con.execute("SELECT text FROM completions WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0]
        text = chat_completion(self.base_url, body, self.api_key, self.retries, before_try=self._wait_turn)
        with sqlite3.connect(self.cache) as con:
            con.execute("INSERT OR REPLACE INTO completions VALUES (?, ?)", (key, text))
        return text
