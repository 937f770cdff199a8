"""The arena's SQLite store (one file, WAL): campaigns, their prompts and stored answers,
battles (gold checks among them), raters with their assignments, and votes. It stores and reads:
which battles a rater gets, on which side, is decided by blindarena.allocation and handed in; the
store writes it and enforces only what needs its own transaction (one vote per rater and battle,
a battle's votes-per-battle target at claim and vote time). Writes take the write lock
(BEGIN IMMEDIATE) and commit before they return; reads are deferred transactions, which in WAL
mode never wait for a writer. The layout changes only through the numbered MIGRATIONS, recorded
in PRAGMA user_version, so a database of any earlier version opens, migrates in place and keeps
every vote. Nothing here renders UI, computes ratings or decides majorities."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone
from itertools import combinations
from pathlib import Path
from typing import Callable

from blindarena.records import Assignment, Battle, Campaign, CampaignSettings, Rater, StoreError, Vote
from blindarena.vocab import CHOICES, OPEN_CATEGORY, RATER_ROLES, winner_of
from posttrain.errors import FaultError
from posttrain.names import problem as name_problem

# The layout of a version-1 database. Every statement is idempotent (IF NOT EXISTS), so migration 1
# also completes a database written before versions, whichever of its tables it already had.
SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, models TEXT NOT NULL, params TEXT NOT NULL,
    prompt_source TEXT, status TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (
    id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, question_id TEXT, category TEXT, prompt TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE, model TEXT NOT NULL,
    text TEXT NOT NULL, new_tokens INTEGER, notice TEXT, PRIMARY KEY (prompt_id, model));
CREATE TABLE IF NOT EXISTS battles (
    id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE, model_a TEXT NOT NULL, model_b TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    name TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'human', created_at TEXT NOT NULL, UNIQUE (campaign_id, name));
CREATE TABLE IF NOT EXISTS assignments (
    rater_id INTEGER NOT NULL REFERENCES raters(id) ON DELETE CASCADE, position INTEGER NOT NULL,
    battle_id INTEGER NOT NULL REFERENCES battles(id) ON DELETE CASCADE, a_on_left INTEGER NOT NULL,
    PRIMARY KEY (rater_id, position), UNIQUE (rater_id, battle_id));
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY, battle_id INTEGER NOT NULL REFERENCES battles(id) ON DELETE CASCADE,
    rater_id INTEGER NOT NULL REFERENCES raters(id) ON DELETE CASCADE, a_on_left INTEGER,
    winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie', 'both_bad')),
    score_a INTEGER CHECK (score_a BETWEEN 1 AND 7), score_b INTEGER CHECK (score_b BETWEEN 1 AND 7),
    edited TEXT, comment TEXT, created_at TEXT NOT NULL, UNIQUE (battle_id, rater_id));
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    rater_id INTEGER REFERENCES raters(id) ON DELETE CASCADE, kind TEXT NOT NULL, detail TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invites (
    token TEXT PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    label TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (campaign_id, label));
CREATE INDEX IF NOT EXISTS assignments_battle ON assignments (battle_id);
"""
# Columns added to the first release's tables before versions were recorded; a database written
# then gains the ones it lacks (ALTER TABLE ... ADD COLUMN keeps every row; old rows take the default).
ADDED_COLUMNS = {
    "campaigns": [("access", "TEXT NOT NULL DEFAULT 'name'"),  # who may rate (see ACCESS)
                  ("settings", "TEXT NOT NULL DEFAULT '{}'")],  # records.CampaignSettings, as JSON
    "prompts": [("gold", "INTEGER NOT NULL DEFAULT 0"),  # a gold check: its better answer is known
                ("turns", "TEXT")],  # JSON list of the user turns of a multi-turn prompt (NULL: one turn)
    "answers": [("turns", "TEXT")],  # JSON list of a model's answers to each turn of a multi-turn prompt
    "battles": [("gold", "INTEGER NOT NULL DEFAULT 0"),
                ("flag", "TEXT")],  # why the battle is kept but left out (an answer names a model or its maker)
    "assignments": [("assigned_at", "TEXT")],  # when a battle was handed out (claims expire)
    "raters": [("review", "TEXT")],  # the admin's word on a rater: NULL (automatic), 'include' or 'exclude'
    "votes": [("verdicts", "TEXT")],  # a judge's two verdicts, JSON {"as_shown", "swapped"} (left / right / tie)
}
# Every battle with its prompt and both stored answers (NULL while not generated): the one join
# of a battle with its answers, read by every query that needs them.
BATTLE_ANSWERS = """
CREATE VIEW IF NOT EXISTS battle_answers AS
SELECT b.id AS battle_id, b.prompt_id, b.campaign_id, b.model_a, b.model_b, b.gold, b.flag, p.position, p.prompt,
       p.category, p.question_id, p.turns, aa.text AS text_a, ab.text AS text_b, aa.turns AS turns_a, ab.turns AS turns_b
FROM battles b JOIN prompts p ON p.id = b.prompt_id
LEFT JOIN answers aa ON aa.prompt_id = b.prompt_id AND aa.model = b.model_a
LEFT JOIN answers ab ON ab.prompt_id = b.prompt_id AND ab.model = b.model_b
"""


def _to_v1(con: sqlite3.Connection) -> None:
    for statement in filter(str.strip, SCHEMA.split(";")):
        con.execute(statement)
    for table, added in ADDED_COLUMNS.items():
        columns = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        for column, column_type in added:
            if column not in columns:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {column_type}")


def _to_v2(con: sqlite3.Connection) -> None:
    con.execute(BATTLE_ANSWERS)


def _to_v3(con: sqlite3.Connection) -> None:
    if "consent" not in {r[1] for r in con.execute("PRAGMA table_info(raters)")}:
        con.execute("ALTER TABLE raters ADD COLUMN consent INTEGER NOT NULL DEFAULT 0")


