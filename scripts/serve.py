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

from posttrain.backend import missing_on_server, serve_command
from posttrain.chat_api import ChatClient
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, default_registry_dir
from posttrain.errors import cli


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


def main(argv=None) -> int:
    return cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
