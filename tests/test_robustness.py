"""Nothing a user does ends in a traceback, a stuck campaign or a silent surprise: interrupted
campaign creation resumes, databases are checked before use, hostile inputs end in one line."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from evals.store import Store
from posttrain.fake_openai import FakeOpenAI

SERVED = ["ad-a", "ad-b"]  # the tiny registry's adapters, as a multi-LoRA server would serve them


def arena_cli(tmp_path, registry, *args: str, **popen) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(tmp_path / "data"),
            "--registry", str(registry.root), "--base", "tiny", *args]


def one_line(out: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert out.returncode == code, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith(("error: ", "interrupted"))]
    assert len(lines) == 1, out.stderr[-2000:]
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    return lines[0]


def wait_for(condition, timeout: float = 120.0) -> None:
    """Wait on a condition (polled), never on a clock alone; the timeout only ends a broken run."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def saved_answers(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def prompts_file(tmp_path, n: int):
    path = tmp_path / f"p{n}.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question number {i}?"}) + "\n" for i in range(n)))
    return path


def test_a_killed_campaign_creation_resumes_with_every_answer_exactly_once(tmp_path, tiny_registry):
    db = tmp_path / "data" / "arena.sqlite"
    prompts = prompts_file(tmp_path, 20)
    flags = ["--generation-backend", "openai", "--max-new-tokens", "4"]
    with FakeOpenAI(served=SERVED, answer_first=16) as stalling:  # answers two batches of 8, then never again
        creating = subprocess.Popen(arena_cli(tmp_path, tiny_registry, "campaign", "create", "k20", "--models", "ad-a",
                                              "ad-b", "--prompts", str(prompts), *flags, "--generation-base-url",
                                              stalling.url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: saved_answers(db) >= 16)
        finally:
            creating.kill()  # kill -9: no handler runs
            creating.wait()
    store = Store(db)
    assert store.campaign("k20")["status"] == "generating" and saved_answers(db) == 16
    again = subprocess.run(arena_cli(tmp_path, tiny_registry, "campaign", "create", "k20", "--models", "ad-a", "ad-b",
                                     "--prompts", str(prompts), *flags, "--generation-base-url", "http://127.0.0.1:9/v1"),
                           capture_output=True, text=True)
    one_line(again, 2, "'k20'", "campaign resume k20", "campaign delete k20", "24 still missing")
    with FakeOpenAI(served=SERVED) as server:
        resumed = subprocess.run(arena_cli(tmp_path, tiny_registry, "campaign", "resume", "k20", "--generation-backend",
                                           "openai", "--generation-base-url", server.url), capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert len(server.requests) == 24  # only the missing answers
    assert store.campaign("k20")["status"] == "ready"
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT p.prompt, a.model FROM answers a JOIN prompts p ON p.id = a.prompt_id").fetchall()
    assert len(rows) == len(set(rows)) == 40  # every (prompt, model) exactly once
    done = subprocess.run(arena_cli(tmp_path, tiny_registry, "campaign", "resume", "k20"), capture_output=True, text=True)
    assert done.returncode == 0 and "nothing to resume" in done.stdout


def test_ctrl_c_during_creation_is_one_line_and_says_how_to_resume(tmp_path, tiny_registry):
    db = tmp_path / "data" / "arena.sqlite"
    with FakeOpenAI(served=SERVED, delay=0.3) as slow:  # 160 answers in batches of 8: about 6 s, stopped after the first batch
        creating = subprocess.Popen(arena_cli(tmp_path, tiny_registry, "campaign", "create", "c80", "--models", "ad-a",
                                              "ad-b", "--prompts", str(prompts_file(tmp_path, 80)), "--max-new-tokens",
                                              "4", "--generation-backend", "openai", "--generation-base-url", slow.url),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: saved_answers(db) >= 8)
        creating.send_signal(signal.SIGINT)
        stdout, stderr = creating.communicate(timeout=120)
    line = one_line(subprocess.CompletedProcess([], creating.returncode, stdout, stderr), 130,
                    "interrupted", "campaign resume c80")
    assert "still missing" in line and Store(db).campaign("c80")["status"] == "generating"


def test_the_size_guard_refuses_before_any_model_loads(tmp_path, tiny_registry):
    out = subprocess.run(arena_cli(tmp_path, tiny_registry, "campaign", "create", "huge", "--models", "ad-a", "ad-b",
                                   "--prompts", str(prompts_file(tmp_path, 3000))), capture_output=True, text=True)
    one_line(out, 2, "needs 6000 answers", "--max-answers 5000")
    assert "6000 answers to generate (3000 prompts x 2 models)" in out.stderr and "min" in out.stderr
    assert not Store(tmp_path / "data" / "arena.sqlite").campaigns()  # nothing stored
