"""One error family: every mistake a user can make from the command line ends in one line that
says what was wrong and what to do, never a traceback; the synthetic-data thresholds one sets
are the ones used."""

import subprocess
import sys

import pytest

from conftest import ROOT
from posttrain.errors import WorkbenchError


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def said_in_one_line(out: subprocess.CompletedProcess, *fragments: str) -> str:
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    (line,) = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert all(fragment in line for fragment in fragments), line
    return line


def test_recipe_mistakes_are_one_line_errors(tmp_path):
    recipe = str(ROOT / "posttrain" / "recipes" / "sft_default.yaml")
    said_in_one_line(run("train.py", "sft", "--config", recipe, "--no_such_field", "3"),
                     "unknown field(s) no_such_field", "--help")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nlora_target_modules: [q_proj, v_proj\nlearning_rate: 1e-4\n")
    said_in_one_line(run("train.py", "sft", "--config", str(broken)), f"{broken}:3", "not valid YAML")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text((ROOT / "posttrain" / "recipes" / "sft_default.yaml").read_text() + "\nlora_rank: 8\n")
    said_in_one_line(run("train.py", "sft", "--config", str(unknown)), "unknown field(s) lora_rank", str(unknown))
    said_in_one_line(run("train.py", "sft", "--config", str(tmp_path / "missing.yaml")), "no such recipe file")


def test_a_data_file_that_is_not_utf8_is_named_by_file_and_line(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b'{"prompt": "hi", "chosen": "a", "rejected": "b"}\n\xff\xfe broken\n'
                      b'{"prompt": "yo", "chosen": "c", "rejected": "d"}\n')
    out = run("data.py", "check", str(mixed))
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert f"skipped {mixed}:2: not UTF-8 text (byte 0xff at column 1)" in out.stdout
    latin = tmp_path / "latin.csv"
    latin.write_bytes("prompt,chosen,rejected\nq,a,b\ncaf\xe9,c,d\n".encode("latin-1"))
    said_in_one_line(run("data.py", "check", str(latin)), f"{latin}:3", "not UTF-8")
    said_in_one_line(run("arena.py", "--data-dir", str(tmp_path), "results", "nothing"), "no campaign 'nothing'")


def test_every_project_error_is_a_workbench_error():
    """Found by walking the packages, not a hand-kept list: every exception class defined in
    posttrain/, blindarena/ and evals/ is a WorkbenchError (the command lines print those in one line), except
    control flow that never reaches a user."""
    import importlib
    import inspect
    import pkgutil

    import blindarena
    import evals
    import posttrain

    # _RowsDone ends generation inside the engine's stopping criteria; RowError is one bad row, which
    # the reader turns into a DataError (or a skipped row) with its file:line before anyone sees it.
    internal = {"_RowsDone", "RowError"}
    found = []
    for package in (posttrain, blindarena, evals):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                    found.append(value)
    assert len(found) >= 9  # StoreError, DataError, EngineError, RecipeError, ...
    strays = [f"{e.__module__}.{e.__name__}" for e in found if not issubclass(e, WorkbenchError) and e.__name__ not in internal]
    assert not strays, strays


@pytest.mark.parametrize("share, kept", [(0.15, False), (0.0, True)])
def test_the_english_share_threshold_one_sets_is_the_one_used(share, kept):
    from posttrain.synth import clean

    row = {"instruction": "Explain quickly: zebra giraffe antelope elephant rhinoceros hippopotamus",
           "output": "Savanna mammals graze, browse, migrate seasonally across grasslands."}
    reason = clean.filter_reason(row, clean.Thresholds(min_english_share=share))
    assert reason == (None if kept else "language: not English")
