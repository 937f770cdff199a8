"""Arena integrity: blind across battles (no rater is ever shown an answer whose author was
revealed to them), balanced coverage of model pairs and sides, walked through the public API of a
real Gradio server by many raters at once; honest pairs (people's majority, one row per pair)."""

import json
import threading
from collections import Counter

from gradio_client import Client

from arena_fixtures import launch, ready_campaign
from blindarena import operations as arena
from blindarena.export import export_pairs
from blindarena.store import Store
from blindarena.ui import ArenaConfig

MODELS = ["m-base", "m-sft", "m-dpo"]


def test_many_raters_never_see_a_revealed_answer_and_coverage_is_balanced(tmp_path, tiny_registry):
    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         quantize=False)
    store = Store(config.data_dir / "arena.sqlite")
    ready_campaign(store, "study", MODELS, prompts=50)
    site = launch(config, store)
    problems, seen_counts = [], {}

    def rate(rater: str) -> None:
        client = Client(site.url, verbose=False)
        out = client.predict("study", rater, "", api_name="/start")
        revealed: set[str] = set()
        shown = 0
        while out[1]:  # (progress, prompt, A, B, reveal): the prompt is empty when the rater is done
            left, right = out[2], out[3]
            if {left, right} & revealed:
                problems.append(f"{rater} saw a revealed answer: {left[:30]} / {right[:30]}")
            shown += 1
            after = client.predict(["A is better", "B is better", "Tie", "Both are bad"][shown % 4], None, None, "", "",
                                   api_name="/vote")
            assert "A was" in after[4]  # the reveal
            revealed |= {left, right}
            out = client.predict(api_name="/next")
        seen_counts[rater] = shown

    try:
        threads = [threading.Thread(target=rate, args=(f"rater-{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        site.ui.close()
    assert not problems, problems[:3]
    assert seen_counts == {f"rater-{i}": 50 for i in range(6)}  # each prompt once per rater
    votes = store.votes("study")
    assert len(votes) == 300
    per_pair = Counter(tuple(sorted((v["model_a"], v["model_b"]))) for v in votes)
    assert sorted(per_pair.values()) == [100, 100, 100], per_pair  # the Latin square: exactly even
    on_left, appearances = Counter(), Counter()
    for v in votes:
        left = v["model_a"] if v["a_on_left"] else v["model_b"]
        on_left[left] += 1
        appearances.update([v["model_a"], v["model_b"]])
    for model in MODELS:
        assert abs(on_left[model] / appearances[model] - 0.5) <= 0.05, (model, on_left, appearances)


def test_pairs_are_the_peoples_majority_once_per_pair_with_counts(tmp_path):
    store = Store(tmp_path / "arena.sqlite")
    ready_campaign(store, "duel", ["x", "y"], prompts=3)
    # Each of the 2-model campaign's raters rates every prompt's one battle.
    verdicts = {"ann": ["x", "x", "x"], "bob": ["x", "y", "x"], "cy": ["y", "y", "x"], "dee": ["x", "x", "x"]}
    edits = {("dee", 2): "a rewritten answer"}
    for rater, picks in verdicts.items():
        rid = arena.join(store, "duel", rater)
        while (battle := store.next_assignment(rid)) is not None:
            position = int(battle.prompt.rsplit(" ", 1)[1])
            names = store.vote(rid, battle.battle_id, "left")  # to learn the sides, then replace below
            store_vote_as(store, rid, battle.battle_id, names, picks[position], edits.get((rater, position)))
    judge = arena.join(store, "duel", "judge:rm", role="judge")
    while (battle := store.next_assignment(judge)) is not None:
        store.vote(judge, battle.battle_id, "right")
    pairs = arena.pairs(store, "duel")
    by_prompt = {}
    for p in pairs:
        by_prompt.setdefault(p["prompt"][0]["content"], []).append(p)
    # prompt 0: x 3-1; prompt 1: 2-2 split, dropped; prompt 2: x 4-0, one rater's edit is its own pair
    (p0,) = by_prompt["prompt number 0"]
    assert p0["chosen_model"] == "x" and (p0["votes_for"], p0["votes_against"]) == (3, 1) and p0["source"] == "human"
    assert "prompt number 1" not in by_prompt and arena.split_battles(store, "duel") == 1
    plain, edited = sorted(by_prompt["prompt number 2"], key=lambda p: p["edited"])
    assert (plain["votes_for"], edited["votes_for"]) == (3, 1) and edited["chosen"][0]["content"] == "a rewritten answer"
    assert all(p["source"] == "human" for p in pairs)
    with_judge = arena.pairs(store, "duel", include_judge=True)
    assert {p["source"] for p in with_judge} == {"human", "judge"} and len(with_judge) == len(pairs) + 3
    out = tmp_path / "pairs.jsonl"
    assert export_pairs(store, "duel", out) == 3
    from datasets import load_dataset

    assert load_dataset("json", data_files=str(out), split="train").column_names[:3] == ["prompt", "chosen", "rejected"]


def store_vote_as(store: Store, rater_id: int, battle_id: int, names: dict, model: str, edited: str | None) -> None:
    """Replace the probe vote with the intended one (same rater, same battle)."""
    with store.connect() as con:
        con.execute("DELETE FROM votes WHERE rater_id = ? AND battle_id = ?", (rater_id, battle_id))
    store.vote(rater_id, battle_id, "left" if names["left"] == model else "right", edited=edited)


def test_hub_sync_snapshot_is_a_consistent_copy_even_mid_write(tmp_path):
    import sqlite3

    store = Store(tmp_path / "data" / "arena.sqlite")
    ready_campaign(store, "duel", ["x", "y"], prompts=3)
    rid = arena.join(store, "duel", "ann")
    store.vote(rid, store.next_assignment(rid).battle_id, "left")
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a vote being written right now, not committed
    writer.execute("DELETE FROM votes")
    copy = store.snapshot(tmp_path / "hub" / "arena.sqlite")
    writer.execute("ROLLBACK")
    writer.close()
    assert not list((tmp_path / "hub").glob("*-wal")) and not list((tmp_path / "hub").glob(".*"))
    assert Store(copy).votes("duel")[0]["rater"] == "ann"  # the committed state, whole


def test_public_demo_refuses_the_models_of_an_open_campaign(tmp_path, tiny_registry):
    import pytest
    from gradio_client.exceptions import AppError

    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         public_demo=True, quantize=False)
    store = Store(config.data_dir / "arena.sqlite")
    ready_campaign(store, "study", ["ad-a", "tiny"], prompts=2)
    site = launch(config, store)
    try:
        client = Client(site.url, verbose=False)
        with pytest.raises(AppError, match="open campaign"):
            client.predict("", "ad-a", "ad-b", "hello", 16, 0, 0, api_name="/side_by_side")
        with pytest.raises(AppError, match="open campaign"):
            client.predict("", "__base__", "ad-b", "hello", 16, 0, 0, api_name="/side_by_side")
        left, right, _ = client.predict("pw", "ad-a", "ad-b", "hello", 16, 0, 0, api_name="/side_by_side")  # the admin may
        assert isinstance(left, str) and isinstance(right, str)
    finally:
        site.ui.close()


def test_the_judge_rates_a_human_campaign_and_results_show_agreement(tmp_path):
    from evals.judge import judge_campaign
    from blindarena.ui import results_summary_text

    class LongerWins:  # a judge that prefers the longer answer (y's, made longer below)
        name = "longer"

        def __call__(self, prompt, left, right):
            return "left" if len(left) > len(right) else "right" if len(right) > len(left) else "tie"

    store = Store(tmp_path / "arena.sqlite")
    ready_campaign(store, "duel", ["x", "y"], prompts=4)
    with store.connect() as con:
        rows = con.execute("SELECT prompt_id, text FROM answers WHERE model = 'y'").fetchall()
        con.executemany("UPDATE answers SET text = ? WHERE prompt_id = ? AND model = 'y'",
                        [(r["text"] + " with many more words", r["prompt_id"]) for r in rows])
    for name, pick in (("ann", "y"), ("bob", "y")):
        rid = arena.join(store, "duel", name)
        while (battle := store.next_assignment(rid)) is not None:
            names = store.vote(rid, battle.battle_id, "left")
            store_vote_as(store, rid, battle.battle_id, names, pick, None)
    assert judge_campaign(store, "duel", LongerWins()) == 4
    res = arena.results(store, "duel", rounds=20)
    assert res["judge_agreement"]["battles"] == 4 and res["judge_agreement"]["agreement"] == 1.0
    assert res["rater_agreement"]["agreement"] == 1.0 and res["win_rates"][0]["more_votes_for_0.10"] > 0
    assert "Judge vs the people's majority: 1.00 agreement on 4 battles" in results_summary_text(res)
    assert res["judge_votes"] == 4 and "8 human votes counted, 4 judge votes." in results_summary_text(res)
    # a battle flagged for naming a model: neither the people's nor the judge's vote on it counts
    store.flag_battles("duel", {store.battle_ids("duel")[0]: "names a model"})
    res = arena.results(store, "duel", rounds=0)
    assert (res["human_votes"], res["judge_votes"]) == (6, 3)
    assert "6 human votes counted, 3 judge votes." in results_summary_text(res)


def test_the_judge_audit_catches_a_judge_that_picks_the_left_or_the_longer_answer(tmp_path):
    from evals.judge import judge_campaign
    from blindarena.ui import results_summary_text

    class AlwaysLeft:
        name = "lefty"

        def __call__(self, prompt, left, right):
            return "left"

    class Longer:
        name = "longer"

        def __call__(self, prompt, left, right):
            return "left" if len(left.split()) > len(right.split()) else "right"

    store = Store(tmp_path / "arena.sqlite")
    # y's answers are longer on every prompt; the people prefer x on all of them
    ready_campaign(store, "audit", ["x", "y"], prompts=6,
                   answer=lambda model, prompt: f"{model} says {prompt}" + (" and a great deal more" if model == "y" else ""))
    rid = arena.join(store, "audit", "ann")
    while (battle := store.next_assignment(rid)) is not None:
        store_vote_as(store, rid, battle.battle_id, store.vote(rid, battle.battle_id, "left"), "x", None)
    assert judge_campaign(store, "audit", AlwaysLeft()) == 6 and judge_campaign(store, "audit", Longer()) == 6
    audit = {a["judge"]: a for a in arena.results(store, "audit", rounds=0)["judge_audit"]}
    lefty, longer = audit["judge:lefty"], audit["judge:longer"]
    # picking "left" in both orders is never a mirror image: every verdict flips with the sides (all ties)
    assert (lefty["battles"], lefty["swapped"], lefty["flip_rate"]) == (6, 6, 1.0)
    assert lefty["longer_answer_share"] is None and lefty["decisive_with_lengths"] == 0
    # the length judge is consistent across orders, decisive, always for the longer answer, never with the people
    assert (longer["flip_rate"], longer["longer_answer_share"], longer["decisive_with_lengths"]) == (0.0, 1.0, 6)
    assert longer["agreement"] == 0.0 and longer["agreement_battles"] == 6
    summary = results_summary_text(arena.results(store, "audit", rounds=0))
    assert "judge:longer: flips on 0% of swaps, picks the longer answer in 100% of its decisive verdicts" in summary


def test_invite_links_are_the_only_way_in_when_on(tmp_path, tiny_registry):
    import subprocess
    import sys

    import pytest
    from gradio_client.exceptions import AppError

    from conftest import ROOT

    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         quantize=False)
    store = Store(config.data_dir / "arena.sqlite")
    ready_campaign(store, "private", ["x", "y"], prompts=2)
    ready_campaign(store, "open", ["x", "y"], prompts=2)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(config.data_dir),
                          "--registry", str(tiny_registry.root), "--base", "tiny", "invite", "private", "--n", "2",
                          "--url", "https://me-arena.hf.space/", "--json"], capture_output=True, text=True, check=True)
    links = json.loads(out.stdout)["links"]
    assert len(links) == 2 and all(link.startswith("https://me-arena.hf.space/?campaign=private&invite=") for link in links)
    token = links[0].rsplit("invite=", 1)[1]
    site = launch(config, store)
    try:
        client = Client(site.url, verbose=False)
        with pytest.raises(AppError, match="unknown invite"):
            client.predict("private", "mallory", "", "", api_name="/start")  # a typed name is not an identity
        with pytest.raises(AppError, match="unknown invite"):
            client.predict("private", "", "", "not-a-token", api_name="/start")
        started = client.predict("private", "", "", token, api_name="/start")
        assert started[1]  # a battle
        client.predict("B is better", None, None, "", "", api_name="/vote")
        again = Client(site.url, verbose=False).predict("private", "someone", "", token, api_name="/start")
        assert "battle 2 of 2" in again[0]  # the same invite resumes the same rater
        assert Client(site.url, verbose=False).predict("open", "ann", "", api_name="/start")[1]  # others: names still work
        store.set_access("open", "hf")
        with pytest.raises(AppError, match="sign in with Hugging Face"):
            client.predict("open", "ann", "", "", api_name="/start")
    finally:
        site.ui.close()
    assert [v["rater"] for v in store.votes("private")] == ["invitee-1"]



