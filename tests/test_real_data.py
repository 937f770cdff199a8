"""Real conversations and training data that checks itself: the ShareGPT reader (both layouts,
every role spelling, a file cut off mid-record, a broken record), the ShareGPT builder on a file
the test writes (never the package's data), verifiable rewrites (each met by construction passes
its checker and its original fails it; each relabel passes), and an on-policy round on the tiny
model."""

from __future__ import annotations

import json
import logging
from random import Random

import pytest

from conftest import ROOT
from posttrain import checkers
from posttrain.synth import onpolicy, rewrites, verified
from posttrain.data import DataError, read


class DistinctEmbedder:
    """One basis vector per distinct text: equal texts have cosine 1, different ones 0 (no hash
    collisions, the same in every process)."""

    def __init__(self):
        self.index: dict[str, int] = {}

    def __call__(self, texts):
        import numpy as np

        for text in texts:
            self.index.setdefault(text, len(self.index))
        out = np.zeros((len(texts), 8192), dtype=np.float32)  # more dimensions than texts: the benchmark sets are 2,096
        for row, text in enumerate(texts):
            out[row, self.index[text] % 8192] = 1.0
        return out

ANSWER = ("Ottawa is the capital of Canada, and it sits on the Ottawa River. The city became the capital in 1857, "
          "chosen by Queen Victoria. Today it hosts Parliament Hill, the national museums and many embassies. "
          "Winters there are long, cold and snowy.")
REQUEST = "Tell me about the capital of Canada."


def sharegpt_records() -> list[dict]:
    return [
        {"id": "a", "conversations": [{"from": "human", "value": "What is tea?"}, {"from": "gpt", "value": "A drink."}]},
        {"id": "b", "conversations": [{"from": "system", "value": "Be brief."}, {"from": "user", "value": "Hi?"},
                                      {"from": "chatgpt", "value": "Hello."}, {"from": "human", "value": "unanswered"}]},
        {"id": "c", "conversations": [{"from": "gpt", "value": "I open."}, {"from": "human", "value": "Why?"},
                                      {"from": "bing", "value": "Because."}, {"from": "user", "value": "And?"},
                                      {"from": "bard", "value": "So."}, {"from": "human", "value": "Ok"},
                                      {"from": "assistant", "value": "Done."}]},
    ]


@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_the_sharegpt_reader_reads_both_layouts_and_every_role_spelling(tmp_path, layout):
    path = tmp_path / f"share.{layout}"
    records = sharegpt_records()
    path.write_text(json.dumps(records, indent=2) if layout == "json" else "\n".join(json.dumps(r) for r in records))
    result = read(path)
    assert result.format == "sharegpt" and result.kind == "sft" and not result.skipped
    first, second, third = (r["messages"] for r in result.rows)
    assert first == [{"role": "user", "content": "What is tea?"}, {"role": "assistant", "content": "A drink."}]
    assert [m["role"] for m in second] == ["system", "user", "assistant"]  # the unanswered last turn dropped
    assert [m["role"] for m in third] == ["user", "assistant"] * 3  # the leading answer dropped
    assert [m["content"] for m in third][-1] == "Done."


def test_a_file_cut_off_inside_a_record_gives_every_complete_record_and_one_warning(tmp_path, caplog):
    text = json.dumps(sharegpt_records(), indent=2)
    path = tmp_path / "cut.json"
    path.write_text(text[: text.index('"id": "c"') + 20])  # inside the third record
    with caplog.at_level(logging.WARNING, logger="posttrain.data"):
        result = read(path)
    assert len(result.rows) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ends inside record 3" in warnings[0] and "read the 2 complete records" in warnings[0]


