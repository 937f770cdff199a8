"""What every room of the arena's UI shares: the app's settings, the services behind the
callbacks (store, registry, ONE lazily loaded generator), the admin check, safe Markdown, and
`bind`, which fixes a module-level callback's first arguments for Gradio."""

from __future__ import annotations

import functools
import hmac
import html
import inspect
import logging
import re
import threading
import typing
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
        return [c["name"] for c in self.store.campaigns()]


def services(config: ArenaConfig) -> Services:
    return Services(config, Store(Path(config.data_dir) / "arena.sqlite"), Registry(config.registry_dir))


def is_admin(config: ArenaConfig, password: str) -> bool:
    """The admin password matches (no password set: everyone is admin, as the start-up warns)."""
    return not config.admin_password or hmac.compare_digest(password or "", config.admin_password)


def check_admin(config: ArenaConfig, password: str) -> None:
    if not is_admin(config, password):
        raise gr.Error("wrong admin password")


@contextmanager
def shown_to_user():
    """A project error inside becomes the page's error toast with its one-line message."""
    try:
        yield
    except WorkbenchError as exc:
        raise gr.Error(str(exc)) from None


def bind(fn, *bound):
    """`fn` with its first arguments fixed (the services, a room), keeping the rest of its
    signature and type hints: Gradio reads them to pass gr.Request, gr.Progress or
    gr.OAuthProfile, which functools.partial would hide. Generators stay generators (streaming)."""
    signature = inspect.signature(fn)
    rest = list(signature.parameters.values())[len(bound):]
    if inspect.isgeneratorfunction(fn):
        def bound_fn(*args, **kwargs):
            yield from fn(*bound, *args, **kwargs)
    else:
        def bound_fn(*args, **kwargs):
            return fn(*bound, *args, **kwargs)
    functools.update_wrapper(bound_fn, fn)
    del bound_fn.__wrapped__  # inspect must read the signature below, not fn's
    bound_fn.__signature__ = signature.replace(parameters=rest)
    hints = typing.get_type_hints(fn)
    bound_fn.__annotations__ = {name: hint for name, hint in hints.items() if name in {p.name for p in rest}}
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
