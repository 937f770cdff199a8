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

from blindarena.service import MAX_ANSWERS, Arena
from blindarena.store import Store
from posttrain.backend import Generator, make_generator
from posttrain.errors import WorkbenchError
from posttrain.registry import Registry

log = logging.getLogger("blindarena.ui")


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
    generation_backend: str = "engine"  # "openai": a multi-LoRA server (vLLM, SGLang); "llamacpp": the base's GGUF in llama.cpp
    generation_base_url: str = ""
    generation_api_key: str = ""
    reports_dir: Path = Path("reports")  # where scripts/evaluate.py writes before/after reports
    # Requests that generate (demo, /ask, campaign creation) at once: 1 for the local engine (one
    # shared model); raise it (MODEL_CONCURRENCY) for an OpenAI-compatible server that batches.
    model_concurrency: int = 1
    max_answers: int = MAX_ANSWERS  # the size guard of a new campaign (ARENA_MAX_ANSWERS; the CLI's --max-answers)


@dataclass
class Job:
    """A background job's state as the page shows it."""

    id: int
    what: str
    lines: list = field(default_factory=list)  # progress, newest last
    result: dict | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


class Jobs:
    """Work too long for a request (the next round trains for minutes) runs on a thread of its
    own, one at a time per app; the page polls `get` for its progress lines and its end. A
    WorkbenchError ends a job with its one line; anything else with its type and message (and
    the traceback in the server's log)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}

    def start(self, what: str, work: typing.Callable[[typing.Callable[[str], None]], dict]) -> Job:
        """Run `work(say)` in the background; refused while another job runs."""
        with self._lock:
            running = [j for j in self._jobs.values() if not j.done]
            if running:
                raise WorkbenchError(f"{running[0].what} is still running; wait for it to end")
            job = Job(len(self._jobs) + 1, what)
            self._jobs[job.id] = job

        def body() -> None:
            try:
                job.result = work(job.lines.append)
            except WorkbenchError as exc:
                job.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - the page says it; the log keeps the traceback
                log.exception("job %s failed", what)
                job.error = f"{type(exc).__name__}: {exc}"

        threading.Thread(target=body, daemon=True, name=f"job-{job.id}").start()
        return job

    def get(self, job_id: int | None) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id) if job_id else None


@dataclass
class Services:
    """What every callback shares: the store, the registry and ONE lazily loaded generator."""

    config: ArenaConfig
    store: Store
    registry: Registry
    _engine: Generator | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    admin_attempts: "AttemptLog" = field(default_factory=lambda: AttemptLog())
    jobs: Jobs = field(default_factory=Jobs)
    arena: Arena = None  # the one front door every room calls (built from the rest in __post_init__)

    def __post_init__(self):
        if self.arena is None:
            self.arena = Arena(self.store, self.registry, self.engine, base=self.config.base,
                               backend=self.config.generation_backend)

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


ADMIN_TRIES_PER_MINUTE = 5  # wrong admin passwords from one client in a minute before each further one waits
ADMIN_BACKOFF_MAX_S = 10.0  # the longest a wrong password waits for its answer
_request: contextvars.ContextVar = contextvars.ContextVar("gradio_request", default=None)  # set by bind, per call


class AttemptLog:
    """Wrong admin passwords per client over the last minute, and the back-off they earn: past
    ADMIN_TRIES_PER_MINUTE, each further wrong one waits 1, 2, 4 ... (at most ADMIN_BACKOFF_MAX_S)
    seconds for its answer, one at a time per client. A right password is never held back: behind a
    shared proxy (a Space) every rater has the admin's address, and a rater guessing must not lock
    the admin out. The Services hold one per app; `clock` and `sleep` are the test's to replace."""

    def __init__(self, clock=time.monotonic, sleep=time.sleep):
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._wrong: dict[str, deque] = defaultdict(deque)
        self._turns: dict[str, threading.Lock] = defaultdict(threading.Lock)

    def backoff_s(self, client: str) -> float:
        """How long the next wrong password from `client` waits (0: not throttled)."""
        with self._lock:
            times = self._wrong[client]
            while times and self._clock() - times[0] > 60:
                times.popleft()
            over = len(times) - ADMIN_TRIES_PER_MINUTE
            return 0.0 if over < 0 else min(2.0 ** over, ADMIN_BACKOFF_MAX_S)

    def wrong(self, client: str) -> float:
        """Count a wrong password from `client` and wait out its back-off (wrong ones from one
        client queue behind each other, so parallel guesses do not go faster). Returns the wait."""
        with self._lock:
            turn = self._turns[client]
        with turn:
            delay = self.backoff_s(client)
            with self._lock:
                self._wrong[client].append(self._clock())
            if delay:
                self._sleep(delay)
            return delay


