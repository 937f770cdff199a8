"""Simulated raters with known model strengths, voting through the real store and allocation
(a real SQLite file): what `scripts/bench.py --only allocation` measures, and how an allocation
can be checked without people."""

from __future__ import annotations

import math
import random
import tempfile
from collections import Counter
from itertools import combinations
from pathlib import Path

from blindarena import allocation, operations as arena
from blindarena.records import CampaignSettings
from blindarena.stats import Z95, wilson
from blindarena.store import Store

STRENGTHS = {"model-a": 0.0, "model-b": 0.2, "model-c": 1.2, "model-d": 2.4}  # Bradley-Terry log-strengths


def votes_until_precise(allocation: str, strengths: dict[str, float] = STRENGTHS, half_width: float = 0.10,
                        prompts: int = 400, per_rater: int = 25, seed: int = 0, limit: int = 5000) -> dict:
    """Raters arrive one after another and each votes on up to `per_rater` battles handed out by
    the campaign's allocation (one vote per battle, each prompt once per rater); a vote goes to the
    stronger model with its Bradley-Terry probability, ties never. Counts the votes until every model
    pair's 95% Wilson interval is within +-half_width. Returns {votes, raters, per_pair}."""
    rng = random.Random(seed)
    models = sorted(strengths)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "arena.sqlite")
        rows = [{"question_id": i, "prompt": f"prompt {i}"} for i in range(prompts)]
        store.create_campaign("sim", models, rows, {}, settings=CampaignSettings(votes_per_battle=1, allocation=allocation))
        store.save_answers([(pid, m, f"{m}: {p}", 1, "") for pid, p, m in store.missing_answers("sim")])
        store.set_status("sim", "ready")
        tally = {pair: [0, 0] for pair in combinations(models, 2)}  # first model's wins, votes
        votes = raters = 0
        while votes < limit and not all(_precise(w, n, half_width) for w, n in tally.values()):
            raters += 1
            rid = arena.join(store, "sim", f"sim-{raters}")
            for _ in range(per_rater):
                battle = arena.next_battle(store, "sim", rid)
                if battle is None:
                    break
                a, b = (battle.left.split(":")[0], battle.right.split(":")[0])
                p_left = 1 / (1 + math.exp(strengths[b] - strengths[a]))
                left_wins = rng.random() < p_left
                arena.cast_vote(store, "sim", rid, battle.battle_id, "left" if left_wins else "right")
                first, second = sorted((a, b))
                tally[(first, second)][0] += (a if left_wins else b) == first
                tally[(first, second)][1] += 1
                votes += 1
                if all(_precise(w, n, half_width) for w, n in tally.values()):
                    break
    return {"votes": votes, "raters": raters, "per_pair": {f"{a} vs {b}": n for (a, b), (_, n) in tally.items()}}


def prefill(store: Store, name: str, votes: int, cap: int = 3, per_rater: int = 50, seed: int = 0) -> int:
    """Fill a ready campaign with `votes` votes of simulated raters through the real store (each
    rater claims up to `per_rater` battles under the campaign's target and votes on them at random,
    ties too): a store of a given size for `bench.py --only arena --prefill N`. Returns the votes cast."""
    rng = random.Random(seed)
    room = {b: cap for b in store.battle_ids(name)}
    cast = raters = 0
    while cast < votes and room:
        raters += 1
        rid = arena.join(store, name, f"prefill-{raters}")
        for battle in rng.sample(sorted(room), min(per_rater, len(room))):
            if cast >= votes:
                break
            store.claim(rid, battle, cap, lambda left, shown: allocation.side(left, shown, f"{name}:{battle}:{rid}"))
            store.vote(rid, battle, rng.choice(["left", "right", "left", "right", "tie"]))
            cast += 1
            room[battle] -= 1
            if not room[battle]:
                del room[battle]
    return cast


def _precise(wins: int, n: int, half_width: float) -> bool:
    low, high = wilson(wins, n, Z95)
    return n > 0 and (high - low) / 2 <= half_width


# ---- vote rigging: attackers among honest raters, and whether the rater checks catch them -------
ATTACKS = ("target", "random", "always_left", "contrarian")
TARGET = "model-c"  # the runner-up: the model an attacker would push to the top


