"""Train and publish into the registry. Recipes are YAML; any field can be overridden.

    python scripts/train.py sft    --config posttrain/recipes/sft_default.yaml [--name my-sft] [--learning_rate 1e-4]
    python scripts/train.py dpo    --config posttrain/recipes/dpo_default.yaml [--parent my-sft]
    python scripts/train.py kto    --config posttrain/recipes/kto_default.yaml
    python scripts/train.py reward --config posttrain/recipes/reward_default.yaml

Fields: this project's RunArguments (posttrain/train.py) plus TRL's SFTConfig / DPOConfig /
KTOConfig / RewardConfig. A killed run resumes from its last checkpoint in runs/NAME."""

import logging
import os
import sys
import warnings

from posttrain.data import DataError
from posttrain.registry import RegistryError
from posttrain.templates import ChatTemplateError
from posttrain.train import KINDS, RunArguments, run, trainer_config_class


def config_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def main(argv=None) -> int:
    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in KINDS:
        print(__doc__, file=sys.stderr)
        print(f"error: first argument must be one of {', '.join(KINDS)}", file=sys.stderr)
        return 2
    kind, rest = argv[0], argv[1:]
    parser = TrlParser((RunArguments, trainer_config_class(kind)))
    run_args, config = parser.parse_args_and_config(args=rest)
    run_args.recipe = run_args.recipe or config_path(rest)
    # transformers 5 renames gradient_checkpointing; TRL still calls the old names every step.
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        entry = run(kind, run_args, config)
    except (RegistryError, DataError, ChatTemplateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun / accelerate, one report is enough
        return 0
    card = entry.card
    print(f"published {entry.name} ({entry.method}) -> {entry.path}")
    print(f"  trainable parameters {card['trainable_parameters']:,} ({100 * card['trainable_share']:.2f}% of all), "
          f"peak memory {card['peak_memory_mb']:,.0f} MB, adapter {card['adapter_size_bytes'] / 2**20:.1f} MB on disk, "
          f"{card['duration_s']:.0f} s on {card['hardware']}")
    for key, value in card.get("metrics", {}).items():
        print(f"  {key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
