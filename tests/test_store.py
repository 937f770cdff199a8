"""The arena store on a real SQLite file."""

import sqlite3
from pathlib import Path

import pytest

from blindarena import operations as arena
from blindarena.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError

PROMPTS = [{"prompt": f"question {i}", "category": "math" if i % 2 else "writing"} for i in range(4)]


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "arena.sqlite")
    store.create_campaign("taste", ["m1", "m2", "m3"], PROMPTS, {"temperature": 0.7})
    rows = [(pid, model, f"{model} says {prompt}", 3, "") for pid, prompt, model in store.missing_answers("taste")]
    store.save_answers(rows)
    store.set_status("taste", "ready")
    return store


def test_campaign_has_every_pair_for_every_prompt(store):
    campaign = store.campaigns()[0]
    assert campaign["battles"] == 4 * 3 and campaign["status"] == "ready" and store.missing_answers("taste") == []
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_raters_get_each_prompt_once_with_rotating_pairs(store):
    alice, bob, cy = (arena.join(store, "taste", name) for name in ("alice", "bob", "cy"))
    assert arena.join(store, "taste", "alice") == alice  # the same name resumes
    with store.connect() as con:
        def battles(rid):
            return con.execute(
                "SELECT s.battle_id, s.a_on_left, p.position, b.model_a || '|' || b.model_b AS pair FROM assignments s "
                "JOIN battles b ON b.id = s.battle_id JOIN prompts p ON p.id = b.prompt_id WHERE s.rater_id = ? "
                "ORDER BY s.position", (rid,)).fetchall()
        mine = {rid: battles(rid) for rid in (alice, bob, cy)}
    for rows in mine.values():
        assert sorted(r["position"] for r in rows) == [0, 1, 2, 3]  # every prompt once: no revealed answer returns
    by_prompt = {}
    for rows in mine.values():
        for r in rows:
            by_prompt.setdefault(r["position"], set()).add(r["pair"])
    assert all(len(pairs) == 3 for pairs in by_prompt.values())  # three raters: the three pairs of each prompt
    assert [r["position"] for r in mine[alice]] != [0, 1, 2, 3] or [r["position"] for r in mine[bob]] != [0, 1, 2, 3]
    sides = [r["a_on_left"] for rows in mine.values() for r in rows]
    assert 4 <= sum(sides) <= 8  # each rater's pairs: half on each side, give or take one


def test_vote_reveal_resume_and_one_vote_per_battle(store):
    rater = arena.join(store, "taste", "alice")
    first = store.next_assignment(rater)
    assert (first.done, first.total) == (0, 4)  # one battle per prompt
    revealed = store.vote(rater, first.battle_id, "left", score_left=6, score_right=2)
    assert first.left.startswith(revealed["left"]) and first.right.startswith(revealed["right"])
    with pytest.raises(StoreError, match="already voted"):
        store.vote(rater, first.battle_id, "right")
    again = Store(store.path).next_assignment(rater)  # a fresh process resumes after the last vote
    assert again.battle_id != first.battle_id and again.done == 1
    (row,) = store.votes("taste")
    winner = row["model_a"] if row["winner"] == "a" else row["model_b"]
    assert winner == revealed["left"]
    scores = {row["model_a"]: row["score_a"], row["model_b"]: row["score_b"]}
    assert scores == {revealed["left"]: 6, revealed["right"]: 2}


def test_bad_votes_and_campaigns_are_refused(store):
    rater = arena.join(store, "taste", "alice")
    battle = store.next_assignment(rater).battle_id
    with pytest.raises(StoreError, match="vote must be one of"):
        store.vote(rater, battle, "A")
    with pytest.raises(StoreError, match="from 1 to 7"):
        store.vote(rater, battle, "left", score_left=9)
    with pytest.raises(StoreError, match="not assigned"):
        store.vote(rater, 10_000, "left")
    with pytest.raises(StoreError, match="already exists"):
        store.create_campaign("taste", ["m1", "m2"], PROMPTS, {})
    with pytest.raises(StoreError, match="two or more"):
        store.create_campaign("solo", ["m1", "m1"], PROMPTS, {})
    store.create_campaign("pending", ["m1", "m2"], PROMPTS, {})
    with pytest.raises(StoreError, match="not ready"):
        arena.join(store, "pending", "alice")
    with pytest.raises(StoreError, match="no campaign 'ghost'"):
        arena.join(store, "ghost", "alice")


