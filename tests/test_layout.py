"""The layers, read from the source: what each module may import, and how long its functions are."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_store_imports_nothing_of_evals_but_its_vocabulary_and_records():
    mine = {m for m in imports(ROOT / "evals" / "store.py") if m == "evals" or m.startswith("evals.")}
    assert mine <= {"evals.vocab", "evals.records"}, mine


def test_records_and_allocation_stay_below_the_store():
    assert not {m for m in imports(ROOT / "evals" / "records.py") if m.startswith("evals")}
    assert "evals.store" not in imports(ROOT / "evals" / "allocation.py")


def test_posttrain_never_imports_evals():
    for path in (ROOT / "posttrain").rglob("*.py"):
        assert not {m for m in imports(path) if m == "evals" or m.startswith("evals.")}, path


def test_scripts_do_not_check_the_generators_class():
    for path in (ROOT / "scripts").glob("*.py"):
        assert "isinstance(engine, Engine)" not in path.read_text(), path


@pytest.mark.parametrize("module", ["evals/store.py", "evals/arena.py", "posttrain/train.py", "posttrain/methods.py"])
def test_no_function_is_over_60_lines(module):
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse((ROOT / module).read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, long


def test_every_training_method_is_one_record_that_train_reads():
    from posttrain.methods import DATA, KINDS, MEASURES, METHODS
    from posttrain.registry import METHODS as CARD_METHODS

    assert set(KINDS) >= {"sft", "dpo", "kto", "orpo", "simpo", "reward", "grpo", "rloo"}
    for kind, method in METHODS.items():
        assert method.kind == kind and method.data in DATA and method.measure in MEASURES
        assert method.config_class().__name__.endswith("Config") and method.trainer_class().__name__.endswith("Trainer")
    assert {"qlora", "ipo"} | set(KINDS) <= set(CARD_METHODS)  # every card method is one the registry knows
    source = (ROOT / "posttrain" / "train.py").read_text()
    for kind in KINDS:  # train.py branches on no method's name: what differs lives in the record
        assert not re.search(rf'(?<![\w.])kind (?:[=!]= "{kind}"|in \("{kind}")', source), kind


def test_every_import_of_our_own_modules_resolves_lazy_ones_too():
    """A name moved from one module to another leaves no import behind, even one inside a function
    that no test runs (the command lines import lazily)."""
    import importlib

    broken = []
    for path in [*ROOT.glob("evals/**/*.py"), *ROOT.glob("posttrain/**/*.py"), *ROOT.glob("scripts/*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("evals", "posttrain"):
                module = importlib.import_module(node.module)
                broken += [f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}" for alias in node.names
                           if not hasattr(module, alias.name) and not is_module(f"{node.module}.{alias.name}")]
    assert not broken, broken


def is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module that is not a package
        return False


def test_the_command_line_takes_its_campaign_defaults_from_campaign_settings():
    """One place for the defaults: `campaign create` with no rating flags builds the settings a bare
    CampaignSettings() has, and its generation flags are records.SAMPLING."""
    import importlib.util

    from evals.records import SAMPLING, CampaignSettings

    spec = importlib.util.spec_from_file_location("arena_cli", ROOT / "scripts" / "arena.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = cli.parser().parse_args(["campaign", "create", "x", "--models", "a", "b"])
    defaults = CampaignSettings()
    for name in ("votes_per_battle", "allocation", "gold_rate", "min_gold_accuracy", "system", "open", "max_turns",
                 "max_prompt_chars", "battles_per_hour", "max_duplicates", "max_text_chars", "votes_per_minute"):
        assert getattr(args, name) == getattr(defaults, name), name
    assert {k: getattr(args, k) for k in SAMPLING} == SAMPLING
    form = (ROOT / "evals" / "ui" / "campaigns.py").read_text()  # the app's form reads the same names
    for name in ("allocation", "gold_rate", "min_gold_accuracy"):
        assert f"CampaignSettings.{name}" in form, name
    for key in SAMPLING:
        assert f'SAMPLING["{key}"]' in form, key
