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
from blindarena import operations as arena
from blindarena.records import CampaignSettings
from blindarena.store import Store
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
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    # a shell's background job (CI run with `&`) ignores SIGINT and its children
                                    # inherit that; Python then installs no Ctrl-C handler: give it the default back
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        wait_for(lambda: saved_answers(db) >= 8)
        creating.send_signal(signal.SIGINT)
        stdout, stderr = creating.communicate(timeout=120)
    line = one_line(subprocess.CompletedProcess([], creating.returncode, stdout, stderr), 130,
                    "interrupted", "campaign resume c80")
    assert "still missing" in line and Store(db).campaign("c80")["status"] == "generating"


def test_the_size_guard_refuses_before_any_model_loads(tmp_path, tiny_registry):
    out = subprocess.run(arena_cli(tmp_path, tiny_registry, "campaign", "create", "huge", "--models", "ad-a", "ad-b",
                                   "--prompts", str(prompts_file(tmp_path, 3000))), capture_output=True, text=True)
    line = one_line(out, 2, "needs 6000 answers (3000 prompts x 2 models, roughly", "over the limit of 5000", "--max-answers")
    assert "min of generation" in line
    assert not Store(tmp_path / "data" / "arena.sqlite").campaigns()  # nothing stored


# ---- one line for every mistake --------------------------------------------------------------------
def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.fixture()
def hostile(tmp_path, tiny_registry, tiny_dir):
    """The faulty files and folders a new user hands the command lines."""
    import shutil

    made = {"registry": str(tiny_registry.root), "dir": tmp_path}
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "cut.parquet").write_bytes(b"PAR1" + b"\x00" * 40)
    only_config = tmp_path / "only-config"
    only_config.mkdir()
    (only_config / "config.json").write_text(json.dumps({"model_type": "llama"}))
    cut = tmp_path / "cut-model"
    shutil.copytree(tiny_dir, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    recipe = (ROOT / "posttrain" / "recipes" / "sft_default.yaml").read_text()
    (tmp_path / "negative-rank.yaml").write_text(recipe + "\nlora_r: -4\n")
    (tmp_path / "a-file").write_text("not a folder")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "arena.sqlite").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    zero = tmp_path / "zero"
    zero.mkdir()
    (zero / "arena.sqlite").write_bytes(b"")
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    store = Store(tmp_path / "data" / "arena.sqlite")
    store.create_campaign("duel", ["ad-a", "ad-b"], [{"prompt": "why?"}], {})
    store.save_answers([(pid, m, f"{m} says so", 3, "") for pid, _, m in store.missing_answers("duel")])
    store.set_status("duel", "ready")
    return made


SFT = str(ROOT / "posttrain" / "recipes" / "sft_default.yaml")
HOSTILE = [  # (script, arguments with {dir} and {registry}, exit code, fragments of the one line)
    ("data.py", ["check", "{dir}/only-config"], 2, ["only-config", "not a saved `datasets` dataset"]),
    ("data.py", ["check", "{dir}/empty.parquet"], 2, ["empty.parquet", "not a readable Parquet file"]),
    ("data.py", ["check", "{dir}/cut.parquet"], 2, ["cut.parquet", "not a readable Parquet file"]),
    ("train.py", ["sft", "--config", SFT, "--registry", "{registry}", "--base", "ad-a", "--name", "n1"], 2,
     ["--base 'ad-a' is an adapter", "--base tiny --parent ad-a"]),
    ("train.py", ["sft", "--config", "{dir}/negative-rank.yaml", "--registry", "{registry}", "--base", "tiny", "--name", "n2"],
     2, ["lora_r is -4"]),
    ("train.py", ["sft", "--config", SFT, "--registry", "{registry}", "--base", "tiny", "--name", "n3", "--max_steps", "-1",
                  "--num_train_epochs", "0"], 2, ["0 steps"]),
    ("registry.py", ["--registry", "{registry}", "import", "{dir}/no-such-folder", "--name", "x"], 2,
     ["no-such-folder", "no such file or folder"]),
    ("registry.py", ["--registry", "{registry}", "import", "{dir}/cut-model", "--name", "x"], 2,
     ["model.safetensors", "cut short"]),
    ("registry.py", ["--registry", "{registry}", "import", "{dir}/only-config", "--name", "x"], 2, ["no weights"]),
    ("registry.py", ["--registry", "{registry}", "remove", "ad-a", "--data-dir", "{dir}/data"], 2,
     ["cannot remove 'ad-a'", "campaigns ['duel']", "--force"]),
    ("arena.py", ["--data-dir", "{dir}/data", "export-pairs", "duel", "--out", "/proc/x.jsonl"], 2, ["/proc/x.jsonl"]),
    ("arena.py", ["--data-dir", "{dir}/data", "export-pairs", "duel", "--out", "{dir}/full"], 2, ["not empty"]),
    ("arena.py", ["--data-dir", "{dir}/a-file", "campaign", "list"], 2, ["a-file is a file, not a folder"]),
    ("arena.py", ["--data-dir", "{dir}/zero", "campaign", "list"], 1, ["0 bytes", "--init"]),
    ("arena.py", ["--data-dir", "{dir}/data", "--registry", "{registry}", "--base", "tiny", "campaign", "create", "x",
                  "--models", "ad-a", "no-such-model"], 2, ["no entry 'no-such-model'"]),
] + [("arena.py", ["--data-dir", "{dir}/damaged", *command], 1, ["damaged/arena.sqlite", "restore it from a backup"]) for command in (
    ["campaign", "list"], ["results", "duel"], ["export-pairs", "duel", "--out", "{dir}/out.jsonl"],
    ["backup", "{dir}/copy.sqlite"], ["review", "duel", "ann", "exclude"], ["campaign", "resume", "duel"])] + [
    ("registry.py", ["--registry", "{registry}", "remove", "ad-b", "--data-dir", "{dir}/damaged"], 1, ["damaged/arena.sqlite", "restore it from a backup"])]


