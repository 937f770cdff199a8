"""Serve the registry from a multi-LoRA server (vLLM or SGLang), and check a running one.

    python scripts/serve.py vllm-command   [--base NAME] [--port 8000] [--4bit]
    python scripts/serve.py sglang-command [--base NAME] [--port 30000] [--4bit]
    python scripts/serve.py check --url http://HOST:8000/v1 [--base NAME]

The commands serve the base as its registry name and every adapter of that base under its
registry name, which is what GENERATION_BACKEND=openai asks for. `check` compares the server's
/v1/models with the registry: missing names are listed and the exit status is 1."""

import argparse
import os
import shlex
import sys
from functools import partial

from posttrain.chat_api import ChatClient
from posttrain.engine import EngineError, read_adapter
from posttrain.errors import cli
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, default_registry_dir


VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts


def servable_adapters(registry: Registry, base: str) -> tuple[list, list[tuple[str, str]]]:
    """(adapters a multi-LoRA server can load, [(name, why not)]) among the base's entries."""
    ok, skipped = [], []
    for entry in registry.entries():
        if not entry.is_adapter or entry.base != base:
            continue
        if entry.method == "reward":
            skipped.append((entry.name, "a reward model (a classifier head), not a generator"))
            continue
        try:
            weights = read_adapter(entry.path)
        except EngineError as exc:
            skipped.append((entry.name, str(exc)))
            continue
        if weights.tokens:
            skipped.append((entry.name, "trains embedding rows (trainable_token_indices), which vLLM / SGLang LoRA cannot load"))
            continue
        ok.append(entry)
    return ok, skipped


def serve_command(registry: Registry, base: str, server: str = "vllm", quantize: bool = False, port: int = 8000) -> tuple[list[str], list]:
    """The exact command line that serves `base` and every servable adapter under its registry name."""
    from posttrain.registry import read_adapter_config

    base_entry = registry.get(base)
    adapters, skipped = servable_adapters(registry, base)
    rank = max([read_adapter_config(e.path).get("r", 8) for e in adapters] or [8])
    if server == "vllm":
        rank = next((r for r in VLLM_RANKS if r >= rank), rank)
        argv = ["vllm", "serve", str(base_entry.path.resolve()), "--served-model-name", base, "--port", str(port)]
        if quantize:
            argv += ["--quantization", "bitsandbytes"]
        if adapters:
            argv += ["--enable-lora", "--lora-modules", *[f"{e.name}={e.path.resolve()}" for e in adapters],
                     "--max-loras", str(min(len(adapters), 8)), "--max-lora-rank", str(rank)]
    elif server == "sglang":
        argv = ["python", "-m", "sglang.launch_server", "--model-path", str(base_entry.path.resolve()),
                "--served-model-name", base, "--port", str(port)]
        if quantize:
            argv += ["--quantization", "bitsandbytes"]
        if adapters:
            argv += ["--enable-lora", "--lora-paths", *[f"{e.name}={e.path.resolve()}" for e in adapters],
                     "--max-loras-per-batch", str(min(len(adapters), 8)), "--max-lora-rank", str(rank)]
    else:
        raise EngineError(f"unknown server {server!r}; use vllm or sglang")
    return argv, skipped


def missing_on_server(registry: Registry, base: str, served: set[str]) -> list[str]:
    """Registry names (the base and its servable adapters) a running server does not list."""
    adapters, _ = servable_adapters(registry, base)
    return [name for name in [base, *(e.name for e in adapters)] if name not in served]


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--base", default=os.environ.get("BASE_MODEL", DEFAULT_BASE_NAME))
    sub = parser.add_subparsers(dest="command", required=True)
    for name, port in (("vllm-command", 8000), ("sglang-command", 30000)):
        command = sub.add_parser(name)
        command.add_argument("--port", type=int, default=port)
        command.add_argument("--4bit", dest="quantize", action="store_true", help="bitsandbytes 4-bit in the server")
    check = sub.add_parser("check")
    check.add_argument("--url", default=os.environ.get("GENERATION_BASE_URL"), help="the server's /v1 URL")
    check.add_argument("--api-key", default=os.environ.get("GENERATION_API_KEY", ""))
    args = parser.parse_args(argv)
    registry = Registry(args.registry)
    registry.get(args.base)
    if args.command == "check":
        if not args.url:
            print("error: --url (or GENERATION_BASE_URL) is required", file=sys.stderr)
            return 2
        served = set(ChatClient(args.url, args.api_key, retries=1).models())
        missing = missing_on_server(registry, args.base, served)
        for name in missing:
            print(f"missing: {name}")
        print(f"{args.url} serves {len(served)} models; {len(missing)} registry names missing")
        return 1 if missing else 0
    argv, skipped = serve_command(registry, args.base, args.command.split("-")[0], args.quantize, args.port)
    for name, why in skipped:
        print(f"# not served: {name}: {why}", file=sys.stderr)
    print(shlex.join(argv))
    return 0


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
