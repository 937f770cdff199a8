"""Rating math against hand computations and simulations."""

import math
import random

import pytest

from blindarena import stats


def vote(a, b, winner, a_on_left=1, battle_id=0, category=None, rater=None):
    return {"model_a": a, "model_b": b, "winner": winner, "a_on_left": a_on_left, "battle_id": battle_id,
            "category": category, **({"rater": rater} if rater else {})}


def test_wilson_matches_hand_computation():
    # 8 of 10: p=0.8, z=1.96 -> centre (0.8 + 0.19208) / 1.38416, half 1.96/1.38416*sqrt(0.016 + 0.0096040)
    low, high = stats.wilson(8, 10)
    z = stats.Z95
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    assert stats.wilson(0, 5)[0] == 0.0 and stats.wilson(5, 5)[1] == 1.0


def test_win_rates_on_known_outcomes_count_ties_half():
    votes = [vote("x", "y", "a")] * 6 + [vote("x", "y", "b")] * 2 + [vote("y", "x", "tie")] * 2
    (row,) = stats.win_rates(votes)
    assert (row["model"], row["opponent"], row["wins"], row["losses"], row["ties"], row["n"]) == ("x", "y", 6, 2, 2, 10)
    assert row["win_rate"] == pytest.approx(0.7)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(stats.wilson(7, 10))


def test_bradley_terry_recovers_known_strengths():
    rng = random.Random(1)
    truth = {"m0": 0.0, "m1": 0.7, "m2": 1.4}
    votes = []
    for _ in range(3000):
        a, b = rng.sample(sorted(truth), 2)
        p_a = 1 / (1 + math.exp(truth[b] - truth[a]))
        votes.append(vote(a, b, "a" if rng.random() < p_a else "b"))
    fitted = stats.bradley_terry(votes)
    centre = sum(truth.values()) / 3
    for model, value in truth.items():
        assert fitted[model] == pytest.approx(value - centre, abs=0.12)
    ladder = stats.bt_ladder(votes, rounds=50)
    assert [r["model"] for r in ladder] == ["m2", "m1", "m0"]
    for row in ladder:
        true_elo = stats.elo(truth[row["model"]] - centre)
        assert row["ci_low"] - 25 <= true_elo <= row["ci_high"] + 25


def test_ties_pull_strengths_together():
    decisive = [vote("x", "y", "a")] * 8 + [vote("x", "y", "b")] * 2
    with_ties = decisive + [vote("x", "y", "tie")] * 10
    gap = lambda votes: (lambda s: s["x"] - s["y"])(stats.bradley_terry(votes))
    assert 0 < gap(with_ties) < gap(decisive)


def test_position_bias_and_agreement():
    votes = [vote("x", "y", "a", a_on_left=1), vote("x", "y", "a", a_on_left=0), vote("x", "y", "b", a_on_left=0),
             vote("x", "y", "tie", a_on_left=1)]
    bias = stats.position_bias(votes)
    assert (bias["left_wins"], bias["decisive"]) == (2, 3)
    shared = [vote("x", "y", "a", battle_id=1), vote("x", "y", "a", battle_id=1), vote("x", "y", "b", battle_id=1),
              vote("x", "y", "a", battle_id=2)]
    agreement = stats.rater_agreement(shared)
    assert (agreement["pairs"], agreement["agreement"], agreement["shared_battles"]) == (3, pytest.approx(1 / 3), 1)


def test_chance_corrected_agreement_matches_hand_computation():
    # Two raters on 10 battles: labels a,a,a,a,b,b,b,tie,a,b vs a,a,a,b,b,b,a,tie,a,b
    one, two = "a a a a b b b tie a b".split(), "a a a b b b a tie a b".split()
    votes = [vote("x", "y", w, battle_id=i, rater=r) for r, labels in (("ann", one), ("bob", two)) for i, w in enumerate(labels)]
    agreement = stats.rater_agreement(votes)
    # observed 8/10; by chance: a 5/10*5/10 + b 4/10*4/10 + tie 1/10*1/10 = 0.42; kappa = (0.8-0.42)/(1-0.42)
    assert agreement["agreement"] == pytest.approx(0.8)
    assert agreement["cohen_kappa"] == pytest.approx((0.8 - 0.42) / 0.58)
    # alpha: 20 values, a 10, b 8, tie 2; disagreements 4 of 20 -> D_o 0.2; D_e = 2(80 + 20 + 16) / (20 * 19)
    assert agreement["krippendorff_alpha"] == pytest.approx(1 - 0.2 / (232 / 380))
    third = votes + [vote("x", "y", w, battle_id=i, rater="cy") for i, w in enumerate(one)]
    assert stats.rater_agreement(third)["cohen_kappa"] is None and stats.rater_agreement(third)["krippendorff_alpha"] > 0.6