@pytest.mark.parametrize("name, args, code, fragments", HOSTILE, ids=[f"{h[0]} {' '.join(h[1])[:60]}" for h in HOSTILE])
def test_every_listed_mistake_ends_in_one_line(hostile, name, args, code, fragments):
    before = (hostile["dir"] / "damaged" / "arena.sqlite").read_bytes()
    out = script(name, *[a.format(**hostile) for a in args])
    one_line(out, code, *[f.format(**hostile) for f in fragments])
    assert (hostile["dir"] / "damaged" / "arena.sqlite").read_bytes() == before  # never replaced or "repaired"
    assert (hostile["dir"] / "zero" / "arena.sqlite").read_bytes() == b""
    assert (hostile["dir"] / "full" / "mine.txt").read_text() == "keep me"


def test_a_zero_byte_database_starts_an_arena_with_init_and_backup_copies_a_live_one(tmp_path):
    zero = tmp_path / "zero"
    zero.mkdir()
    (zero / "arena.sqlite").write_bytes(b"")
    out = script("arena.py", "--data-dir", str(zero), "--init", "campaign", "list", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == []
    store = Store(tmp_path / "data" / "arena.sqlite")
    store.create_campaign("c", ["x", "y"], [{"prompt": f"p{i}"} for i in range(3)], {})
    store.save_answers([(pid, m, "answer", 1, "") for pid, _, m in store.missing_answers("c")])
    store.set_status("c", "ready")
    rid = arena.join(store, "c", "ann")
    while (battle := store.next_assignment(rid)) is not None:
        store.vote(rid, battle.battle_id, "left")
    copy = tmp_path / "backups" / "arena-copy.sqlite"
    done = script("arena.py", "--data-dir", str(tmp_path / "data"), "backup", str(copy))
    assert done.returncode == 0, done.stderr
    assert len(Store(copy).votes("c")) == 3
    with sqlite3.connect(copy) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    live = script("arena.py", "--data-dir", str(tmp_path / "data"), "backup", str(tmp_path / "data" / "arena.sqlite"))
    one_line(live, 2, "is the live database itself")


def test_the_app_refuses_a_damaged_database_and_leaves_its_bytes(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "arena.sqlite").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    before = (damaged / "arena.sqlite").read_bytes()
    env = {**os.environ, "ARENA_DATA_DIR": str(damaged), "REGISTRY_DIR": str(tmp_path / "registry"), "BASE_MODEL": "none",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", "0"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "restore it from a backup" in out.stderr.splitlines()[-1]
    assert (damaged / "arena.sqlite").read_bytes() == before


def test_a_damaged_database_mid_run_is_a_sentence_for_the_rater():
    import gradio as gr

    from blindarena.ui.common import shown_to_user

    with pytest.raises(gr.Error) as raised, shown_to_user():
        raise sqlite3.DatabaseError("database disk image is malformed")
    assert "cannot be read right now" in raised.value.message and not raised.value.print_exception


# ---- refuse what would mislead ---------------------------------------------------------------------
def test_a_byte_order_mark_is_read_as_utf8(tmp_path):
    from posttrain.data import read

    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"prompt": "hi", "chosen": "a", "rejected": "b"}\n{"prompt": "yo", "chosen": "c", '
                     b'"rejected": "d"}\n')
    result = read(path)
    assert len(result.rows) == 2 and not result.skipped
    csv = tmp_path / "bom.csv"
    csv.write_bytes("\ufeffprompt,chosen,rejected\nq,a,b\n".encode("utf-8"))
    assert len(read(csv).rows) == 1


def test_removing_a_parent_is_refused_and_force_says_what_points_at_nothing(tmp_path, tiny_registry, tiny_dir):
    from conftest import make_lora

    tiny_registry.import_adapter(make_lora(tiny_dir, tmp_path / "child", seed=9), "child", base="tiny", method="dpo",
                                 parent="ad-a")
    out = script("registry.py", "--registry", str(tiny_registry.root), "remove", "ad-a", "--data-dir", str(tmp_path / "none"))
    one_line(out, 2, "parent of ['child']", "--force")
    assert "ad-a" in tiny_registry
    forced = script("registry.py", "--registry", str(tiny_registry.root), "remove", "ad-a", "--force",
                    "--data-dir", str(tmp_path / "none"))
    assert forced.returncode == 0 and "entries ['child'] (their parent)" in forced.stdout and "ad-a" not in tiny_registry


# ---- limits on what raters send ---------------------------------------------------------------------
def test_rater_names_free_text_and_pace_are_limited(tmp_path):
    from blindarena import operations as arena
    from blindarena.store import StoreError

    store = Store(tmp_path / "arena.sqlite")
    settings = CampaignSettings(max_text_chars=100, votes_per_minute=3)
    store.create_campaign("c", ["x", "y"], [{"prompt": f"p{i}"} for i in range(6)], {}, settings=settings)
    store.save_answers([(pid, m, "answer", 1, "") for pid, _, m in store.missing_answers("c")])
    store.set_status("c", "ready")
    with pytest.raises(StoreError, match="at most 64 printable characters"):
        arena.join(store, "c", "x" * 10_000)
    with pytest.raises(StoreError, match="printable"):
        arena.join(store, "c", "ann\x1b[31m")
    rid = arena.join(store, "c", "ann")
    first = arena.next_battle(store, "c", rid)
    with pytest.raises(StoreError, match="your edited has 101 characters; this campaign takes at most 100"):
        arena.cast_vote(store, "c", rid, first.battle_id, "left", edited="e" * 101)
    with pytest.raises(StoreError, match="your comment has 5000 characters"):
        arena.cast_vote(store, "c", rid, first.battle_id, "left", comment="c" * 5000)
    for _ in range(3):
        battle = arena.next_battle(store, "c", rid)
        arena.cast_vote(store, "c", rid, battle.battle_id, "left", edited="short and fine")
    battle = arena.next_battle(store, "c", rid)
    with pytest.raises(StoreError, match="3 times in the last minute"):
        arena.cast_vote(store, "c", rid, battle.battle_id, "left")
    assert len(store.votes("c")) == 3  # what was refused was not stored; what was stored stays


def test_admin_passwords_back_off_per_client_and_never_hold_back_the_right_one(tmp_path):
    import gradio as gr

    from blindarena.ui.common import ADMIN_BACKOFF_MAX_S, ADMIN_TRIES_PER_MINUTE, ArenaConfig, AttemptLog, _request, \
        check_admin, services

    svc = services(ArenaConfig(registry_dir=tmp_path / "registry", data_dir=tmp_path / "data", base="none",
                               admin_password="right"))
    now, waits = [0.0], []
    svc.admin_attempts = AttemptLog(clock=lambda: now[0], sleep=waits.append)
    client = lambda host: type("Request", (), {"client": type("Client", (), {"host": host})()})()
    _request.set(client("10.0.0.1"))
    for _ in range(ADMIN_TRIES_PER_MINUTE):
        with pytest.raises(gr.Error, match="^.wrong admin password.$"):
            check_admin(svc, "guess")
    assert waits == []  # the free tries answer at once
    for _ in range(6):
        with pytest.raises(gr.Error, match="too many wrong admin passwords from here"):
            check_admin(svc, "guess")
    assert waits == [1, 2, 4, 8, ADMIN_BACKOFF_MAX_S, ADMIN_BACKOFF_MAX_S]  # each further guess waits longer
    check_admin(svc, "right")  # the admin behind the same address (a Space's proxy) is never held back
    assert len(waits) == 6
    _request.set(client("10.0.0.2"))  # another client's guesses are not slowed
    with pytest.raises(gr.Error, match="^.wrong admin password.$"):
        check_admin(svc, "guess")
    assert len(waits) == 6
    now[0] += 61  # a minute later the first client starts afresh
    _request.set(client("10.0.0.1"))
    with pytest.raises(gr.Error, match="^.wrong admin password.$"):
        check_admin(svc, "guess")
    assert len(waits) == 6


def test_the_admin_tab_resumes_an_interrupted_campaign(tmp_path, tiny_registry):
    from blindarena.ui.campaigns import resume
    from blindarena.ui.common import ArenaConfig, services

    svc = services(ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny",
                               admin_password="pw", quantize=False))
    svc.store.create_campaign("half", ["ad-a", "ad-b"], [{"prompt": f"question {i}?"} for i in range(5)],
                              {"max_new_tokens": 4, "seed": 1})
    first = svc.store.missing_answers("half")[:4]  # as if killed after the first batch
    svc.store.save_answers([(pid, m, f"{m} early", 2, "") for pid, _, m in first])
    said = resume(svc, "pw", "half", progress=lambda *a, **k: None)
    assert "6 missing answers generated" in said and svc.store.campaign("half")["status"] == "ready"
    assert len(svc.store.answers("half")) == 10 and not svc.store.missing_answers("half")
    assert sum(a["text"].endswith("early") for a in svc.store.answers("half")) == 4  # the saved ones kept
    assert "nothing to resume" in resume(svc, "pw", "half", progress=lambda *a, **k: None)
