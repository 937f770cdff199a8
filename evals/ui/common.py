"""What every room of the arena's UI shares: the app's settings, the services behind the
callbacks (store, registry, ONE lazily loaded generator), the admin check, safe Markdown, and
`bind`, which fixes a module-level callback's first arguments for Gradio."""

from __future__ import annotations

import contextvars
import functools
import hmac
import html
import inspect
import logging
import re
import sqlite3
import threading
import time
import typing
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from evals.store import Store
from posttrain.backend import Generator, make_generator
from posttrain.errors import WorkbenchError
from posttrain.registry import Registry

log = logging.getLogger("evals.ui")


@dataclass
class ArenaConfig:
    registry_dir: Path
    data_dir: Path
    base: str
    admin_password: str = ""
    access_code: str = ""
    public_demo: bool = False  # list registry entries in the demo without a password (a Space showcase)
    hf_login: bool = False  # a "Sign in with Hugging Face" button (a Space with hf_oauth: true; gradio[oauth])
    quantize: bool = True  # load the shared base in NF4 (tests on tiny models turn it off)
    generation_backend: str = "engine"  # or "openai": an OpenAI-compatible multi-LoRA server (vLLM, SGLang)
    generation_base_url: str = ""
    generation_api_key: str = ""
    reports_dir: Path = Path("reports")  # where scripts/evaluate.py writes before/after reports
    # Requests that generate (demo, /ask, campaign creation) at once: 1 for the local engine (one
    # shared model); raise it (MODEL_CONCURRENCY) for an OpenAI-compatible server that batches.
    model_concurrency: int = 1


@dataclass
class Services:
    """What every callback shares: the store, the registry and ONE lazily loaded generator."""

    config: ArenaConfig
    store: Store
    registry: Registry
    _engine: Generator | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    admin_attempts: "AttemptLog" = field(default_factory=lambda: AttemptLog())

    def engine(self) -> Generator:
        with self._lock:
            if self._engine is None:
                self._engine = make_generator(self.registry, self.config.base, quantize=self.config.quantize,
                                              backend=self.config.generation_backend,
                                              base_url=self.config.generation_base_url or None,
                                              api_key=self.config.generation_api_key)
            return self._engine

    def models(self) -> list[str]:
        """Registry entries that can answer in a battle: the base and its generating adapters."""
        return [e.name for e in self.registry.entries()
                if e.name == self.config.base or (e.is_adapter and e.base == self.config.base and e.method != "reward")]

    def campaign_names(self) -> list[str]:
        return [c.name for c in self.store.campaigns()]


def services(config: ArenaConfig) -> Services:
    return Services(config, Store(Path(config.data_dir) / "arena.sqlite"), Registry(config.registry_dir))


def is_admin(config: ArenaConfig, password: str) -> bool:
    """The admin password matches (no password set: everyone is admin, as the start-up warns)."""
    return not config.admin_password or hmac.compare_digest(password or "", config.admin_password)


ADMIN_TRIES_PER_MINUTE = 5  # wrong admin passwords from one client in a minute, then it waits
_request: contextvars.ContextVar = contextvars.ContextVar("gradio_request", default=None)  # set by bind, per call


class AttemptLog:
    """Wrong admin passwords per client over the last minute (the Services hold one per app)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._wrong: dict[str, deque] = defaultdict(deque)

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        with self._lock:
            times = self._wrong[client]
            while times and time.monotonic() - times[0] > 60:
                times.popleft()
            return 60 - (time.monotonic() - times[0]) if len(times) >= ADMIN_TRIES_PER_MINUTE else 0.0

    def wrong(self, client: str) -> None:
        with self._lock:
            self._wrong[client].append(time.monotonic())


def client_of(request) -> str:
    """Who is asking: the client's address as Gradio saw it (one bucket for all when unknown)."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def check_admin(svc: "Services", password: str) -> None:
    """The admin password, throttled per client: after ADMIN_TRIES_PER_MINUTE wrong ones in a
    minute, that client waits (said on the page) before its next try counts."""
    client = client_of(_request.get())
    if svc.config.admin_password:
        wait = svc.admin_attempts.wait_s(client)
        if wait > 0:
            raise refusal(f"too many wrong admin passwords from here; try again in {wait:.0f} s")
    if not is_admin(svc.config, password):
        svc.admin_attempts.wrong(client)
        raise refusal("wrong admin password")


def refusal(message: str) -> gr.Error:
    """The page's error toast for a person's mistake: the message, one line in the log, no traceback."""
    log.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


@contextmanager
def shown_to_user():
    """A project error inside becomes the page's error toast with its one-line message; a damaged
    database becomes a sentence for the rater and one line in the log for the admin."""
    try:
        yield
    except WorkbenchError as exc:
        raise refusal(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        log.error("the arena database failed: %s", exc)
        raise gr.Error("the arena's database cannot be read right now; please tell the campaign's admin",
                       print_exception=False) from None


def bind(fn, *bound):
    """`fn` with its first arguments fixed (the services, a room), keeping the rest of its
    signature and type hints: Gradio reads them to pass gr.Request, gr.Progress or
    gr.OAuthProfile, which functools.partial would hide. Generators stay generators (streaming)."""
    signature = inspect.signature(fn)
    rest = list(signature.parameters.values())[len(bound):]
    hints = typing.get_type_hints(fn)
    # One more parameter typed gr.Request, which Gradio fills (it is no input): the call's client,
    # for the admin throttle, kept in a context variable while the callback runs.
    extra = inspect.Parameter("_request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request)

    def split(args, kwargs):
        if "_request" in kwargs:
            return args, kwargs, kwargs.pop("_request")
        return (args[:-1], kwargs, args[-1]) if len(args) > len(rest) else (args, kwargs, None)

    if inspect.isgeneratorfunction(fn):
        def bound_fn(*args, **kwargs):
            args, kwargs, request = split(args, kwargs)
            _request.set(request)
            yield from fn(*bound, *args, **kwargs)
    else:
        def bound_fn(*args, **kwargs):
            args, kwargs, request = split(args, kwargs)
            token = _request.set(request)
            try:
                return fn(*bound, *args, **kwargs)
            finally:
                _request.reset(token)
    functools.update_wrapper(bound_fn, fn)
    del bound_fn.__wrapped__  # inspect must read the signature below, not fn's
    bound_fn.__signature__ = signature.replace(parameters=rest + [extra])
    bound_fn.__annotations__ = {name: hint for name, hint in hints.items() if name in {p.name for p in rest}}
    bound_fn.__annotations__["_request"] = gr.Request
    return bound_fn


def progress_bar(done: int, total: int, label: str) -> str:
    return f"<progress value='{done}' max='{total}'></progress> <b>{label}</b>"


_CODE = re.compile(r"(```.*?(?:```|$)|`[^`\n]+`)", re.S)


def safe_markdown(text: str) -> str:
    """Model or user text for a Markdown component: code blocks, lists and emphasis render, but
    any HTML (a <script>, an <img onerror=...>) outside code is escaped, so it shows as text and
    never runs. Inside code spans and blocks the renderer shows characters literally already."""
    return "".join(part if _CODE.fullmatch(part) else html.escape(part, quote=False) for part in _CODE.split(text or ""))


PRIVATE = {"api_visibility": "private"}  # events raters' API clients must not see
