"""The instruction-data builder: planted duplicates, refusals and an eval-prompt copy are caught,
the funnel adds up, and the result trains with train.py sft unchanged."""

import json
import random
import zlib

import numpy as np

from conftest import ROOT
from posttrain.synth import clean, generate
from posttrain.synth.build import BuildConfig, build, read_seeds

SEEDS = ROOT / "data" / "synth" / "seeds.jsonl"
EVAL_COPY = "Explain how a rainbow forms."  # one of the 50 held-out prompts


class CannedTeacher:
    """Replies as a teacher would, with planted problems among them."""

    name = "canned"

    def __init__(self):
        self.calls = 0

    def complete(self, prompts, seed):
        replies = []
        for i in range(len(prompts)):
            k = self.calls
            self.calls += 1
            plant = k % 8
            if plant == 0:
                replies.append("Instruction: How do I keep pasta from sticking together?\nInput:\nOutput: Stir it well "
                               "during the first two minutes and use plenty of water.")  # repeated: duplicates
            elif plant == 1:
                replies.append("Instruction: How can I keep pasta from sticking together?\nInput:\nOutput: Stir it in the "
                               "first minutes and use lots of water.")  # a paraphrase: embedding duplicate
            elif plant == 2:
                replies.append(f"Instruction: {EVAL_COPY}\nInput:\nOutput: Sunlight bends in raindrops.")
            elif plant == 3:
                replies.append("Instruction: Write a recipe for soup number seven.\nOutput: I'm sorry, as an AI I cannot cook.")
            elif plant == 4:
                replies.append("no task here at all")
            else:
                replies.append(f"Instruction: Give cooking tip number {k} about {['rice', 'eggs', 'bread', 'fish'][k % 4]} "
                               f"for a cook who has {k} minutes.\nInput:\nOutput: Use tip {k}: keep the heat steady, taste "
                               f"as you go and write down what worked on day {k}.")
        return replies


