"""Votes a reviewer would trust: a votes-per-battle target held under many API raters at once,
gold checks that look like any other battle and never reach a ladder or a pair, careless raters
(random, always-left) flagged and left out while honest ones are not, a ladder controlled for
style, and a database written before all this that opens and keeps every vote."""

import json
import math
import random
import sqlite3
import threading
from collections import Counter

import pytest
from gradio_client import Client

from arena_fixtures import launch, ready_campaign
from blindarena import operations as arena
from blindarena.export import export_pairs
from blindarena.prompts import DEFAULT_PROMPTS
from blindarena.records import CampaignSettings
from blindarena.service import Arena
from blindarena.store import GOLD_CHOSEN, Store
from blindarena.style import style_ladder
from blindarena.ui import ArenaConfig

MODELS = ["m-one", "m-two", "m-three"]
GOLD = [{"prompt": f"gold question {i}", "chosen": f"GOOD answer {i}", "rejected": f"bad answer {i}"} for i in range(4)]


def test_target_holds_under_many_api_raters_and_gold_looks_like_any_battle(tmp_path, tiny_registry):
    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         quantize=False)
    store = Store(config.data_dir / "arena.sqlite")
    settings = CampaignSettings(votes_per_battle=2, gold=tuple(GOLD), gold_rate=0.25, guidelines="Prefer **correct** answers.")
    ready_campaign(store, "panel", MODELS, prompts=4, settings=settings)  # 12 battles x 2 votes = 24 places
    site = launch(config, store)
    shapes, shown_gold, problems = {}, Counter(), []

    def rate(rater: str) -> None:
        client = Client(site.url, verbose=False)
        out, endpoint = client.predict("panel", rater, "", api_name="/start"), "/start"
        if "Prefer" not in out[5]:  # (progress, prompt, A, B, reveal, guidelines, label A, label B)
            problems.append(f"{rater}: no guidelines at the start")
        while out[1]:  # the prompt is empty when the rater is done
            gold = out[1].startswith("gold question")
            shapes[(endpoint, gold)] = (len(out), tuple(type(x).__name__ for x in out))
            shown_gold[rater] += gold
            pick = "A is better" if ("GOOD" in out[2] or not gold) else "B is better"
            after = client.predict(pick, None, None, "", "", api_name="/vote")
            if gold and "quality check" not in after[4]:
                problems.append(f"{rater}: gold reveal {after[4]!r}")
            out, endpoint = client.predict(api_name="/next"), "/next"

    try:
        threads = [threading.Thread(target=rate, args=(f"rater-{i}",)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        late = Client(site.url, verbose=False).predict("panel", "latecomer", "", api_name="/start")
    finally:
        site.ui.close()
    assert not problems, problems
    # Gold and regular battles come back in the same shape from each endpoint.
    for endpoint in ("/start", "/next"):
        assert len({shape for (where, _), shape in shapes.items() if where == endpoint}) == 1, shapes
    assert any(gold for _, gold in shapes)
    assert "campaign is complete" in late[0] and not late[1]
    per_battle = Counter(v["battle_id"] for v in store.votes("panel"))
    assert len(per_battle) == 12 and set(per_battle.values()) == {2}  # every battle has its 2, none more
    assert arena.is_complete(store, "panel")
    for rater, votes in Counter(v["rater"] for v in store.votes("panel")).items():
        assert votes <= 4  # each prompt once per rater
    gold_votes = store.votes("panel", gold=True)
    assert gold_votes and sum(shown_gold.values()) == len(gold_votes)
    assert all(v["model_a"] == GOLD_CHOSEN and v["winner"] == "a" for v in gold_votes)  # picked by text, sides random
    assert {v["a_on_left"] for v in gold_votes} == {0, 1}
    res = arena.results(store, "panel", rounds=20)
    assert res["complete"] and res["human_votes"] == 24
    assert {r["model"] for r in res["bradley_terry"]} == set(MODELS) and sum(r["n"] for r in res["win_rates"]) == 24
    by_name = {r["name"]: r for r in res["raters"]}
    assert all(by_name[r]["gold_seen"] == shown_gold[r] == by_name[r]["gold_correct"] for r in shown_gold)
    out = tmp_path / "pairs.jsonl"
    export_pairs(store, "panel", out)
    text = out.read_text()
    assert "gold question" not in text and "GOOD" not in text and "__gold" not in text
    provenance = json.loads((tmp_path / "pairs.provenance.json").read_text())
    assert provenance["guidelines"] == "Prefer **correct** answers." and provenance["votes_per_battle"] == 2


def simulate(store: Store, name: str, behaviour: dict, truth, seed: int = 0) -> None:
    """Each rater votes on every battle handed to them by `behaviour[rater](left, right, rng)`."""
    for rater, choose in behaviour.items():
        rng = random.Random(f"{seed}:{rater}")
        rid = arena.join(store, name, rater)
        while (battle := arena.next_battle(store, name, rid)) is not None:
            arena.cast_vote(store, name, rid, battle.battle_id, choose(battle, truth, rng))


def honest(battle, truth, rng) -> str:
    """Picks the truly better answer 9 times in 10 (the gold's chosen, or the stronger model's)."""
    better = "left" if truth(battle.left, battle.right) else "right"
    return better if rng.random() < 0.9 else {"left": "right", "right": "left"}[better]


def test_random_and_always_left_raters_are_flagged_and_left_out_honest_ones_are_not(tmp_path):
    store = Store(tmp_path / "arena.sqlite")
    gold = [{"prompt": f"gold question {i}", "chosen": f"GOOD answer {i}", "rejected": f"bad answer {i}"} for i in range(8)]
    ready_campaign(store, "study", ["strong", "weak"], prompts=30,
                   settings=CampaignSettings(gold=tuple(gold), gold_rate=0.2))
    # The strong model's answer is better on 4 prompts in 5; the truth is read off the answer text.
    better = lambda text: "GOOD" in text or ("strong" in text and int(text.rsplit(" ", 1)[1]) % 5) or \
        ("weak" in text and not int(text.rsplit(" ", 1)[1]) % 5)
    truth = lambda left, right: bool(better(left))
    behaviour = {f"honest-{i}": honest for i in range(5)}
    behaviour["random"] = lambda battle, truth, rng: rng.choice(["left", "right", "tie"])
    behaviour["lefty"] = lambda battle, truth, rng: "left"
    simulate(store, "study", behaviour, truth)

    res = arena.results(store, "study", rounds=20)
    rows = {r["name"]: r for r in res["raters"]}
    assert rows["random"]["flagged"] and rows["lefty"]["flagged"], rows
    assert rows["lefty"]["left_share"] == 1.0 and any("left answer" in reason for reason in rows["lefty"]["reasons"])
    assert any("agreed with" in reason for reason in rows["random"]["reasons"])
    assert not any(rows[f"honest-{i}"]["flagged"] for i in range(5)), rows
    assert all(rows[f"honest-{i}"]["gold_seen"] >= 3 for i in range(5))
    assert res["excluded_raters"] == ["lefty", "random"] and res["excluded_votes"] == 60 and res["human_votes"] == 150
    assert len(store.votes("study")) == 210  # left out, never deleted
    pairs = arena.pairs(store, "study")
    assert pairs and not any(name in p["rater"] for p in pairs for name in ("lefty", "random"))
    out = tmp_path / "pairs.jsonl"
    export_pairs(store, "study", out)
    left_out = json.loads((tmp_path / "pairs.provenance.json").read_text())["excluded_raters"]
    assert {r["name"] for r in left_out} == {"lefty", "random"} and all(r["reasons"] for r in left_out)

    store.set_review("study", "random", "include")  # the admin's word beats the checks
    again = arena.results(store, "study", rounds=0)
    assert again["excluded_raters"] == ["lefty"] and again["human_votes"] == 180
    assert {r["name"]: r for r in again["raters"]}["random"]["flagged"]  # still flagged, but counted
    with pytest.raises(Exception, match="no rater 'nobody'"):
        store.set_review("study", "nobody", "include")


def test_style_control_puts_length_only_preferences_together():
    """Three models of equal quality whose answers differ only in length; the raters prefer the
    longer answer. The raw ladder separates them; the controlled one must not."""
    rng = random.Random(0)
    mean_words = {"long": 120, "mid": 50, "short": 15}
    votes = []
    for prompt in range(600):
        a, b = rng.sample(sorted(mean_words), 2)
        text = {m: " ".join(["word"] * max(1, int(mean_words[m] * rng.uniform(0.4, 1.6)))) for m in (a, b)}
        la, lb = len(text[a].split()), len(text[b].split())
        p_a = 1 / (1 + math.exp(-5 * (la - lb) / (la + lb)))
        winner = "a" if rng.random() < p_a else "b"
        votes.append({"battle_id": prompt, "question_id": prompt, "model_a": a, "model_b": b, "winner": winner,
                      "text_a": text[a], "text_b": text[b]})
    from blindarena.stats import bt_ladder

    raw = {r["model"]: r for r in bt_ladder(votes, list(mean_words), rounds=50)}
    styled = style_ladder(votes, list(mean_words), rounds=50)
    controlled = {r["model"]: r for r in styled["ladder"]}
    assert raw["long"]["ci_low"] > raw["mid"]["ci_high"] and raw["mid"]["ci_low"] > raw["short"]["ci_high"]
    spread = lambda ladder: max(r["rating"] for r in ladder.values()) - min(r["rating"] for r in ladder.values())
    assert spread(controlled) < spread(raw) / 4
    for x in controlled.values():  # every controlled interval overlaps every other
        assert all(x["ci_low"] <= y["ci_high"] and y["ci_low"] <= x["ci_high"] for y in controlled.values())
    length = styled["coefficients"]["length"]
    assert length["ci_low"] > 0  # the preference went to the length covariate
    assert all(abs(styled["coefficients"][f]["value"]) < 1e-3 for f in ("headers", "lists", "bold"))  # no such markup


OLD_SCHEMA = """
CREATE TABLE campaigns (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, models TEXT NOT NULL, params TEXT NOT NULL,
    prompt_source TEXT, status TEXT NOT NULL, created_at TEXT NOT NULL, access TEXT NOT NULL DEFAULT 'name');
CREATE TABLE prompts (id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL, position INTEGER NOT NULL, question_id TEXT,
    category TEXT, prompt TEXT NOT NULL);
CREATE TABLE answers (prompt_id INTEGER NOT NULL, model TEXT NOT NULL, text TEXT NOT NULL, new_tokens INTEGER, notice TEXT,
    PRIMARY KEY (prompt_id, model));
CREATE TABLE battles (id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL, prompt_id INTEGER NOT NULL, model_a TEXT NOT NULL,
    model_b TEXT NOT NULL);
CREATE TABLE raters (id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'human',
    created_at TEXT NOT NULL, UNIQUE (campaign_id, name));
CREATE TABLE assignments (rater_id INTEGER NOT NULL, position INTEGER NOT NULL, battle_id INTEGER NOT NULL,
    a_on_left INTEGER NOT NULL, PRIMARY KEY (rater_id, position), UNIQUE (rater_id, battle_id));
CREATE TABLE votes (id INTEGER PRIMARY KEY, battle_id INTEGER NOT NULL, rater_id INTEGER NOT NULL, a_on_left INTEGER,
    winner TEXT NOT NULL, score_a INTEGER, score_b INTEGER, edited TEXT, comment TEXT, created_at TEXT NOT NULL,
    UNIQUE (battle_id, rater_id));
CREATE TABLE invites (token TEXT PRIMARY KEY, campaign_id INTEGER NOT NULL, label TEXT NOT NULL, created_at TEXT NOT NULL,
    UNIQUE (campaign_id, label));
"""


def test_a_database_from_the_previous_version_opens_and_keeps_every_vote(tmp_path):
    path = tmp_path / "arena.sqlite"
    with sqlite3.connect(path) as con:  # as the previous release wrote it: no settings, gold or reviews
        con.executescript(OLD_SCHEMA)
        con.execute("INSERT INTO campaigns VALUES (1, 'legacy', '[\"x\", \"y\"]', '{}', 'p.jsonl', 'ready', '2026-11-01', 'name')")
        for i in range(3):
            con.execute("INSERT INTO prompts VALUES (?, 1, ?, ?, 'misc', ?)", (i + 1, i, str(i), f"old prompt {i}"))
            con.executemany("INSERT INTO answers VALUES (?, ?, ?, 3, '')", [(i + 1, m, f"{m} on {i}") for m in "xy"])
            con.execute("INSERT INTO battles VALUES (?, 1, ?, 'x', 'y')", (i + 1, i + 1))
        con.execute("INSERT INTO raters VALUES (1, 1, 'ann', 'human', '2026-11-01')")
        con.executemany("INSERT INTO assignments VALUES (1, ?, ?, ?)", [(i, i + 1, i % 2) for i in range(3)])
        con.executemany("INSERT INTO votes (battle_id, rater_id, a_on_left, winner, created_at) VALUES (?, 1, ?, ?, ?)",
                        [(1, 0, "a", "2026-11-02"), (2, 1, "b", "2026-11-02")])
    store = Store(path)
    assert [v["winner"] for v in store.votes("legacy")] == ["a", "b"]
    res = arena.results(store, "legacy", rounds=10)
    assert res["human_votes"] == 2 and res["excluded_votes"] == 0 and res["complete"] is False
    assert [r["name"] for r in res["raters"]] == ["ann"] and not res["raters"][0]["flagged"]
    assert "coefficients" in res["bradley_terry_style"]
    rid = arena.join(store, "legacy", "ann")  # the old rater resumes where they stopped
    battle = arena.next_battle(store, "legacy", rid)
    assert battle.prompt == "old prompt 2" and not battle.gold
    arena.cast_vote(store, "legacy", rid, battle.battle_id, "left")
    assert len(Store(path).votes("legacy")) == 3


def test_cli_creates_a_checked_campaign_and_results_show_the_raters(tmp_path, tiny_dir):
    import subprocess
    import sys

    from arena_fixtures import MODELS as TINY_MODELS, make_arena
    from conftest import ROOT

    config, _ = make_arena(tmp_path, tiny_dir)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(row) + "\n" for row in GOLD))
    guidelines = tmp_path / "guide.md"
    guidelines.write_text("# How to judge\n\nPrefer the answer that is **correct**. <script>alert(1)</script>\n")
    base = [sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(config.data_dir),
            "--registry", str(config.registry_dir), "--base", "tiny"]
    run = lambda *args: subprocess.run(base + list(args), capture_output=True, text=True)
    made = run("campaign", "create", "checked", "--models", *TINY_MODELS, "--prompts", str(DEFAULT_PROMPTS),
               "--max-new-tokens", "4", "--no-4bit", "--votes-per-battle", "2", "--allocation", "adaptive",
               "--gold", str(gold), "--gold-rate", "0.2", "--min-gold-accuracy", "0.8", "--guidelines", str(guidelines))
    assert made.returncode == 0, made.stderr[-2000:]
    store = Store(config.data_dir / "arena.sqlite")
    settings = store.campaign("checked")["settings"]
    assert settings["votes_per_battle"] == 2 and settings["allocation"] == "adaptive" and settings["gold_count"] == 4
    assert settings["guidelines"].startswith("# How to judge")
    rid = arena.join(store, "checked", "ann")
    for _ in range(6):
        battle = arena.next_battle(store, "checked", rid)
        arena.cast_vote(store, "checked", rid, battle.battle_id, "left")
    res = json.loads(run("results", "checked", "--json").stdout)
    assert {"raters", "excluded_votes", "complete", "bradley_terry_style"} <= set(res)
    assert set(res["bradley_terry_style"]["coefficients"]) == {"length", "headers", "lists", "bold"}
    (ann,) = res["raters"]
    assert {"name", "votes", "gold_seen", "gold_correct", "agreement", "left_share", "flagged", "reasons"} <= set(ann)
    assert ann["votes"] + ann["gold_seen"] == 6 and res["complete"] is False
    assert run("review", "checked", "ann", "exclude").returncode == 0
    assert json.loads(run("results", "checked", "--json").stdout)["excluded_votes"] == ann["votes"]
    refused = run("review", "checked", "bob", "include")
    assert refused.returncode == 2 and "no rater 'bob'" in refused.stderr
    bad = run("campaign", "create", "other", "--models", *TINY_MODELS, "--votes-per-battle", "0", "--no-4bit")
    assert bad.returncode == 2 and "votes per battle must be" in bad.stderr