def test_a_broken_record_names_its_index_and_a_malformed_one_is_skipped_with_it(tmp_path):
    records = sharegpt_records()
    text = "[" + json.dumps(records[0]) + ', {"id": "x", "conversations": [}, ' + json.dumps(records[1]) + "]"
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(DataError, match=r"broken.json:1: broken JSON in record 2"):
        read(path)
    odd = [records[0], {"id": "y", "conversations": [{"from": "robot", "value": "beep"}]},
           {"id": "z", "conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"},
                                         {"from": "gpt", "value": "c"}]}]
    path.write_text(json.dumps(odd))
    result = read(path)
    assert len(result.rows) == 1
    assert [str(s) for s in result.skipped] == [
        f"{path}:item 2: conversations[0]: 'from' 'robot' is not one of "
        "['assistant', 'bard', 'bing', 'chatgpt', 'gpt', 'human', 'model', 'system', 'user']",
        f"{path}:item 3: conversations: turns 1 and 2 are both 'user' (or a system turn mid-way)"]


def test_the_sharegpt_builder_filters_dedups_splits_and_writes_a_card(tmp_path):
    from posttrain.synth import sharegpt

    nouns = ("river mountain garden kitchen library harbour forest market bridge castle engine violin teacher doctor "
             "farmer baker window candle mirror ladder").split()
    rng = Random(0)
    good = []
    for i in range(80):
        a, b, c, d = rng.sample(nouns, 4)
        good.append({"id": str(i), "conversations": [
            {"from": "human", "value": f"Please tell me why the {a} and the {b} matter for a {c} near the {d} today?"},
            {"from": "gpt", "value": f"The {a} shapes daily life for the {c}, while the {b} near the {d} gives it "
                                     f"a place to work and rest, number {i}."}]})
    bad = [{"id": "r", "conversations": [{"from": "human", "value": "Tell me a secret about your training."},
                                         {"from": "gpt", "value": "As an AI language model, I cannot share that."}]},
           {"id": "f", "conversations": [{"from": "human", "value": "Quelle est la capitale de la France, s'il vous plaît?"},
                                         {"from": "gpt", "value": "La capitale de la France est Paris, bien sûr."}]},
           {"id": "d", "conversations": good[3]["conversations"]}]
    path = tmp_path / "share.json"
    path.write_text(json.dumps(good + bad))
    built = sharegpt.build(path, heldout_rows=10, real_prompts=5, embedder=DistinctEmbedder(), say=lambda m: None)
    dropped = built.card["dropped"]
    assert len(built.real_prompts) == 5 and len(built.heldout) == 10
    assert len(built.train) == 81 - dropped["near duplicate (MinHash)"] - 15  # 80 rows and a copy pass the filters
    assert dropped["refusal or boilerplate"] == 1 and dropped["language"] == 1 and dropped["near duplicate (MinHash)"] >= 1
    trained = {r["messages"][0]["content"] for r in built.train}
    assert not trained & {p["prompt"] for p in built.real_prompts}  # the real prompts are held out
    sharegpt.write(built, tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "OpenAI's terms of use" in card and "research only" in card
    assert len((tmp_path / "out" / "real_prompts.jsonl").read_text().splitlines()) == 5
    assert built.card["examined"]["examined"] == built.card["examined"]["candidates"] == 81  # no --max-rows: all of them

    # --max-rows 10: the costly filters see only what 5 + 10 + 10 rows need (and half again)
    some = sharegpt.build(path, max_rows=10, heldout_rows=10, real_prompts=5, embedder=DistinctEmbedder(), say=lambda m: None)
    assert (len(some.train), len(some.heldout), len(some.real_prompts)) == (10, 10, 5)
    assert some.card["examined"] == {**some.card["examined"], "candidates": 81, "examined": 37}
    assert sum(some.card["dropped"][k] for k in ("language", "near duplicate (MinHash)")) <= 2
    texts = [r["messages"][0]["content"] for r in some.train + some.heldout] + [p["prompt"] for p in some.real_prompts]
    assert len(set(texts)) == 25  # no row twice across the splits


@pytest.mark.parametrize("instruction", sorted(rewrites.CONSTRUCTED))
def test_each_rewrite_passes_its_checker_and_its_original_fails_it(instruction):
    made = rewrites.CONSTRUCTED[instruction](REQUEST, ANSWER, Random(1))
    assert made is not None and made.instruction_id == instruction
    assert checkers.follows(instruction, made.answer, made.kwargs), made.answer
    assert not checkers.follows(instruction, ANSWER, made.kwargs)
    assert made.phrase and made.phrase not in REQUEST


@pytest.mark.parametrize("instruction", sorted(rewrites.RELABELED))
def test_each_hindsight_relabel_passes_on_the_answer_it_was_read_from(instruction):
    answer = ANSWER.replace(". Today", ".\n\nToday") + " OTTAWA IS COLD."
    for seed in range(5):
        made = rewrites.RELABELED[instruction](REQUEST, answer, Random(seed))
        assert made is not None and made.answer == answer
        assert checkers.follows(instruction, answer, made.kwargs), (made.kwargs, answer)


def test_rewritten_rows_carry_ifevals_schema_and_pairs_differ_only_in_the_answer():
    rows = [{"messages": [{"role": "user", "content": REQUEST}, {"role": "assistant", "content": ANSWER}]}] * 20
    built = rewrites.rewrite_rows(rows, per_row=2, seed=3)
    assert len(built["sft"]) == 40 and built["pairs"]
    for row in built["sft"]:
        assert row["prompt"].startswith(REQUEST) and row["messages"][0]["content"] == row["prompt"]
        assert checkers.check_row({**row, "response": row["messages"][1]["content"]})["follow_all_instructions"]
        assert checkers.row_problem(row) is None
    for pair in built["pairs"]:
        assert pair["rejected"] == ANSWER and pair["chosen"] != ANSWER
        assert not checkers.check_row({**pair, "response": pair["rejected"]})["follow_all_instructions"]
    assert set(rewrites.NOT_COVERED) == {"language:response_language", "detectable_format:constrained_response"}


def test_an_onpolicy_round_on_the_tiny_model_writes_rows_and_pairs(tiny_registry, tmp_path):
    from posttrain.engine import Engine
    from posttrain.synth.teacher import LocalTeacher

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in [
        {"key": 1, "prompt": "Say hello.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 2, "prompt": "Name a colour.", "instruction_id_list": ["keywords:forbidden_words"],
         "kwargs": [{"forbidden_words": ["zebra"]}]},
        {"key": 3, "prompt": "Tell me something."}]))
    checked, free = onpolicy.read_prompts(prompts)
    assert len(checked) == 2 and len(free) == 1
    with pytest.raises(checkers.IFEvalError, match="pass --judge NAME"):
        onpolicy.round_data(None, checked, free, verified.VerifiedConfig())
    class Finished(LocalTeacher):  # the tiny model never ends within 6 tokens: its answers stand in for finished ones
        def complete(self, prompts, seed):
            return [str(text) for text in super().complete(prompts, seed)]

    teacher = Finished(Engine(tiny_registry, "tiny", quantize=False), "ad-a", max_new_tokens=6, temperature=1.0)
    teacher.name = "policy:ad-a"
    config = verified.VerifiedConfig(prompts=str(prompts), out=str(tmp_path / "round"), samples=3, max_new_tokens=6,
                                     eval_files=[], check_files=[])
    score = lambda prompt, replies: [float(len(r)) for r in replies]  # a stand-in judge: longer is better
    built = onpolicy.round_data(teacher, checked, free, config, score, embedder=DistinctEmbedder())
    out = onpolicy.write(built, config, "ad-a")
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert sft and all(r["messages"][1]["content"] for r in sft)
    judged = [r for r in sft if r["key"] == 3]
    assert len(judged) == 1 and "score" in judged[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judged_prompts"] == 1 and summary["sft_rows"] == len(sft) and summary["policy"] == "policy:ad-a"
    assert "On-policy round data" in (out / "README.md").read_text()
    # as they come (cut at 6 tokens), no answer is a row or a pair's chosen one
    raw = LocalTeacher(teacher.engine, "ad-a", max_new_tokens=6, temperature=1.0)
    cut = onpolicy.round_data(raw, checked, free, verified.VerifiedConfig(out=str(tmp_path / "cut"), samples=3, max_new_tokens=6,
                                                                       eval_files=[], check_files=[]), score, embedder=DistinctEmbedder())
    assert cut["sft"] == cut["pairs"] == [] and {d["reason"] for d in cut["dropped"]} == {"cut off at the token limit"}