class HashEmbedder:
    """Deterministic stand-in for MiniLM in unit tests: bag of content words (longer than three
    letters), normalised. Paraphrases with the same content words land together. (A stable hash:
    Python's hash() is salted per process.)"""

    def __call__(self, texts):
        out = np.zeros((len(texts), 512), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in clean.words(text):
                if len(word) > 3:
                    out[i, zlib.crc32(word.rstrip("s").encode()) % 512] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_parse_and_prompts():
    assert generate.parse("Instruction: A\nInput: B\nOutput: C\nInstruction: D") == {"instruction": "A", "input": "B", "output": "C"}
    assert generate.parse("Boil water.\nOutput: Done.") == {"instruction": "Boil water.", "input": "", "output": "Done."}
    assert generate.parse("Instructions: Halve it.\nAnswer: Done.") == {"instruction": "Halve it.", "input": "", "output": "Done."}
    assert generate.parse("nothing useful") is None
    seeds = read_seeds(SEEDS)
    assert len(seeds) == 50
    prompt = generate.make_prompt("self-instruct", seeds, random.Random(0))
    assert prompt.count("Instruction:") == 3


def test_filters_name_their_reason():
    t = clean.Thresholds()
    ok = {"instruction": "How do I boil an egg?", "input": "", "output": "Boil it for six minutes and cool it in water."}
    assert clean.filter_reason(ok, t) is None
    assert clean.filter_reason({**ok, "output": "As an AI language model I cannot help."}, t) == "refusal or boilerplate"
    assert clean.filter_reason({**ok, "output": "Das Ei wird sechs Minuten gekocht und dann abgekühlt, fertig."}, t) == "language: not English"
    assert clean.filter_reason({**ok, "output": "boil the egg " * 12}, t) == "repetition: output repeats itself"
    assert clean.filter_reason({**ok, "instruction": "Hi"}, t).startswith("length")
    assert clean.filter_reason({**ok, "output": ok["instruction"]}, t).startswith("malformed")


def test_build_catches_planted_rows_and_the_funnel_adds_up(tmp_path):
    config = BuildConfig(seeds=str(SEEDS), out=str(tmp_path / "build"), n=40, batch=8,
                         eval_files=[str(ROOT / "data" / "heldout_prompts.jsonl")])
    summary = build(config, CannedTeacher(), embedder=HashEmbedder())
    f = summary["funnel"]
    d = f["dropped"]
    assert f["generated"] == 40 and f["parsed"] == 40 - d["parse"] == 35
    assert f["after_filters"] == f["parsed"] - d["filter"]
    assert f["after_minhash"] == f["after_filters"] + f["seeds"] - d["dedup-minhash"]
    assert f["after_embedding"] == f["after_minhash"] - d["dedup-embedding"]
    assert f["final"] == f["after_embedding"] - d["contamination"]
    dropped = [json.loads(line) for line in (tmp_path / "build" / "dropped.jsonl").read_text().splitlines()]
    final = [json.loads(line) for line in (tmp_path / "build" / "data.jsonl").read_text().splitlines()]
    texts = [r["instruction"] for r in final]
    assert texts.count("How do I keep pasta from sticking together?") == 1  # 5 planted copies, 1 kept
    assert "How can I keep pasta from sticking together?" not in texts  # a paraphrase: embedding duplicate
    assert any(r["stage"] == "dedup-embedding" and r["instruction"].startswith("How can I keep") for r in dropped)
    assert EVAL_COPY not in texts and any(r["stage"] == "contamination" and EVAL_COPY in r["instruction"] for r in dropped)
    assert all(r["reason"] for r in dropped) and d["filter"] >= 5 and d["parse"] == 5
    assert len(final) == f["final"] and set(final[0]) == {"instruction", "input", "output"}
    report = (tmp_path / "build" / "report.html").read_text()
    assert "Random sample for manual rating" in report and "near duplicates" in report
    config_saved = json.loads((tmp_path / "build" / "config.json").read_text())
    assert config_saved["hashes"]["seeds"].startswith("sha256:") and config_saved["config"]["teacher"] == "canned"
    # A rerun resumes: nothing new is asked of the teacher.
    again = CannedTeacher()
    assert build(config, again, embedder=HashEmbedder())["funnel"] == f and again.calls == 0


def test_minilm_catches_a_paraphrase_and_an_eval_copy():
    embedder = clean.Embedder()
    rows = [{"instruction": "How long should I boil an egg?", "input": "", "output": "x"},
            {"instruction": "For how long do I boil an egg?", "input": "", "output": "x"},
            {"instruction": "Write a Python function for the factorial of a number", "input": "", "output": "x"}]
    vectors = embedder([clean.text_of(r) for r in rows])
    result = clean.embedding_dedup(rows, vectors, clean.Thresholds())
    assert result.kept == [0, 2] and 1 in result.dropped
    evals = ["Write a Python function that returns the factorial of n."]
    found = clean.contamination(rows, vectors, evals, embedder(evals), clean.Thresholds())
    assert list(found) == [2]


def test_built_data_trains_with_sft(tmp_path, tiny_registry):
    from trl import ModelConfig, SFTConfig

    from posttrain.train import RunArguments, run

    config = BuildConfig(seeds=str(SEEDS), out=str(tmp_path / "build"), n=16, batch=8)
    build(config, CannedTeacher(), embedder=HashEmbedder())
    entry = run("sft", RunArguments(name="t-synth", base="tiny", data=str(tmp_path / "build" / "data.jsonl"),
                                    registry=str(tiny_registry.root)),
                SFTConfig(output_dir=str(tmp_path / "runs"), use_cpu=True, bf16=False, report_to="none", max_steps=2,
                          per_device_train_batch_size=4, save_strategy="no", max_length=96), ModelConfig(lora_r=4))
    assert entry.card["dataset_format"] == "alpaca" and entry.card["train_rows"] > 0


def test_local_teacher_runs_on_the_engine(tiny_registry, tmp_path):
    from posttrain.engine import Engine
    from posttrain.synth.teacher import LocalTeacher

    teacher = LocalTeacher(Engine(tiny_registry, "tiny", quantize=False), "ad-a", max_new_tokens=6, batch_size=4)
    rows = generate.generate(teacher, read_seeds(SEEDS), 6, tmp_path / "raw.jsonl", batch=4)
    assert len(rows) == 6 and all(isinstance(r["reply"], str) for r in rows)
    assert len((tmp_path / "raw.jsonl").read_text().splitlines()) == 6


def test_api_teacher_caches_so_a_rerun_does_not_pay_twice(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from posttrain.synth.teacher import OpenAITeacher

    calls = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(body)
            # The reply is read off the request, not its arrival order: the client sends concurrently.
            prompt = body["messages"][-1]["content"]
            reply = {"choices": [{"message": {"content": f"Instruction: task {prompt}\nOutput: answer"}}]}
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(reply).encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        first = OpenAITeacher(url, "fake", cache=tmp_path / "cache.sqlite", requests_per_minute=6000).complete(["a", "b"], seed=1)
        again = OpenAITeacher(url, "fake", cache=tmp_path / "cache.sqlite", requests_per_minute=6000).complete(["a", "b"], seed=1)
        assert first == again == ["Instruction: task a\nOutput: answer", "Instruction: task b\nOutput: answer"]
        assert len(calls) == 2  # the rerun was served from the cache
        assert {c["model"] for c in calls} == {"fake"} and sorted(c["messages"][0]["content"] for c in calls) == ["a", "b"]
    finally:
        server.shutdown()


def test_constitutional_pairs_from_a_fake_teacher_train_with_plain_dpo(tiny_registry, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT
    from posttrain.fake_openai import FakeOpenAI
    from posttrain.synth.constitutional import load_constitution

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["How do I boil an egg?", "Name a planet.",
                                                                             "Why is the sea salty?"]))
    constitution = ROOT / "data" / "constitution.md"
    out = tmp_path / "cai" / "pairs.jsonl"
    with FakeOpenAI() as teacher:
        env = {**os.environ, "TEACHER_BASE_URL": teacher.url, "TEACHER_MODEL": "critic"}
        made = subprocess.run([sys.executable, str(ROOT / "scripts" / "synth.py"), "constitutional", "--prompts", str(prompts),
                               "--constitution", str(constitution), "--out", str(out), "--model", "ad-a", "--base", "tiny",
                               "--registry", str(tiny_registry.root), "--no-4bit", "--max-new-tokens", "6"],
                              capture_output=True, text=True, env=env, timeout=600)
        assert made.returncode == 0, made.stderr[-3000:]
        bodies = [body for _, _, body in teacher.requests]
    counts = json.loads(made.stdout.strip().splitlines()[-1])
    assert counts == {"prompts": 3, "pairs": 3, "unchanged": 0, "principles": 5, "answered_by": "ad-a", "out": str(out)}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    principles = load_constitution(constitution)
    for row in rows:
        assert row["principle"] in principles
        assert row["chosen"][0]["content"].startswith("[critic] reply to: Rewrite the assistant's last response")
        revision_request = next(b["messages"] for b in bodies if b["messages"][-1]["content"].startswith("Rewrite")
                                and b["messages"][0]["content"] == row["prompt"][0]["content"])
        # the teacher revised the model's own answer, after its critique of it
        assert revision_request[1] == {"role": "assistant", "content": row["rejected"][0]["content"]}
        assert revision_request[3] == {"role": "assistant", "content": row["critique"]}
    trained = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "dpo", "--config",
                              str(ROOT / "posttrain" / "recipes" / "dpo_default.yaml"), "--name", "t-cai", "--base", "tiny",
                              "--parent", "ad-a", "--registry", str(tiny_registry.root), "--data", str(out), "--eval_data",
                              str(out), "--max_steps", "1", "--output_dir", str(tmp_path / "runs"), "--max_length", "96",
                              "--save_strategy", "no", "--eval_strategy", "no"], capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert tiny_registry.get("t-cai").card["dataset_format"] == "preference"
