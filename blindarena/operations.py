"""Arena operations as plain functions (the UI and the CLI both call these): create a campaign and
generate every answer once over the shared engine; a rater joins, gets their next battle and
votes; results and preference pairs. Prompt files are read by blindarena.prompts, pairs are written
out by blindarena.export. Knows nothing of Gradio."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, defaultdict
from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone
from random import Random
from typing import Callable

from blindarena import allocation, hygiene, quality, stats
from blindarena import ties as tie_models
from blindarena.pairs import build_pairs
from blindarena.prompts import answers_needed, multi_turn_count
from blindarena.records import Assignment, CampaignSettings, StoreError
from blindarena.store import GOLD_CHOSEN, GOLD_REJECTED, Store
from blindarena.style import style_ladder
from blindarena.vocab import conversation
from posttrain.backend import Generator
from posttrain.names import problem as name_problem
from posttrain.engine import SamplingParams


def create_campaign(store: Store, engine: Generator, name: str, models: list[str], prompts: list[dict],
                    params: SamplingParams, source: str = "", batch_rows: int = 8,
                    progress: Callable[[int, int], None] | None = None, settings: CampaignSettings | None = None) -> dict:
    """Store the campaign, then generate each model's answer to each prompt once, several
    prompts x models per batched call; resumable (only missing answers are generated)."""
    settings = settings or CampaignSettings()
    for model in models:
        engine.ensure_model(model)  # refuses unknown entries and adapters of another base before storing
    if settings.open:
        if prompts:
            raise StoreError(f"campaign {name!r} is open: raters ask their own questions; drop the prompt file")
        store.create_campaign(name, models, [], asdict(params), "open", settings=settings)
        store.set_status(name, "ready")
        return {**store.campaign(name).as_dict(), "identity_flagged_battles": 0, "multi_turn_prompts": 0,
                "truncated_prompts": 0}
    prompting = getattr(engine, "base_prompting", lambda models: None)(models)  # a base without a template: how
    stored = replace(settings, base_prompt=prompting) if prompting else settings
    store.create_campaign(name, models, prompts, asdict(params), source, settings=stored, gold=list(settings.gold))
    return {**generate_missing(store, engine, name, batch_rows, progress), "multi_turn_prompts": multi_turn_count(prompts)}


def generate_missing(store: Store, engine: Generator, name: str, batch_rows: int = 8,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    campaign = store.campaign(name)
    params = SamplingParams(**campaign.params)
    system = campaign.settings.system or ""
    turns = store.prompt_turns(name)
    todo = store.missing_answers(name)
    single = [row for row in todo if row[0] not in turns]
    total = len(todo)
    done = 0
    for start in range(0, len(single), batch_rows):
        chunk = single[start : start + batch_rows]
        prompts = [[{"role": "system", "content": system}, {"role": "user", "content": p}] if system else p for _, p, _ in chunk]
        answers = engine.generate(prompts, [m for _, _, m in chunk], params)
        store.save_answers([(pid, model, a.text, a.new_tokens, a.notice) for (pid, _, model), a in zip(chunk, answers)])
        done += len(chunk)
        if progress:
            progress(done, total)
    multi = [(pid, model) for pid, _, model in todo if pid in turns]
    for start in range(0, len(multi), batch_rows):
        chunk = multi[start : start + batch_rows]
        conversations = answer_turns(engine, [(turns[pid], model) for pid, model in chunk], params, system)
        store.save_answers([(pid, model, texts[-1], tokens, "", texts)
                            for (pid, model), (texts, tokens) in zip(chunk, conversations)])
        done += len(chunk)
        if progress:
            progress(done, total)
    answers = store.battle_answers(name)
    flagged = hygiene.flags(answers, list(campaign.settings.identity_words))
    store.flag_battles(name, flagged)
    store.set_status(name, "ready")
    truncated = len({a["prompt_id"] for a in store.answers(name) if "prompt truncated" in (a["notice"] or "")})
    return {**store.campaign(name).as_dict(), "identity_flagged_battles": len(flagged), "truncated_prompts": truncated}


def answer_turns(engine: Generator, rows: list[tuple[list[str], str]], params: SamplingParams,
                 system: str = "") -> list[tuple[list[str], int]]:
    """(answers per turn, new tokens in all) for each (user turns, model) row: turn k is asked with
    the model's OWN answers to turns 1..k-1, every row's turn k in one batched call."""
    answers: list[list[str]] = [[] for _ in rows]
    tokens = [0] * len(rows)
    for k in range(max(len(t) for t, _ in rows)):
        live = [i for i, (t, _) in enumerate(rows) if k < len(t)]
        replies = engine.generate([conversation(rows[i][0][: k + 1], answers[i], system) for i in live],
                                  [rows[i][1] for i in live], params)
        for i, reply in zip(live, replies):
            answers[i].append(reply.text)
            tokens[i] += reply.new_tokens
    return list(zip(answers, tokens))


def default_identity_words(registry, base: str, models: list[str], extra: list[str] | tuple = ()) -> list[str]:
    """The campaign's identity words: its models, its base's family and lab, and `extra`."""
    from posttrain.registry import base_hub_id

    return hygiene.identity_words(models, base_hub_id(registry.get(base)), extra)


# ---- rating: who rates, what a rater gets next, and their vote --------------------------------------
def join(store: Store, campaign: str, name: str, role: str = "human") -> int:
    """The rater's id in a campaign (the same name resumes). A new rater's battles are planned now
    (allocation.preassign: a judge gets every battle, a person each prompt once) unless the
    campaign hands battles out one at a time (a target, adaptive allocation, or an open campaign)."""
    found = store.campaign(campaign)
    settings = found.settings
    if role == "human" and (settings.dynamic or settings.open):
        return store.rater(campaign, name, role)
    seed = f"{found.id}:{name.strip()}"
    return store.rater(campaign, name, role, preassign=lambda battles, earlier: allocation.preassign(
        battles, role, earlier, seed, settings.gold_rate))


def join_by_invite(store: Store, campaign: str, token: str) -> int:
    """The rater an invite token stands for (joined on first use); unknown tokens are refused."""
    return join(store, campaign, store.invite_label(campaign, token))


def rater_quality(store: Store, name: str) -> list[dict]:
    """The rater table of a campaign (blindarena.quality.rater_quality over its votes and gold votes)."""
    campaign = store.campaign(name)
    reviews = {r.name: r.review for r in store.raters(name) if r.role == "human"}
    return quality.rater_quality(store.votes(name), store.votes(name, gold=True), campaign.settings.min_gold_accuracy,
                                 reviews)


STALE_SHARE = 100  # the cached checks are redone once the votes grew by 1 / STALE_SHARE of their number


class RaterChecks:
    """Names and ids of the raters whose votes are left out right now, for the hand-out, progress
    and vote paths. The checks read every vote, so their result is cached per campaign on its vote
    stamp (count, last vote id, reviews) and redone when a review changed or the votes grew by more
    than 1 / STALE_SHARE (at least one vote): a click costs the same at 10,000 votes as at 100, and
    the exclusions lag by at most 1% of the votes. While one request redoes them, concurrent ones
    use the last result (or, when there is none yet, wait for it instead of computing it again).
    Results, pairs and exports always run the checks afresh. One per Arena (blindarena.service)."""

    def __init__(self, size: int = 64):
        self._size = size
        self._cache: OrderedDict = OrderedDict()  # (database, campaign) -> (vote stamp, excluded names, excluded ids)
        self._running: dict = {}  # (database, campaign) -> the lock held by the request redoing its checks
        self._lock = threading.Lock()

    def excluded(self, store: Store, name: str) -> tuple[frozenset[str], frozenset[int]]:
        key = (str(store.path.resolve()), name)
        stamp = store.vote_stamp(name)
        with self._lock:
            cached = self._cache.get(key)
            running = self._running.setdefault(key, threading.Lock())
        if cached is not None and _fresh(cached[0], stamp):
            return cached[1], cached[2]
        if not running.acquire(blocking=cached is None):
            return cached[1], cached[2]  # another request is redoing them right now: the last result
        try:
            with self._lock:
                cached = self._cache.get(key)  # done by the request this one waited for?
            if cached is not None and _fresh(cached[0], stamp):
                return cached[1], cached[2]
            names = quality.excluded_names(rater_quality(store, name))
            ids = frozenset(r.id for r in store.raters(name) if r.name in names)
            with self._lock:
                self._cache[key] = (stamp, names, ids)
                self._cache.move_to_end(key)
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
            return names, ids
        finally:
            running.release()


def _fresh(cached: tuple, stamp: tuple) -> bool:
    """Whether checks computed at vote stamp `cached` still stand at `stamp` (see RaterChecks)."""
    (was_count, was_last, was_reviews), (count, last, reviews) = cached, stamp
    return was_reviews == reviews and last >= was_last and 0 <= count - was_count < max(1, was_count // STALE_SHARE)


def next_battle(store: Store, campaign: str, rater_id: int, checks: RaterChecks | None = None) -> Assignment | None:
    """The rater's next battle, or None when they are done (or the campaign is complete). Without a
    target this is the rater's pre-assigned order; with one, a battle is handed out now: a gold
    check where the rater's sequence has one, else a regular battle chosen by the campaign's
    allocation among those still under their target, on prompts this rater has not seen."""
    settings = store.campaign(campaign).settings
    current = store.next_assignment(rater_id)
    if not settings.dynamic:
        return current
    cap = settings.votes_per_battle
    _, left_out_ids = (checks or RaterChecks()).excluded(store, campaign)
    if current is not None and not current.gold and cap and store.battle_votes(current.battle_id, left_out_ids) >= cap:
        store.release(rater_id, current.battle_id)  # filled while this rater was away
        current = None
    if current is not None:
        return current
    seed = f"{campaign}:{rater_id}"
    handed_out = store.progress(rater_id)[1]  # only this rater's own claims change it, and a claim ends the loop
    rng = Random(f"{seed}:{handed_out}")
    for _ in range(20):  # another rater may take the last place between the choice and the claim
        candidates = store.claimable_battles(rater_id, cap, left_out_ids)
        if not candidates:
            return None
        gold = store.unseen_gold(rater_id)
        if gold and allocation.gold_due(handed_out, settings.gold_rate, seed):
            battle = rng.choice(gold)
            store.claim(rater_id, battle, None, _side(seed, battle, rater_id))
            return store.next_assignment(rater_id)
        votes = store.votes(campaign) if settings.allocation == "adaptive" else []
        battle = allocation.choose(candidates, settings.allocation, votes, rng)["battle_id"]
        if store.claim(rater_id, battle, cap, _side(seed, battle, rater_id), left_out_ids):
            return store.next_assignment(rater_id)
    return None


def _side(seed: str, battle_id: int, rater_id: int):
    return lambda left, shown: allocation.side(left, shown, f"{seed}:{battle_id}:{rater_id}")


def progress(store: Store, campaign: str, rater_id: int, checks: RaterChecks | None = None) -> tuple[int, int]:
    """(battles voted, battles this rater can have in all). With a target the total is what is
    voted plus what is still claimable by them, so it shrinks as other raters fill battles."""
    done, total = store.progress(rater_id)
    settings = store.campaign(campaign).settings
    if not settings.dynamic:
        return done, total
    _, left_out_ids = (checks or RaterChecks()).excluded(store, campaign)
    claimable = {c["prompt_id"] for c in store.claimable_battles(rater_id, settings.votes_per_battle, left_out_ids)}
    return done, total + len(claimable)  # handed out so far (voted or not), plus what is still claimable


def cast_vote(store: Store, campaign: str, rater_id: int, battle_id: int, choice: str, score_left: int | None = None,
              score_right: int | None = None, edited: str | None = None, comment: str | None = None,
              checks: RaterChecks | None = None) -> dict:
    """Store.vote under the campaign's target (left-out raters' votes do not fill a battle) and its
    limits on what a rater sends: the edited answer and the comment (max_text_chars; the default
    for campaigns made before it) and the votes per minute (votes_per_minute, where set)."""
    settings = store.campaign(campaign).settings
    check_rater_text(settings, edited=edited, comment=comment)
    per_minute = settings.votes_per_minute  # campaigns made before the limit have none
    since = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(timespec="milliseconds")
    if per_minute and store.votes_since(rater_id, since) >= per_minute:
        raise StoreError(f"you voted {per_minute} times in the last minute, this campaign's limit; take a breath and "
                         "vote again in a moment")
    cap = settings.votes_per_battle
    left_out_ids = (checks or RaterChecks()).excluded(store, campaign)[1] if cap else frozenset()
    return store.vote(rater_id, battle_id, choice, score_left, score_right, edited, comment, cap=cap,
                      left_out_ids=left_out_ids)


def check_rater_text(settings: CampaignSettings, **texts: str | None) -> None:
    """A rater's free text (an edited answer, a comment) within the campaign's max_text_chars."""
    limit = settings.max_text_chars
    for field, text in texts.items():
        if limit and text and len(text) > limit:
            raise StoreError(f"your {field.replace('_', ' ')} has {len(text)} characters; this campaign takes at most "
                             f"{limit}; shorten it")


def is_complete(store: Store, campaign: str, left_out: frozenset[str] | None = None,
                checks: RaterChecks | None = None) -> bool:
    """Every regular battle has its target of votes from raters who are not left out (False
    for a campaign without a target: it never closes by itself). `left_out`: the names already
    known to be left out (else the quality checks run)."""
    cap = store.campaign(campaign).settings.votes_per_battle
    if not cap:
        return False
    names = (checks or RaterChecks()).excluded(store, campaign)[0] if left_out is None else left_out
    counted = Counter(v.battle_id for v in store.votes(campaign) if v.rater_role == "human" and v.rater not in names)
    return all(counted[b] >= cap for b in store.battle_ids(campaign))


def reveal_names(names: dict) -> dict:
    """The reveal's display names: a gold check's two sides are named as what they are."""
    shown = {GOLD_CHOSEN: "the reference answer (a quality check; it does not count)",
             GOLD_REJECTED: "a deliberately worse answer (a quality check)"}
    return {side: shown.get(model, model) for side, model in names.items()}


# ---- results and pairs ----------------------------------------------------------------------------
def results(store: Store, name: str, rounds: int = 200, ties: str = "half", min_games: int = stats.MIN_DECISIVE_GAMES,
            max_width: float = stats.MAX_INTERVAL_ELO, embed=None, topics: bool | None = False) -> dict:
    """Everything the Results tab and `arena.py results --json` show. The people's votes count
    only from raters who are not left out (see blindarena.quality); those left out are counted.
    `ties`: the tie model of the `ties` ladder (half, rao-kupper, davidson); `min_games` and
    `max_width`: the provisional rule of every ladder (stats.provisional); `embed`: texts -> unit
    vectors for an open campaign's near-duplicate rule and the topics (default: MiniLM, loaded when
    needed, once); `topics`: find topics and ladder per topic (None: when no vote has a category)."""
    campaign = store.campaign(name)
    votes = store.votes(name, answers=True)  # the style ladder and the judge's audit read the answers
    battles = store.battle_answers(name)
    embed = embed or minilm()
    raters = rater_quality(store, name)
    left_out = quality.excluded_names(raters)
    people = [v for v in votes if v.rater_role == "human" and not v.flag]
    human = [v for v in people if v.rater not in left_out]
    aside = prompt_hygiene(human, campaign.settings, embed) if campaign.settings.open else {}
    human = [v for v in human if v.id not in aside]
    judge = [v for v in votes if v.rater_role == "judge" and not v.flag]
    flagged = [b for b in battles if b.flag]
    agreement = stats.rater_agreement(human)
    settings = campaign.settings
    return {
        "campaign": name, "models": campaign.models, "votes": len(votes), "human_votes": len(human),
        "judge_votes": len(judge),  # the automatic judge's, on battles not flagged
        "win_rates": stats.win_rates(human),
        **ladders(human, campaign.models, settings.open, rounds, ties, min_games, max_width),
        "robustness": stats.robustness(human, campaign.models),
        "by_category": stats.by_category(human),
        "position_bias": stats.position_bias(human),
        "rater_agreement": agreement,
        "judge_win_rates": stats.win_rates(judge),
        "judge_agreement": {**stats.judge_agreement(human, judge), "human_agreement": agreement["agreement"]},
        "judge_audit": stats.judge_audit(human, judge),
        "raters": [{k: r[k] for k in ("name", "votes", "gold_seen", "gold_correct", "agreement", "left_share", "flagged",
                                      "reasons", "review", "excluded", "shared", "gold_accuracy")} for r in raters],
        "excluded_votes": len(people) - len(human),
        "excluded_raters": sorted(left_out),
        "identity_flagged_battles": len(flagged),
        "identity_flagged_votes": sum(1 for v in votes if v.rater_role == "human" and v.flag),
        "identity_flags": [{"battle_id": b.battle_id, "reason": b.flag} for b in flagged[:50]],
        "votes_per_battle": settings.votes_per_battle,
        "open": settings.open,
        "refused": store.refusal_counts(name),  # open battles: too long, too many turns, hourly cap, duplicate questions
        "prompt_hygiene": {"repeat_share": settings.repeat_share, "near_duplicate": settings.near_duplicate,
                           "set_aside": dict(Counter(why.split(":")[0] for why in aside.values()))} if settings.open else None,
        "allocation": settings.allocation,
        **participation(campaign, battles, human),
        "topics": topic_ladders(human, rounds, min_games, max_width, embed)
        if (topics if topics is not None else not any(v.category for v in human)) else None,
        "complete": is_complete(store, name, left_out),
    }


def minilm() -> Callable[[list[str]], object]:
    """texts -> MiniLM unit vectors, the model loaded on the first call, once, whatever the threads
    (a results call that needs no embedding loads nothing; an Arena keeps one for all its calls)."""
    loaded, lock = [], threading.Lock()

    def embed(texts: list[str]):
        with lock:
            if not loaded:
                from posttrain.synth.clean import Embedder

                loaded.append(Embedder())
        return loaded[0](texts)

    return embed


def prompt_hygiene(human: list, settings: CampaignSettings, embed) -> dict[int, str]:
    """An open campaign's votes that its repeat and near-duplicate rules set aside (hygiene.set_aside)."""
    rows = [{"id": v.id, "rater": v.rater, "created_at": v.created_at, "prompt": v.battle.prompt if v.battle else ""}
            for v in human]
    return hygiene.set_aside(rows, embed, settings.repeat_share, settings.near_duplicate)


