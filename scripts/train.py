"""Train and publish into the registry. Recipes are YAML; any field can be overridden.

    python scripts/train.py sft    --config posttrain/recipes/sft_default.yaml [--name my-sft] [--learning_rate 1e-4]
    python scripts/train.py dpo    --config posttrain/recipes/dpo_default.yaml [--parent my-sft]
    python scripts/train.py kto    --config posttrain/recipes/kto_default.yaml
    python scripts/train.py reward --config posttrain/recipes/reward_default.yaml
    python scripts/train.py orpo   --config posttrain/recipes/orpo_default.yaml
    python scripts/train.py simpo  --config posttrain/recipes/simpo_default.yaml
    python scripts/train.py family [--dir posttrain/recipes/family] [overrides]   (DPO, IPO, KTO, ORPO, SimPO of one parent)

Fields: this project's RunArguments (posttrain/train.py) plus TRL's SFTConfig / DPOConfig /
KTOConfig / RewardConfig and TRL's ModelConfig (lora_r, lora_alpha, lora_dropout, lora_target_modules,
use_dora, use_rslora, load_in_4bit, bnb_4bit_quant_type, use_bnb_nested_quant, attn_implementation). A killed run resumes from its last checkpoint in runs/NAME."""

import logging
import os
import re
import sys
import warnings
from functools import partial
from pathlib import Path

from posttrain.methods import METHOD_NAMES
from posttrain.train import parse_run, run as train_run
from posttrain.errors import RecipeError, cli


def config_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def parse_recipe(method_name: str, rest: list[str]):
    """The recipe and its overrides, or a RecipeError that names the file, line or field."""
    import yaml

    path = config_path(rest)
    if path and not Path(path).is_file():
        raise RecipeError(f"{path}: no such recipe file (the project's are in posttrain/recipes/)")
    try:
        return parse_run(method_name, rest)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{where}: the recipe is not valid YAML ({problem}); fix that line") from None
    except ValueError as exc:
        unknown = [arg for arg in re.findall(r"'([^']+)'", str(exc)) if arg.startswith("--")]
        if unknown and ("not used by the HfArgumentParser" in str(exc) or "from config file" in str(exc)):
            where = f"recipe {path}" if "from config file" in str(exc) else "the command line"
            raise RecipeError(f"unknown field(s) {', '.join(u.lstrip('-') for u in unknown)} in {where} for `train.py "
                              f"{method_name}`; `python scripts/train.py {method_name} --help` lists every field") from None
        raise RecipeError(f"{path or 'the command line'}: {exc}") from None


FAMILY = Path(__file__).resolve().parents[1] / "posttrain" / "recipes" / "family"
FAMILY_METHODS = {"dpo": "dpo", "ipo": "dpo", "kto": "kto", "orpo": "orpo", "simpo": "simpo"}  # recipe file -> training method


def train_family(rest: list[str]) -> int:
    """Every recipe of a family folder (default posttrain/recipes/family: DPO, IPO, KTO, ORPO,
    SimPO children of one SFT parent), one after the other; an entry already in the registry is
    skipped, so a second run only trains what is missing. Other flags apply to every recipe."""
    import yaml

    folder = FAMILY
    if "--dir" in rest:
        i = rest.index("--dir")
        folder, rest = Path(rest[i + 1]), rest[:i] + rest[i + 2:]
    recipes = sorted(p for p in folder.glob("*.yaml") if p.stem in FAMILY_METHODS)
    if not recipes:
        raise RecipeError(f"{folder}: no family recipes ({', '.join(f'{k}.yaml' for k in FAMILY_METHODS)})")
    if "--name" in rest:
        raise RecipeError("train.py family takes each name from its recipe; drop --name")
    from posttrain.registry import Registry, default_registry_dir

    registry = Registry(rest[rest.index("--registry") + 1] if "--registry" in rest else default_registry_dir())
    for recipe in recipes:
        name = (yaml.safe_load(recipe.read_text()) or {}).get("name")
        if name in registry:
            print(f"{name}: already in the registry, skipped")
            continue
        print(f"== {recipe.stem}: train.py {FAMILY_METHODS[recipe.stem]} --config {recipe}", flush=True)
        code = run([FAMILY_METHODS[recipe.stem], "--config", str(recipe), *rest])
        if code:
            return code
    return 0


def run(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "family":
        return train_family(argv[1:])
    if not argv or argv[0] not in METHOD_NAMES:
        print(__doc__, file=sys.stderr)
        print(f"error: first argument must be one of {', '.join(METHOD_NAMES)}", file=sys.stderr)
        return 2
    method_name, rest = argv[0], argv[1:]
    run_args, config, model_args = parse_recipe(method_name, rest)
    run_args.recipe = run_args.recipe or config_path(rest)
    # transformers 5 renames gradient_checkpointing; TRL still calls the old names every step.
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    entry = train_run(method_name, run_args, config, model_args)
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


main = partial(cli, run)  # main(argv) -> exit code; every error one line

if __name__ == "__main__":
    sys.exit(main())
