"""A dataset people can release: a campaign's votes of the raters who agreed (the rating page's
consent box, off by default), in the column layout of LMSYS's public `lmsys/chatbot_arena_conversations`
release (question_id, model_a, model_b, winner, judge, conversation_a, conversation_b, turn, anony,
language, tstamp), as a `datasets` folder with a dataset card.

Cleaning: gold checks, flagged battles (an answer names a model) and raters left out by the
quality checks are not released; a rater's name becomes a salted hash (the salt is random per
release and never written, so a hash cannot be traced back by hashing names); personal data is
replaced in every text by a tag ([EMAIL], [PHONE], [IP], [CARD], [URL]), counted per kind.
Comments and edited answers are never released."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import Counter
from datetime import datetime
from pathlib import Path

from blindarena import quality
from blindarena.operations import rater_quality
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

# Personal data, in the order the patterns run (a URL with a key first: it may hold an email or digits).
_SECRET_PARAMS = r"(?:token|key|api_key|apikey|access_token|secret|password|passwd|pwd|auth|session|sid|sig|signature|code)"
PATTERNS = {
    "url": re.compile(rf"https?://[^\s?#]+\?[^\s#]*\b{_SECRET_PARAMS}=[^\s&#]+[^\s]*", re.I),
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    "card": re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"),
    "ip": re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
                     r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"),
    "phone": re.compile(r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}"
                        r"(?![\w])(?![ .-]?\d)"),
}
TAGS = {"url": "[URL]", "email": "[EMAIL]", "card": "[CARD]", "ip": "[IP]", "phone": "[PHONE]"}


def luhn(digits: str) -> bool:
    """The check digit card numbers carry (so a long order number is not taken for a card)."""
    total, parity = 0, len(digits) % 2
    for i, d in enumerate(int(c) for c in digits):
        d = d * 2 if i % 2 == parity else d
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def redact(text: str, counts: Counter) -> str:
    """`text` with every piece of personal data replaced by its tag, each counted by kind."""
    for kind, pattern in PATTERNS.items():
        def replace(match, kind=kind):
            if kind == "card" and not luhn(re.sub(r"\D", "", match.group(0))):
                return match.group(0)
            counts[kind] += 1
            return TAGS[kind]

        text = pattern.sub(replace, text)
    return text


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


def released_rows(store: Store, campaign: str, salt: str) -> tuple[list[dict], dict]:
    """The release's rows and what was left out, counted."""
    left_out = quality.excluded_names(rater_quality(store, campaign))
    consenting = {r.name for r in store.raters(campaign) if r.role == "human" and r.consent}
    counts, skipped, rows = Counter(), Counter(), []
    for vote in store.votes(campaign, answers=True):
        why = ("judge" if vote.rater_role != "human" else "no consent" if vote.rater not in consenting
               else "rater left out" if vote.rater in left_out else "flagged battle" if vote.flag else None)
        if why:
            skipped[why] += 1
            continue
        battle = vote.battle
        turns = list(battle.turns) or [battle.prompt]
        answers_a, answers_b = list(battle.turns_a) or [battle.text_a], list(battle.turns_b) or [battle.text_b]
        rows.append({"question_id": battle.question_id or str(battle.prompt_id), "model_a": vote.model_a,
                     "model_b": vote.model_b, "winner": WINNER[vote.winner],
                     "judge": "arena_user_" + hashlib.sha256(f"{salt}:{campaign}:{vote.rater}".encode()).hexdigest()[:16],
                     "conversation_a": redacted_conversation(turns, answers_a, counts),
                     "conversation_b": redacted_conversation(turns, answers_b, counts), "turn": len(turns), "anony": True,
                     "language": language_of(turns[0]), "tstamp": datetime.fromisoformat(vote.created_at).timestamp()})
    return rows, {"redacted": {kind: counts[kind] for kind in PATTERNS}, "not_released": dict(skipped),
                  "raters": len({r["judge"] for r in rows}), "consenting_raters": len(consenting)}


def release(store: Store, campaign: str, out: str | Path, license: str = "cc-by-4.0", push: str | None = None) -> dict:
    """Write the release (a `datasets` folder and README.md, its card) into `out`, a new or empty
    folder; with `push`, upload it as a Hub dataset repo. Returns the card's figures."""
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
    dataset = Dataset.from_list(rows)
    dataset.save_to_disk(str(out))
    figures = {"campaign": campaign, "votes": len(rows), "license": license, "columns": list(COLUMNS), **figures}
    (out / "README.md").write_text(card(figures, settings.release_note), encoding="utf-8")
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
- Personal data replaced by a tag in every text: {redacted} (emails, phone numbers, IP addresses,
  card numbers that pass the Luhn check, links carrying keys or tokens).

License: {figures['license']}. The models' answers fall under their own licenses and terms.
"""
