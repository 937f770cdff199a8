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


PACKAGES = ("posttrain", "blindarena", "evals")
# The one import that runs up a floor: the `judge:openai` RL reward borrows the benchmarks' OpenAI
# judge and MT-Bench grader (lazily, when a round first asks for it).
UPWARD = {("posttrain/rewards.py", "evals.judge"), ("posttrain/rewards.py", "evals.mtbench")}
# Functions allowed over 60 lines, and why (none today).
LONG = {}


def ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def modules() -> list[Path]:
    return sorted([*(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")), *(ROOT / "scripts").glob("*.py"), ROOT / "app.py"])


def named_in_strings(path: Path) -> set[str]:
    """Modules of ours named in strings that import: `import_module("blindarena.store")` and
    `MODULE:FUNCTION` specs (`python:posttrain.rewards:ifeval`, a method's trainer), which an
    import statement does not show. A name that is no module (an old one mapped away) imports nothing."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        texts = []
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            texts = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
            texts = [node.value]
        for text in texts:
            match = re.fullmatch(r"(?:python:)?((?:posttrain|blindarena|evals)(?:\.\w+)*)(?::\w+)?", text)
            if match and is_module(match.group(1)):
                found.add(match.group(1))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_store_imports_nothing_of_the_arena_but_its_vocabulary_and_records():
    mine = {m for m in imports(ROOT / "blindarena" / "store.py") if ours(m)}
    assert {m for m in mine if m.startswith("blindarena")} <= {"blindarena.vocab", "blindarena.records"}, mine


def test_records_and_allocation_stay_below_the_store():
    assert not {m for m in imports(ROOT / "blindarena" / "records.py") if m.startswith("blindarena")}
    assert "blindarena.store" not in imports(ROOT / "blindarena" / "allocation.py")


def test_each_package_imports_only_the_floors_below_it():
    """posttrain (training, data, registry, engine) <- blindarena (store, stats, ladders, pairs, loop, UI)
    <- evals (the benchmarks: IFEval, MT-Bench-lite, judges, judged evaluation). Import strings count."""
    below = {"posttrain": set(), "blindarena": {"posttrain"}, "evals": {"posttrain", "blindarena"}}
    wrong = []
    for path in (p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")):
        home = path.relative_to(ROOT).parts[0]
        for name in {m for m in imports(path) | named_in_strings(path) if ours(m)}:
            top = name.split(".")[0]
            if top != home and top not in below[home] and (str(path.relative_to(ROOT)), name) not in UPWARD:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong


def test_no_module_of_ours_imports_itself_back_through_others():
    """The module graph (imports at any depth, import strings too) has no cycle."""
    graph = {}
    for path in modules():
        targets = set()
        for name in imports(path) | named_in_strings(path):
            if ours(name):
                target = name if is_module(name) else name.rsplit(".", 1)[0]
                targets.add(target)
        graph[module_name(path)] = targets - {module_name(path)}
    state, cycle = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                cycle.append(trail + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not cycle, cycle[:3]


def test_scripts_do_not_check_the_generators_class():
    for path in (ROOT / "scripts").glob("*.py"):
        assert "isinstance(engine, Engine)" not in path.read_text(), path


def test_no_function_anywhere_is_over_60_lines():
    long = [f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)" for path in modules()
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60
            and f"{path.relative_to(ROOT)}:{node.name}" not in LONG]
    assert not long, long


def test_every_training_method_is_one_record_that_train_reads():
    from posttrain.methods import DATA, MEASURES, METHOD_NAMES, METHODS
    from posttrain.registry import CARD_METHODS

    assert set(METHOD_NAMES) >= {"sft", "dpo", "kto", "orpo", "simpo", "reward", "grpo", "rloo"}
    for name, method in METHODS.items():
        assert method.name == name and method.data in DATA and method.measure in MEASURES
        assert method.config_class().__name__.endswith("Config") and method.trainer_class().__name__.endswith("Trainer")
    assert {"qlora", "ipo"} | set(METHOD_NAMES) <= set(CARD_METHODS)  # every card method is one the registry knows
    source = (ROOT / "posttrain" / "train.py").read_text()
    for name in METHOD_NAMES:  # train.py branches on no method's name: what differs lives in the record
        assert not re.search(rf'(?<![\w.])method_name (?:[=!]= "{name}"|in \("{name}")', source), name


def test_every_import_of_our_own_modules_resolves_lazy_ones_too():
    """A name moved from one module to another leaves no import behind, even one inside a function
    that no test runs (the command lines import lazily)."""
    import importlib

    broken = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and ours(node.module):
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

    from blindarena.records import SAMPLING, CampaignSettings

    spec = importlib.util.spec_from_file_location("arena_cli", ROOT / "scripts" / "arena.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = cli.parser().parse_args(["campaign", "create", "x", "--models", "a", "b"])
    defaults = CampaignSettings()
    for name in ("votes_per_battle", "allocation", "gold_rate", "min_gold_accuracy", "system", "open", "max_turns",
                 "max_prompt_chars", "battles_per_hour", "max_duplicates", "max_text_chars", "votes_per_minute"):
        assert getattr(args, name) == getattr(defaults, name), name
    assert {k: getattr(args, k) for k in SAMPLING} == SAMPLING
    form = (ROOT / "blindarena" / "ui" / "campaigns.py").read_text()  # the app's form reads the same names
    for name in ("allocation", "gold_rate", "min_gold_accuracy"):
        assert f"CampaignSettings.{name}" in form, name
    for key in SAMPLING:
        assert f'SAMPLING["{key}"]' in form, key