def _to_v4(con: sqlite3.Connection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS release_reviews (campaign_id INTEGER NOT NULL REFERENCES campaigns(id) "
                "ON DELETE CASCADE, fingerprint TEXT NOT NULL, reviewed_at TEXT NOT NULL, PRIMARY KEY (campaign_id, fingerprint))")


# (version, what it changes, the change). A database at version v runs every migration above v, each
# in the write transaction that records its number; append new ones, never edit old ones.
MIGRATIONS: tuple[tuple[int, str, Callable[[sqlite3.Connection], None]], ...] = (
    (1, "every table and column of the releases before versions (a database written then gains what it lacks)", _to_v1),
    (2, "the battle_answers view: a battle with its prompt and both answers", _to_v2),
    (3, "raters.consent: the rater agreed to have their votes released (off for every earlier rater)", _to_v3),
    (4, "release_reviews: the campaign states an admin saw in a release's dry run (a push needs one)", _to_v4),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]  # PRAGMA user_version of a database this version wrote (0: before versions)
OUR_TABLES = {"campaigns", "prompts", "answers", "battles", "raters", "assignments", "votes"}
GOLD_CHOSEN, GOLD_REJECTED = "__gold_chosen__", "__gold_rejected__"  # a gold battle's two "models"
MAX_RATER_NAME = 64  # characters of a rater's name (judges' names are ours)
CLAIM_TIMEOUT_S = 30 * 60  # a battle handed out and not voted on for this long goes to someone else
ACCESS = ("name", "invite", "hf")  # who may rate a campaign: a typed name, an invite link, a Hugging Face login
REVIEWS = (None, "include", "exclude")
# A battle's planned place in a rater's order: (battle id, whether model_a is shown on the left).
Preassign = Callable[[list[dict], int], list[tuple[int, bool]]]


def default_data_dir() -> Path:
    """ARENA_DATA_DIR; else /data/arena on a Space with persistent storage; else ./arena_data."""
    if os.environ.get("ARENA_DATA_DIR"):
        return Path(os.environ["ARENA_DATA_DIR"])
    space_storage = Path("/data")
    if space_storage.is_dir() and os.access(space_storage, os.W_OK):
        return space_storage / "arena"
    return Path("arena_data")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class DatabaseFault(StoreError, FaultError):
    """An arena database that cannot be trusted (damaged, empty, someone else's, newer): refused,
    never replaced or repaired."""


class Store:
    def __init__(self, path: str | Path, init: bool = False):
        """Open (or create) the arena database at `path`. An existing file is checked first
        (PRAGMA quick_check, our tables, the schema version) and refused with its path when it is
        damaged, someone else's or from a newer version; a 0-byte file counts as damaged unless
        `init` (then it becomes a new, empty arena). Then the migrations it lacks run."""
        self.path = Path(path)
        self._pinned = threading.local()  # the connection of a one_snapshot block, per thread
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder; the arena database is a file (--data-dir names its folder)")
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise StoreError(f"--data-dir {self.path.parent} is a file, not a folder; give the folder for arena.sqlite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            self._check(init)
        self._migrate()

    def _migrate(self) -> None:
        """Run the migrations above the database's version, each recorded as it commits; a second
        process opening at the same time waits for the write lock and then finds them done."""
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")  # readers never block the writer of a vote
            if con.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                return  # up to date: an open takes no write lock
            for version, _, change in MIGRATIONS:
                with _transaction(con, "BEGIN IMMEDIATE"):
                    if con.execute("PRAGMA user_version").fetchone()[0] < version:
                        change(con)
                        con.execute(f"PRAGMA user_version = {version}")
        finally:
            con.close()

    def _check(self, init: bool) -> None:
        advice = "restore it from a backup (scripts/arena.py backup OUT.sqlite makes one) or point --data-dir elsewhere"
        if self.path.stat().st_size == 0:
            if init:
                return
            raise DatabaseFault(f"{self.path} is empty (0 bytes), not an arena database; {advice}, or pass --init "
                                "to start a new arena in it")
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            try:
                verdict = con.execute("PRAGMA quick_check").fetchone()[0]
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                version = con.execute("PRAGMA user_version").fetchone()[0]
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise DatabaseFault(f"{self.path} is not a readable SQLite database ({exc}); {advice}") from None
        if verdict != "ok":
            raise DatabaseFault(f"{self.path} is damaged (SQLite's quick_check: {verdict}); {advice}")
        if tables and not OUR_TABLES <= tables:
            raise DatabaseFault(f"{self.path} is an SQLite database, but not an arena's (tables: "
                                f"{', '.join(sorted(tables)[:5])}); point --data-dir elsewhere")
        if version > SCHEMA_VERSION:
            raise DatabaseFault(f"{self.path} was written by a newer version of the workbench (schema {version}, "
                                f"this one reads up to {SCHEMA_VERSION}); update the workbench")

    @contextmanager
    def _connection(self, begin: str):
        """One short-lived connection per operation: safe across Gradio's worker threads and
        processes; commits on success, rolls back on error."""
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA busy_timeout=30000")
        try:
            with _transaction(con, begin):
                yield con
        finally:
            con.close()

    def connect(self):
        """A write transaction (BEGIN IMMEDIATE: the write lock from its first statement)."""
        return self._connection("BEGIN IMMEDIATE")

    def read(self):
        """A read transaction (deferred: one consistent snapshot, no lock a writer waits for);
        inside `one_snapshot`, that block's transaction."""
        pinned = getattr(self._pinned, "con", None)
        return nullcontext(pinned) if pinned is not None else self._connection("BEGIN")

    @contextmanager
    def one_snapshot(self):
        """Every read of this thread inside the block sees the same snapshot of the database: one
        connection, one read transaction, so a view made of many reads (the Results tab) never
        mixes two moments. Writes inside it go through their own transactions, as always."""
        if getattr(self._pinned, "con", None) is not None:
            yield  # already inside one
            return
        with self._connection("BEGIN") as con:
            con.execute("SELECT count(*) FROM campaigns").fetchone()  # a deferred BEGIN snapshots at its first read
            self._pinned.con = con
            try:
                yield
            finally:
                self._pinned.con = None

    def backup(self, dest: str | Path, overwrite: bool = False) -> Path:
        """A consistent copy of the live database (see snapshot), refusing to write over it, over a
        folder, or (unless `overwrite`) over an existing file; a target that cannot be written is
        named as such, never blamed on the live database."""
        dest = Path(dest)
        if dest.exists() and dest.resolve() == self.path.resolve():
            raise StoreError(f"{dest} is the live database itself; name another file for the backup")
        if dest.is_dir():
            raise StoreError(f"{dest} is a folder; name the backup file, e.g. {dest / 'arena-backup.sqlite'}")
        if dest.exists() and not overwrite:
            raise StoreError(f"{dest} exists; name a new file for the backup, or pass --force to replace it")
        probe = dest.with_name(f".{dest.name}.tmp")
        try:  # the target's side first, so that a failure there is never blamed on the live database
            dest.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(probe).execute("CREATE TABLE IF NOT EXISTS probe (x)").connection.close()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot write the backup to {dest} ({exc}); the live database {self.path} is untouched: "
                             "choose a folder you can write to") from None
        finally:
            try:
                probe.unlink(missing_ok=True)
            except OSError:
                pass
        return self.snapshot(dest)

    def snapshot(self, dest: str | Path) -> Path:
        """A consistent copy of the database (SQLite's online backup API: never the live file with
        its WAL mid-write), written beside `dest` and renamed over it in one step."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        source, target = sqlite3.connect(self.path, timeout=30), sqlite3.connect(tmp)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        os.replace(tmp, dest)
        return dest

    # ---- campaigns ---------------------------------------------------------------------------
    def create_campaign(self, name: str, models: list[str], prompts: list[dict], params: dict, source: str = "",
                        settings: CampaignSettings | None = None, gold: list[dict] | None = None) -> int:
        """Store a campaign: every model pair on every prompt is a battle. `gold` rows
        ({"prompt", "chosen", "rejected"}) become gold battles whose two answers are stored now,
        under GOLD_CHOSEN and GOLD_REJECTED. Without `settings` the campaign is stored with none
        (read back as CampaignSettings.from_stored({}): no target, no per-minute limit)."""
        name = name.strip()
        stored = settings.stored() if settings is not None else {}
        settings = CampaignSettings.from_stored(stored)
        if not name:
            raise StoreError("campaign name is empty")
        if name_problem(name, "campaign"):  # a name becomes file names and page text: never a path or markup
            raise StoreError(name_problem(name, "campaign"))
        if len(set(models)) < 2:
            raise StoreError(f"campaign {name!r} needs two or more different models, got {models}")
        if not prompts and not settings.open:
            raise StoreError(f"campaign {name!r} has no prompts")
        with self.connect() as con:
            if con.execute("SELECT 1 FROM campaigns WHERE name = ?", (name,)).fetchone():
                raise StoreError(f"campaign {name!r} already exists")
            cid = con.execute(
                "INSERT INTO campaigns (name, models, params, prompt_source, status, created_at, settings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, json.dumps(models), json.dumps(params), source, "generating", now(),
                 json.dumps(stored))).lastrowid
            for position, prompt in enumerate(prompts):
                turns = prompt.get("turns") if len(prompt.get("turns") or []) > 1 else None
                pid = _insert_prompt(con, cid, position, str(prompt.get("question_id", position + 1)), prompt.get("category"),
                                     prompt["prompt"], turns)
                con.executemany("INSERT INTO battles (campaign_id, prompt_id, model_a, model_b) VALUES (?, ?, ?, ?)",
                                [(cid, pid, a, b) for a, b in combinations(models, 2)])
            for number, row in enumerate(gold or [], 1):
                pid = _insert_prompt(con, cid, len(prompts) + number, f"gold-{number}", "gold", row["prompt"], None, gold=True)
                con.executemany("INSERT INTO answers (prompt_id, model, text) VALUES (?, ?, ?)",
                                [(pid, GOLD_CHOSEN, row["chosen"]), (pid, GOLD_REJECTED, row["rejected"])])
                con.execute("INSERT INTO battles (campaign_id, prompt_id, model_a, model_b, gold) VALUES (?, ?, ?, ?, 1)",
                            (cid, pid, GOLD_CHOSEN, GOLD_REJECTED))
        return cid

    def campaign(self, name: str) -> Campaign:
        with self.read() as con:
            return _campaign(con, name)

    def campaigns(self) -> list[Campaign]:
        with self.read() as con:
            rows = con.execute(
                "SELECT c.*, (SELECT COUNT(*) FROM battles b WHERE b.campaign_id = c.id AND b.gold = 0) AS battles, "
                "(SELECT COUNT(*) FROM votes v JOIN battles b ON b.id = v.battle_id WHERE b.campaign_id = c.id AND b.gold = 0) AS votes "
                "FROM campaigns c ORDER BY c.id").fetchall()
        return [Campaign.from_row(r) for r in rows]

    def set_status(self, name: str, status: str) -> None:
        with self.connect() as con:
            con.execute("UPDATE campaigns SET status = ? WHERE id = ?", (status, _campaign(con, name).id))

    def delete_campaign(self, name: str) -> None:
        with self.connect() as con:
            con.execute("DELETE FROM campaigns WHERE id = ?", (_campaign(con, name).id,))

    def missing_answers(self, name: str) -> list[tuple[int, str, str]]:
        """(prompt id, prompt, model) still without a stored answer: what generation must do."""
        with self.read() as con:
            campaign = _campaign(con, name)
            prompts = con.execute("SELECT id, prompt FROM prompts WHERE campaign_id = ? AND gold = 0 ORDER BY position",
                                  (campaign.id,)).fetchall()
            have = {(r["prompt_id"], r["model"]) for r in con.execute(
                "SELECT a.prompt_id, a.model FROM answers a JOIN prompts p ON p.id = a.prompt_id WHERE p.campaign_id = ?",
                (campaign.id,))}
        return [(p["id"], p["prompt"], m) for p in prompts for m in campaign.models if (p["id"], m) not in have]

    def save_answers(self, rows: list[tuple]) -> None:
        """(prompt id, model, text, new tokens, notice[, answers per turn]) rows, committed together;
        a multi-turn answer's text is its last turn."""
        full = [(*row[:5], json.dumps(row[5]) if len(row) > 5 and row[5] is not None else None) for row in rows]
        with self.connect() as con:
            con.executemany("INSERT OR REPLACE INTO answers (prompt_id, model, text, new_tokens, notice, turns) "
                            "VALUES (?, ?, ?, ?, ?, ?)", full)

    def prompt_turns(self, name: str) -> dict[int, list[str]]:
        """{prompt id: user turns} of the campaign's multi-turn prompts."""
        with self.read() as con:
            return {r["id"]: json.loads(r["turns"]) for r in con.execute(
                "SELECT id, turns FROM prompts WHERE campaign_id = ? AND turns IS NOT NULL", (_campaign(con, name).id,))}

    def answers(self, name: str) -> list[dict]:
        with self.read() as con:
            return [dict(r) for r in con.execute(
                "SELECT a.prompt_id, p.question_id, p.category, p.prompt, a.model, a.text, a.new_tokens, a.notice FROM answers a "
                "JOIN prompts p ON p.id = a.prompt_id WHERE p.campaign_id = ? AND p.gold = 0 ORDER BY p.position, a.model",
                (_campaign(con, name).id,))]

    def set_access(self, name: str, access: str) -> None:
        """Who may rate: `name` (anyone who types one), `invite` (a per-rater link's token) or
        `hf` (a Hugging Face login on a Space)."""
        if access not in ACCESS:
            raise StoreError(f"access must be one of {ACCESS}, got {access!r}")
        with self.connect() as con:
            con.execute("UPDATE campaigns SET access = ? WHERE id = ?", (access, _campaign(con, name).id))

    def create_invites(self, name: str, count: int) -> list[str]:
        """`count` new unguessable invite tokens for a campaign (which then needs one to rate)."""
        if not 1 <= count <= 10_000:
            raise StoreError(f"invite count must be 1-10000, got {count}")
        with self.connect() as con:
            cid = _campaign(con, name).id
            start = con.execute("SELECT COUNT(*) FROM invites WHERE campaign_id = ?", (cid,)).fetchone()[0]
            tokens = [secrets.token_urlsafe(18) for _ in range(count)]
            con.executemany("INSERT INTO invites (token, campaign_id, label, created_at) VALUES (?, ?, ?, ?)",
                            [(t, cid, f"invitee-{start + i + 1}", now()) for i, t in enumerate(tokens)])
            con.execute("UPDATE campaigns SET access = 'invite' WHERE id = ?", (cid,))
        return tokens

    def invite_label(self, name: str, token: str) -> str:
        """The rater name an invite token stands for; unknown tokens are refused."""
        with self.read() as con:
            row = con.execute("SELECT label FROM invites WHERE token = ? AND campaign_id = ?",
                              (token or "", _campaign(con, name).id)).fetchone()
        if row is None:
            raise StoreError(f"unknown invite for campaign {name!r}: open the link the organiser sent you")
        return row["label"]

    # ---- raters ------------------------------------------------------------------------------
    def rater(self, campaign_name: str, name: str, role: str = "human", preassign: Preassign | None = None) -> int:
        """The rater's id; a new rater is stored, and `preassign(battles, earlier raters of this role)`,
        when given, returns their pre-assigned order as (battle id, a_on_left) rows
        (blindarena.allocation.preassign), written in the same transaction. `battles` are every battle
        of the campaign ({battle_id, model_a, model_b, gold, position}, by prompt position). Without
        one a new rater starts with no battles (they are handed out one at a time: `claim`)."""
        name = name.strip()
        if not name:
            raise StoreError("rater name is empty")
        if role not in RATER_ROLES:
            raise StoreError(f"a rater is one of {RATER_ROLES}, got {role!r}")
        if role == "human" and (len(name) > MAX_RATER_NAME or not name.isprintable()):
            raise StoreError(f"a rater name is at most {MAX_RATER_NAME} printable characters (got {len(name)}"
                             f"{'' if name.isprintable() else ', with control characters'}); pick another")
        with self.connect() as con:
            campaign = _campaign(con, campaign_name)
            if campaign.status != "ready":
                raise StoreError(f"campaign {campaign_name!r} is not ready for rating (status: {campaign.status})")
            row = con.execute("SELECT id FROM raters WHERE campaign_id = ? AND name = ?", (campaign.id, name)).fetchone()
            if row:
                return row["id"]
            earlier = con.execute("SELECT COUNT(*) FROM raters WHERE campaign_id = ? AND kind = ?",
                                  (campaign.id, role)).fetchone()[0]
            rid = con.execute("INSERT INTO raters (campaign_id, name, kind, created_at) VALUES (?, ?, ?, ?)",
                              (campaign.id, name, role, now())).lastrowid
            if preassign is not None:
                battles = [dict(r) for r in con.execute(
                    "SELECT b.id AS battle_id, b.model_a, b.model_b, b.gold, p.position FROM battles b "
                    "JOIN prompts p ON p.id = b.prompt_id WHERE b.campaign_id = ? ORDER BY p.position, b.id", (campaign.id,))]
                stamp = now()
                con.executemany("INSERT INTO assignments (rater_id, position, battle_id, a_on_left, assigned_at) "
                                "VALUES (?, ?, ?, ?, ?)", [(rid, i, b, int(left), stamp)
                                                           for i, (b, left) in enumerate(preassign(battles, earlier))])
        return rid

    def raters(self, name: str) -> list[Rater]:
        """Every rater of a campaign with the admin's review (None: automatic)."""
        with self.read() as con:
            return [Rater(**dict(r)) for r in con.execute("SELECT id, name, kind AS role, review, created_at, consent FROM raters "
                                                          "WHERE campaign_id = ? ORDER BY id", (_campaign(con, name).id,))]

    def set_review(self, name: str, rater: str, review: str | None) -> None:
        """The admin's word on a rater: 'include' (counted whatever the checks say), 'exclude', or
        None (the automatic checks decide)."""
        if review not in REVIEWS:
            raise StoreError(f"review must be include, exclude or auto, got {review!r}")
        with self.connect() as con:
            cid = _campaign(con, name).id
            changed = con.execute("UPDATE raters SET review = ? WHERE campaign_id = ? AND name = ?", (review, cid, rater)).rowcount
            known = [r[0] for r in con.execute("SELECT name FROM raters WHERE campaign_id = ? ORDER BY id", (cid,))]
        if not changed:
            raise StoreError(f"campaign {name!r} has no rater {rater!r} (raters: {', '.join(known) or 'none'})")

    def set_consent(self, rater_id: int, consent: bool) -> None:
        """The rater's answer to the campaign's release question (off until they tick it)."""
        with self.connect() as con:
            if not con.execute("UPDATE raters SET consent = ? WHERE id = ?", (int(bool(consent)), rater_id)).rowcount:
                raise StoreError(f"no rater {rater_id}")

    def record_release_review(self, name: str, fingerprint: str) -> None:
        """An admin saw the dry run of the campaign's release in the state `fingerprint` names."""
        with self.connect() as con:
            con.execute("INSERT OR REPLACE INTO release_reviews (campaign_id, fingerprint, reviewed_at) VALUES (?, ?, ?)",
                        (_campaign(con, name).id, fingerprint, now()))

    def release_reviewed(self, name: str, fingerprint: str) -> bool:
        """Whether a dry run of the campaign's release was made in the state `fingerprint` names."""
        with self.read() as con:
            return con.execute("SELECT 1 FROM release_reviews WHERE campaign_id = ? AND fingerprint = ?",
                               (_campaign(con, name).id, fingerprint)).fetchone() is not None

    # ---- hand-outs one at a time (campaigns with a target) -------------------------------------
    def claimable_battles(self, rater_id: int, cap: int | None, left_out_ids: frozenset = frozenset()) -> list[dict]:
        """Regular battles this rater may still be handed ({battle_id, prompt_id, model_a, model_b,
        claims}): on a prompt they have not seen, and claimed by fewer than `cap` raters (a claim: a
        vote, or a hand-out younger than CLAIM_TIMEOUT_S; votes of `left_out_ids` do not count)."""
        with self.read() as con:
            return [dict(r) for r in con.execute(
                "SELECT b.id AS battle_id, b.prompt_id, b.model_a, b.model_b, " + _claims(left_out_ids) + " AS claims "
                "FROM battles b WHERE b.campaign_id = (SELECT campaign_id FROM raters WHERE id = :rater) AND b.gold = 0 "
                "AND b.prompt_id NOT IN (SELECT b2.prompt_id FROM assignments s2 JOIN battles b2 ON b2.id = s2.battle_id "
                "WHERE s2.rater_id = :rater) AND (:cap IS NULL OR " + _claims(left_out_ids) + " < :cap)",
                {"rater": rater_id, "cap": cap, "stale": _stale(), **_ids_params(left_out_ids)}).fetchall()]

    def unseen_gold(self, rater_id: int) -> list[int]:
        """Gold battles this rater has not been given yet."""
        with self.read() as con:
            return [r[0] for r in con.execute(
                "SELECT b.id FROM battles b WHERE b.campaign_id = (SELECT campaign_id FROM raters WHERE id = ?) AND b.gold = 1 "
                "AND b.id NOT IN (SELECT battle_id FROM assignments WHERE rater_id = ?) ORDER BY b.id", (rater_id, rater_id))]

    def claim(self, rater_id: int, battle_id: int, cap: int | None, side: Callable[[int, int], bool],
              left_out_ids: frozenset = frozenset()) -> bool:
        """Hand `battle_id` to the rater as their next battle, unless it reached `cap` claims in the
        meantime (checked in the same transaction: two raters never take the last place both).
        `side(shown with model_a on the left, shown)` says where model_a goes, from the battle's
        hand-outs so far (blindarena.allocation.side), read in the same transaction."""
        with self.connect() as con:
            params = {"battle": battle_id, "stale": _stale(), **_ids_params(left_out_ids)}
            claims = con.execute("SELECT " + _claims(left_out_ids) + " FROM battles b WHERE b.id = :battle", params).fetchone()[0]
            if cap is not None and claims >= cap:
                return False
            left, shown = con.execute("SELECT COALESCE(SUM(a_on_left), 0), COUNT(*) FROM assignments WHERE battle_id = ?",
                                      (battle_id,)).fetchone()
            _hand_out(con, rater_id, battle_id, side(left, shown))
        return True

    def release(self, rater_id: int, battle_id: int) -> None:
        """Take back a battle handed to a rater who did not vote on it (it filled up meanwhile)."""
        with self.connect() as con:
            con.execute("DELETE FROM assignments WHERE rater_id = ? AND battle_id = ? AND NOT EXISTS "
                        "(SELECT 1 FROM votes WHERE rater_id = ? AND battle_id = ?)", (rater_id, battle_id, rater_id, battle_id))

    def flag_battles(self, name: str, flags: dict[int, str]) -> None:
        """Mark battles as kept but left out of ladders and pairs, each with its reason."""
        with self.connect() as con:
            cid = _campaign(con, name).id
            con.executemany("UPDATE battles SET flag = ? WHERE id = ? AND campaign_id = ?",
                            [(reason, battle, cid) for battle, reason in flags.items()])

    def battle_answers(self, name: str, battle_id: int | None = None) -> list[Battle]:
        """Every regular battle (or just `battle_id`) whose two answers are stored."""
        with self.read() as con:
            return [Battle.from_row(r) for r in con.execute(
                "SELECT * FROM battle_answers WHERE campaign_id = ? AND gold = 0 AND text_a IS NOT NULL AND text_b IS NOT NULL "
                "AND (? IS NULL OR battle_id = ?) ORDER BY battle_id", (_campaign(con, name).id, battle_id, battle_id))]

    def battle(self, battle_id: int) -> Battle:
        """A battle with its prompt's turns and each model's answers per turn (answers not yet
        stored read as empty)."""
        with self.read() as con:
            row = con.execute("SELECT * FROM battle_answers WHERE battle_id = ?", (battle_id,)).fetchone()
        if row is None:
            raise StoreError(f"no battle {battle_id}")
        return Battle.from_row(row)

    # ---- open battles (a rater's own question, in an open campaign) ----------------------------
    def open_battle(self, rater_id: int, pick_pair, a_on_left: bool, question: str) -> int:
        """A new battle on the rater's own first question, handed to them; its answers follow. Its
        model pair is `pick_pair(battles per pair)`, read and written in ONE transaction, so
        concurrent questions each see the others' battles (even coverage under any concurrency)."""
        with self.connect() as con:
            cid = con.execute("SELECT campaign_id FROM raters WHERE id = ?", (rater_id,)).fetchone()[0]
            model_a, model_b = pick_pair(_pair_counts(con, cid))
            position = con.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM prompts WHERE campaign_id = ?",
                                   (cid,)).fetchone()[0]
            pid = _insert_prompt(con, cid, position, f"{OPEN_CATEGORY}-{position + 1}", OPEN_CATEGORY, question, [question])
            bid = con.execute("INSERT INTO battles (campaign_id, prompt_id, model_a, model_b) VALUES (?, ?, ?, ?)",
                              (cid, pid, model_a, model_b)).lastrowid
            _hand_out(con, rater_id, bid, a_on_left)
        return bid

    def set_turns(self, prompt_id: int, turns: list[str]) -> None:
        """An open battle's user turns so far (a follow-up appends one)."""
        with self.connect() as con:
            con.execute("UPDATE prompts SET turns = ? WHERE id = ?", (json.dumps(turns), prompt_id))

    def open_prompts(self, name: str) -> list[str]:
        """Every first question asked in an open campaign (for the near-duplicate cap)."""
        with self.read() as con:
            return [r[0] for r in con.execute("SELECT prompt FROM prompts WHERE campaign_id = ? AND category = ?",
                                              (_campaign(con, name).id, OPEN_CATEGORY))]

    def drop_open_battle(self, battle_id: int) -> None:
        """Remove an open battle whose answers never came (generation failed or was abandoned),
        with its prompt and hand-out; a battle with answers or votes is kept."""
        with self.connect() as con:
            row = con.execute("SELECT prompt_id FROM battles WHERE id = ? AND NOT EXISTS (SELECT 1 FROM votes WHERE "
                              "battle_id = ?) AND NOT EXISTS (SELECT 1 FROM answers a WHERE a.prompt_id = battles.prompt_id)",
                              (battle_id, battle_id)).fetchone()
            if row is not None:
                con.execute("DELETE FROM assignments WHERE battle_id = ?", (battle_id,))
                con.execute("DELETE FROM battles WHERE id = ?", (battle_id,))
                con.execute("DELETE FROM prompts WHERE id = ?", (row[0],))

    def refuse(self, name: str, rater_id: int | None, reason: str, detail: str = "") -> None:
        """Record a refused request (a duplicate question, the hourly cap, ...) for Results' counts."""
        with self.connect() as con:
            con.execute("INSERT INTO refusals (campaign_id, rater_id, kind, detail, created_at) VALUES (?, ?, ?, ?, ?)",
                        (_campaign(con, name).id, rater_id, reason, detail[:200], now()))

    def refusal_counts(self, name: str) -> dict[str, int]:
        with self.read() as con:
            return {r[0]: r[1] for r in con.execute("SELECT kind, COUNT(*) FROM refusals WHERE campaign_id = ? GROUP BY kind",
                                                    (_campaign(con, name).id,))}

    # ---- a rater's battles -------------------------------------------------------------------
    def a_on_left(self, rater_id: int, battle_id: int) -> bool:
        with self.read() as con:
            row = con.execute("SELECT a_on_left FROM assignments WHERE rater_id = ? AND battle_id = ?",
                              (rater_id, battle_id)).fetchone()
        if row is None:
            raise StoreError(f"battle {battle_id} is not assigned to rater {rater_id}")
        return bool(row[0])

    def has_vote(self, rater_id: int, battle_id: int) -> bool:
        with self.read() as con:
            return con.execute("SELECT 1 FROM votes WHERE rater_id = ? AND battle_id = ?", (rater_id, battle_id)).fetchone() is not None

    def votes_since(self, rater_id: int, since: str) -> int:
        """Votes a rater cast since `since` (ISO time)."""
        with self.read() as con:
            return con.execute("SELECT COUNT(*) FROM votes WHERE rater_id = ? AND created_at > ?", (rater_id, since)).fetchone()[0]

    def battles_since(self, rater_id: int, since: str) -> int:
        """Battles handed to a rater since `since` (ISO time)."""
        with self.read() as con:
            return con.execute("SELECT COUNT(*) FROM assignments WHERE rater_id = ? AND assigned_at > ?",
                               (rater_id, since)).fetchone()[0]

    def battle_ids(self, name: str) -> list[int]:
        """The campaign's regular battles (no gold checks)."""
        with self.read() as con:
            return [r[0] for r in con.execute("SELECT id FROM battles WHERE campaign_id = ? AND gold = 0 ORDER BY id",
                                              (_campaign(con, name).id,))]

    def battle_votes(self, battle_id: int, left_out_ids: frozenset = frozenset()) -> int:
        """Votes on a battle, not counting `left_out_ids`."""
        with self.read() as con:
            return _counted_votes(con, battle_id, left_out_ids)

    def next_assignment(self, rater_id: int) -> Assignment | None:
        """The rater's first battle without a vote (None when all are done)."""
        with self.read() as con:
            done, total = _progress(con, rater_id)
            row = con.execute(
                "SELECT s.position, s.a_on_left, ba.* FROM assignments s JOIN battle_answers ba ON ba.battle_id = s.battle_id "
                "LEFT JOIN votes v ON v.battle_id = s.battle_id AND v.rater_id = s.rater_id WHERE s.rater_id = ? "
                "AND v.id IS NULL AND ba.text_a IS NOT NULL AND ba.text_b IS NOT NULL ORDER BY s.position LIMIT 1",
                (rater_id,)).fetchone()
        if row is None:
            return None
        battle = Battle.from_row(row)
        sides = ("a", "b") if row["a_on_left"] else ("b", "a")
        left, right = (getattr(battle, f"text_{side}") for side in sides)
        left_turns, right_turns = (getattr(battle, f"turns_{side}") if battle.turns else () for side in sides)
        return Assignment(rater_id, battle.battle_id, row["position"], total, done, battle.prompt, left, right,
                          battle.gold, battle.turns, left_turns, right_turns)

    def progress(self, rater_id: int) -> tuple[int, int]:
        """(battles voted, battles assigned) for a rater."""
        with self.read() as con:
            return _progress(con, rater_id)

    # ---- votes -------------------------------------------------------------------------------
    def vote(self, rater_id: int, battle_id: int, choice: str, score_left: int | None = None,
             score_right: int | None = None, edited: str | None = None, comment: str | None = None,
             cap: int | None = None, left_out_ids: frozenset = frozenset(), verdicts: dict | None = None) -> dict:
        """Record one vote in the rater's own left/right terms and return the reveal
        {"left": model, "right": model}. One vote per rater per battle; with a `cap`, a regular
        battle that already has that many votes (not counting `left_out_ids`) takes no more.
        `verdicts`: an automatic judge's verdict in each order, kept for its audit."""
        if choice not in CHOICES:
            raise StoreError(f"vote must be one of {CHOICES}, got {choice!r}")
        for label, score in (("left", score_left), ("right", score_right)):
            if score is not None and not (isinstance(score, int) and 1 <= score <= 7):
                raise StoreError(f"{label} score must be an integer from 1 to 7, got {score!r}")
        with self.connect() as con:
            row = con.execute(
                "SELECT s.a_on_left, b.model_a, b.model_b, b.gold FROM assignments s JOIN battles b ON b.id = s.battle_id "
                "WHERE s.rater_id = ? AND s.battle_id = ?", (rater_id, battle_id)).fetchone()
            if row is None:
                raise StoreError(f"battle {battle_id} is not assigned to rater {rater_id}")
            if cap is not None and not row["gold"] and _counted_votes(con, battle_id, left_out_ids | {rater_id}) >= cap:
                raise StoreError(f"battle {battle_id} already has its {cap} votes (it waited too long); press Next")
            a_on_left = bool(row["a_on_left"])
            score_a, score_b = (score_left, score_right) if a_on_left else (score_right, score_left)
            try:
                con.execute(
                    "INSERT INTO votes (battle_id, rater_id, a_on_left, winner, score_a, score_b, edited, comment, created_at, "
                    "verdicts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (battle_id, rater_id, int(a_on_left), winner_of(choice, a_on_left), score_a, score_b,
                     (edited or "").strip() or None, (comment or "").strip() or None, now(),
                     json.dumps(verdicts) if verdicts else None))
            except sqlite3.IntegrityError:
                raise StoreError(f"rater {rater_id} already voted on battle {battle_id}") from None
        left, right = (row["model_a"], row["model_b"]) if a_on_left else (row["model_b"], row["model_a"])
        return {"left": left, "right": right}

    def vote_stamp(self, name: str) -> tuple[int, int, tuple]:
        """(votes, the last vote's id, the admin's reviews) of a campaign, gold checks included: what
        the rater checks depend on, read without reading the votes."""
        with self.read() as con:
            cid = _campaign(con, name).id
            count, last = con.execute("SELECT COUNT(*), COALESCE(MAX(v.id), 0) FROM votes v JOIN battles b ON "
                                      "b.id = v.battle_id WHERE b.campaign_id = ?", (cid,)).fetchone()
            reviews = tuple(tuple(r) for r in con.execute(
                "SELECT name, review FROM raters WHERE campaign_id = ? AND review IS NOT NULL ORDER BY name", (cid,)))
        return count, last, reviews

    def votes(self, name: str, gold: bool = False, answers: bool = False) -> list[Vote]:
        """Every vote of a campaign on its regular battles, in model terms, for the statistics; with
        `gold`, the votes on its gold checks instead (model_a is the known better answer); with
        `answers`, each vote carries its battle (prompt and both answers)."""
        with self.read() as con:
            rows = con.execute(VOTES + " WHERE ba.campaign_id = ? AND ba.gold = ? ORDER BY v.id",
                               (_campaign(con, name).id, int(gold))).fetchall()
        return [Vote.from_row(r, Battle.from_row(r) if answers else None) for r in rows]

    def decisive_votes(self, name: str) -> list[Vote]:
        """Every decisive vote (winner a or b) on the campaign's regular battles that hygiene did not
        flag (an answer that names its author never becomes a pair), each with its battle's prompt
        and both answers: what blindarena.pairs builds preference rows from."""
        with self.read() as con:
            rows = con.execute(VOTES + " WHERE ba.campaign_id = ? AND ba.gold = 0 AND ba.flag IS NULL AND v.winner IN "
                               "('a', 'b') AND ba.text_a IS NOT NULL AND ba.text_b IS NOT NULL ORDER BY v.id",
                               (_campaign(con, name).id,)).fetchall()
        return [Vote.from_row(r, Battle.from_row(r)) for r in rows]


