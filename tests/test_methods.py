"""The seed's evaluation methods beyond pairwise judging: MT-Bench-lite's single-answer grading
(each turn on the model's own earlier turns, MT-Bench's prompts and [[rating]] parsing,
unparseable verdicts counted) and reward over-optimization (best-of-n against a proxy reward
model, scored by a gold one, on the analytic KL axis)."""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from evals import mtbench
from evals.overoptimization import best_of_n_kl
from posttrain.backend import make_generator
from posttrain.engine import SamplingParams
from posttrain.fake_openai import FakeOpenAI

QUESTIONS = [
    {"question_id": 1, "category": "math", "turns": ["What is 2 + 2?", "Double it."], "reference": ["4", "8"]},
    {"question_id": 2, "category": "writing", "turns": ["Write a haiku.", "Make it sadder."], "reference": None},
    {"question_id": 3, "category": "writing", "turns": ["Write a limerick about nothing.", "Shorter."], "reference": None},
]


def verdict(body: dict) -> str:
    """A judge with fixed habits: 9 with a reference, 4 on a second turn, 7 otherwise, and no
    rating at all for limericks."""
    text = " ".join(m["content"] for m in body["messages"])
    if "limerick" in text:
        return "I would rather not rate limericks."
    if "Reference Answer" in text:
        return "The answer matches the reference. Rating: [[9]]"
    if "second user question" in text:
        return "Weaker follow-up. [[4]]"
    return "Fine. Rating: [[7]]"


def test_turn_two_is_answered_on_the_models_own_turn_one(tiny_registry):
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"]) as server:
        generator = make_generator(tiny_registry, "tiny", backend="openai", base_url=server.url)
        answers = mtbench.answer(generator, "ad-a", QUESTIONS, SamplingParams(max_new_tokens=20, temperature=0))
        assert answers[0] == ["[ad-a] reply to: What is 2 + 2?", "[ad-a] reply to: Double it."]
        second_turns = [body["messages"] for _, _, body in server.requests if len(body["messages"]) == 3]
        assert [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "[ad-a] reply to: What is 2 + 2?"},
                {"role": "user", "content": "Double it."}] in second_turns
        assert all("[ad-b]" not in m["content"] for messages in second_turns for m in messages)  # never the other model's


def test_grading_follows_mtbench_and_counts_what_does_not_parse():
    assert mtbench.parse_rating("Rating: [[8.5]]") == 8.5 and mtbench.parse_rating("score [6]") == 6.0
    assert mtbench.parse_rating("no number here") is None
    math_turn_2 = mtbench.judge_messages(QUESTIONS[0], ["4", "8"], 1)
    assert "Reference Answer" in math_turn_2[1]["content"] and "second question" in math_turn_2[0]["content"]
    assert "### Assistant A:\n4" in math_turn_2[1]["content"]  # the model's own turn 1 in the conversation judged
    with FakeOpenAI(reply=verdict) as judge:
        from posttrain.chat_api import ChatClient

        grader = mtbench.OpenAIGrader(ChatClient(judge.url), "judge")
        result = mtbench.grade(grader, QUESTIONS, {"m": [["4", "8"], ["haiku", "sadder haiku"], ["limerick", "short"]]})
    row = result["mtbench"]["m"]
    assert row["unparseable"] == 2 and row["graded"] == 4  # the limerick's two turns are counted, not guessed
    assert row["turn_1"] == pytest.approx((9 + 7) / 2) and row["turn_2"] == pytest.approx((9 + 4) / 2)
    assert row["by_category"] == {"math": 9.0, "writing": 5.5} and row["overall"] == pytest.approx(29 / 4)


def test_mtbench_command_writes_json_and_the_radar(tiny_registry, tmp_path):
    with FakeOpenAI(reply=verdict) as judge:
        env = {**os.environ, "JUDGE_BASE_URL": judge.url, "JUDGE_MODEL": "fake-judge"}
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "mtbench", "--models", "ad-a", "tiny",
                              "--base", "tiny", "--registry", str(tiny_registry.root), "--no-4bit", "--max-new-tokens", "4",
                              "--out", str(tmp_path / "mt"), "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["mtbench"]) == {"ad-a", "tiny"}
    for row in result["mtbench"].values():
        assert {"turn_1", "turn_2", "overall", "by_category"} <= set(row) and len(row["by_category"]) == 8
    assert "scatterpolar" in (tmp_path / "mt" / "mtbench_radar.html").read_text().lower()


def test_best_of_n_against_a_proxy_with_a_gold_judge(tiny_registry, tmp_path):
    from trl import RewardConfig

    from posttrain.train import RunArguments, run

    data = ROOT / "data" / "preference"
    for name, seed in (("rm-proxy", 0), ("rm-gold", 1)):
        run("reward", RunArguments(name=name, base="tiny", data=str(data / "train.jsonl"), registry=str(tiny_registry.root),
                                   max_rows=16),
            RewardConfig(output_dir=str(tmp_path / name), use_cpu=True, bf16=False, report_to="none", max_length=96,
                         per_device_train_batch_size=4, max_steps=2, save_strategy="no", eval_strategy="no", seed=seed))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "overoptimization", "--policy", "ad-a",
                          "--proxy", "rm-proxy", "--gold", "rm-gold", "--n", "1", "2", "4", "--limit", "3", "--base", "tiny",
                          "--registry", str(tiny_registry.root), "--no-4bit", "--max-new-tokens", "6",
                          "--out", str(tmp_path / "over"), "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = result["overoptimization"]
    assert [r["n"] for r in rows] == [1, 2, 4]
    assert [r["kl"] for r in rows] == [round(math.log(n) - (n - 1) / n, 4) for n in (1, 2, 4)]
    assert rows[0]["kl"] == 0 and best_of_n_kl(16) == pytest.approx(math.log(16) - 15 / 16)
    proxies = [r["proxy"] for r in rows]
    assert proxies == sorted(proxies)  # the best of more samples never scores lower on the proxy it maximises
    assert all(isinstance(r["gold"], float) and r["length"] > 0 for r in rows)
    assert result["gold_peak_n"] in (1, 2, 4) and "correlation" in result["length_vs_proxy"]
    assert (tmp_path / "over" / "overoptimization.html").is_file() and (tmp_path / "over" / "length_vs_reward.html").is_file()
    refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "overoptimization", "--policy", "ad-a",
                              "--proxy", "rm-proxy", "--gold", "rm-proxy", "--base", "tiny", "--registry",
                              str(tiny_registry.root)], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "must differ from --proxy" in refused.stderr

    prompts = tmp_path / "prompts.jsonl"  # the before/after report's length-hacking check, with the same reward model
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["Say hi.", "Name a colour."]))
    report = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--models", "ad-a", "ad-b", "--base",
                             "tiny", "--registry", str(tiny_registry.root), "--data-dir", str(tmp_path / "data"), "--no-4bit",
                             "--judge", "reward", "--reward", "rm-proxy", "--prompts", str(prompts), "--max-new-tokens", "5",
                             "--out", str(tmp_path / "report")], capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    check = json.loads((tmp_path / "report" / "metrics.json").read_text())["reward_vs_length"]
    assert len(check["points"]) == 4 and "length-hacking check" in (tmp_path / "report" / "report.md").read_text()