def test_judge_agreement_with_the_peoples_majority_and_votes_needed():
    people = [vote("x", "y", w, battle_id=b, rater=r) for b, r, w in
              [(1, "ann", "a"), (1, "bob", "a"), (1, "cy", "b"), (2, "ann", "b"), (2, "bob", "tie"), (3, "ann", "b")]]
    judge = [vote("x", "y", w, battle_id=b, rater="judge") for b, w in [(1, "a"), (2, "a"), (3, "b"), (4, "a")]]
    result = stats.judge_agreement(people, judge)
    # majorities: battle 1 a, battle 2 a tie of labels (b vs tie) -> tie, battle 3 b; judge: a, a, b -> 2 of 3
    assert result["battles"] == 3 and result["agreement"] == pytest.approx(2 / 3)
    (row,) = stats.win_rates([vote("x", "y", "a")] * 30 + [vote("x", "y", "b")] * 30)
    assert row["more_votes_for_0.10"] == 97 - 60  # 1.96^2 * 0.25 / 0.01 = 96.04 -> 97 votes in all


def test_sign_test_and_categories():
    votes = [vote("dpo", "sft", "a", category="math")] * 9 + [vote("dpo", "sft", "b", category="writing")]
    test = stats.paired_sign_test(votes, "dpo", "sft")
    assert (test["wins"], test["losses"]) == (9, 1)
    assert test["p_value"] == pytest.approx(2 * (1 + 10) / 2**10)
    assert {r["category"]: r["win_rate"] for r in stats.by_category(votes)} == {"math": 1.0, "writing": 0.0}