def test_gold_share_is_exact_per_block_and_balanced_allocation_fills_the_least_covered():
    from blindarena.allocation import choose, gold_due, with_gold

    for seed in ("a", "b", "c"):
        due = [gold_due(k, 0.1, seed) for k in range(100)]
        assert all(sum(due[i:i + 10]) == 1 for i in range(0, 100, 10))
    assert len({tuple(gold_due(k, 0.1, s) for k in range(30)) for s in "abcdefgh"}) > 1  # places differ by rater
    order = with_gold(list(range(20)), ["g1", "g2", "g3"], 0.25, "x")
    assert [x for x in order if isinstance(x, int)] == list(range(20)) and sum(isinstance(x, str) for x in order) == 3
    candidates = [{"battle_id": 1, "model_a": "x", "model_b": "y", "claims": 1},
                  {"battle_id": 2, "model_a": "x", "model_b": "z", "claims": 0},
                  {"battle_id": 3, "model_a": "y", "model_b": "z", "claims": 0}]
    assert choose(candidates, "balanced", [], random.Random(0))["battle_id"] in (2, 3)
    # adaptive: x-vs-y already has 40 one-sided votes (a narrow interval), so it goes elsewhere
    votes = [{"model_a": "x", "model_b": "y", "winner": "a"}] * 40
    assert choose(candidates[:1] + [{**candidates[1], "claims": 5}], "adaptive", votes, random.Random(0))["battle_id"] == 2