def topic_ladders(human: list, rounds: int, min_games: int, max_width: float, embed) -> dict:
    """Topics of the voted prompts (blindarena.topics: MiniLM, HDBSCAN, class-based TF-IDF names), a
    provisional-marked ladder per topic, and the prompts' 2-D map."""
    from blindarena import topics as topic_finder

    texts = sorted({v.battle.prompt for v in human if v.battle})
    found = topic_finder.topics(texts, embed)
    topic_of = dict(zip(texts, found["labels"]))
    grouped = defaultdict(list)
    for vote in human:
        if vote.battle and topic_of.get(vote.battle.prompt, topic_finder.UNCLUSTERED) != topic_finder.UNCLUSTERED:
            grouped[topic_of[vote.battle.prompt]].append(vote)
    return {"topics": found["topics"], "unclustered": found["unclustered"],
            "ladders": {t: stats.provisional(stats.bt_ladder(vs, rounds=rounds), vs, min_games, max_width)
                        for t, vs in sorted(grouped.items())},
            "map": [{"prompt": text[:120], "topic": label, "x": xy[0], "y": xy[1]}
                    for text, label, xy in zip(texts, found["labels"], found["map"])]}


def ladders(human: list, models: list[str], open_campaign: bool, rounds: int, tie_model: str, min_games: int,
            max_width: float) -> dict:
    """The raw, style-controlled, per-category and tie-model ladders, each row provisional where it
    has too few decisive games or too wide an interval (and then unranked); the tie rates and the
    tie models' held-out scores."""
    mark = lambda ladder, votes: stats.provisional(ladder, votes, min_games, max_width)
    styled = style_ladder(human, models, rounds=rounds)
    categories = {} if open_campaign else stats.by_category_votes(human)
    raw = mark(stats.bt_ladder(human, models, rounds=rounds), human)
    tie_fit = None if tie_model == "half" else tie_models.tie_ladder(human, sorted(models), tie_model, rounds)
    return {
        "bradley_terry": raw,
        "bradley_terry_style": {**styled, "ladder": mark(styled["ladder"], human)},
        "bradley_terry_by_category": {c: mark(stats.bt_ladder(vs, rounds=rounds), vs) for c, vs in categories.items()},
        "ties": {"model": tie_model, **tie_models.rates(human), "ladder": raw if tie_fit is None else mark(tie_fit["ladder"], human),
                 "tie_parameter": tie_fit and tie_fit["tie_parameter"], "heldout": tie_models.heldout(human, sorted(models))},
        "provisional_rule": {"min_decisive_games": min_games, "max_interval_elo": max_width},
    }


