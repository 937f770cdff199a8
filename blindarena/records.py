"""The arena's records: what the store hands out and what flows on through arena, quality, stats
and pairs. Frozen dataclasses with typed fields; each also reads like a row (`vote["winner"]`,
`dict(vote)`), so the pure statistics take records and the plain rows that simulations and tests
build alike. `CampaignSettings` is the one place for a campaign's rating defaults: the command
line, the app's form and the store all start from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from posttrain.errors import WorkbenchError

ALLOCATIONS = ("balanced", "adaptive")
SAMPLING = {"max_new_tokens": 128, "temperature": 0.7, "top_p": 0.95, "seed": 0}  # a campaign's generation defaults


class StoreError(WorkbenchError, ValueError):
    """A request the arena refuses; the message says which campaign, rater, battle or setting."""


NESTED = {"battle", "settings"}  # fields holding another record


class Row:
    """Read a record like a row: `record["field"]`, `record.get("field")`, `dict(record)`."""

    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default=None):
        return getattr(self, key, default)

    def keys(self):
        """The record's columns (a nested record, like a vote's battle, is not one)."""
        return [f.name for f in fields(self) if f.name not in NESTED]

    def __iter__(self):
        return iter(self.keys())


def _tuple(value) -> tuple:
    """A JSON list column (or None) as a tuple."""
    if value is None or value == "":
        return ()
    return tuple(json.loads(value)) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class Assignment:
    """One battle as one rater sees it. Model names are NOT part of it: the UI gets only this."""

    rater_id: int
    battle_id: int
    position: int  # 0-based place in this rater's order
    total: int
    done: int
    prompt: str
    left: str
    right: str
    gold: bool = False  # a gold check; never shown to the rater as such
    turns: tuple = ()  # a multi-turn prompt's user turns (prompt is the first)
    left_turns: tuple = ()  # the left model's answer to each turn (left is the last)
    right_turns: tuple = ()


@dataclass(frozen=True)
class Battle(Row):
    """A battle with its prompt and both stored answers (the store's `battle_answers` view). A
    multi-turn battle has its user `turns` and each model's answer per turn; `text_a` / `text_b`
    are the last answers ("" while an open battle's answers are being generated)."""

    battle_id: int
    prompt_id: int
    campaign_id: int
    model_a: str
    model_b: str
    gold: bool = False
    flag: str | None = None  # why it is kept but left out (an answer names its author)
    prompt: str = ""
    category: str | None = None
    question_id: str | None = None
    turns: tuple = ()
    text_a: str = ""
    text_b: str = ""
    turns_a: tuple = ()
    turns_b: tuple = ()

    @classmethod
    def from_row(cls, row) -> "Battle":
        return cls(row["battle_id"], row["prompt_id"], row["campaign_id"], row["model_a"], row["model_b"],
                   bool(row["gold"]), row["flag"], row["prompt"], row["category"], row["question_id"],
                   _tuple(row["turns"]), row["text_a"] or "", row["text_b"] or "", _tuple(row["turns_a"]),
                   _tuple(row["turns_b"]))


@dataclass(frozen=True)
class Vote(Row):
    """One vote in model terms (winner a / b / tie / both_bad, whichever side each was shown on),
    with its rater and its battle's prompt tags. `battle` is filled where the reader asked for the
    answers too (the decisive votes pairs are built from)."""

    id: int
    battle_id: int
    rater_id: int
    rater: str
    rater_role: str  # "human" or "judge" (the rater's role)
    model_a: str
    model_b: str
    winner: str
    a_on_left: bool | None
    created_at: str
    score_a: int | None = None
    score_b: int | None = None
    edited: str | None = None
    comment: str | None = None
    prompt_id: int | None = None
    category: str | None = None
    question_id: str | None = None
    flag: str | None = None
    verdicts: str | None = None  # a judge's two verdicts (JSON)
    battle: Battle | None = None

    @property
    def text_a(self) -> str:
        return self.battle.text_a if self.battle else ""

    @property
    def text_b(self) -> str:
        return self.battle.text_b if self.battle else ""

    @classmethod
    def from_row(cls, row, battle: Battle | None = None) -> "Vote":
        return cls(row["id"], row["battle_id"], row["rater_id"], row["rater"], row["rater_role"], row["model_a"],
                   row["model_b"], row["winner"], None if row["a_on_left"] is None else bool(row["a_on_left"]),
                   row["created_at"], row["score_a"], row["score_b"], row["edited"], row["comment"], row["prompt_id"],
                   row["category"], row["question_id"], row["flag"], row["verdicts"], battle)


@dataclass(frozen=True)
class Rater(Row):
    """A campaign's rater: a person ("human") or an automatic judge ("judge"), with the admin's
    review (None: the automatic checks decide; "include" or "exclude")."""

    id: int
    name: str
    role: str  # "human" or "judge"
    review: str | None
    created_at: str
    consent: bool = False  # agreed to have their votes released (arena.py release); off by default


RELEASE_NOTE = ("If you tick this, your votes on this campaign may be published in an open dataset: each vote with "
                "the two conversations you compared, the models' names and the time, your name replaced by a random "
                "code, and emails, phone numbers, addresses of computers, card numbers and links with keys removed "
                "from every text. Your comments and edited answers are never published. Off unless you tick it.")


@dataclass(frozen=True)
class CampaignSettings(Row):
    """How a campaign's votes are collected and checked, with its defaults (the arena before raters
    were checked: pre-assigned battles, no gold, no target). Stored as JSON with the campaign;
    `from_stored` reads what any earlier version stored (missing keys take the defaults of the
    version that wrote them: no text or per-minute limit for campaigns made before those)."""

    votes_per_battle: int | None = None  # each battle rated by this many different people, then no more
    allocation: str = "balanced"  # or "adaptive": the widest win-rate intervals first
    gold: tuple = ()  # {"prompt", "chosen", "rejected"} rows whose better answer is known (not stored here)
    gold_rate: float = 0.1  # share of each rater's battles that are gold checks
    min_gold_accuracy: float = 0.7  # under this after MIN_GOLD gold battles, a rater is flagged
    guidelines: str = ""  # Markdown shown to raters before their first battle
    system: str = ""  # one system prompt every model answers under (e.g. so none introduces itself)
    open: bool = False  # no prompt file: raters ask their own questions (/ask), two anonymous models answer
    max_turns: int = 3  # open battles: user turns per battle
    max_prompt_chars: int = 2000  # open battles: characters per user turn
    battles_per_hour: int = 30  # open battles: new battles per rater per hour
    max_duplicates: int = 3  # open battles: times one question (normalised) may start a battle in the campaign
    identity_words: tuple = ()  # words that give a model away (blindarena.hygiene.identity_words); flagged battles
    max_text_chars: int | None = 8000  # a rater's edited better answer or comment, at most (None: no limit)
    votes_per_minute: int | None = 30  # a rater's votes in any minute, at most (None: no limit)
    gold_count: int = 0  # gold checks stored with the campaign
    base_prompt: str | None = None  # how a base without a chat template is prompted (see Engine.base_prompting)
    release_note: str = RELEASE_NOTE  # what a rater who ticks "release my votes" agrees to (arena.py release)
    repeat_share: float = 0.05  # open battles: one question counts for at most this share of the votes (hygiene)
    near_duplicate: float = 0.9  # open battles: one rater's questions this similar within a day count once

    def __post_init__(self):
        if self.votes_per_battle is not None and not (isinstance(self.votes_per_battle, int) and self.votes_per_battle >= 1):
            raise StoreError(f"votes per battle must be a whole number of at least 1, got {self.votes_per_battle!r}")
        if self.allocation not in ALLOCATIONS:
            raise StoreError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {self.allocation!r}")
        if not 0 <= self.gold_rate < 1:
            raise StoreError(f"gold rate must be at least 0 and under 1, got {self.gold_rate}")
        if not 0 <= self.min_gold_accuracy <= 1:
            raise StoreError(f"minimum gold accuracy must be between 0 and 1, got {self.min_gold_accuracy}")
        for limit in ("max_turns", "max_prompt_chars", "battles_per_hour", "max_duplicates", "max_text_chars",
                      "votes_per_minute"):
            value = getattr(self, limit)
            if not (value is None and limit in ("max_text_chars", "votes_per_minute")) \
                    and not (isinstance(value, int) and value >= 1):
                raise StoreError(f"{limit.replace('_', ' ')} must be a whole number of at least 1, got {value!r}")
        if not (0 < self.repeat_share <= 1 and 0 < self.near_duplicate <= 1):
            raise StoreError(f"repeat share and near-duplicate similarity must be above 0 and at most 1, got "
                             f"{self.repeat_share!r} and {self.near_duplicate!r}")
        if self.open and (self.gold or self.votes_per_battle):
            raise StoreError("an open campaign has no fixed battles: gold checks and votes per battle need a prompt file")

    @property
    def dynamic(self) -> bool:
        """Battles are handed out one at a time (not pre-assigned per rater): a votes-per-battle
        target or adaptive allocation."""
        return bool(self.votes_per_battle) or self.allocation == "adaptive"

    def stored(self) -> dict:
        """The JSON the store keeps (the keys every earlier version wrote; the gold rows themselves
        become gold battles)."""
        out = {"votes_per_battle": self.votes_per_battle, "allocation": self.allocation,
               "gold_rate": self.gold_rate if (self.gold or self.gold_count) else 0.0,
               "gold_count": len(self.gold) or self.gold_count,
               "min_gold_accuracy": self.min_gold_accuracy, "guidelines": self.guidelines, "system": self.system,
               "identity_words": list(self.identity_words), "max_text_chars": self.max_text_chars,
               "votes_per_minute": self.votes_per_minute}
        if self.open:
            out.update(open=True, max_turns=self.max_turns, max_prompt_chars=self.max_prompt_chars,
                       battles_per_hour=self.battles_per_hour, max_duplicates=self.max_duplicates)
        if self.base_prompt:
            out["base_prompt"] = self.base_prompt
        return out

    @classmethod
    def from_stored(cls, stored: dict | str | None) -> "CampaignSettings":
        """The settings a campaign was stored with, by any earlier version (unknown keys are kept
        out; missing limits of campaigns made before them stay unlimited)."""
        data = json.loads(stored) if isinstance(stored, str) else dict(stored or {})
        known = {f.name for f in fields(cls)} - {"gold"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("max_text_chars", 8000)  # every campaign had the default text limit when it came
        values.setdefault("votes_per_minute", None)  # campaigns made before the limit have none
        values["identity_words"] = tuple(values.get("identity_words") or ())
        values["gold_rate"] = values.get("gold_rate") or 0.0
        for key in ("max_turns", "max_prompt_chars", "battles_per_hour", "max_duplicates"):
            if values.get(key) is None:
                values.pop(key, None)
        if values.get("min_gold_accuracy") is None:
            values.pop("min_gold_accuracy", None)
        values["allocation"] = values.get("allocation") or "balanced"
        return cls(**values)


@dataclass(frozen=True)
class Campaign(Row):
    """A stored campaign: its models, sampling parameters and settings; `battles` and `votes`
    count regular battles and the votes on them where the reader counted them (`Store.campaigns`)."""

    id: int
    name: str
    models: list
    params: dict
    prompt_source: str | None
    status: str
    created_at: str
    access: str = "name"
    settings: CampaignSettings = field(default_factory=CampaignSettings)
    battles: int | None = None
    votes: int | None = None

    @classmethod
    def from_row(cls, row) -> "Campaign":
        keys = row.keys()
        return cls(row["id"], row["name"], json.loads(row["models"]), json.loads(row["params"]), row["prompt_source"],
                   row["status"], row["created_at"], row["access"], CampaignSettings.from_stored(row["settings"]),
                   row["battles"] if "battles" in keys else None, row["votes"] if "votes" in keys else None)

    def as_dict(self) -> dict:
        """The campaign as `campaign list --json` prints it (settings as stored)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["settings"] = self.settings.stored()
        return {k: v for k, v in out.items() if v is not None or k in ("prompt_source",)}