@pytest.mark.parametrize("attack, reason, recall", [("target", "voted for model-c", 0.9), ("always_left", "left answer", 0.9),
                                                    ("contrarian", "", 0.75)])
def test_each_attack_is_caught_on_simulated_votes_and_honest_raters_are_not(attack, reason, recall):
    from blindarena.quality import rater_quality
    from blindarena.simulate import rigged_votes
    from blindarena.stats import bradley_terry

    caught = attackers_total = honest_flagged = honest_total = 0
    for seed in range(5):  # 40 raters, 4 of them attackers, 40 votes each
        votes, attackers = rigged_votes(attack, 0.10, per_rater=40, seed=seed)
        rows = {r["name"]: r for r in rater_quality(votes, [])}
        honest_flagged += sum(rows[n]["flagged"] for n in rows if n not in attackers)
        honest_total += sum(n not in attackers for n in rows)
        flagged = {n for n in attackers if rows[n]["flagged"]}
        assert all(any(reason in why for why in rows[n]["reasons"]) for n in flagged)
        caught, attackers_total = caught + len(flagged), attackers_total + len(attackers)
        kept = [v for v in votes if not rows[v["rater"]]["flagged"]]
        strength = bradley_terry(kept)
        assert max(strength, key=strength.get) == "model-d"  # the honest top after filtering
    # an honest rater can look like an attacker by chance (17 of 18 votes for the target happens: about
    # 1 campaign in 40), and since the sequential test runs at FastChat's per-rater alpha of 0.05 its
    # e-value reaches 20 for about 1 honest rater in 200 (Ville's bound is 1 in 20): at most 2% of the
    # honest raters, the bar issue 47 sets (2 of 180 in these 5 campaigns)
    assert caught / attackers_total >= recall and honest_flagged <= 0.02 * honest_total