def participation(campaign, battles: list, human: list) -> dict:
    """Where the battles and the people's votes went, per model, and the allocation policy in
    force (LMArena publishes its sampling since "The Leaderboard Illusion", Singh et al. 2025)."""
    battles = [b for b in battles if not b.gold]  # gold checks pit no campaign models
    settings = campaign.settings
    shares = []
    for model in campaign.models:
        mine = sum(model in (b.model_a, b.model_b) for b in battles)
        voted = sum(model in (v.model_a, v.model_b) for v in human)
        shares.append({"model": model, "battles": mine, "battle_share": round(mine / (2 * len(battles)), 4) if battles else None,
                       "votes": voted, "vote_share": round(voted / (2 * len(human)), 4) if human else None})
    return {"battle_share": shares,
            "allocation_policy": {"allocation": settings.allocation, "votes_per_battle": settings.votes_per_battle,
                                  "gold_rate": settings.gold_rate, "votes_per_minute": settings.votes_per_minute,
                                  "battles_per_hour": settings.battles_per_hour if settings.open else None,
                                  "max_duplicates": settings.max_duplicates if settings.open else None}}


MAX_ANSWERS = 5000  # campaign create refuses more answers than this unless raised (--max-answers)
TOKENS_PER_S = {"engine": 100.0, "openai": 1000.0}  # rough rates for the estimate (engine: 2 CPU cores, batches of 8)