def test_pairs_follow_decisive_votes_and_edits(store):
    rater = arena.join(store, "taste", "alice")
    choices = iter(["left", "right", "both_bad", "left"])  # the rater's four battles, one per prompt
    revealed = []
    for choice in choices:
        battle = store.next_assignment(rater)
        edited = "a better answer" if choice == "right" else None
        revealed.append((choice, battle, store.vote(rater, battle.battle_id, choice, edited=edited)))
    pairs = arena.pairs(store, "taste")
    assert len(pairs) == 3  # ties and both-bad make no pair
    first_choice, first_battle, first_names = revealed[0]
    assert pairs[0]["chosen"][0]["content"] == first_battle.left and pairs[0]["chosen_model"] == first_names["left"]
    assert pairs[0]["rejected"][0]["content"] == first_battle.right
    assert pairs[1]["chosen"][0]["content"] == "a better answer" and pairs[1]["edited"] is True
    assert pairs[1]["rejected"][0]["content"] == revealed[1][1].left
    assert all(p["prompt"][0]["role"] == "user" and p["campaign"] == "taste" and p["rater"] == "alice" for p in pairs)


SCHEMAS = sorted((Path(__file__).parent / "fixtures" / "arena_schemas").glob("*.sql"))


def test_every_earlier_schema_is_in_the_fixtures():
    """One fixture per layout blindarena/store.py ever wrote (tests/fixtures/arena_schemas/make.py made
    them from the history, up to version 1; the version-2 one was written by that version's own
    migrations; the version-3 one from the version-2 one by e8e27f3's _to_v3): ten before this
    version, the last at user_version 3."""
    assert len(SCHEMAS) == 10 and SCHEMAS[-1].name.endswith("-v3.sql")
    assert SCHEMA_VERSION == MIGRATIONS[-1][0] == len(MIGRATIONS)  # numbered 1, 2, ... with none skipped


@pytest.mark.parametrize("dump", SCHEMAS, ids=[p.stem for p in SCHEMAS])
def test_a_database_of_every_earlier_schema_migrates_in_place_and_keeps_every_vote(tmp_path, dump):
    path = tmp_path / "arena.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(dump.read_text())
        before = con.execute("SELECT battle_id, rater_id, winner, score_a, score_b, edited, comment, created_at FROM votes "
                             "ORDER BY id").fetchall()
    assert len(before) == 5
    store = Store(path)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        after = con.execute("SELECT battle_id, rater_id, winner, score_a, score_b, edited, comment, created_at FROM votes "
                            "ORDER BY id").fetchall()
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert after == before  # every vote, byte for byte
    Store(path)  # a second open finds nothing to do
    campaign = store.campaign("old")
    assert campaign.models == ["x", "y"] and campaign.settings.votes_per_battle is None
    assert campaign.settings.votes_per_minute is None  # campaigns made before the limit keep none
    votes = store.votes("old", answers=True)
    assert [(v.rater, v.winner) for v in votes] == [("ann", "a"), ("ann", "a"), ("ann", "tie"), ("bob", "b"), ("bob", "a")]
    assert votes[1].text_a == "x answers 2" and votes[1].edited == "a better answer"
    res = arena.results(store, "old", rounds=5)
    assert res["human_votes"] == 5 and res["excluded_votes"] == 0
    pairs = arena.pairs(store, "old")
    # battle 1 split 1-1, battle 3 a tie; battle 2 both for x: one row for ann's edit, one for bob's plain vote
    assert sorted((p["prompt"][0]["content"], p["chosen"][0]["content"]) for p in pairs) == [
        ("question 2", "a better answer"), ("question 2", "x answers 2")]
    bob = arena.join(store, "old", "bob")  # an old rater resumes where they stopped
    battle = arena.next_battle(store, "old", bob)
    assert battle.prompt == "question 3"
    arena.cast_vote(store, "old", bob, battle.battle_id, "left")
    new = arena.join(store, "old", "cy")  # a new rater gets the old battles
    assert arena.progress(store, "old", new) == (0, 3)
    assert len(Store(path).votes("old")) == 6


def test_a_second_process_opening_an_old_database_at_the_same_time_migrates_it_once(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "arena.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(SCHEMAS[0].read_text())
    code = "import sys; from blindarena.store import Store; Store(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=Path(__file__).parents[1]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert con.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 5


def test_reads_are_deferred_so_a_held_write_lock_does_not_block_them(store):
    """A writer holding the lock (BEGIN IMMEDIATE) mid-transaction: every read still answers from
    the last committed state (WAL), and a write waits for the lock."""
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE campaigns SET status = 'generating'")
    try:
        assert store.campaign("taste").status == "ready"  # the uncommitted change is not seen, and nothing waits
        assert len(store.battle_answers("taste")) == 12 and store.votes("taste") == []
        busy = sqlite3.connect(store.path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            busy.execute("BEGIN IMMEDIATE")  # what Store.connect() would wait on
        busy.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