def test_a_target_attack_changes_nothing_when_every_rater_is_honest():
    from blindarena.quality import rater_quality
    from blindarena.simulate import rigged_votes

    votes, attackers = rigged_votes("target", 0.0, per_rater=40, seed=5)
    assert not attackers and not any(r["flagged"] for r in rater_quality(votes, []))


def test_rater_checks_are_cached_on_the_vote_stamp_so_a_click_costs_the_same_at_any_size(tmp_path, monkeypatch):
    from blindarena import quality
    from blindarena.simulate import prefill

    store = Store(tmp_path / "arena.sqlite")
    rows = [{"question_id": i, "category": "misc", "prompt": f"prompt number {i}"} for i in range(800)]
    store.create_campaign("big", ["x", "y"], rows, {}, settings=CampaignSettings(votes_per_battle=3, votes_per_minute=None))
    store.save_answers([(pid, m, f"answer of {m} to {p}", 5, "") for pid, p, m in store.missing_answers("big")])
    store.set_status("big", "ready")
    assert prefill(store, "big", 2000) == 2000
    runs = []
    real = quality.rater_quality
    monkeypatch.setattr(quality, "rater_quality", lambda *a, **k: runs.append(1) or real(*a, **k))
    front = Arena(store)  # the cache is the arena object's own state
    rid = front.join("big", "ann")
    for _ in range(40):  # 40 votes with their hand-outs and progress: the checks rerun every 2000 / 100 = 20 votes
        battle = front.next_battle("big", rid)
        front.vote("big", rid, battle.battle_id, "left")
        front.progress("big", rid)
    assert len(runs) <= 3, len(runs)  # the first click computes; then once per 20 new votes
    store.set_review("big", "prefill-1", "exclude")  # a review is taken at once
    assert "prefill-1" in front.excluded_raters("big")[0]
    store.set_review("big", "prefill-1", None)
    assert "prefill-1" not in front.excluded_raters("big")[0]
    assert len(Arena(store).checks._cache) == 0  # another arena object has a cache of its own