def check_new_name(store: Store, name: str) -> None:
    """A campaign name that may be created now; an interrupted creation of the same name says how
    to finish or drop it."""
    if name_problem((name or "").strip(), "campaign"):
        raise StoreError(name_problem((name or "").strip(), "campaign"))
    existing = {c.name: c for c in store.campaigns()}.get((name or "").strip())
    if existing is None:
        return
    if existing.status == "generating":
        missing = len(store.missing_answers(name))
        raise StoreError(f"campaign {name!r} exists, interrupted while its answers were generated ({missing} still "
                         f"missing): finish it with `scripts/arena.py campaign resume {name}` or drop it with "
                         f"`scripts/arena.py campaign delete {name}`")
    raise StoreError(f"campaign {name!r} already exists; pick another name (or `campaign delete {name}`)")


def estimate(answers: int, max_new_tokens: int, backend: str) -> str:
    """A rough upper bound of the generation time (every answer runs to max_new_tokens), plus the
    model's load, which on a CPU is most of a small campaign's time."""
    seconds = answers * max_new_tokens / TOKENS_PER_S.get(backend, TOKENS_PER_S["engine"])
    load = " after the model loads (20-60 s on a CPU)" if backend == "engine" else ""
    return (f"roughly {seconds / 60:.0f} min of generation" if seconds >= 90 else
            f"roughly {max(1, round(seconds))} s of generation") + load


