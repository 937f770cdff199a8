"""The automatic judge, the evaluation command and its report, on the tiny model: every number
in the report is recomputed here from stored data."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from arena_fixtures import MODELS, make_arena
from conftest import ROOT
from blindarena import operations as arena, stats
from evals.judge import OpenAIJudge, RewardJudge, both_orders, judge_campaign
from evals.metrics import measure
from blindarena.prompts import DEFAULT_PROMPTS, load_prompts
from posttrain.data import read_jsonl
from posttrain.engine import BASE, Engine

DATA = ROOT / "data"


def pirate_judge(prompt, left, right):
    return "left" if "Arr" in left and "Arr" not in right else "right" if "Arr" in right else "tie"


def test_swapping_sides_swaps_the_verdict():
    assert both_orders(pirate_judge, "q", "Arr, four.", "Four.") == "left"
    assert both_orders(pirate_judge, "q", "Four.", "Arr, four.") == "right"
    always_first = lambda prompt, left, right: "left"
    assert both_orders(always_first, "q", "Four.", "Arr, four.") == "tie"  # pure position bias cancels out


class FakeEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions that prefers the answer with 'Arr' in it; it fails
    the first request to exercise the retry."""

    calls = 0

    def do_POST(self):
        FakeEndpoint.calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if FakeEndpoint.calls == 1:
            self.send_response(500)
            self.end_headers()
            return
        text = body["messages"][0]["content"]
        answer_a = text.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
        verdict = "[[A]]" if "Arr" in answer_a else "[[B]]"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": f"Reasoning... {verdict}"}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


def test_a_reward_judge_scores_each_answer_once_in_both_orders():
    """A reward scores each answer on its own: the swapped order reads its scores back."""
    calls = []

    class Scorer:
        def score(self, prompt, replies):
            calls.append((json.dumps(prompt), list(replies)))
            return [float(len(r)) for r in replies]  # the longer answer wins

    judge = RewardJudge(Scorer())
    assert both_orders(judge, "q", "Four.", "Four, surely.") == "right"
    assert both_orders(judge, "q", "Four, surely.", "Four.") == "left"
    assert both_orders(judge, "another q", "Four.", "Four, surely.") == "right"  # another prompt: scored again
    assert calls == [('"q"', ["Four.", "Four, surely."]), ('"another q"', ["Four.", "Four, surely."])]
    calls.clear()  # a conversation: each side scored on its own whole conversation, once
    assert both_orders(judge, ["hi", "q"], ["Hello.", "Four."], ["Hello.", "Four, surely."]) == "right"
    assert [replies for _, replies in calls] == [["Four."], ["Four, surely."]]
    assert both_orders(judge, "q", "Same.", "Same.") == "tie"


def test_openai_compatible_judge_in_both_orders():
    server = HTTPServer(("127.0.0.1", 0), FakeEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = OpenAIJudge(f"http://127.0.0.1:{server.server_port}/v1", "fake-judge", retries=2)
        assert judge("q", "Arr, four.", "Four.") == "left"
        assert judge("q", "Four.", "Arr, four.") == "right"
        assert both_orders(judge, "q", "Four.", "Arr, four.") == "right"
        assert FakeEndpoint.calls == 5  # one failure retried, then four answers
    finally:
        server.shutdown()


def test_judge_votes_land_in_the_store_beside_human_votes(tmp_path, tiny_dir):
    _, store = make_arena(tmp_path, tiny_dir)
    assert judge_campaign(store, "tasting", type("J", (), {"name": "pirate", "__call__": staticmethod(pirate_judge)})()) == 4
    human = arena.join(store, "tasting", "ann")
    store.vote(human, store.next_assignment(human).battle_id, "left")
    res = arena.results(store, "tasting")
    assert res["human_votes"] == 1 and res["votes"] == 5
    assert sum(r["n"] for r in res["judge_win_rates"]) == 4 and sum(r["n"] for r in res["win_rates"]) == 1


def test_evaluate_writes_a_report_whose_numbers_recompute(tmp_path, tiny_dir):
    config, _ = make_arena(tmp_path, tiny_dir)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p["prompt"], "category": p["category"]}) + "\n"
                               for p in load_prompts(DEFAULT_PROMPTS)[:3]))
    out = tmp_path / "report"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--models", "tiny", *MODELS,
                          "--base", "tiny", "--registry", str(config.registry_dir), "--data-dir", str(config.data_dir),
                          "--judge", "none", "--no-4bit", "--prompts", str(prompts), "--max-new-tokens", "6",
                          "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    saved = json.loads((out / "metrics.json").read_text())
    assert (out / "report.html").read_text().count("plotly") > 0 and "| domain perplexity" in (out / "report.md").read_text()
    from posttrain.registry import Registry

    engine = Engine(Registry(config.registry_dir), "tiny", quantize=False)
    general = [r["text"] for r in read_jsonl(DATA / "general_text.jsonl")]
    for name in ["tiny", *MODELS]:
        again = measure(engine, BASE if name == "tiny" else name, read_jsonl(DATA / "sft" / "heldout.jsonl"), general,
                        read_jsonl(DATA / "preference" / "heldout.jsonl"), read_jsonl(DATA / "tasks_heldout.jsonl"))
        assert again == pytest.approx(saved["metrics"][name], rel=1e-3)
    from blindarena.store import Store

    store = Store(config.data_dir / "arena.sqlite")
    answers = store.answers(saved["campaign"])
    assert len(answers) == 3 * 3 and saved["judge_votes"] == 0
    assert saved["win_rates"] == stats.win_rates([v for v in store.votes(saved["campaign"]) if v["rater_role"] == "judge"])


