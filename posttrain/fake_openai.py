"""A small OpenAI-compatible server (GET /v1/models, POST /v1/chat/completions, streaming too)
that stands in for vLLM / SGLang / an API in tests and benchmarks: it answers
"[MODEL] reply to: PROMPT" after an optional delay, can refuse the first requests with 429 and
Retry-After, and records every request. Never used to produce real answers."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeSettings:
    served: list[str] = field(default_factory=list)  # ids /v1/models lists (empty: any model answers)
    delay: float = 0.0  # seconds before each reply
    throttle_first: int = 0  # that many requests get 429 with Retry-After first
    retry_after: float = 0.2
    hold_until: int = 0  # hold each reply until this many requests were in flight at once (proves concurrency)
    answer_first: int | None = None  # answer this many completions, then hold every later one until close (a stall)
    reply: object = None  # body -> reply text (a judge's verdicts, say); default: reply_text
    requests: list = field(default_factory=list)  # (start, end, body) per completion request
    in_flight: int = 0
    peak_in_flight: int = 0
    closed: bool = False
    lock: threading.Condition = field(default_factory=threading.Condition)


class FakeOpenAI:
    def __init__(self, **settings):
        self.settings = FakeSettings(**settings)
        handler = type("Handler", (_Handler,), {"settings": self.settings})
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 256})  # 32+ clients connect at once
        self.server = server_class(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def requests(self) -> list:
        return self.settings.requests

    @property
    def peak_in_flight(self) -> int:
        """The most completion requests the server held at one moment."""
        return self.settings.peak_in_flight

    def close(self) -> None:
        with self.settings.lock:
            self.settings.closed = True
            self.settings.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def reply_text(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    return f"[{body['model']}] reply to: {prompt}"


class _Handler(BaseHTTPRequestHandler):
    settings: FakeSettings
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, payload: dict | None = None, headers: dict | None = None) -> None:
        data = json.dumps(payload or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.settings.served]})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        start = time.monotonic()
        with self.settings.lock:
            throttled = self.settings.throttle_first > 0
            self.settings.throttle_first -= 1 if throttled else 0
        if throttled:
            self._send(429, {"error": "slow down"}, {"Retry-After": str(self.settings.retry_after)})
            return
        served = self.settings.served
        if served and body.get("model") not in served:
            self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
            return
        self._arrive()
        time.sleep(self.settings.delay)
        text = (self.settings.reply or reply_text)(body)
        words = text.split(" ")[: int(body.get("max_tokens") or 10**6)]
        finish = "length" if len(words) < len(text.split(" ")) else "stop"
        text = " ".join(words)
        with self.settings.lock:
            self.settings.requests.append((start, time.monotonic(), body))
            self.settings.in_flight -= 1
        usage = {"prompt_tokens": len(body["messages"][-1]["content"].split()), "completion_tokens": len(words)}
        if not body.get("stream"):
            self._send(200, {"id": "x", "object": "chat.completion", "model": body.get("model"), "usage": usage,
                             "choices": [{"index": 0, "finish_reason": finish,
                                          "message": {"role": "assistant", "content": text}}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for i, word in enumerate(words):
            delta = {"choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
            self.wfile.flush()
        end = {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def _arrive(self) -> None:
        """Count this request in flight; with hold_until, wait (on a condition, not a clock) until that many
        were in flight together. A client that sends one at a time never gets there: it then goes on after
        10 s, and peak_in_flight tells the test so."""
        settings = self.settings
        with settings.lock:
            settings.in_flight += 1
            settings.peak_in_flight = max(settings.peak_in_flight, settings.in_flight)
            settings.lock.notify_all()
            settings.lock.wait_for(lambda: settings.peak_in_flight >= settings.hold_until, timeout=10)
            if settings.answer_first is not None:
                if settings.answer_first <= 0:
                    settings.lock.wait_for(lambda: settings.closed)  # a stalled server: no answer until it closes
                settings.answer_first -= 1

    def log_message(self, *args):
        pass