def rigged_votes(attack: str, share: float, raters: int = 40, per_rater: int = 25, votes_per_battle: int = 3,
                 strengths: dict[str, float] = STRENGTHS, target: str = TARGET, seed: int = 0) -> tuple[list[dict], set[str]]:
    """Votes as Store.votes returns them, from honest raters who vote for the stronger model with
    its Bradley-Terry probability and round(share * raters) attackers: `target` votes for one model
    whenever it plays and honestly otherwise (Min et al. 2025), `random` flips a coin, `always_left`
    picks the left answer, `contrarian` picks the opposite of an honest draw. Battles (a random pair
    on a prompt of its own) are handed out least-voted first, each up to `votes_per_battle` raters,
    each rater's battles on distinct prompts, sides at random. Returns (votes, attacker names)."""
    rng = random.Random(seed)
    models = sorted(strengths)
    names = [f"rater-{i:02d}" for i in range(raters)]
    attackers = set(rng.sample(names, round(share * raters)))
    battles = [tuple(rng.sample(models, 2)) for _ in range(raters * per_rater // votes_per_battle + 1)]
    counts, seen, votes = [0] * len(battles), {name: set() for name in names}, []
    for _ in range(per_rater):
        for name in rng.sample(names, len(names)):
            free = [i for i in range(len(battles)) if i not in seen[name] and counts[i] < votes_per_battle]
            if not free:
                continue
            fewest = min(counts[i] for i in free)
            battle = rng.choice([i for i in free if counts[i] == fewest])
            counts[battle] += 1
            seen[name].add(battle)
            a, b = battles[battle]
            a_on_left = rng.random() < 0.5
            honest_a = rng.random() < 1 / (1 + math.exp(strengths[b] - strengths[a]))
            a_wins = honest_a if name not in attackers else {
                "target": honest_a if target not in (a, b) else a == target,
                "random": rng.random() < 0.5,
                "always_left": a_on_left,
                "contrarian": not honest_a}[attack]
            votes.append({"id": len(votes) + 1, "battle_id": battle, "question_id": battle, "model_a": a, "model_b": b,
                          "winner": "a" if a_wins else "b", "a_on_left": int(a_on_left), "rater": name,
                          "rater_role": "human"})
    return votes, attackers


def rigging(shares=(0.05, 0.10, 0.20), seeds: int = 10, per_rater: int = 40,
            strengths: dict[str, float] = STRENGTHS) -> list[dict]:
    """For each attack and share of attackers, over `seeds` campaigns of 40 raters: the rater checks'
    precision and recall (pooled over the campaigns), the share of campaigns in which an honest
    rater was flagged, and the ladder with and without the flagged raters' votes: whether its top
    is the honest one (the strongest model) in every campaign, and the mean number of models out
    of their true place."""
    from blindarena.quality import rater_quality
    from blindarena.stats import bradley_terry

    checks = ("agreement", "position", "favouritism", "sequential")  # each check's own catch (no gold in these runs)
    truth = sorted(strengths, key=lambda m: -strengths[m])
    misplaced = lambda vs: sum(x != y for x, y in zip(sorted(truth, key=lambda m, s=bradley_terry(vs, truth): -s[m]), truth))
    rows = []
    for attack in ATTACKS:
        for share in shares:
            caught = flagged = attackers_total = honest_runs = 0
            raw_top = kept_top = raw_misplaced = kept_misplaced = 0
            by_check = {check: [0, 0] for check in checks}  # (attackers caught, raters flagged) by each check alone
            for seed in range(1000, 1000 + seeds):  # the checks' thresholds were set on seeds 0-19; these are fresh
                votes, attackers = rigged_votes(attack, share, per_rater=per_rater, strengths=strengths, seed=seed)
                rows_q = rater_quality(votes, [])
                out = {r["name"] for r in rows_q if r["flagged"]}
                for check in checks:
                    alone = {r["name"] for r in rows_q if check in r["checks"]}
                    by_check[check][0] += len(alone & attackers)
                    by_check[check][1] += len(alone)
                kept = [v for v in votes if v["rater"] not in out]
                caught, flagged, attackers_total = caught + len(out & attackers), flagged + len(out), attackers_total + len(attackers)
                honest_runs += bool(out - attackers)
                raw_top += max(s := bradley_terry(votes, truth), key=s.get) == truth[0]
                kept_top += max(s := bradley_terry(kept, truth), key=s.get) == truth[0]
                raw_misplaced, kept_misplaced = raw_misplaced + misplaced(votes), kept_misplaced + misplaced(kept)
            rows.append({"attack": attack, "share": share, "votes_per_rater": per_rater, "runs": seeds,
                         "precision": round(caught / flagged, 3) if flagged else None,
                         "recall": round(caught / attackers_total, 3), "honest_flagged_runs": round(honest_runs / seeds, 3),
                         "top_model_honest": kept_top == seeds, "top_model_honest_unfiltered": raw_top == seeds,
                         "misplaced_models": round(kept_misplaced / seeds, 2),
                         "misplaced_models_unfiltered": round(raw_misplaced / seeds, 2),
                         **{f"recall_{check}": round(hit / attackers_total, 3) for check, (hit, _) in by_check.items()},
                         **{f"precision_{check}": round(hit / n, 3) if n else None for check, (hit, n) in by_check.items()}})
    return rows


def checker_raters(store: Store, name: str, rows: list[dict], raters: int = 6, per_rater: int = 40, noise: float = 0.15,
                   tie_margin: float = 0.1, seed: int = 0) -> int:
    """Raters whose taste is IFEval's checker, plus noise, voting through the real store and the
    campaign's own hand-out (`arena.next_battle` / `arena.cast_vote`, blind: they see only the
    prompt and the two answers). An answer's worth is the share of its prompt's instructions it
    follows (loose; none when it only repeats the prompt) plus N(0, noise); a tie when the two are
    within `tie_margin`. `rows`: the campaign's prompts in IFEval's schema (matched by prompt
    text). Returns the votes cast."""
    from posttrain import checkers

    by_prompt = {r["prompt"]: r for r in rows}
    rng = random.Random(seed)

    def worth(row: dict, text: str) -> float:
        verdict = checkers.check_row({**row, "response": text})["follow_instruction_list_loose"]
        followed = 0.0 if checkers.parrots(row, text) else sum(verdict) / len(verdict)  # nobody credits a parroted request
        return followed + rng.gauss(0.0, noise)

    cast = 0
    for r in range(raters):
        rid = arena.join(store, name, f"checker-{seed}-{r + 1}")
        for _ in range(per_rater):
            shown = arena.next_battle(store, name, rid)
            if shown is None:
                break
            row = by_prompt.get(shown.prompt)
            if row is None:
                raise KeyError(f"campaign {name!r} shows a prompt that is not among the IFEval rows: {shown.prompt[:60]!r}")
            left, right = worth(row, shown.left), worth(row, shown.right)
            choice = "tie" if abs(left - right) < tie_margin else "left" if left > right else "right"
            arena.cast_vote(store, name, rid, shown.battle_id, choice)
            cast += 1
    return cast


OUTLIER_KINDS = ("contrarian", "careless", "always_left")


def outlier_votes(bad_votes: int, honest: int = 200, honest_votes: int = 30, bad_each: int = 5, models: int = 6,
                  tie_rate: float = 0.3, seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    """A campaign for the sequential rater test, from the ladder's own model (Bradley-Terry with a
    constant tie rate, `models` models 0.5 apart in log-strength): `honest` raters with `honest_votes` votes each, and `bad_each` raters of each
    kind with `bad_votes` votes: a contrarian reverses an honest verdict (a tie stays a tie), a
    careless rater picks a, b or tie at random, an always-left rater picks the left answer. Every
    vote on a random pair, a prompt of its own, sides at random, raters interleaved. Returns (votes,
    {rater: kind}) with kind "honest" or one of OUTLIER_KINDS."""
    rng = random.Random(seed)
    strengths = [0.5 * (i - (models - 1) / 2) for i in range(models)]  # 0.5 apart (87 Elo): an arena's usual spread
    names = [f"model-{i}" for i in range(models)]
    kinds = {f"honest-{i:03d}": "honest" for i in range(honest)}
    kinds.update({f"{kind}-{i}": kind for kind in OUTLIER_KINDS for i in range(bad_each)})
    queue = [name for name, kind in kinds.items() for _ in range(honest_votes if kind == "honest" else bad_votes)]
    rng.shuffle(queue)
    votes = []
    for n, name in enumerate(queue):
        i, j = rng.sample(range(models), 2)
        a_on_left = rng.random() < 0.5
        if rng.random() < tie_rate:
            honest_verdict = "tie"
        else:
            honest_verdict = "a" if rng.random() < 1 / (1 + math.exp(strengths[j] - strengths[i])) else "b"
        kind = kinds[name]
        winner = {"honest": honest_verdict, "contrarian": {"a": "b", "b": "a", "tie": "tie"}[honest_verdict],
                  "careless": rng.choice(("a", "b", "tie")),
                  "always_left": "a" if a_on_left else "b"}[kind]
        votes.append({"id": n + 1, "battle_id": n + 1, "question_id": n + 1, "model_a": names[i], "model_b": names[j],
                      "winner": winner, "a_on_left": int(a_on_left), "rater": name, "rater_role": "human"})
    return votes, kinds


def outliers(bad_votes=(20, 40, 80), seeds: int = 4, **campaign) -> list[dict]:
    """The sequential test's power on each kind of bad rater and its false alarms on honest raters,
    pooled over `seeds` campaigns per number of bad votes; also what all the rater checks together flag."""
    from blindarena.quality import rater_quality

    rows = []
    for n in bad_votes:
        seq, every, total = Counter(), Counter(), Counter()
        for seed in range(seeds):
            votes, kinds = outlier_votes(n, seed=seed, **campaign)
            for row in rater_quality(votes, []):
                kind = kinds[row["name"]]
                total[kind] += 1
                seq[kind] += "sequential" in row["checks"]
                every[kind] += row["flagged"]
        rows.append({"bad_votes": n, "campaigns": seeds, "honest_raters": total["honest"],
                     **{f"sequential_{k}": f"{seq[k]}/{total[k]}" for k in OUTLIER_KINDS},
                     "sequential_honest_flagged": round(seq["honest"] / total["honest"], 4),
                     **{f"any_check_{k}": f"{every[k]}/{total[k]}" for k in OUTLIER_KINDS},
                     "any_check_honest_flagged": round(every["honest"] / total["honest"], 4)})
    return rows
