"""One client for every OpenAI-compatible endpoint we call (the data builder's teacher, the
evals' judge, the generation backend): many requests in flight under a concurrency limit, a
token-bucket rate limit on requests and tokens per minute, retries with backoff on 429 / 5xx and
broken connections (honouring Retry-After), streaming, and an optional on-disk cache so a rerun
never pays twice for the same request. Knows nothing of what the replies are for."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

from posttrain.errors import WorkbenchError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class APIError(WorkbenchError, RuntimeError):
    """An endpoint that refused a request for good, or kept failing; says which and why."""


class TokenBucket:
    """At most `per_minute` units a minute, in bursts of at most `burst` (refilled continuously)."""

    def __init__(self, per_minute: float, burst: float | None = None):
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1.0, per_minute / 60.0)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, amount: float = 1.0) -> None:
        amount = min(amount, self.capacity)  # one request larger than a burst still goes, alone
        while True:
            with self.lock:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.level >= amount:
                    self.level -= amount
                    return
                wait = (amount - self.level) / self.rate
            time.sleep(wait)


class ChatClient:
    """POST /chat/completions (and GET /models) on one OpenAI-compatible server."""

    def __init__(self, base_url: str, api_key: str = "", concurrency: int = 8, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, retries: int = 5, timeout: float = 120.0,
                 cache: str | Path | None = None, backoff: float = 1.0):
        self.base_url, self.api_key = base_url.rstrip("/"), api_key
        self.concurrency, self.retries, self.timeout, self.backoff = max(1, concurrency), retries, timeout, backoff
        self.requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute, burst=tokens_per_minute / 6) if tokens_per_minute else None
        self.cache = Path(cache) if cache else None
        if self.cache:
            with sqlite3.connect(self.cache) as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, text TEXT NOT NULL)")

    # ---- plumbing -------------------------------------------------------------------------
    def _request(self, path: str, body: dict | None = None) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})}
        data = json.dumps(body).encode() if body is not None else None
        return urllib.request.Request(f"{self.base_url}/{path}", data=data, headers=headers)

    def _wait_for_budget(self, body: dict) -> None:
        if self.requests:
            self.requests.take()
        if self.tokens:  # prompt (about 4 characters a token) plus the reply's ceiling
            prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) / 4
            self.tokens.take(prompt + body.get("max_tokens", 256))

    def _open(self, request: urllib.request.Request, body: dict | None):
        """The response of the first attempt that works; retries what a retry can fix."""
        for attempt in range(self.retries + 1):
            if body is not None:
                self._wait_for_budget(body)
            try:
                return urllib.request.urlopen(request, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode(errors="replace")
                if exc.code not in RETRY_STATUS or attempt == self.retries:
                    raise APIError(f"{request.full_url}: HTTP {exc.code} after {attempt + 1} attempts: {detail}") from None
                delay = retry_after(exc.headers.get("Retry-After")) or self.backoff * 2**attempt
            except (OSError, ValueError) as exc:  # refused, reset, timed out
                if attempt == self.retries:
                    raise APIError(f"{request.full_url}: failed {attempt + 1} times: {exc}") from exc
                delay = self.backoff * 2**attempt
            time.sleep(min(60.0, delay) * (1 + 0.1 * random.random()))
        raise AssertionError("unreachable")

    def _cached(self, key: str) -> str | None:
        if not self.cache:
            return None
        with sqlite3.connect(self.cache, timeout=30) as con:
            row = con.execute("SELECT text FROM completions WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _store(self, key: str, text: str) -> None:
        if self.cache:
            with sqlite3.connect(self.cache, timeout=30) as con:
                con.execute("INSERT OR REPLACE INTO completions VALUES (?, ?)", (key, text))

    # ---- calls ----------------------------------------------------------------------------
    def complete(self, body: dict) -> dict:
        """The first choice of one completion: {"text", "finish_reason", "usage"}."""
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        cached = self._cached(key)
        if cached is not None:
            try:
                return json.loads(cached)
            except ValueError:  # a cache written before replies were stored whole: the text alone
                return {"text": cached, "finish_reason": "stop", "usage": {}}
        with self._open(self._request("chat/completions", body), body) as response:
            try:
                reply = json.load(response)
                choice = reply["choices"][0]
                out = {"text": choice["message"]["content"] or "", "finish_reason": choice.get("finish_reason") or "stop",
                       "usage": reply.get("usage") or {}}
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise APIError(f"{self.base_url}: not an OpenAI chat completion ({exc})") from None
        self._store(key, json.dumps(out))
        return out

    def complete_many(self, bodies: list[dict], progress: Callable[[int, int], None] | None = None) -> list[dict]:
        """Every body, `concurrency` at a time; replies in the order of `bodies`."""
        if not bodies:
            return []
        results: list[dict | None] = [None] * len(bodies)
        done = 0
        lock = threading.Lock()

        def one(index: int) -> None:
            nonlocal done
            results[index] = self.complete(bodies[index])
            with lock:
                done += 1
                if progress:
                    progress(done, len(bodies))

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies))) as pool:
            for future in [pool.submit(one, i) for i in range(len(bodies))]:
                future.result()  # the first failure is raised here
        return results  # type: ignore[return-value]

    def stream(self, body: dict) -> Iterator[dict]:
        """Server-sent deltas of one completion: {"text": delta, "finish_reason": ... or None}."""
        with self._open(self._request("chat/completions", {**body, "stream": True}), body) as response:
            for raw in response:
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                choice = json.loads(data)["choices"][0]
                yield {"text": (choice.get("delta") or {}).get("content") or "", "finish_reason": choice.get("finish_reason")}

    def models(self) -> list[str]:
        """The ids GET /models lists (a vLLM server: the base and every LoRA it serves)."""
        with self._open(self._request("models"), None) as response:
            return [m["id"] for m in json.load(response).get("data", [])]


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds; an HTTP date is treated as 'soon')."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0
