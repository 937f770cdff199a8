"""A real arena server on the tiny model: registry with two adapters whose names must never
reach a rater before a vote, a ready campaign, and a Gradio server on a free local port."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from conftest import make_lora
from evals import arena
from evals.store import Store
from evals.ui import ArenaConfig, build_ui
from posttrain.engine import Engine, SamplingParams
from posttrain.registry import Registry

MODELS = ["zebra-one", "zebra-two"]
PASSWORD = "s3cret-admin"


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
                          arena.load_prompts(arena.DEFAULT_PROMPTS)[:prompts], SamplingParams(max_new_tokens=8, seed=1))
    return config, store


def launch(config: ArenaConfig, store: Store) -> ArenaSite:
    ui = build_ui(config)
    port = free_port()
    ui.queue(default_concurrency_limit=16).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                                                  quiet=True)
    return ArenaSite(f"http://127.0.0.1:{port}/", config, store, ui)