def fastchat_mle_elo(votes, SCALE=400, BASE=10, INIT_RATING=1000):
    """FastChat's compute_mle_elo (fastchat/serve/monitor/elo_analysis.py), its published recipe
    kept step for step: win counts doubled, a tie one row each way, one scikit-learn logistic
    regression without intercept or penalty on +-log(BASE) model columns."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    df = pd.DataFrame({"model_a": [v["model_a"] for v in votes], "model_b": [v["model_b"] for v in votes],
                       "winner": [{"a": "model_a", "b": "model_b", "tie": "tie"}[v["winner"]] for v in votes]})
    models = sorted(set(df["model_a"]) | set(df["model_b"]))
    table = lambda rows: pd.pivot_table(rows, index="model_a", columns="model_b", aggfunc="size", fill_value=0) \
        .reindex(index=models, columns=models, fill_value=0)
    ptbl_a_win, ptbl_b_win = table(df[df["winner"] == "model_a"]), table(df[df["winner"] == "model_b"])
    ptbl_tie = table(df[df["winner"] == "tie"])
    ptbl_tie = ptbl_tie + ptbl_tie.T
    ptbl_win = ptbl_a_win * 2 + ptbl_b_win.T * 2 + ptbl_tie
    index = {m: i for i, m in enumerate(models)}
    X, Y, sample_weights = [], [], []
    for m_a in models:
        for m_b in models:
            if m_a == m_b:
                continue
            row = np.zeros(len(models))
            row[index[m_a]], row[index[m_b]] = math.log(BASE), -math.log(BASE)
            X += [row, row]
            Y += [1.0, 0.0]
            sample_weights += [ptbl_win.loc[m_a, m_b], ptbl_win.loc[m_b, m_a]]
    lr = LogisticRegression(fit_intercept=False, C=float("inf"), tol=1e-6)  # penalty=None in FastChat's sklearn
    lr.fit(np.array(X), np.array(Y), sample_weight=np.array(sample_weights))
    return dict(zip(models, SCALE * lr.coef_[0] + INIT_RATING))


def test_one_fitter_equals_fastchats_compute_mle_elo():
    rng = random.Random(3)
    truth = {"m0": 0.0, "m1": 0.4, "m2": 0.9, "m3": 1.5}
    votes = []
    for i in range(800):
        a, b = rng.sample(sorted(truth), 2)
        p_a, r = 1 / (1 + math.exp(truth[b] - truth[a])), rng.random()
        votes.append(vote(a, b, "tie" if r < 0.15 else "a" if r < 0.15 + 0.85 * p_a else "b", battle_id=i))
    oracle = fastchat_mle_elo(votes)
    ours = {row["model"]: row["rating"] for row in stats.bt_ladder(votes, rounds=0)}
    assert set(ours) == set(oracle)
    for model in oracle:
        assert abs(ours[model] - oracle[model]) < 1.0, (model, ours[model], oracle[model])
    # and the style-controlled ladder is the same regression: covariates that are all zero change nothing
    from blindarena.style import style_ladder

    styled = style_ladder([{**v, "text_a": "", "text_b": ""} for v in votes], sorted(truth), rounds=0)["ladder"]
    assert {r["model"]: r["rating"] for r in styled} == pytest.approx(ours, abs=1e-3)


def test_ranks_follow_lmarenas_rule():
    ladder = [{"model": "a", "rating": 1100, "ci_low": 1080, "ci_high": 1120},
              {"model": "b", "rating": 1070, "ci_low": 1050, "ci_high": 1090},  # overlaps a: shares rank 1
              {"model": "c", "rating": 1040, "ci_low": 1030, "ci_high": 1060},  # below a's interval, overlaps b
              {"model": "d", "rating": 900, "ci_low": 880, "ci_high": 920}]  # below all three
    assert [r["rank"] for r in stats.ranked(ladder)] == [1, 1, 2, 4]
    votes = [vote("x", "y", "a", battle_id=i) for i in range(40)] + [vote("y", "z", "a", battle_id=100 + i) for i in range(40)]
    rows = stats.bt_ladder(votes, rounds=50)
    assert [(r["model"], r["rank"]) for r in rows] == [("x", 1), ("y", 2), ("z", 3)]


def test_fragility_counts_the_votes_that_reverse_a_known_order():
    # x beat y 7 times, y beat x 3 times (and two ties): with two models the order reverses exactly
    # when x's wins fall below y's, so the fewest removals are 5 (7 -> 2); 4 only level them.
    votes = [vote("x", "y", "a", battle_id=i) for i in range(7)] + [vote("y", "x", "a", battle_id=10 + i) for i in range(3)]
    votes += [vote("x", "y", "tie", battle_id=20), vote("y", "x", "tie", battle_id=21)]
    result = stats.robustness(votes)
    assert result["top"] == {"higher": "x", "lower": "y", "votes_to_flip": 5, "share": pytest.approx(5 / 12)}
    assert "upper bound" in result["method"] and result["votes"] == 12
    # unanimous: removing every win of x leaves the two level, never reversed
    assert stats.robustness([vote("x", "y", "a", battle_id=i) for i in range(5)])["top"]["votes_to_flip"] is None
    # three models: each adjacent pair gets its count, and a close pair needs fewer votes than a far one
    rng = random.Random(0)
    truth = {"m0": 0.0, "m1": 0.3, "m2": 1.5}
    many = []
    for i in range(1500):
        a, b = rng.sample(sorted(truth), 2)
        many.append(vote(a, b, "a" if rng.random() < 1 / (1 + math.exp(truth[b] - truth[a])) else "b", battle_id=i))
    pairs = {(p["higher"], p["lower"]): p["votes_to_flip"] for p in stats.robustness(many)["pairs"]}
    assert set(pairs) == {("m2", "m1"), ("m1", "m0")} and 0 < pairs[("m1", "m0")] < pairs[("m2", "m1")]


def test_per_category_ladders_rank_within_each_category():
    votes = [vote("x", "y", "a", battle_id=i, category="math") for i in range(30)]
    votes += [vote("x", "y", "b", battle_id=100 + i, category="writing") for i in range(30)]
    ladders = stats.bt_by_category(votes, rounds=50)
    assert list(ladders) == ["math", "writing"]
    assert [r["model"] for r in ladders["math"]] == ["x", "y"] and [r["model"] for r in ladders["writing"]] == ["y", "x"]
    assert all(r["rank"] == i + 1 for ladder in ladders.values() for i, r in enumerate(ladder))
