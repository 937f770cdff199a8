"""The release's redaction (blindarena/redaction.py), a function of text alone: Presidio and
detect-secrets with a few named patterns, measured on a labelled set written for the purpose
(tests/fixtures/redaction/labelled.txt) and on a second one written after the rules were settled."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from blindarena import redaction

FIXTURES = Path(__file__).parent / "fixtures" / "redaction"
ROOT = Path(__file__).resolve().parents[1]
# The hostile rater: twenty short questions of which five regular expressions let 13 through.
HOSTILE = {
    "sk-proj-Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789abcdEFGH": "my openai key is {} please debug",
    "AKIAIOSFODNN7EXAMPLE": "AWS access key {} is it still valid",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": "and the aws secret is {}",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a": "token {} why does push fail",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U":
        "what is inside this jwt: {}",
    "Tr0ub4dor&3": "our wifi password is {}, is it strong?",
    "512-43-7789": "my SSN is {}, is that safe to share?",
    "GB82 WEST 1234 5698 7654 32": "IBAN {} for the transfer",
    "340020013": "passport number {} expired",
    "742 Evergreen Terrace, Springfield, IL 62704": "ship it to {} tomorrow",
    "Margaret Chen": "my neighbour {} keeps parking in my spot",
    "14 March 1988": "I was born on {} in Leeds, what is my star sign",
    "4155550134": "call {} after six",
    "john dot smith at outlook dot com": "email {} for the keys",
    "jane.doe@gmail.com": "write to {}",
    "+1 415-555-0134": "call me on {} tonight",
    "192.168.10.42": "the server at {} refuses ssh",
    "4111 1111 1111 1111": "my card {} expired",
}


@pytest.mark.parametrize("value", sorted(HOSTILE), ids=range(len(HOSTILE)))
def test_what_a_hostile_rater_types_is_caught(value):
    counts = Counter()
    text = HOSTILE[value].format(value)
    cleaned = redaction.redact(text, counts)
    assert value not in cleaned and sum(counts.values()) >= 1 and "[" in cleaned
    first_word = text.split(" ", 1)[0]
    assert cleaned.startswith(first_word) or first_word in value  # the rest of the text stays


def test_the_labelled_set_meets_the_targets_in_both_directions():
    rows = redaction.read_labelled(FIXTURES / "labelled.txt")
    m = redaction.measure(rows)
    assert m["texts"] >= 200 and m["with_personal_data"] >= 100 and m["look_alikes"] >= 100
    assert len([k for k in m["kinds"] if k != "secret"]) >= 15
    assert m["redaction_recall"] >= 0.95, m["leaks"]
    assert m["redaction_recall_secrets"] == 1.0, m["leaks"]
    assert m["redaction_precision"] >= 0.9, m["false_alarms"]


def test_a_set_written_after_the_rules_were_settled_meets_them_too():
    m = redaction.measure(redaction.read_labelled(FIXTURES / "fresh.txt"))
    assert m["redaction_recall"] >= 0.95 and m["redaction_recall_secrets"] == 1.0 and m["redaction_precision"] >= 0.9


@pytest.mark.parametrize("text", [
    "Who was Napoleon?", "Weather in Paris", "Tell me about Albert Einstein's theory of relativity",
    "order 1234 5678 9012 3456 costs 3.50, version 1.2.3.4.5, at 10:30 on 2026-12-06, call 911",
    "Where is my order #112-3345567-8812345?", "what is the difference between 127.0.0.1 and 0.0.0.0?",
    "def f(x):\n    return x ** 2  # 42", "How do I reset my password on Gmail?", "$1,299.99 for a laptop?"])
def test_what_must_stay_stays(text):
    counts = Counter()
    assert redaction.redact(text, counts) == text and not counts


def test_a_weak_hit_is_not_redacted_but_handed_to_a_person():
    text = "ask Marguerite about the 7fGh2KqLm9ZpXw4RtYv8 thing"  # one word; a token no detector names
    kept = redaction.redact(text, Counter())
    review = {(f.kind, text[f.start:f.end]) for f in redaction.to_review(text)}
    assert ("secret", "7fGh2KqLm9ZpXw4RtYv8") in review and "7fGh2KqLm9ZpXw4RtYv8" in kept


def test_the_redaction_is_a_function_of_text_alone():
    """No engine, no model of ours, no store: running it imports none of the workbench's modules
    that hold them (spaCy itself may import torch), and a fresh process gives the same result."""
    code = ("import sys; from collections import Counter; from blindarena.redaction import redact; "
            "print(redact('my SSN is 512-43-7789, ask John Smith', Counter())); "
            "print(sorted(m for m in ('posttrain.engine', 'posttrain.models', 'posttrain.registry', 'blindarena.store', 'blindarena.service') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["my SSN is [SSN], ask [PERSON]", "[]"]


def test_a_labelled_line_without_a_label_is_one_clear_error(tmp_path):
    bad = tmp_path / "set.txt"
    bad.write_text("my SSN is {ssn|512-43-7789}\njust a line\n")
    with pytest.raises(ValueError, match=r"set.txt:2: neither a \{kind\|value\} label"):
        redaction.read_labelled(bad)
    bad.write_text("{shoe_size|44}\n")
    with pytest.raises(ValueError, match="set.txt:1: unknown kind 'shoe_size'"):
        redaction.read_labelled(bad)


def test_the_bench_reports_recall_and_precision_per_kind():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--only", "redaction", "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    figures = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert figures["redaction_recall"] >= 0.95 and figures["redaction_precision"] >= 0.9
    assert figures["redaction_per_kind"]["secret"]["recall"] == 1.0 and len(figures["redaction_per_kind"]) >= 16
