"""Merge a registry adapter into its base and publish the result as a full model entry, after
checking that the merged model's logits match the adapter's within a tolerance.

    python scripts/merge.py ADAPTER --name NAME [--tolerance 1e-3]"""

import argparse
import sys
from functools import partial

from posttrain.merge import merge
from posttrain.registry import Registry, default_registry_dir
from posttrain.errors import cli


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter")
    parser.add_argument("--name", required=True)
    parser.add_argument("--tolerance", type=float, default=1e-3, help="max |logit difference| allowed")
    parser.add_argument("--registry", default=str(default_registry_dir()))
    args = parser.parse_args(argv)
    entry, report = merge(Registry(args.registry), args.adapter, args.name, args.tolerance)
    print(f"merged {args.adapter} -> {entry.name}: max |logit diff| {report.max_abs_logit_diff:.2e} "
          f"<= {report.tolerance:.0e}")
    return 0


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