def check_new_campaign(store: Store, name: str, models: list[str], prompts: list[dict] | None,
                       max_answers: int | None = None, estimate: str = "") -> None:
    """Every check a new campaign passes before a model loads, the same for the command line and
    the Admin form: the name (the naming rule, no model's name in it, not taken), two or more
    different models, and the size guard (`prompts` None: an open campaign, nothing to generate)."""
    check_blind_name(name, models)
    check_new_name(store, name)
    if len(set(models)) < 2:
        raise StoreError(f"campaign {name!r} needs two or more different models, got {list(models)}")
    limit = MAX_ANSWERS if max_answers is None else max_answers
    todo = answers_needed(prompts, models) if prompts else 0
    if todo > limit:
        took = f", {estimate}" if estimate else ""
        raise StoreError(f"campaign {name!r} needs {todo} answers ({len(prompts)} prompts x {len(set(models))} models{took}), "
                         f"over the limit of {limit} (--max-answers; the app's ARENA_MAX_ANSWERS): use fewer prompts "
                         "or models, or raise the limit")


def unique_prompts(prompts: list[dict]) -> tuple[list[dict], int]:
    """The prompts with exact repeats dropped (the same text and turns: the same battles again
    would only weigh that prompt double), and how many were dropped."""
    seen, kept = set(), []
    for prompt in prompts:
        key = (prompt["prompt"], tuple(prompt.get("turns") or ()))
        if key not in seen:
            seen.add(key)
            kept.append(prompt)
    return kept, len(prompts) - len(kept)


