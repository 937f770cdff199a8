"""The arena store on a real SQLite file."""

import sqlite3

import pytest

from evals import arena
from evals.store import Store, StoreError

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
    alice, bob, cy = (store.rater("taste", name) for name in ("alice", "bob", "cy"))
    assert store.rater("taste", "alice") == alice  # the same name resumes
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
    rater = store.rater("taste", "alice")
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
    rater = store.rater("taste", "alice")
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
        store.rater("pending", "alice")
    with pytest.raises(StoreError, match="no campaign 'ghost'"):
        store.rater("ghost", "alice")


def test_pairs_follow_decisive_votes_and_edits(store):
    rater = store.rater("taste", "alice")
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
