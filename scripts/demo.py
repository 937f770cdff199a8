"""Side-by-side generation from the shared 4-bit base: two registry entries (or the plain base),
one prompt, both answers streamed from ONE batched call.

    python scripts/demo.py [--a NAME] [--b NAME] [--prompt TEXT] [--max-new-tokens N] [--seed S]

With no names it pits the plain base against the newest adapter in the registry (or against
itself with another seed when there is none)."""

import argparse
import logging
import sys
import textwrap
import time
from functools import partial

from tqdm import tqdm

from posttrain import backend
from posttrain.engine import BASE, SamplingParams
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.registry import Registry, check_models, default_registry_dir
from posttrain.errors import cli


def newest_adapter(registry: Registry, base: str) -> str | None:
    adapters = [e for e in registry.entries() if e.is_adapter and e.base == base and e.method != "reward"]
    return max(adapters, key=lambda e: str(e.card.get("created_at", ""))).name if adapters else None


def side_by_side(left: str, right: str, width: int = 48) -> str:
    a, b = textwrap.wrap(left, width) or [""], textwrap.wrap(right, width) or [""]
    rows = max(len(a), len(b))
    a, b = a + [""] * (rows - len(a)), b + [""] * (rows - len(b))
    return "\n".join(f"{x:<{width}} | {y}" for x, y in zip(a, b))


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--base", default=DEFAULT_BASE_NAME)
    parser.add_argument("--a", default=BASE)
    parser.add_argument("--b")
    parser.add_argument("--prompt", default="Give me three tips for writing a clear email.")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    backend.add_flags(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    registry = Registry(args.registry)
    registry.ensure_base(args.base)
    model_b = args.b or newest_adapter(registry, args.base) or BASE
    if args.generation_backend in ("engine", "llamacpp"):  # the names, before the base loads (15-30 s)
        check_models(registry, args.base, [args.a, model_b])
    engine = backend.from_flags(args, registry, args.base)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    start = time.perf_counter()
    with tqdm(total=args.max_new_tokens, desc=f"{args.a} vs {model_b}", unit="tok", file=sys.stderr) as bar:
        for answers in engine.stream([args.prompt, args.prompt], [args.a, model_b], params):
            bar.update(max(a.new_tokens for a in answers) - bar.n)
    seconds = time.perf_counter() - start
    print(f"Prompt: {args.prompt}\n")
    print(side_by_side(f"[{args.a}]", f"[{model_b}]"))
    print(side_by_side(answers[0].text, answers[1].text))
    tokens = sum(a.new_tokens for a in answers)
    print(f"\n{tokens} tokens in {seconds:.1f} s ({tokens / seconds:.1f} tokens/s, one batched call, "
          f"base {engine.quantization})")
    for answer in answers:
        if answer.notice:
            print(f"note ({answer.model}): {answer.notice}")
    return 0


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
