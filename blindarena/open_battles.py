"""Open battles: a rater asks their own question, two anonymous models answer it, each on its
own conversation, the rater may follow up, then votes. The model pair of a new battle is the
least covered one; the campaign's caps (characters, turns, battles per hour, repeated questions)
refuse with a message and are counted. Knows nothing of Gradio."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import combinations
from random import Random

from blindarena import hygiene
from blindarena.records import StoreError
from blindarena.store import Store
from blindarena.vocab import conversation
from posttrain.backend import Generator
from posttrain.engine import SamplingParams

def least_covered(models: list[str], counts: dict[tuple[str, str], int], rng: Random) -> tuple[str, str]:
    """The model pair with the fewest battles so far (every pair covered evenly), ties at random."""
    pairs = [tuple(sorted(p)) for p in combinations(models, 2)]
    fewest = min(counts.get(p, 0) for p in pairs)
    return rng.choice([p for p in pairs if counts.get(p, 0) == fewest])


def ask(store: Store, generator: Generator, name: str, rater_id: int, battle_id: int | None, text: str):
    """The rater's next user turn of an open battle, answered by both models, each on its own
    conversation; yields {"battle_id", "a_on_left", "turns", "answers_a", "answers_b", "done"} as the
    answers stream (battle_id is known once `done`), and stores the turn with both answers only when
    both are complete. A new battle (battle_id None) gets the least-covered model pair and random
    sides; the campaign's caps (characters per turn, turns per battle, battles per rater per hour,
    repeats of one question) refuse with a message, and are counted."""
    campaign = store.campaign(name)
    settings = campaign.settings
    text = checked_question(store, name, rater_id, text)
    if battle_id is None:
        reserved, battle, a_on_left = new_battle(store, campaign, rater_id, text)
    else:
        reserved, battle, a_on_left = None, store.battle(battle_id), store.a_on_left(rater_id, battle_id)
        if store.has_vote(rater_id, battle_id):
            raise StoreError("you voted on this battle already; press Next to start another")
        if len(battle.turns) >= settings.max_turns:
            store.refuse(name, rater_id, "too_many_turns")
            raise StoreError(f"this battle has its {settings.max_turns} turns; vote, then start another")
    turns = [*battle.turns, text]
    earlier = {"a": list(battle.turns_a), "b": list(battle.turns_b)}
    update = {"battle_id": battle_id, "a_on_left": a_on_left, "turns": turns, "done": False}
    conversations = [conversation(turns, earlier[side], settings.system or "") for side in "ab"]
    answers = None
    try:
        for answers in generator.stream(conversations, [battle.model_a, battle.model_b], SamplingParams(**campaign.params)):
            yield {**update, "answers_a": earlier["a"] + [answers[0].text], "answers_b": earlier["b"] + [answers[1].text]}
    except BaseException:  # an error, or the client went away mid-answer (GeneratorExit)
        if reserved is not None:
            store.drop_open_battle(reserved)
        raise
    if reserved is not None:
        battle_id = reserved
    else:
        store.set_turns(battle.prompt_id, turns)
    a, b = answers
    store.save_answers([(battle.prompt_id, battle.model_a, a.text, a.new_tokens, a.notice, earlier["a"] + [a.text]),
                        (battle.prompt_id, battle.model_b, b.text, b.new_tokens, b.notice, earlier["b"] + [b.text])])
    store.flag_battles(name, hygiene.flags(store.battle_answers(name, battle_id), list(settings.identity_words)))
    yield {**update, "battle_id": battle_id, "answers_a": earlier["a"] + [a.text], "answers_b": earlier["b"] + [b.text],
           "done": True}


def checked_question(store: Store, name: str, rater_id: int, text: str) -> str:
    """The rater's question, stripped, or a refusal: a closed campaign, nothing typed, too long."""
    settings = store.campaign(name).settings
    if not settings.open:
        raise StoreError(f"campaign {name!r} has fixed prompts; questions can be asked in an open campaign")
    text = (text or "").strip()
    if not text:
        raise StoreError("type a question first")
    if len(text) > settings.max_prompt_chars:
        store.refuse(name, rater_id, "too_long", text)
        raise StoreError(f"your message has {len(text)} characters; this campaign takes at most {settings.max_prompt_chars}")
    return text


def new_battle(store: Store, campaign, rater_id: int, text: str):
    """(battle id, battle, a_on_left) of a new open battle on the least-covered model pair, after
    the hourly cap and the repeats cap. The battle is stored (pair chosen and written in one
    transaction) before its answers, so questions asked at the same time spread over the pairs;
    a failed answer drops it again."""
    name, settings = campaign.name, campaign.settings
    since = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    if store.battles_since(rater_id, since) >= settings.battles_per_hour:
        store.refuse(name, rater_id, "hourly_cap")
        raise StoreError(f"you started {settings.battles_per_hour} battles in the last hour, this campaign's cap; "
                         "please come back later")
    if sum(hygiene.question_key(q) == hygiene.question_key(text) for q in store.open_prompts(name)) >= settings.max_duplicates:
        store.refuse(name, rater_id, "duplicate_prompt", text)
        raise StoreError("this question was already asked often in this campaign; please ask another one")
    rng = Random(f"{name}:{rater_id}:{store.progress(rater_id)[1]}")
    a_on_left = rng.random() < 0.5
    reserved = store.open_battle(rater_id, lambda counts: least_covered(campaign.models, counts, rng), a_on_left, text)
    return reserved, replace(store.battle(reserved), turns=()), a_on_left  # the question is this turn's