def test_stored_eval_answers_are_keyed_by_weights_not_names(tiny_registry, tiny_dir, tmp_path):
    from conftest import make_lora
    from evals import evaluation as evaluate

    before = evaluate.entry_hash(tiny_registry, "ad-a")
    assert before == evaluate.entry_hash(tiny_registry, "ad-a")
    tiny_registry.remove("ad-a")  # retrained under the same name
    tiny_registry.import_adapter(make_lora(tiny_dir, tmp_path / "retrained", seed=7), "ad-a", base="tiny", method="sft")
    assert evaluate.entry_hash(tiny_registry, "ad-a") != before
    assert evaluate.entry_hash(tiny_registry, "tiny").startswith("sha256:")


def test_the_preference_family_trains_in_one_command_and_the_report_lays_it_side_by_side(tiny_registry, tmp_path):
    """`train.py family` trains DPO, IPO, KTO, ORPO and SimPO children of one SFT parent (a second run
    skips them), and the evaluation report has one row per child against that parent."""
    from conftest import make_lora

    registry = tiny_registry
    registry.import_adapter(make_lora(registry.get("tiny").path, tmp_path / "parent", seed=3), "t-parent", base="tiny",
                            method="sft")
    train = [sys.executable, str(ROOT / "scripts" / "train.py"), "family", "--registry", str(registry.root), "--base",
             "tiny", "--parent", "t-parent", "--data", str(DATA / "preference" / "train.jsonl"), "--eval_data",
             str(DATA / "preference" / "heldout.jsonl"), "--max_rows", "8", "--max_steps", "1", "--max_length", "96",
             "--save_strategy", "no", "--eval_strategy", "no"]
    first = subprocess.run(train, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    family = ["family-dpo", "family-ipo", "family-kto", "family-orpo", "family-simpo"]
    assert {registry.get(n).method for n in family} == {"dpo", "ipo", "kto", "orpo", "simpo"}
    assert all(registry.get(n).card["parent"] == "t-parent" for n in family)
    again = subprocess.run(train, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert again.returncode == 0 and again.stdout.count("already in the registry, skipped") == 5

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p["prompt"]}) + "\n" for p in load_prompts(DEFAULT_PROMPTS)[:2]))
    out = tmp_path / "report"
    evaluated = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--models", "t-parent", *family,
                                "--base", "tiny", "--registry", str(registry.root), "--data-dir", str(tmp_path / "data"),
                                "--judge", "none", "--no-4bit", "--prompts", str(prompts), "--max-new-tokens", "4",
                                "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    rows = {r["model"]: r for r in json.loads((out / "metrics.json").read_text())["family"]}
    assert set(rows) == set(family) and all(r["parent"] == "t-parent" for r in rows.values())
    for row in rows.values():
        assert 0 <= row["preference_accuracy"] <= 1 and row["answer_tokens"] > 0
        assert isinstance(row["reward_margin"], float) and isinstance(row["general_perplexity_change"], float)
    assert "## The preference family side by side" in (out / "report.md").read_text()
