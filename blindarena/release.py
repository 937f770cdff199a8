"""A dataset people can release: a campaign's votes of the raters who agreed (the rating page's
consent box, off by default), in the column layout of LMSYS's public `lmsys/chatbot_arena_conversations`
release (question_id, model_a, model_b, winner, judge, conversation_a, conversation_b, turn, anony,
language, tstamp), as a `datasets` folder with a dataset card.

Cleaning: gold checks, flagged battles (an answer names a model) and raters left out by the
quality checks are not released; a rater's name becomes a salted hash (the salt is random per
release and never written, so a hash cannot be traced back by hashing names); personal data and
secrets are replaced in every text that leaves by a tag ([EMAIL], [PERSON], [ADDRESS], [SECRET], ...;
blindarena.redaction: Presidio and detect-secrets), counted per kind. Comments and edited answers
are never released. A dry run shows what would go and records the campaign state it showed; a push
to the Hub needs one of the same state."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import Counter
from datetime import datetime
from pathlib import Path

from blindarena import quality
from blindarena.operations import rater_quality
from blindarena.redaction import TAGS, redact, to_review
from blindarena.records import StoreError
from blindarena.store import Store
from blindarena.vocab import conversation

WINNER = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}  # LMSYS's spellings
COLUMNS = ("question_id", "model_a", "model_b", "winner", "judge", "conversation_a", "conversation_b", "turn", "anony",
           "language", "tstamp")
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
             "nl": "Dutch", "ru": "Russian", "zh-cn": "Chinese", "zh-tw": "Chinese", "ja": "Japanese", "ko": "Korean",
             "pl": "Polish", "tr": "Turkish", "ar": "Arabic", "hi": "Hindi", "vi": "Vietnamese", "sv": "Swedish"}
LICENSES = ("cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc0-1.0", "odc-by", "other")

SAMPLE_ROWS = 5  # redacted texts a dry run shows beside their originals


def language_of(text: str) -> str:
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect samples; a seed makes it give one answer
    try:
        code = detect(text)
    except LangDetectException:
        return "unknown"
    return LANGUAGES.get(code, code)


def redacted_conversation(turns: list[str], answers: list[str], counts: Counter) -> list[dict]:
    """The arena's one message layout (vocab.conversation) of texts with personal data redacted."""
    return conversation([redact(t, counts) for t in turns], [redact(a, counts) for a in answers])


def releasable_votes(store: Store, campaign: str) -> tuple[list, Counter, set]:
    """The votes a release carries (consenting humans, kept by the quality checks, unflagged battles),
    what was left out and why (counted), and the consenting raters' names."""
    left_out = quality.excluded_names(rater_quality(store, campaign))
    consenting = {r.name for r in store.raters(campaign) if r.role == "human" and r.consent}
    kept, skipped = [], Counter()
    for vote in store.votes(campaign, answers=True):
        why = ("judge" if vote.rater_role != "human" else "no consent" if vote.rater not in consenting
               else "rater left out" if vote.rater in left_out else "flagged battle" if vote.flag else None)
        if why:
            skipped[why] += 1
        else:
            kept.append(vote)
    return kept, skipped, consenting


def texts_of(vote) -> tuple[list[str], list[str], list[str]]:
    """A vote's user turns and each side's answers: every text of it that a release carries."""
    battle = vote.battle
    return (list(battle.turns) or [battle.prompt], list(battle.turns_a) or [battle.text_a],
            list(battle.turns_b) or [battle.text_b])


def fingerprint(votes: list, skipped: Counter, release_note: str) -> str:
    """The campaign state a release would carry: every released vote with its texts, what was left
    out, the card's note. A dry run records it; a push needs the same one."""
    state = [[v.id, v.rater, v.winner, v.created_at, *texts_of(v)] for v in votes]
    return hashlib.sha256(json.dumps([state, sorted(skipped.items()), release_note]).encode()).hexdigest()


def released_rows(store: Store, campaign: str, salt: str, releasable: tuple | None = None) -> tuple[list[dict], dict]:
    """The release's rows and what was left out, counted; figures["fingerprint"] names the state.
    `releasable`: releasable_votes' result where the caller has it already."""
    votes, skipped, consenting = releasable or releasable_votes(store, campaign)
    counts, rows = Counter(), []
    for vote in votes:
        turns, answers_a, answers_b = texts_of(vote)
        battle = vote.battle
        rows.append({"question_id": battle.question_id or str(battle.prompt_id), "model_a": vote.model_a,
                     "model_b": vote.model_b, "winner": WINNER[vote.winner],
                     "judge": "arena_user_" + hashlib.sha256(f"{salt}:{campaign}:{vote.rater}".encode()).hexdigest()[:16],
                     "conversation_a": redacted_conversation(turns, answers_a, counts),
                     "conversation_b": redacted_conversation(turns, answers_b, counts), "turn": len(turns), "anony": True,
                     "language": language_of(turns[0]), "tstamp": datetime.fromisoformat(vote.created_at).timestamp()})
    note = store.campaign(campaign).settings.release_note
    return rows, {"redacted": {kind: counts[kind] for kind in TAGS if counts[kind]}, "not_released": dict(skipped),
                  "raters": len({r["judge"] for r in rows}), "consenting_raters": len(consenting),
                  "fingerprint": fingerprint(votes, skipped, note)}