def test_cli_judge_needs_a_judge_and_says_so(tmp_path, tiny_registry):
    import subprocess
    import sys

    from conftest import ROOT

    store = Store(tmp_path / "data" / "arena.sqlite")
    ready_campaign(store, "duel", ["x", "y"], prompts=2)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(tmp_path / "data"),
                          "--registry", str(tiny_registry.root), "judge", "duel"], capture_output=True, text=True)
    assert out.returncode == 2 and "no reward entry" in out.stderr


def test_results_carry_ranks_per_category_ladders_and_the_fragility_sentence(tmp_path):
    from blindarena.ui import results_summary_text
    from blindarena.ui.results import ladder_table

    store = Store(tmp_path / "arena.sqlite")
    rows = [{"question_id": i, "category": "math" if i % 2 else "writing", "prompt": f"prompt number {i}"} for i in range(20)]
    store.create_campaign("cats", ["x", "y"], rows, {})
    store.save_answers([(pid, m, f"answer of {m} to {p}", 5, "") for pid, p, m in store.missing_answers("cats")])
    store.set_status("cats", "ready")
    for name in ("ann", "bob"):  # x wins every math prompt, y every writing prompt but one
        rid = arena.join(store, "cats", name)
        while (battle := store.next_assignment(rid)) is not None:
            number = int(battle.prompt.rsplit(" ", 1)[1])
            names = store.vote(rid, battle.battle_id, "left")
            store_vote_as(store, rid, battle.battle_id, names, "x" if number % 2 or number == 0 else "y", None)
    res = arena.results(store, "cats", rounds=50)
    assert all("rank" in r for r in res["bradley_terry"] + res["bradley_terry_style"]["ladder"])
    by_category = res["bradley_terry_by_category"]
    assert set(by_category) == {"math", "writing"}
    assert [r["model"] for r in by_category["math"]] == ["x", "y"] and [r["model"] for r in by_category["writing"]] == ["y", "x"]
    # x won every math game: a perfect record is never ranked as settled (its rating has no upper bound)
    assert [r["rank"] for r in by_category["math"]] == [None, None] and by_category["math"][0]["bound"] == "lower"
    assert "won every decisive game" in by_category["math"][0]["needs"] and "lost every" in by_category["math"][1]["needs"]
    # 22 votes for x, 18 for y: removing 5 of x's wins reverses them (4 leave them level at 18 each)
    top = res["robustness"]["top"]
    assert (top["higher"], top["lower"], top["votes_to_flip"], res["robustness"]["votes"]) == ("x", "y", 5, 40)
    assert "The top spot (x over y) rests on 5 of 40 votes" in results_summary_text(res)
    assert [row[:3] for row in ladder_table(res)][:2] == [["all votes", 1, "x"], ["all votes", 1, "y"]]
