"""Ladders past LMArena's: ties modelled (Rao-Kupper, Davidson) and measured on held-out votes,
provisional rows that get no rank, style coefficients that say "not enough votes", and where the
battles and votes went (battle_share)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from arena_fixtures import ready_campaign
from blindarena import operations, stats, ties
from blindarena.records import CampaignSettings
from blindarena.service import Arena
from blindarena.store import Store

ROOT = Path(__file__).resolve().parents[1]
STRENGTHS = {"a": 0.6, "b": 0.2, "c": -0.1, "d": -0.7}


def two_model_votes(wins: int, losses: int, draws: int) -> list[dict]:
    outcomes = ["a"] * wins + ["b"] * losses + ["tie"] * draws
    return [{"model_a": "x", "model_b": "y", "winner": w, "question_id": i, "battle_id": i} for i, w in enumerate(outcomes)]


@pytest.mark.parametrize("method", ["rao-kupper", "davidson"])
def test_with_two_models_each_tie_model_reproduces_the_observed_shares_by_hand(method):
    """Two models: both tie models are saturated (a strength ratio and a tie parameter for three
    shares that sum to one), so the maximum-likelihood fit reproduces the observed shares exactly;
    for Davidson the parameters have a closed form: p_x / p_y = W / L and nu = T / sqrt(W L)."""
    wins, losses, draws = 30, 10, 20
    table = ties.counts(two_model_votes(wins, losses, draws), ["x", "y"])
    beta, eta = ties.fit(method, table, l2=0.0)
    prob = ties.probabilities(method, beta, eta)[0, 1]
    assert prob == pytest.approx([wins / 60, losses / 60, draws / 60], abs=1e-4)
    if method == "davidson":
        assert beta[0] - beta[1] == pytest.approx(math.log(wins / losses), abs=1e-3)
        assert math.exp(eta) == pytest.approx(draws / math.sqrt(wins * losses), abs=1e-3)


def test_simulated_votes_of_known_strengths_and_tie_rate_are_recovered_and_ties_predicted_better():
    votes = ties.simulate(STRENGTHS, 4000, tie_rate=0.3, seed=3)
    assert ties.rates(votes)["tie_rate"] == pytest.approx(0.3, abs=0.04)
    beta, eta = ties.fit("davidson", ties.counts(votes, list(STRENGTHS)))
    assert np.abs(beta - np.array(list(STRENGTHS.values()))).max() < 0.12
    assert math.exp(eta) == pytest.approx(2 * 0.3 / 0.7, rel=0.15)  # nu that ties evenly matched models 30% of the time
    ladder = ties.tie_ladder(votes, list(STRENGTHS), "rao-kupper", rounds=20)
    assert [row["model"] for row in ladder["ladder"]] == ["a", "b", "c", "d"] and ladder["tie_parameter"]["theta"] > 1
    held = ties.heldout(votes, list(STRENGTHS))
    assert held["heldout"] == 800 and set(held["by_model"]) == set(STRENGTHS)
    assert all(set(scores) == set(ties.TIE_MODELS) for scores in held["by_model"].values())
    # A tie model knows that evenly matched models tie more often; "half" ties everyone at one rate.
    # On held-out votes of models far apart that shows in the log-loss (mean of four seeded draws).
    wide = {"a": 1.2, "b": 0.4, "c": -0.2, "d": -1.4}
    losses = [ties.heldout(ties.simulate(wide, 4000, 0.3, seed=k), list(wide), seed=k)["log_loss"] for k in range(4)]
    mean = {m: np.mean([loss[m] for loss in losses]) for m in ties.TIE_MODELS}
    assert mean["davidson"] < mean["half"] - 0.005 and mean["rao-kupper"] < mean["half"] - 0.005, mean


def test_a_campaign_of_twelve_votes_ranks_nobody_and_says_how_many_votes_each_row_needs(tmp_path):
    store = Store(tmp_path / "arena.sqlite")
    ready_campaign(store, "tiny-vote", ["m1", "m2", "m3"], prompts=4)
    arena = Arena(store)
    for k in range(3):  # each rater gets each of the 4 prompts once: 12 votes
        rater = arena.join("tiny-vote", f"rater{k}")
        while (battle := arena.next_battle("tiny-vote", rater)) is not None:
            arena.vote("tiny-vote", rater, battle.battle_id, "left")
    res = arena.results("tiny-vote", rounds=20)
    assert res["human_votes"] == 12 and res["provisional_rule"] == {"min_decisive_games": 10, "max_interval_elo": 400.0}
    for ladder in [res["bradley_terry"], res["bradley_terry_style"]["ladder"], res["ties"]["ladder"],
                   *res["bradley_terry_by_category"].values()]:
        assert all(row["provisional"] and row["rank"] is None and "a rank needs" in row["needs"]
                   and row["more_votes"] >= 1 for row in ladder), ladder
    assert not any(c["enough_votes"] for c in res["bradley_terry_style"]["coefficients"].values())
    shares = res["battle_share"]
    assert sum(s["battle_share"] for s in shares) == pytest.approx(1.0, abs=1e-3) and sum(s["vote_share"] for s in shares) == pytest.approx(1.0, abs=1e-3)
    assert {s["model"]: s["battles"] for s in shares} == {"m1": 8, "m2": 8, "m3": 8}  # 12 battles, each of two models
    assert res["allocation_policy"]["allocation"] == CampaignSettings().allocation


def test_enough_decisive_games_rank_every_row_and_a_thin_model_alone_stays_provisional():
    votes = ties.simulate(STRENGTHS, 600, tie_rate=0.2, seed=1)
    votes += [{"model_a": "newcomer", "model_b": "a", "winner": "a", "question_id": 10_000, "battle_id": 10_000}]
    ladder = stats.provisional(stats.bt_ladder(votes, rounds=50), votes)
    rows = {row["model"]: row for row in ladder}
    assert rows["newcomer"]["provisional"] and rows["newcomer"]["rank"] is None and rows["newcomer"]["decisive_games"] == 1
    assert rows["newcomer"]["more_votes"] >= 9
    assert all(not rows[m]["provisional"] and rows[m]["rank"] >= 1 for m in STRENGTHS)
    assert rows["a"]["rank"] == 1  # ranked among the settled rows only
    loose = stats.provisional(stats.bt_ladder(votes, rounds=50), votes, min_games=0, max_width=1e9)
    assert [row["model"] for row in loose if row["provisional"]] == ["newcomer"]  # 1-0: a perfect record, whatever the rule


def test_results_command_takes_the_tie_model_and_the_provisional_rule_as_flags(tmp_path):
    store = Store(tmp_path / "data" / "arena.sqlite")
    ready_campaign(store, "flags", ["m1", "m2"], prompts=3)
    arena = Arena(store)
    rater = arena.join("flags", "ann")
    for choice in ("left", "tie", "both_bad"):
        arena.vote("flags", rater, arena.next_battle("flags", rater).battle_id, choice)
    run = lambda *flags: subprocess.run([sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(tmp_path / "data"),
                                         "--registry", str(tmp_path / "registry"), "results", "flags", *flags],
                                        capture_output=True, text=True)
    out = run("--ties", "davidson", "--min-games", "0", "--max-interval", "100000", "--json")
    res = json.loads(out.stdout)
    assert res["ties"]["model"] == "davidson" and res["ties"]["tie_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert res["ties"]["both_bad_rate"] == pytest.approx(1 / 3, abs=1e-3) and "nu" in res["ties"]["tie_parameter"]
    # one decisive vote: one model won every decisive game and the other lost every one, whatever the rule
    assert all(row["provisional"] and "every decisive game" in row["needs"] for row in res["bradley_terry"])
    text = run().stdout
    assert "prov" in text and "a rank needs" in text and "ties 67% of 3 votes" in text
    refused = run("--max-interval", "0")
    assert refused.returncode == 2 and refused.stderr.startswith("error: --min-games") and "Traceback" not in refused.stderr


def test_results_with_ties_modelled_keep_the_half_ladder_as_the_main_one(tmp_path):
    store = Store(tmp_path / "arena.sqlite")
    ready_campaign(store, "same", ["m1", "m2"], prompts=2)
    half = operations.results(store, "same", rounds=0)
    modelled = operations.results(store, "same", rounds=0, ties="rao-kupper")
    assert half["bradley_terry"] == modelled["bradley_terry"] and half["ties"]["model"] == "half"
    assert modelled["ties"]["model"] == "rao-kupper"


def test_the_sequential_e_value_test_catches_contrarians_and_spares_honest_raters():
    from blindarena import quality, simulate

    votes, attackers = simulate.rigged_votes("contrarian", 0.10, per_rater=40, seed=1000)
    rows = {r["name"]: r for r in quality.rater_quality(votes, [])}
    caught = {name for name, r in rows.items() if "sequential" in r["checks"]}
    assert caught == attackers and len(attackers) == 4
    assert all(reason.startswith("sequential test: e-value") for name in caught for reason in rows[name]["reasons"]
               if quality.check_of(reason) == "sequential")
    honest, _ = simulate.rigged_votes("contrarian", 0.0, per_rater=40, seed=1001)
    assert not any("sequential" in r["checks"] for r in quality.rater_quality(honest, []))


def test_topics_are_found_named_and_laddered_for_prompts_without_a_category(tmp_path):
    from blindarena import plots

    groups = {"recipe": ["How do I bake sourdough bread with a crisp crust?", "What spices go into a curry sauce?",
                         "How long should I roast a chicken in the oven?", "Give me a recipe for tomato soup with basil.",
                         "How do I make fresh pasta dough by hand?", "What is the best way to caramelize onions?",
                         "How do I bake chocolate chip cookies that stay soft?", "Suggest a vegetarian lasagna recipe."],
              "python": ["How do I reverse a list in Python?", "Explain Python decorators with an example.",
                         "How do I read a CSV file in Python with pandas?", "What is a Python generator and yield?",
                         "How do I fix a Python ImportError for a local module?", "Write a Python function to sort a dict by value.",
                         "How do Python virtual environments work?", "What does the Python GIL do to threads?"],
              "football": ["Who won the football World Cup in 2010?", "Explain the offside rule in football.",
                           "How many players are on a football team on the pitch?", "What is a hat-trick in football?",
                           "Which football club has won the most Champions League titles?", "How long is a football match?",
                           "What does a football goalkeeper do?", "Why do football teams use a 4-4-2 formation?"]}
    store = Store(tmp_path / "arena.sqlite")
    prompts = [{"prompt": p} for texts in groups.values() for p in texts]  # no category
    store.create_campaign("topical", ["m1", "m2"], prompts, {}, settings=CampaignSettings(votes_per_minute=10_000))
    store.save_answers([(pid, m, f"{m} on {p}", 3, "") for pid, p, m in store.missing_answers("topical")])
    store.set_status("topical", "ready")
    arena, rng = Arena(store), np.random.default_rng(0)
    for k in range(3):
        rater = arena.join("topical", f"rater{k}")
        while (battle := arena.next_battle("topical", rater)) is not None:
            arena.vote("topical", rater, battle.battle_id, str(rng.choice(["left", "right", "tie"])))
    res = arena.results("topical", rounds=10, topics=True)
    assert res["human_votes"] == 72
    found = res["topics"]
    assert len(found["topics"]) == 3 and found["unclustered"] <= 3, found["topics"]
    named = " | ".join(t["name"] for t in found["topics"])
    assert all(any(word in named for word in words) for words in (("bake", "recipe", "sauce", "roast", "pasta"),
                                                                  ("python",), ("football",))), named
    assert len(found["map"]) == 24 and set(found["ladders"]) <= {t["name"] for t in found["topics"]}
    assert all(row.get("provisional") is not None for rows in found["ladders"].values() for row in rows)
    assert len(plots.topic_map(res).data) >= 3
    assert arena.results("topical", rounds=0)["topics"] is None  # only when asked (the Results tab asks for uncategorised prompts)


def perfect_record(wins: int = 12):
    """600 ordinary votes among five models, then a newcomer that won all `wins` of its games."""
    votes = ties.simulate({"a": 1.0, "b": 0.5, "c": 0.0, "d": -0.5, "e": -1.0}, 600, tie_rate=0.2, seed=3)
    opponents = "abcde"
    votes += [{"model_a": "star", "model_b": opponents[k % 5], "winner": "a", "question_id": 20_000 + k, "battle_id": 20_000 + k}
              for k in range(wins)]
    return votes


def test_a_perfect_record_is_provisional_a_lower_bound_and_drags_nobody():
    votes = perfect_record()
    rows = {r["model"]: r for r in stats.provisional(stats.bt_ladder(votes, rounds=100), votes)}
    star = rows["star"]
    assert star["provisional"] and star["rank"] is None and star["bound"] == "lower"  # whatever its interval
    assert "won every decisive game: its rating has no upper bound yet" in star["needs"] and "one decisive loss" in star["needs"]
    assert star["decisive_games"] == 12 and star["more_votes"] == 1
    without = {r["model"]: r for r in stats.bt_ladder(votes[:600], rounds=0)}
    for model in "abcde":  # centred on the identified models: the newcomer moves nobody by more than its games do
        assert abs(rows[model]["rating"] - without[model]["rating"]) < 40, (model, rows[model]["rating"], without[model]["rating"])
        assert not rows[model]["provisional"]
    assert rows["a"]["rank"] == 1
    loser = [dict(v, winner="b") if v["model_a"] == "star" else v for v in votes]
    row = next(r for r in stats.provisional(stats.bt_ladder(loser, rounds=50), loser) if r["model"] == "star")
    assert row["bound"] == "upper" and "lost every decisive game" in row["needs"] and "one decisive win" in row["needs"]


def test_half_predicts_its_own_models_win_chance_and_wins_on_its_own_data():
    t, truth = 0.3, 0.617  # a true P(a wins) of 0.617 at a 30% tie rate
    d = math.log((truth + t / 2) / (1 - truth - t / 2))  # the half-tie fit's strengths: sigma(d) = P(win) + t / 2
    win, loss, tie = ties.probabilities("half", np.array([d, 0.0]), 0.0, t)[0, 1]
    assert win == pytest.approx(truth, abs=1e-9) and tie == pytest.approx(t) and loss == pytest.approx(1 - t - truth)
    assert ties.half_win(50.0, t) == pytest.approx(1 - t) and ties.half_win(-50.0, t) == 0.0  # clipped into [0, 1 - t]
    strengths = {"a": 1.2, "b": 0.4, "c": -0.2, "d": -1.4}
    losses = {m: [] for m in ties.TIE_MODELS}
    for seed in range(4):
        held = ties.heldout(ties.simulate(strengths, 3000, t, seed=seed, method="half"), list(strengths), seed=seed)
        for m in losses:
            losses[m].append(held["log_loss"][m])
    mean = {m: float(np.mean(v)) for m, v in losses.items()}
    assert mean["half"] < mean["davidson"] and mean["half"] < mean["rao-kupper"], mean


def test_the_sequential_test_catches_contrarians_at_fastchats_operating_point():
    """The issue's simulation: 6 models, 30% ties, 200 honest raters with 30 votes, 5 contrarians (and 5
    careless, 5 always-left raters) with 40 votes, 4 campaigns; the consensus recomputed without the
    flagged raters until nothing changes, as rater_quality does."""
    from blindarena import quality, simulate

    caught = honest_flagged = honest_total = 0
    for seed in range(4):
        votes, kinds = simulate.outlier_votes(40, honest=200, seed=seed)
        flagged: set = set()
        for _ in range(10):
            now = set(quality._sequential(votes, flagged))
            if now == flagged:
                break
            flagged = now
        caught += sum(kinds[name] == "contrarian" for name in flagged)
        honest_flagged += sum(kinds[name] == "honest" for name in flagged)
        honest_total += sum(kind == "honest" for kind in kinds.values())
    assert caught >= 15 and honest_flagged <= 0.02 * honest_total, (caught, honest_flagged, honest_total)
    assert quality.EVALUE_ALPHA == 0.05 and quality.MIN_SEQUENTIAL == 5 and quality.MAX_SEQUENTIAL == 100


def test_the_sequential_test_flags_no_more_than_alpha_of_honest_raters_over_many_seeds():
    from blindarena import quality, simulate

    flagged = total = 0
    for seed in range(20):
        votes, _ = simulate.outlier_votes(0, honest=40, honest_votes=30, bad_each=0, seed=100 + seed)
        found = quality._sequential(votes)
        flagged, total = flagged + len(found), total + 40
    assert flagged <= quality.EVALUE_ALPHA * total, (flagged, total)


def test_a_rater_reads_only_their_first_hundred_votes_and_needs_five():
    from blindarena import quality, simulate

    votes, kinds = simulate.outlier_votes(4, honest=30, bad_each=1, seed=7)  # 0.5 apart: a contrarian is plain to see
    assert not any(kinds[name] != "honest" for name in quality._sequential(votes))  # 4 votes: not tested
    votes, kinds = simulate.outlier_votes(150, honest=30, bad_each=1, seed=7)
    reason = quality._sequential(votes)["contrarian-0"]
    assert "over 100 votes" in reason


def test_intervals_are_order_statistics_and_clusters_keep_their_key_spaces():
    samples = list(range(1, 201))  # R = 200: the 5th and the 196th smallest, no interpolation
    assert stats.percentile_interval(samples, 0.0) == (5, 196)
    assert stats.percentile_interval([3.5], 0.0) == (3.5, 3.5) and stats.percentile_interval([], 2.0) == (2.0, 2.0)
    assert stats.prompt_of({"question_id": 0, "battle_id": 9}) == ("question", 0)  # a question id of 0 is a question
    assert stats.prompt_of({"question_id": None, "battle_id": 7}) != stats.prompt_of({"question_id": 7, "battle_id": 1})
    d = stats.design([{"model_a": "x", "model_b": "y", "winner": "a", "question_id": 0, "battle_id": 5},
                      {"model_a": "x", "model_b": "y", "winner": "b", "question_id": None, "battle_id": 0},
                      {"model_a": "x", "model_b": "y", "winner": "a", "question_id": 0, "battle_id": 6}], ["x", "y"])
    assert d.cluster.tolist() == [0, 1, 0]


def test_a_fit_that_does_not_converge_says_so(caplog, monkeypatch):
    from scipy.optimize import OptimizeResult

    import blindarena.stats as module

    votes = ties.simulate(STRENGTHS, 60, tie_rate=0.2, seed=2)
    d = stats.design(votes, sorted(STRENGTHS))
    monkeypatch.setattr(module, "minimize", lambda fun, x0, **kw: OptimizeResult(
        x=np.asarray(x0, dtype=float), success=False, message="ABNORMAL", jac=fun(np.asarray(x0, dtype=float))[1], nit=1))
    with caplog.at_level("WARNING", logger="blindarena.stats"):
        stats.bt_fit(d)
    assert "did not converge" in caplog.text
