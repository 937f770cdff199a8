"""The blind arena (Hugging Face Space entry point): read settings from flags or environment,
build the UI, launch. No logic here.

    python app.py [--registry DIR] [--data-dir DIR] [--base NAME] [--port N]

Environment: REGISTRY_DIR, ARENA_DATA_DIR (default /data on a Space with persistent storage,
else ./arena_data), BASE_MODEL (registry name) and BASE_MODEL_SOURCE (Hub id to import it from),
ADMIN_PASSWORD, ACCESS_CODE, PUBLIC_DEMO=1, GRADIO_SERVER_PORT,
and for syncing the data folder to a Hub dataset repo: HF_TOKEN + ARENA_HUB_REPO."""

import argparse
import logging
import os
from pathlib import Path

from evals.store import default_data_dir
from evals.ui import ArenaConfig, build_ui
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, default_registry_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    source = os.environ.get("BASE_MODEL_SOURCE")  # e.g. a Hub id on a GPU Space
    if args.base == DEFAULT_BASE_NAME or source:
        # Without either, a missing base only matters to generation; rating still works.
        Registry(args.registry).ensure_base(args.base, source)
    config = ArenaConfig(
        registry_dir=Path(args.registry), data_dir=Path(args.data_dir), base=args.base,
        admin_password=os.environ.get("ADMIN_PASSWORD", ""), access_code=os.environ.get("ACCESS_CODE", ""),
        public_demo=os.environ.get("PUBLIC_DEMO") == "1",
    )
    if os.environ.get("HF_TOKEN") and os.environ.get("ARENA_HUB_REPO"):
        from huggingface_hub import CommitScheduler

        config.data_dir.mkdir(parents=True, exist_ok=True)
        # Pushes the data folder (the SQLite file) to a Hub dataset repo every 10 minutes.
        CommitScheduler(repo_id=os.environ["ARENA_HUB_REPO"], repo_type="dataset", folder_path=config.data_dir,
                        every=10, token=os.environ["HF_TOKEN"], private=True)
    ui = build_ui(config)
    ui.queue(default_concurrency_limit=16).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