# A vote with its rater and its battle (the battle_answers view), in the columns Vote and Battle read.
VOTES = ("SELECT v.id, v.rater_id, v.a_on_left, v.winner, v.score_a, v.score_b, v.edited, v.comment, v.created_at, "
         "v.verdicts, r.name AS rater, r.kind AS rater_role, ba.* FROM votes v "
         "JOIN battle_answers ba ON ba.battle_id = v.battle_id JOIN raters r ON r.id = v.rater_id")


@contextmanager
def _transaction(con: sqlite3.Connection, begin: str):
    """`begin` ... COMMIT, or ROLLBACK on any error (the error goes on)."""
    con.execute(begin)
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _campaign(con: sqlite3.Connection, name: str) -> Campaign:
    """The campaign called `name`, read in the caller's transaction; an unknown name lists the known."""
    row = con.execute("SELECT * FROM campaigns WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = ", ".join(r[0] for r in con.execute("SELECT name FROM campaigns ORDER BY id")) or "none"
        raise StoreError(f"no campaign {name!r} (campaigns: {known})")
    return Campaign.from_row(row)


def _insert_prompt(con: sqlite3.Connection, cid: int, position: int, question_id: str, category: str | None,
                   prompt: str, turns: list[str] | None, gold: bool = False) -> int:
    return con.execute("INSERT INTO prompts (campaign_id, position, question_id, category, prompt, turns, gold) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (cid, position, question_id, category, prompt,
                                                        json.dumps(turns) if turns else None, int(gold))).lastrowid