def client_of(request) -> str:
    """Who is asking: the client's address as Gradio saw it (one bucket for all when unknown)."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def check_admin(svc: "Services", password: str) -> None:
    """The admin password. A right one passes at once; a wrong one is counted per client and,
    past ADMIN_TRIES_PER_MINUTE a minute, answered only after a growing back-off (AttemptLog)."""
    if is_admin(svc.config, password):
        return
    waited = svc.admin_attempts.wrong(client_of(_request.get()))
    raise refusal("wrong admin password" + (f" (too many wrong admin passwords from here: answered after "
                                            f"{waited:.0f} s)" if waited else ""))


def admin_unlocked(svc: "Services", password: str) -> bool:
    """Whether the admin password is right, for a room that answers a locked page with a line
    instead of an error: a wrong password is counted and backed off as in check_admin; an empty
    one (the page was never unlocked) is not a guess."""
    if is_admin(svc.config, password):
        return True
    if password:
        svc.admin_attempts.wrong(client_of(_request.get()))
    return False


def refusal(message: str) -> gr.Error:
    """The page's error toast for a person's mistake: the message, one line in the log, no traceback.
    Gradio renders a toast's message as HTML, and messages quote what people typed (a rater's name,
    a campaign name), so it is escaped: markup shows as text and never loads or links anything."""
    log.info("refused: %s", message.replace("\n", " "))
    return gr.Error(html.escape(message, quote=False), print_exception=False)


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


@contextmanager
def one_line_failures(name: str):
    """Anything but a refusal (a malformed API call: a session that is a string, a score that is a
    list) becomes one line in the server's log and a plain toast, not a multi-line traceback; the
    traceback stays available at DEBUG level."""
    try:
        yield
    except gr.Error:
        raise
    except Exception as exc:
        log.warning("%s could not handle a request: %s: %s", name, type(exc).__name__, str(exc).replace("\n", " ")[:300])
        log.debug("traceback", exc_info=True)
        raise gr.Error("this request could not be handled (malformed input?); reload the page and try again",
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
            with one_line_failures(fn.__name__):
                yield from fn(*bound, *args, **kwargs)
    else:
        def bound_fn(*args, **kwargs):
            args, kwargs, request = split(args, kwargs)
            token = _request.set(request)
            try:
                with one_line_failures(fn.__name__):
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
_IMAGE = re.compile(r"!(?=\[)")  # Markdown's ![alt](url): the browser would fetch url on sight
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]()#!|~])")  # inline marks; -, + and . matter only at a line's start


def safe_markdown(text: str) -> str:
    """Model or user text for a Markdown component: code blocks, lists, emphasis and links render,
    but any HTML (a <script>, an <img onerror=...>) outside code is escaped and Markdown images are
    shown as text, so nothing runs and nothing is fetched on sight (an image is a beacon that tells
    whoever wrote it when and from where the page was read). Inside code spans and blocks the
    renderer shows characters literally already."""
    return "".join(part if _CODE.fullmatch(part) else _IMAGE.sub(r"\\!", html.escape(part, quote=False))
                   for part in _CODE.split(text or ""))


def as_text(text: str) -> str:
    """Text a person typed (a rater's name, a comment, a campaign name) for a Markdown component:
    shown exactly as typed, never as markup, a link or an image."""
    one_line = " ".join(str(text or "").split())  # no line starts inside it, so no lists, headings or rules
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(one_line, quote=False))


PRIVATE = {"api_visibility": "private"}  # events raters' API clients must not see
