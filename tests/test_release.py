"""A dataset people can release (arena.py release): only consenting raters' votes, salted rater
hashes, personal data redacted by kind, LMSYS's arena-conversations columns, a dataset card."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from blindarena import release
from blindarena.records import CampaignSettings, StoreError
from blindarena.service import Arena
from blindarena.store import Store
from posttrain.engine import Answer, SamplingParams

ROOT = Path(__file__).resolve().parents[1]
PERSONAL = {  # one piece of each kind, and the text around it that must stay
    "email": "write to jane.doe+arena@example.co.uk today",
    "phone": "call me on +1 415-555-0134 tonight",
    "ip": "the server at 192.168.10.42 answered",
    "card": "my card 4111 1111 1111 1111 expired",
    "url": "see https://example.com/reset?user=7&token=abc123SECRET for it",
}


class Echo:
    """The Generator protocol: each model repeats the question with its name (no model loads)."""

    def ensure_model(self, model):
        pass

    def answer(self, conversation, model):
        question = conversation[-1]["content"] if isinstance(conversation, list) else conversation
        return Answer(model=model, text=f"{model} says: {question}", new_tokens=3, finish_reason="stop", prompt_tokens=3)

    def generate(self, prompts, models, params):
        return [self.answer(p, m) for p, m in zip(prompts, models)]

    def stream(self, conversations, models, params):
        yield [self.answer(c, m) for c, m in zip(conversations, models)]


def open_campaign(tmp_path, **settings) -> Arena:
    store = Store(tmp_path / "data" / "arena.sqlite")
    arena = Arena(store, generator=Echo)
    from blindarena import operations

    operations.create_campaign(store, Echo(), "open-talk", ["m-one", "m-two"], [], SamplingParams(max_new_tokens=4),
                               settings=CampaignSettings(open=True, votes_per_minute=1000, **settings))
    return arena


def ask_and_vote(arena: Arena, rater: int, question: str, choice: str = "left", comment: str | None = None) -> None:
    *_, last = arena.ask("open-talk", rater, None, question)
    arena.vote("open-talk", rater, last["battle_id"], choice, comment=comment)


@pytest.mark.parametrize("kind", sorted(PERSONAL))
def test_each_kind_of_personal_data_is_caught_and_the_rest_kept(kind):
    counts = Counter()
    text = PERSONAL[kind]
    cleaned = release.redact(text, counts)
    assert counts == Counter({kind: 1}) and release.TAGS[kind] in cleaned
    before, after = text.split(" ", 1)[0], text.rsplit(" ", 1)[1]
    assert cleaned.startswith(before) and cleaned.endswith(after)


def test_what_only_looks_like_personal_data_is_kept():
    counts = Counter()
    text = "order 1234 5678 9012 3456 costs 3.50, version 1.2.3.4.5, at 10:30 on 2026-12-06, call 911"
    assert release.redact(text, counts) == text and not counts  # not Luhn-valid, not an IP, not a phone


def test_only_consenting_raters_are_released_with_salted_ids_in_lmsys_columns(tmp_path):
    arena = open_campaign(tmp_path)
    alice, bob = arena.join("open-talk", "alice-smith"), arena.join("open-talk", "bob-jones")
    arena.set_consent(alice, True)
    for kind, text in PERSONAL.items():
        ask_and_vote(arena, alice, f"alice asks: {text}", "left" if kind != "ip" else "both_bad")
    ask_and_vote(arena, bob, "bob's private question about zanzibar", comment="bob-comment-xyz")
    arena.set_consent(bob, False)
    figures = arena.release("open-talk", tmp_path / "release", license="cc-by-4.0")
    assert figures["votes"] == 5 and figures["not_released"] == {"no consent": 1} and figures["raters"] == 1
    # each question shows four times: the user turn and the model's echo of it, in both conversations
    assert figures["redacted"] == {kind: 4 for kind in ("url", "email", "card", "ip", "phone")}

    from datasets import load_from_disk

    rows = load_from_disk(str(tmp_path / "release")).to_list()
    assert list(rows[0]) == list(release.COLUMNS)
    everything = json.dumps(rows) + (tmp_path / "release" / "README.md").read_text()
    for secret in ("zanzibar", "bob-comment-xyz", "bob-jones", "alice-smith", "jane.doe", "415-555-0134", "192.168.10.42",
                   "4111 1111", "abc123SECRET"):
        assert secret not in everything, secret
    assert {r["judge"] for r in rows} == {rows[0]["judge"]} and rows[0]["judge"].startswith("arena_user_")
    winners = [r["winner"] for r in rows]  # "left" is model_a or model_b, as the sides fell
    assert winners.count("tie (bothbad)") == 1 and set(winners) <= {"model_a", "model_b", "tie (bothbad)"}
    assert all(r["anony"] and r["turn"] == 1 for r in rows)
    first = rows[0]["conversation_a"]
    assert [m["role"] for m in first] == ["user", "assistant"] and first[0]["content"].startswith("alice asks: ")
    assert any(tag in first[0]["content"] for tag in release.TAGS.values())
    assert rows[0]["language"] == "English" and rows[0]["tstamp"] > 1.7e9
    card = (tmp_path / "release" / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-4.0") and "5 votes of 1 raters" in card and "1 (no consent)" in card
    again = arena.release("open-talk", tmp_path / "release-2")  # a new salt: the same rater, another code
    assert load_from_disk(str(tmp_path / "release-2"))[0]["judge"] != rows[0]["judge"]
    assert again["votes"] == 5


def test_the_release_command_refuses_what_it_cannot_write_and_says_what_it_did(tmp_path):
    arena = open_campaign(tmp_path)
    carol = arena.join("open-talk", "carol")
    ask_and_vote(arena, carol, "what is a good name for a cat?")
    cli = lambda *args: subprocess.run([sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(tmp_path / "data"),
                                        "--registry", str(tmp_path / "registry"), "release", "open-talk", *args],
                                       capture_output=True, text=True)
    nobody = cli("--out", str(tmp_path / "out-none"))
    assert nobody.returncode == 2 and "no votes to release: 0 raters agreed" in nobody.stderr and "Traceback" not in nobody.stderr
    arena.set_consent(carol, True)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    taken = cli("--out", str(tmp_path / "taken"))
    assert taken.returncode == 2 and "not an empty folder" in taken.stderr and (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    done = cli("--out", str(tmp_path / "out"), "--license", "cc0-1.0", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["votes"] == 1 and figures["license"] == "cc0-1.0" and (tmp_path / "out" / "README.md").is_file()


def test_open_battle_hygiene_caps_repeated_questions_and_counts_a_raters_near_duplicates_once(tmp_path):
    """FastChat caps its most frequent prompts; here one question counts for at most 5% of an open
    campaign's votes, and one rater's paraphrases within a day (MiniLM cosine >= 0.9) count once.
    Results says how many votes each rule set aside; the votes themselves stay in the store."""
    arena = open_campaign(tmp_path, max_duplicates=10, battles_per_hour=100)  # the ask-time cap lets these through
    raters = [arena.join("open-talk", f"r{k}") for k in range(3)]
    for k in range(20):  # 20 distinct questions across three raters: the campaign's ordinary votes
        ask_and_vote(arena, raters[k % 3], f"question number {k} about topic {k * 7}?")
    for rater in raters:  # the same question from everyone, twice each: 6 votes on one question
        ask_and_vote(arena, rater, "What is the capital of France?")
        ask_and_vote(arena, rater, "what is the capital of france")
    ask_and_vote(arena, raters[0], "Tell me the capital of France please")  # a paraphrase of r0's own question
    res = arena.results("open-talk", rounds=0)
    assert res["votes"] == 27
    aside = res["prompt_hygiene"]["set_aside"]
    assert aside["repeated question"] == 5  # 27 votes: at most int(0.05 * 27) = 1 on one question
    assert aside["near-duplicate"] == 1  # r0's paraphrase (cosine 0.94 to its own question); its repeats are capped already
    assert res["human_votes"] == 27 - sum(aside.values()) and len(Store(tmp_path / "data" / "arena.sqlite").votes("open-talk")) == 27


def one_question_per_kind() -> dict[str, tuple[str, list[str]]]:
    """From the labelled set: the first text carrying each kind, with its labelled values."""
    from blindarena.redaction import read_labelled

    chosen = {}
    for row in read_labelled(ROOT / "tests" / "fixtures" / "redaction" / "labelled.txt"):
        for kind, _ in row["values"]:
            chosen.setdefault(kind, (row["text"], [v for _, v in row["values"]]))
    return chosen


def test_a_release_of_questions_carrying_every_kind_holds_none_of_them_in_any_file(tmp_path):
    """Open battles whose questions (and follow-ups, and the models' echoes of them) carry every kind
    of personal data and secret: no original string is anywhere in the release folder."""
    arena = open_campaign(tmp_path, max_turns=2)
    rater = arena.join("open-talk", "dana")
    arena.set_consent(rater, True)
    chosen = one_question_per_kind()
    assert len(chosen) >= 16
    kinds = sorted(chosen)
    for i, kind in enumerate(kinds):
        follow_up = chosen[kinds[(i + 1) % len(kinds)]][0]  # a second turn with another kind in it
        *_, first = arena.ask("open-talk", rater, None, chosen[kind][0])
        *_, last = arena.ask("open-talk", rater, first["battle_id"], follow_up)
        assert last["battle_id"] == first["battle_id"]
        arena.vote("open-talk", rater, last["battle_id"], ("left", "right", "tie")[i % 3])  # no one-sided rater to leave out
    run = arena.release_dry_run("open-talk")
    assert run["votes"] == len(kinds) and not (tmp_path / "release").exists()
    assert set(run["redacted"]) == set(kinds) and run["sample"][0]["original"] != run["sample"][0]["redacted"]
    figures = arena.release("open-talk", tmp_path / "release")
    assert figures["votes"] == len(kinds) and set(figures["redacted"]) == set(run["redacted"])
    files = [p for p in (tmp_path / "release").rglob("*") if p.is_file()]
    assert any(p.name == "README.md" for p in files) and any(p.suffix == ".arrow" for p in files)
    everything = b"".join(p.read_bytes() for p in files)
    for kind, (_, values) in chosen.items():
        for value in values:
            assert value.encode() not in everything, (kind, value)
    card = (tmp_path / "release" / "README.md").read_text()
    assert "Presidio" in card and all(f"{n} {kind}" in card for kind, n in figures["redacted"].items())


def test_a_push_goes_only_after_a_dry_run_of_the_same_state(tmp_path, monkeypatch):
    from datasets import Dataset

    pushed = []
    monkeypatch.setattr(Dataset, "push_to_hub", lambda self, repo, **kw: pushed.append((repo, len(self))))
    arena = open_campaign(tmp_path)
    erin = arena.join("open-talk", "erin")
    arena.set_consent(erin, True)
    ask_and_vote(arena, erin, "my SSN is 512-43-7789, is that safe?")
    with pytest.raises(StoreError, match="--push refused: no dry run of campaign 'open-talk' in its current state"):
        arena.release("open-talk", tmp_path / "r1", push="me/votes")
    assert not pushed and not (tmp_path / "r1").exists()
    run = arena.release_dry_run("open-talk")
    assert run["redacted"] == {"ssn": 4}
    assert arena.release("open-talk", tmp_path / "r2", push="me/votes")["pushed_to"] == "me/votes" and pushed == [("me/votes", 1)]
    ask_and_vote(arena, erin, "and my passport number 340020013?")  # the state moved on: the dry run no longer covers it
    with pytest.raises(StoreError, match="no dry run"):
        arena.release("open-talk", tmp_path / "r3", push="me/votes")
    arena.release_dry_run("open-talk")
    arena.release("open-talk", tmp_path / "r4", push="me/votes")
    assert pushed == [("me/votes", 1), ("me/votes", 2)]


def test_the_dry_run_command_writes_nothing_and_push_without_one_is_one_line(tmp_path):
    arena = open_campaign(tmp_path)
    fred = arena.join("open-talk", "fred")
    arena.set_consent(fred, True)
    ask_and_vote(arena, fred, "my neighbour Margaret Chen and ask Marguerite about 7fGh2KqLm9ZpXw4RtYv8")  # two names, a token
    cli = lambda *args: subprocess.run([sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(tmp_path / "data"),
                                        "--registry", str(tmp_path / "registry"), "release", "open-talk", *args],
                                       capture_output=True, text=True)
    refused = cli("--out", str(tmp_path / "out"), "--push", "me/votes")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1 and "--dry-run" in refused.stderr
    assert not (tmp_path / "out").exists()
    no_out = cli()
    assert no_out.returncode == 2 and "release needs --out DIR (or --dry-run" in no_out.stderr
    shown = cli("--dry-run", "--out", str(tmp_path / "out"))
    assert shown.returncode == 0, shown.stderr
    assert "1 votes of 1 consenting raters would go" in shown.stdout and "person" in shown.stdout
    assert "original: my neighbour Margaret Chen" in shown.stdout and "released: my neighbour [PERSON]" in shown.stdout
    assert "7fGh2KqLm9ZpXw4RtYv8" in shown.stdout.split("for a person to check")[1]  # the weak hit, for a person
    assert not (tmp_path / "out").exists()
    as_json = json.loads(cli("--dry-run", "--json").stdout.strip().splitlines()[-1])
    assert as_json["dry_run"] and as_json["redacted"] == {"person": 8} and as_json["to_check"][0]["hits"][0]["kind"] == "secret"