def dry_run(store: Store, campaign: str, sample: int = SAMPLE_ROWS) -> dict:
    """What a release would carry, for the admin's eyes only (nothing is written but the record that
    this state was seen): counts per kind, `sample` redacted texts beside their originals, and every
    text with a hit too weak to redact (a one-word name, a key-shaped token) for a person to check."""
    releasable = releasable_votes(store, campaign)
    votes = releasable[0]
    rows, figures = released_rows(store, campaign, secrets.token_hex(16), releasable)
    seen, changed, to_check = set(), [], []
    for vote in votes:
        for text in (t for texts in texts_of(vote) for t in texts):
            if text in seen:
                continue
            seen.add(text)
            cleaned = redact(text, Counter())
            if cleaned != text:
                changed.append({"question_id": vote.battle.question_id or str(vote.battle.prompt_id),
                                "original": text, "redacted": cleaned})
            weak = to_review(text)
            if weak:
                to_check.append({"question_id": vote.battle.question_id or str(vote.battle.prompt_id), "redacted": cleaned,
                                 "hits": [{"kind": f.kind, "value": text[f.start:f.end], "found_by": f.source,
                                           "score": round(f.score, 2)} for f in weak]})
    store.record_release_review(campaign, figures["fingerprint"])
    return {"campaign": campaign, "dry_run": True, "votes": len(rows), **figures, "texts": len(seen),
            "texts_redacted": len(changed), "sample": changed[:sample], "to_check": to_check}


def release(store: Store, campaign: str, out: str | Path, license: str = "cc-by-4.0", push: str | None = None,
            reviewed: str | None = None) -> dict:
    """Write the release (a `datasets` folder and README.md, its card) into `out`, a new or empty
    folder; with `push`, upload it as a Hub dataset repo, which needs a dry run of this very state.
    `reviewed`: the fingerprint of the dry run a person is looking at (the Admin tab), which must
    still be the campaign's state. Returns the card's figures."""
    from datasets import Dataset

    if license not in LICENSES:
        raise StoreError(f"--license {license!r}; use one of {', '.join(LICENSES)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"--out {out} exists and is not an empty folder; name a new one")
    settings = store.campaign(campaign).settings
    rows, figures = released_rows(store, campaign, secrets.token_hex(16))
    if not rows:
        raise StoreError(f"campaign {campaign!r} has no votes to release: {figures['consenting_raters']} raters agreed "
                         f"({json.dumps(figures['not_released'])} votes not released)")
    if reviewed is not None and reviewed != figures["fingerprint"]:
        raise StoreError(f"campaign {campaign!r} changed since the dry run shown (new votes, consent or reviews); "
                         "make a dry run again and look at it before releasing")
    if push and not store.release_reviewed(campaign, figures["fingerprint"]):
        raise StoreError(f"--push refused: no dry run of campaign {campaign!r} in its current state; run "
                         f"`arena.py release {campaign} --dry-run`, look at what would go, then push")
    dataset = Dataset.from_list(rows)
    dataset.save_to_disk(str(out))
    figures = {"campaign": campaign, "votes": len(rows), "license": license, "columns": list(COLUMNS), **figures}
    (out / "README.md").write_text(card(figures, redact(settings.release_note, Counter())), encoding="utf-8")
    if push:
        dataset.push_to_hub(push)
        figures["pushed_to"] = push
    return figures


def card(figures: dict, release_note: str) -> str:
    redacted = ", ".join(f"{n} {kind}" for kind, n in figures["redacted"].items()) or "none"
    left = ", ".join(f"{n} ({why})" for why, n in figures["not_released"].items()) or "none"
    return f"""---
license: {figures['license']}
task_categories:
- text-generation
tags:
- arena
- human-preferences
size_categories:
- n<1K
---

# Blind-arena votes: campaign `{figures['campaign']}`

{figures['votes']} votes of {figures['raters']} raters who agreed to this release, in the column layout of
`lmsys/chatbot_arena_conversations` (`{'`, `'.join(figures['columns'])}`). `winner` is `model_a`,
`model_b`, `tie` or `tie (bothbad)`; `judge` is a rater's salted hash (the salt was random and not
kept); each conversation is a list of `{{"role", "content"}}` messages.

## How it was collected and cleaned

- Raters compared two anonymous answers and voted; a vote is released only when its rater ticked
  the release box, which said: "{release_note}"
- Not released: {left}. Gold checks, comments and edited answers are never released.
- Personal data and secrets replaced by a tag in every text (questions, follow-ups and answers):
  {redacted}. Found by Microsoft Presidio (spaCy's English NER; checksums for cards, IBANs and
  national ids), Yelp's detect-secrets and a few named patterns of the workbench (written-out emails,
  street addresses, dates of birth, stated passwords, providers' key formats); the dry run that
  preceded this release was looked at by the campaign's admin.

License: {figures['license']}. The models' answers fall under their own licenses and terms.
"""