def leaked_models(name: str, models: list[str]) -> list[str]:
    """Models whose names a campaign name would show raters before they vote."""
    lowered = (name or "").lower()
    return [m for m in models if m.lower() in lowered]


def check_blind_name(name: str, models: list[str]) -> None:
    """Raters see the campaign's name before they vote, so it must not give a model away."""
    leaked = leaked_models(name, models)
    if leaked:
        raise StoreError(f"campaign name {name!r} contains model name(s) {leaked}; raters would see them")


def invite_link(page_url: str, campaign: str, token: str) -> str:
    """A rater's invite link: the app's address with ?campaign=NAME&invite=TOKEN."""
    from urllib.parse import urlencode

    return f"{page_url or ''}?{urlencode({'campaign': campaign, 'invite': token})}"


def pairs(store: Store, name: str, include_judge: bool = False, left_out: frozenset[str] | None = None) -> list[dict]:
    """The campaign's preference pairs (blindarena.pairs over its decisive votes); by default the votes
    of raters left out by the quality checks (blindarena.quality) do not count."""
    left_out = quality.excluded_names(rater_quality(store, name)) if left_out is None else left_out
    return build_pairs(store.decisive_votes(name), name, include_judge, left_out)[0]


def split_battles(store: Store, name: str) -> int:
    """Battles whose people's decisive votes split evenly: no pair is exported for them."""
    return build_pairs(store.decisive_votes(name), name, False, quality.excluded_names(rater_quality(store, name)))[1]
