"""A real arena server on the tiny model: registry with two adapters whose names must never
reach a rater before a vote, a ready campaign, and a Gradio server on a free local port."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from conftest import make_lora
from blindarena import operations as arena
from blindarena.prompts import DEFAULT_PROMPTS, load_prompts
from blindarena.store import Store
from blindarena.ui import THEME, ArenaConfig, build_ui
from posttrain.engine import Engine, SamplingParams
from posttrain.registry import Registry

MODELS = ["zebra-one", "zebra-two"]
PASSWORD = "s3cret-admin"


def ready_campaign(store: Store, name: str, models: list[str], prompts: int, settings=None,
                   answer=lambda model, prompt: f"answer of {model} to {prompt}") -> None:
    """A ready campaign of `prompts` made-up prompts with every answer stored (no model runs)."""
    from dataclasses import replace

    from blindarena.records import CampaignSettings

    settings = replace(settings or CampaignSettings(), votes_per_minute=10_000)  # simulated raters vote faster than people
    rows = [{"question_id": i, "category": "misc", "prompt": f"prompt number {i}"} for i in range(prompts)]
    store.create_campaign(name, models, rows, {}, settings=settings, gold=list(settings.gold))
    store.save_answers([(pid, m, answer(m, prompt), 5, "") for pid, prompt, m in store.missing_answers(name)])
    store.set_status(name, "ready")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ArenaSite:
    url: str
    config: ArenaConfig
    store: Store
    ui: object


def make_arena(tmp_path: Path, tiny_dir: Path, prompts: int = 4) -> tuple[ArenaConfig, Store]:
    registry = Registry(tmp_path / "registry")
    registry.import_base(tiny_dir, "tiny")
    for i, name in enumerate(MODELS):
        registry.import_adapter(make_lora(tiny_dir, tmp_path / name, seed=i + 1), name, base="tiny", method="sft")
    config = ArenaConfig(registry_dir=registry.root, data_dir=tmp_path / "data", base="tiny",
                         admin_password=PASSWORD, quantize=False)
    store = Store(config.data_dir / "arena.sqlite")
    arena.create_campaign(store, Engine(registry, "tiny", quantize=False), "tasting", MODELS,
                          load_prompts(DEFAULT_PROMPTS)[:prompts], SamplingParams(max_new_tokens=8, seed=1))
    return config, store


def launch(config: ArenaConfig, store: Store) -> ArenaSite:
    ui = build_ui(config).queue(default_concurrency_limit=16)
    for attempt in range(5):  # a free port can be taken between the probe and the bind: take another
        port = free_port()
        try:
            ui.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, theme=THEME)
            return ArenaSite(f"http://127.0.0.1:{port}/", config, store, ui)
        except OSError:
            if attempt == 4:
                raise


def start_app(command: list[str], env: dict, cwd: Path, port_flag: bool = True, wait_s: float = 180):
    """Start app.py (or a Space bundle's app.py) on a free port and wait until it answers /config.
    The port goes in as `--port` (port_flag) or GRADIO_SERVER_PORT; a process that dies before it answers
    (the port was taken in between) is started again on another. Returns (process, port)."""
    for _ in range(5):
        port = free_port()
        argv = command + ["--port", str(port)] if port_flag else command
        log = Path(cwd) / f"app-{port}.log"  # a file, not a pipe: a full pipe would stall the server
        with log.open("w") as sink:
            process = subprocess.Popen(argv, cwd=cwd, env={**env, "GRADIO_SERVER_PORT": str(port)},
                                       stdout=subprocess.DEVNULL, stderr=sink)
        deadline = time.time() + wait_s
        while process.poll() is None and time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2)
                return process, port
            except OSError:
                time.sleep(0.3)  # polling for a condition, not waiting a fixed time
        if process.poll() is None:
            process.kill()
            raise AssertionError(f"{command} did not answer within {wait_s} s")
        error = log.read_text()
        if "address already in use" not in error.lower() and "empty port" not in error.lower():
            raise AssertionError(f"{command} exited with {process.returncode}: {error[-3000:]}")
    raise AssertionError("no free port after 5 tries")