def _pair_counts(con: sqlite3.Connection, campaign_id: int) -> dict[tuple[str, str], int]:
    """Regular battles per model pair (sorted names)."""
    counts: dict[tuple[str, str], int] = {}
    for a, b, n in con.execute("SELECT model_a, model_b, COUNT(*) FROM battles WHERE campaign_id = ? AND gold = 0 "
                               "GROUP BY model_a, model_b", (campaign_id,)):
        key = tuple(sorted((a, b)))
        counts[key] = counts.get(key, 0) + n
    return counts


def _hand_out(con: sqlite3.Connection, rater_id: int, battle_id: int, a_on_left: bool) -> None:
    """Give the rater `battle_id` as their next battle, from now."""
    position = con.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM assignments WHERE rater_id = ?", (rater_id,)).fetchone()[0]
    con.execute("INSERT INTO assignments (rater_id, position, battle_id, a_on_left, assigned_at) VALUES (?, ?, ?, ?, ?)",
                (rater_id, position, battle_id, int(a_on_left), now()))


def _counted_votes(con: sqlite3.Connection, battle_id: int, left_out_ids: frozenset) -> int:
    """Votes on a battle, not counting the rater ids in `left_out_ids`."""
    return con.execute("SELECT COUNT(*) FROM votes WHERE battle_id = :battle AND rater_id NOT IN (" + _placeholders(left_out_ids) +
                       ")", {"battle": battle_id, **_ids_params(left_out_ids)}).fetchone()[0]


