"""Check a data file (or Hub dataset id) through the readers.

    python scripts/data.py check PATH [--format auto|dolly|alpaca|oasst1|...] [--json]

Prints the detected format, rows kept, and every skipped row with file:line and reason;
exits 1 when nothing usable is in it, 2 when it cannot be read at all."""

import argparse
import json
import sys

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
    args = parser.parse_args(argv)
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


def main(argv=None) -> int:
    return cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
