"""Readers on small files written here in the public datasets' schemas."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT
from posttrain.data import DataError, read, write_jsonl

USER, ASSISTANT = "user", "assistant"


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dolly(tmp_path):
    path = jsonl(tmp_path / "dolly.jsonl", [
        {"instruction": "Summarise this.", "context": "Cats sleep a lot.", "response": "Cats nap.", "category": "summarization"},
        {"instruction": "Name a colour.", "context": "", "response": "Blue.", "category": "open_qa"},
    ])
    result = read(path)
    assert result.format == "dolly" and result.kind == "sft"
    assert result.rows[0] == {"messages": [
        {"role": USER, "content": "Summarise this.\n\nCats sleep a lot."},
        {"role": ASSISTANT, "content": "Cats nap."}]}
    assert result.rows[1]["messages"][0]["content"] == "Name a colour."
    assert result.hash.startswith("sha256:")


def test_alpaca_json_list(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([
        {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
        {"instruction": "Say hi.", "input": "", "output": "Hi!"},
    ]))
    result = read(path)
    assert result.format == "alpaca"
    assert [r["messages"][0]["content"] for r in result.rows] == ["Add the numbers.\n\n2 and 3", "Say hi."]


def oasst_rows():
    def msg(mid, parent, role, text, rank=None, **extra):
        return {"message_id": mid, "parent_id": parent, "role": role, "text": text, "rank": rank, "lang": "en",
                "message_tree_id": "t1", "deleted": False, "review_result": True, **extra}
    return [
        msg("p1", None, "prompter", "What is rain?"),
        msg("a1", "p1", "assistant", "Water falling from clouds.", rank=0),
        msg("a2", "p1", "assistant", "It is wet.", rank=1),
        msg("a3", "p1", "assistant", "No idea.", rank=2),
        msg("p2", "a1", "prompter", "Why does it fall?"),
        msg("a4", "p2", "assistant", "Gravity pulls the drops down.", rank=0),
        msg("x1", "p1", "assistant", "spam", rank=None, deleted=True),
    ]


def test_oasst1_trees_to_conversations_and_pairs(tmp_path):
    path = jsonl(tmp_path / "oasst1.jsonl", oasst_rows())
    sft = read(path)
    assert sft.format == "oasst1" and sft.kind == "sft"
    assert sft.rows == [{"messages": [
        {"role": USER, "content": "What is rain?"}, {"role": ASSISTANT, "content": "Water falling from clouds."},
        {"role": USER, "content": "Why does it fall?"}, {"role": ASSISTANT, "content": "Gravity pulls the drops down."}]}]
    assert [s.reason for s in sft.skipped] == ["message is deleted or failed review"]
    assert sft.skipped[0].where == f"{path}:7"
    pairs = read(path, kind="preference")
    assert pairs.kind == "preference" and len(pairs.rows) == 2
    assert all(p["prompt"] == [{"role": USER, "content": "What is rain?"}] for p in pairs.rows)
    assert {p["chosen"][0]["content"] for p in pairs.rows} == {"Water falling from clouds."}
    assert [p["rejected"][0]["content"] for p in pairs.rows] == ["It is wet.", "No idea."]


def test_hh_rlhf(tmp_path):
    path = jsonl(tmp_path / "hh.jsonl", [{
        "chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: Why did the hen cross?",
        "rejected": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: No.",
    }, {"chosen": "no transcript", "rejected": "\n\nHuman: a\n\nAssistant: b"}])
    result = read(path)
    assert result.format == "hh-rlhf" and result.kind == "preference"
    assert result.rows[0] == {
        "prompt": [{"role": USER, "content": "Hi there"}, {"role": ASSISTANT, "content": "Hello!"},
                   {"role": USER, "content": "Tell me a joke"}],
        "chosen": [{"role": ASSISTANT, "content": "Why did the hen cross?"}],
        "rejected": [{"role": ASSISTANT, "content": "No."}]}
    assert result.skipped[0].where == f"{path}:2" and "Human:" in result.skipped[0].reason


def test_ultrafeedback_binarized_parquet(tmp_path):
    path = tmp_path / "ufb.parquet"
    pd.DataFrame([{
        "prompt": "Capital of France?", "prompt_id": "abc",
        "chosen": [{"role": USER, "content": "Capital of France?"}, {"role": ASSISTANT, "content": "Paris."}],
        "rejected": [{"role": USER, "content": "Capital of France?"}, {"role": ASSISTANT, "content": "Lyon."}],
        "messages": [{"role": USER, "content": "Capital of France?"}, {"role": ASSISTANT, "content": "Paris."}],
        "score_chosen": 9.0, "score_rejected": 2.0,
    }]).to_parquet(path)
    result = read(path)
    assert result.format == "ultrafeedback" and result.skipped == []
    assert result.rows[0] == {"prompt": [{"role": USER, "content": "Capital of France?"}],
                              "chosen": [{"role": ASSISTANT, "content": "Paris."}],
                              "rejected": [{"role": ASSISTANT, "content": "Lyon."}]}


def test_orca_dpo_pairs_csv(tmp_path):
    path = tmp_path / "orca.csv"
    pd.DataFrame([
        {"system": "You are terse.", "question": "2+2?", "chosen": "4", "rejected": "5"},
        {"system": "", "question": "Sky colour?", "chosen": "Blue", "rejected": "Blue"},
    ]).to_csv(path, index=False)
    result = read(path)
    assert result.format == "orca"
    assert result.rows[0]["prompt"] == [{"role": "system", "content": "You are terse."}, {"role": USER, "content": "2+2?"}]
    assert str(result.skipped[0]) == f"{path}:3: chosen and rejected are the same text"


def test_trl_formats_round_trip(tmp_path):
    pairs = [{"prompt": "Say yes", "chosen": "Yes", "rejected": "No"},
             {"prompt": [{"role": USER, "content": "Hi"}], "chosen": [{"role": ASSISTANT, "content": "Hello"}],
              "rejected": [{"role": ASSISTANT, "content": "Go away"}]}]
    result = read(jsonl(tmp_path / "pairs.jsonl", pairs))
    assert result.format == "preference" and len(result.rows) == 2
    write_jsonl(result.rows, tmp_path / "out.jsonl")
    assert read(tmp_path / "out.jsonl").rows == result.rows
    convo = {"messages": [{"role": "system", "content": "Be kind"}, {"role": USER, "content": "Hi"},
                          {"role": ASSISTANT, "content": "Hello"}]}
    assert read(jsonl(tmp_path / "m.jsonl", [convo])).rows == [convo]


BAD_ROWS = [
    ('{"instruction": "ok", "output": "fine"}', None),
    ('{"instruction": "broken", ', "broken JSON"),
    ('{"instruction": "", "output": "x"}', "field 'instruction' is empty"),
    ('{"instruction": "no output"}', "missing field 'output'"),
    ('{"instruction": 5, "output": "x"}', "field 'instruction' should be text, got int"),
    ('{"instruction": "long", "output": "' + "x" * 40_000 + '"}', "too long"),
    ('[1, 2]', "expected a JSON object"),
]


def test_bad_rows_are_reported_with_line_and_reason(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(line for line, _ in BAD_ROWS) + "\n")
    result = read(path, format="alpaca")
    assert len(result.rows) == 1
    assert [(s.where, expected in s.reason) for s, (_, expected) in zip(result.skipped, BAD_ROWS[1:])] == [
        (f"{path}:{n}", True) for n in range(2, len(BAD_ROWS) + 1)]
    with pytest.raises(DataError, match=rf"{path}:2: broken JSON"):
        read(path, format="alpaca", on_error="stop")


def test_unknown_or_wrong_inputs_are_refused(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read(tmp_path / "missing.jsonl")
    weird = jsonl(tmp_path / "weird.jsonl", [{"foo": 1}])
    with pytest.raises(DataError, match=r"weird.jsonl:1: cannot tell the format.*--format"):
        read(weird)
    sft = jsonl(tmp_path / "sft.jsonl", [{"instruction": "a", "output": "b"}])
    with pytest.raises(DataError, match="gives sft data"):
        read(sft, kind="preference")
    with pytest.raises(DataError, match="unknown file type"):
        read((tmp_path / "x.txt").resolve() if (tmp_path / "x.txt").write_text("hi") else None)


def test_hub_ids_go_through_datasets(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        return datasets.Dataset.from_list([{"instruction": "Hi", "context": "", "response": "Hello", "category": "x"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    result = read("databricks/databricks-dolly-15k")
    assert calls == [("databricks/databricks-dolly-15k", "train")]
    assert result.format == "dolly" and result.rows[0]["messages"][1]["content"] == "Hello"
    assert result.hash.startswith("fingerprint:")


def run_check(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "data.py"), "check", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_check_cli(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\nnot json\n')
    out = run_check(path, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["format"] == "alpaca" and summary["rows_kept"] == 1 and summary["rows_skipped"] == 1
    assert summary["skipped"][0]["where"] == f"{path}:2"
    human = run_check(path)
    assert "1 rows kept, 1 skipped" in human.stdout and f"{path}:2: broken JSON" in human.stdout
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"instruction": "", "output": "b"}\n')
    assert run_check(empty, "--format", "alpaca").returncode == 1
    assert run_check(tmp_path / "nope.jsonl").returncode == 2