def _claims(left_out_ids: frozenset) -> str:
    """SQL for a battle's claims: votes by raters not left out, plus hand-outs without a vote that are not stale."""
    return ("((SELECT COUNT(*) FROM votes v WHERE v.battle_id = b.id AND v.rater_id NOT IN (" + _placeholders(left_out_ids) +
            ")) + (SELECT COUNT(*) FROM assignments s WHERE s.battle_id = b.id AND s.assigned_at > :stale AND NOT EXISTS "
            "(SELECT 1 FROM votes v2 WHERE v2.battle_id = s.battle_id AND v2.rater_id = s.rater_id)))")


def _stale() -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=CLAIM_TIMEOUT_S)).isoformat(timespec="milliseconds")


def _placeholders(ids: frozenset) -> str:
    return ", ".join(f":x{i}" for i in range(len(ids))) or "-1"  # NOT IN (NULL) would match nothing


def _ids_params(ids: frozenset) -> dict:
    return {f"x{i}": rater_id for i, rater_id in enumerate(sorted(ids))}


def _progress(con: sqlite3.Connection, rater_id: int) -> tuple[int, int]:
    row = con.execute(
        "SELECT COUNT(*) AS total, SUM(v.id IS NOT NULL) AS done FROM assignments s "
        "LEFT JOIN votes v ON v.battle_id = s.battle_id AND v.rater_id = s.rater_id WHERE s.rater_id = ?",
        (rater_id,)).fetchone()
    return (row["done"] or 0), row["total"]
