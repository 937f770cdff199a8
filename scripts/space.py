"""Bundle registry adapters as a Hugging Face Space (a before/after demo), ready to upload.

    python scripts/space.py bundle OUT --models NAME [NAME ...] [--base-source HUB_ID]
    huggingface-cli upload OWNER/SPACE OUT . --repo-type space

OUT gets the app and its package code, the adapters' files in registry/, a README with the
Space's YAML header, a requirements.txt a Space installs as is, and space.json (the base is
fetched from --base-source, default the Hub id on the base's card, when the Space starts; the
demo is public; the admin needs the ADMIN_PASSWORD secret)."""

import argparse
import sys
from functools import partial
from pathlib import Path

from posttrain.ship.space import bundle
from posttrain.registry import Registry, default_registry_dir
from posttrain.errors import cli


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=str(default_registry_dir()), help="registry folder (env REGISTRY_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("bundle", help="write the Space folder")
    make.add_argument("out")
    make.add_argument("--models", nargs="+", required=True, help="registry adapters to show (one base)")
    make.add_argument("--base-source", help="Hub id the Space fetches the base from (default: the base's card)")
    args = parser.parse_args(argv)
    out = bundle(Registry(args.registry), Path(args.out), args.models, base_source=args.base_source)
    print(f"wrote the Space to {out}; upload it with:\n  huggingface-cli upload OWNER/SPACE {out} . --repo-type space\n"
          "then add the secret ADMIN_PASSWORD in the Space's settings")
    return 0


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
