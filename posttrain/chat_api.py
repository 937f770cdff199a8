"""One call to any OpenAI-compatible /chat/completions endpoint, with retries and exponential
backoff. Shared by the data builder's API teacher and the evals' API judge."""

from __future__ import annotations

import json
import time
import urllib.request


def chat_completion(base_url: str, body: dict, api_key: str = "", retries: int = 4, timeout: float = 120.0,
                    before_try=None) -> str:
    """The first choice's message text. `before_try()` runs before every attempt (a rate limit)."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/chat/completions", data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})})
    for attempt in range(retries + 1):
        if before_try:
            before_try()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)["choices"][0]["message"]["content"]
        except (OSError, KeyError, IndexError, ValueError) as exc:
            if attempt == retries:
                raise RuntimeError(f"endpoint {base_url} failed {retries + 1} times: {exc}") from exc
            time.sleep(min(2**attempt, 60))
    raise AssertionError("unreachable")
