"""Verifiable rewrites: IFEval-style constraints attached to good answers without any teacher.
An instruction is either met by construction (the answer is rewritten: lowercased, wrapped in
quotes, given a <<title>>, a P.S., sections ...) or read off an answer that already meets it
(hindsight relabeling, Zhang et al. 2023: "fewer than N words", "include the word X"). Every row
is checked with the project's IFEval checkers (strict) before it is kept, carries its constraints
in IFEval's own schema, and, where the original answer breaks a constraint, gives a DPO pair that
differs in nothing else. The wording of each instruction is the project's own, in several
phrasings; IFEval's held-out wording is never used in training."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from random import Random
from typing import Callable

from posttrain.checkers import CHECKERS, follows, sentences, words

STOP = set("the a an and or but of to in on at for with from by as is are was were be been it its this that these those "
           "you your we our they their he she his her i me my not no yes do does did can could will would should".split())
PS_LINES = ("Let me know if any part needs more detail.", "Happy to expand on any point.", "I hope this is useful.")
END_PHRASES = ("Is there anything else I can help with?", "Any other questions?", "Let me know how it goes.")
FORBIDDEN_POOL = ("basically", "actually", "literally", "awesome", "stuff", "thing", "very", "really", "just", "simply",
                  "obviously", "honestly", "totally", "maybe", "perhaps", "certainly")


@dataclass
class Attached:
    instruction_id: str
    kwargs: dict
    phrase: str  # the instruction in words, appended to the request
    answer: str  # the answer with it met (unchanged for a relabel)


Rewrite = Callable[[str, str, Random], "Attached | None"]  # (request, answer, rng) -> constraint met, or None


def pick(rng: Random, *phrasings: str) -> str:
    return rng.choice(phrasings)


def chunks(items: list[str], n: int) -> list[list[str]]:
    size = -(-len(items) // n)
    return [items[i:i + size] for i in range(0, len(items), size)]


# ---- met by construction ---------------------------------------------------------------------------
def lowercase(request, answer, rng):
    return Attached("change_case:english_lowercase", {}, pick(
        rng, "Write the whole reply in lowercase letters only; no capitals anywhere.",
        "Use no uppercase letters at all in your reply.", "Keep every letter of the answer lowercase."), answer.lower())


def uppercase(request, answer, rng):
    return Attached("change_case:english_capital", {}, pick(
        rng, "Write the entire reply in capital letters.", "Answer using uppercase letters only.",
        "Every letter of your answer must be a capital."), answer.upper())


def no_commas(request, answer, rng):
    if "," not in answer:
        return None
    return Attached("punctuation:no_comma", {}, pick(
        rng, "Do not use a single comma anywhere in the reply.", "Avoid commas entirely.",
        "Your answer must contain no commas."), re.sub(r"\s*,\s*", " ", answer))


def quoted(request, answer, rng):
    return Attached("startend:quotation", {}, pick(
        rng, "Put your entire reply inside double quotation marks.", "Wrap the whole answer in double quotes.",
        "Begin and end the reply with a double quotation mark."), f'"{answer.strip().strip(chr(34))}"')


def titled(request, answer, rng):
    head = " ".join(w.capitalize() for w in words(request)[:5]) or "Answer"
    return Attached("detectable_format:title", {}, pick(
        rng, "Give the reply a title written between double angle brackets, like <<my title>>.",
        "Start with a title enclosed in << and >>.", "Include a title in the form <<title>>."), f"<<{head}>>\n\n{answer}")


def postscripted(request, answer, rng):
    marker = rng.choice(["P.S.", "P.P.S"])
    return Attached("detectable_content:postscript", {"postscript_marker": marker}, pick(
        rng, f"Close with a postscript that begins with {marker}", f"After the main reply, add a note starting with {marker}",
        f"End with an extra line introduced by {marker}"), f"{answer}\n\n{marker} {rng.choice(PS_LINES)}")


def ends_with(request, answer, rng):
    phrase = rng.choice(END_PHRASES)
    return Attached("startend:end_checker", {"end_phrase": phrase}, pick(
        rng, f'Your reply must finish with the exact words "{phrase}" and nothing after them.',
        f'Make "{phrase}" the very last words of the answer.', f'Conclude with this exact sentence: "{phrase}"'),
        f"{answer}\n\n{phrase}")


def as_json(request, answer, rng):
    return Attached("detectable_format:json_format", {}, pick(
        rng, "Format the whole reply as valid JSON.", "Return the answer as a JSON object and nothing else.",
        "Your output must be parseable JSON."), json.dumps({"answer": answer}, ensure_ascii=False))


def repeated(request, answer, rng):
    return Attached("combination:repeat_prompt", {"prompt_to_repeat": request}, pick(
        rng, "Before answering, copy my request above exactly as written, then give your answer.",
        "Start by restating the request word for word (leave out this sentence), then answer it."),
        f"{request}\n\n{answer}")


def two_versions(request, answer, rng):
    parts = sentences(answer)
    if len(parts) < 3:
        return None
    short = " ".join(parts[:2])
    return Attached("combination:two_responses", {}, pick(
        rng, "Give two different answers, separated by a line of six asterisks (******).",
        "Write a full answer and a shorter one, with ****** between them."), f"{answer}\n******\n{short}")


def bulleted(request, answer, rng):
    parts = [s for s in sentences(answer) if not s.lstrip().startswith(("*", "-"))]
    if not 2 <= len(parts) <= 8 or re.search(r"^\s*[*-]", answer, re.M):
        return None
    return Attached("detectable_format:number_bullet_lists", {"num_bullets": len(parts)}, pick(
        rng, f"Answer as a list of exactly {len(parts)} bullet points, each starting with '* '.",
        f"Use {len(parts)} markdown bullets ('* ') and no other text."), "\n".join(f"* {s}" for s in parts))


def divided(request, answer, rng):
    parts = sentences(answer)
    n = rng.randint(2, 4)
    if len(parts) < n or "***" in answer:
        return None
    paragraphs = [" ".join(group) for group in chunks(parts, n)]
    if len(paragraphs) != n:
        return None
    return Attached("length_constraints:number_paragraphs", {"num_paragraphs": n}, pick(
        rng, f"Split the reply into {n} paragraphs with a line of three asterisks (***) between each.",
        f"Write exactly {n} paragraphs, separated by the markdown divider ***."), "\n\n***\n\n".join(paragraphs))


def sectioned(request, answer, rng):
    parts = sentences(answer)
    n, word = rng.randint(2, 3), rng.choice(["SECTION", "Section", "PART"])
    groups = chunks(parts, n)
    if len(parts) < n or len(groups) != n:
        return None
    return Attached("detectable_format:multiple_sections", {"section_spliter": word, "num_sections": n}, pick(
        rng, f"Organise the answer into {n} parts, each headed {word} X (X its number).",
        f"Use {n} numbered headings of the form {word} 1, {word} 2, and so on."),
        "\n\n".join(f"{word} {i + 1}\n{' '.join(g)}" for i, g in enumerate(groups)))


def highlighted(request, answer, rng):
    parts = sentences(answer)
    n = min(len(parts), rng.randint(1, 3))
    if n < 1 or "*" in answer:
        return None
    marked = [f"*{s}*" if i < n else s for i, s in enumerate(parts)]
    return Attached("detectable_format:number_highlighted_sections", {"num_highlights": n}, pick(
        rng, f"Emphasise at least {n} parts of the reply with markdown italics, like *this part*.",
        f"Mark {n} or more passages with single asterisks on each side."), " ".join(marked))


def placeholders(request, answer, rng):
    n = rng.randint(1, 3)
    names = ["[your name]", "[date]", "[contact details]"][:n]
    return Attached("detectable_content:number_placeholders", {"num_placeholders": n}, pick(
        rng, f"Leave at least {n} fill-in spots in square brackets, such as [name].",
        f"Include {n} or more placeholders written in square brackets."), f"{answer}\n\n" + "\n".join(names))


# ---- read off the answer (hindsight relabeling) ------------------------------------------------------
def content_words(answer: str) -> list[str]:
    return [w for w in dict.fromkeys(w.lower() for w in words(answer)) if w.isalpha() and len(w) >= 5 and w not in STOP]


def word_count(request, answer, rng):
    n = len(words(answer))
    if rng.random() < 0.5:
        limit = n + rng.randint(5, 40)
        return Attached("length_constraints:number_words", {"num_words": limit, "relation": "less than"}, pick(
            rng, f"Keep the reply under {limit} words.", f"Use fewer than {limit} words."), answer)
    limit = max(1, n - rng.randint(0, max(1, n // 4)))
    return Attached("length_constraints:number_words", {"num_words": limit, "relation": "at least"}, pick(
        rng, f"Write {limit} words or more.", f"The answer should run to at least {limit} words."), answer)


def sentence_count(request, answer, rng):
    n = len(sentences(answer))
    if n < 1:
        return None
    limit = n + rng.randint(1, 4)
    return Attached("length_constraints:number_sentences", {"num_sentences": limit, "relation": "less than"}, pick(
        rng, f"Answer in fewer than {limit} sentences.", f"Use at most {limit - 1} sentences."), answer)


def keywords(request, answer, rng):
    found = content_words(answer)
    if not found:
        return None
    chosen = rng.sample(found, min(len(found), rng.randint(1, 2)))
    listed = " and ".join(f"'{w}'" for w in chosen)
    return Attached("keywords:existence", {"keywords": chosen}, pick(
        rng, f"Make sure the words {listed} appear in the reply.", f"Mention {listed} somewhere in your answer."), answer)


def keyword_count(request, answer, rng):
    counts = Counter(w.lower() for w in words(answer) if w.isalpha() and len(w) >= 4 and w.lower() not in STOP)
    frequent = [(w, c) for w, c in counts.items() if c >= 2]
    if not frequent:
        return None
    word, count = rng.choice(frequent)
    return Attached("keywords:frequency", {"keyword": word, "frequency": count, "relation": "at least"}, pick(
        rng, f"Use the word '{word}' at least {count} times.", f"The word '{word}' should come up {count} or more times."),
        answer)


def forbidden(request, answer, rng):
    present = {w.lower() for w in words(answer)}
    absent = [w for w in FORBIDDEN_POOL if w not in present]
    if not absent:
        return None
    chosen = rng.sample(absent, min(len(absent), 2))
    listed = " or ".join(f"'{w}'" for w in chosen)
    return Attached("keywords:forbidden_words", {"forbidden_words": chosen}, pick(
        rng, f"Do not use the words {listed}.", f"Avoid the words {listed} entirely."), answer)


def letters(request, answer, rng):
    counts = Counter(c for c in answer.lower() if c.isalpha() and c.isascii())
    if not counts:
        return None
    letter, count = rng.choice(sorted(counts.items()))
    return Attached("keywords:letter_frequency", {"letter": letter, "let_frequency": count, "let_relation": "at least"},
                    pick(rng, f"The letter '{letter}' should appear at least {count} times.",
                         f"Use the letter {letter} {count} or more times."), answer)


def paragraph_start(request, answer, rng):
    parts = [p for p in re.split(r"\n\s*\n", answer) if p.strip()]
    if len(parts) < 2:
        return None
    nth = rng.randint(1, len(parts))
    first = re.sub(r"^[^\w]+", "", parts[nth - 1].strip()).split()
    word = re.sub(r"[^\w'-]", "", first[0]) if first else ""
    if not word:
        return None
    return Attached("length_constraints:nth_paragraph_first_word",
                    {"num_paragraphs": len(parts), "nth_paragraph": nth, "first_word": word.lower()}, pick(
        rng, f"Write {len(parts)} paragraphs separated by blank lines; paragraph {nth} must open with the word '{word}'.",
        f"Use {len(parts)} blank-line-separated paragraphs, and start paragraph {nth} with '{word}'."), answer)


def capitals(request, answer, rng):
    n = sum(1 for w in words(answer) if w.isupper())
    limit = n + rng.randint(1, 5)
    return Attached("change_case:capital_word_frequency", {"capital_frequency": limit, "capital_relation": "less than"},
                    pick(rng, f"Use fewer than {limit} words written entirely in capitals.",
                         f"No more than {limit - 1} all-caps words, please."), answer)


# The order a row's rewrites are applied in: structure first, then what wraps the whole answer,
# case last (relabels read the final answer, so they run after every rewrite).
CONSTRUCTED: dict[str, Rewrite] = {
    "detectable_format:number_bullet_lists": bulleted, "length_constraints:number_paragraphs": divided,
    "detectable_format:multiple_sections": sectioned, "detectable_format:number_highlighted_sections": highlighted,
    "combination:two_responses": two_versions, "detectable_content:number_placeholders": placeholders,
    "detectable_content:postscript": postscripted, "startend:end_checker": ends_with, "punctuation:no_comma": no_commas,
    "detectable_format:title": titled, "combination:repeat_prompt": repeated, "detectable_format:json_format": as_json,
    "startend:quotation": quoted, "change_case:english_lowercase": lowercase, "change_case:english_capital": uppercase,
}
RELABELED: dict[str, Rewrite] = {
    "length_constraints:number_words": word_count, "length_constraints:number_sentences": sentence_count,
    "keywords:existence": keywords, "keywords:frequency": keyword_count, "keywords:forbidden_words": forbidden,
    "keywords:letter_frequency": letters, "length_constraints:nth_paragraph_first_word": paragraph_start,
    "change_case:capital_word_frequency": capitals,
}
NOT_COVERED = {"language:response_language": "needs the answer in another language (a translation)",
               "detectable_format:constrained_response": "fits only yes/no questions"}
assert set(CONSTRUCTED) | set(RELABELED) | set(NOT_COVERED) == set(CHECKERS)


def attach(request: str, answer: str, rng: Random, chosen: list[str]) -> tuple[list[Attached], str] | None:
    """The `chosen` constraints on one answer: met in order, then checked together (strict). None
    when this draw does not hold together (a JSON answer cannot also end with a P.S.)."""
    done, text = [], answer
    for instruction in [i for i in CONSTRUCTED if i in chosen]:
        made = CONSTRUCTED[instruction](request, text, rng)
        if made is None:
            return None
        done.append(made)
        text = made.answer
    for instruction in [i for i in RELABELED if i in chosen]:
        made = RELABELED[instruction](request, text, rng)
        if made is None:
            return None
        done.append(made)
    if not all(follows(a.instruction_id, text, a.kwargs) for a in done):
        return None
    return done, text


def rewrite_rows(rows: list[dict], per_row: int = 1, seed: int = 0, tries: int = 6) -> dict:
    """SFT rows (single exchange) -> {"sft": rows with their constraints, "pairs": rewritten over
    original where the original breaks a constraint, "yield": per instruction {tried, kept}}."""
    rng = Random(seed)
    sft, pairs, tried, kept = [], [], Counter(), Counter()
    for index, row in enumerate(rows):
        user = [m for m in row["messages"] if m["role"] == "user"]
        reply = [m for m in row["messages"] if m["role"] == "assistant"]
        if len(user) != 1 or len(reply) != 1:
            continue
        request, answer = user[0]["content"].strip(), reply[0]["content"].strip()
        for variant in range(per_row):
            for _ in range(tries):
                chosen = rng.sample(sorted(CONSTRUCTED) + sorted(RELABELED), rng.choice([1, 1, 2, 2, 3]))
                tried.update(chosen)
                made = attach(request, answer, rng, chosen)
                if made is None:
                    continue
                done, text = made
                prompt = f"{request}\n\n" + " ".join(a.phrase for a in done)
                schema = {"key": f"rewrite-{index}-{variant}", "prompt": prompt,
                          "instruction_id_list": [a.instruction_id for a in done], "kwargs": [a.kwargs for a in done]}
                kept.update(a.instruction_id for a in done)
                sft.append({**schema, "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]})
                if not all(follows(a.instruction_id, answer, a.kwargs) for a in done):
                    pairs.append({**schema, "chosen": text, "rejected": answer})  # TRL's standard preference format
                break
    return {"sft": sft, "pairs": pairs, "not_covered": NOT_COVERED,
            "yield": {i: {"tried": tried[i], "kept": kept[i], "share": round(kept[i] / tried[i], 3) if tried[i] else None}
                      for i in sorted(set(CONSTRUCTED) | set(RELABELED))}}


def card(summary: dict) -> str:
    """The data card: source, sizes, yield per instruction type, what is not covered and why."""
    rows = "\n".join(f"| `{i}` | {'construction' if i in CONSTRUCTED else 'relabeling'} | {y['tried']} | {y['kept']} | "
                     f"{y['share'] if y['share'] is not None else 'n/a'} |" for i, y in sorted(summary["yield"].items()))
    missing = "\n".join(f"- `{i}`: {why}" for i, why in summary["not_covered"].items())
    return f"""# Verifiable rewrites

Built by `scripts/synth.py rewrite` (posttrain/synth/rewrites.py) from `{summary['source']}` ({summary['rows_read']} rows,
{summary['per_row']} constrained version(s) each, seed {summary['seed']}). No teacher: each constraint is met by
construction (the answer rewritten) or read off the answer (hindsight relabeling), and every kept row passes
every attached IFEval checker (strict). The instructions are worded in the project's own phrasings; the
held-out IFEval prompts keep IFEval's wording, which training never sees.

- `sft.jsonl`: {summary['sft_rows']} rows: TRL `messages` plus IFEval's schema (`key`, `prompt`,
  `instruction_id_list`, `kwargs`), so any IFEval implementation can re-check them.
- `pairs.jsonl`: {summary['pairs']} pairs, `pairs_heldout.jsonl`: {summary['pairs_heldout']}: the rewritten answer
  (chosen) over the original (rejected), kept only where the original breaks a constraint; they differ in nothing else.

| instruction | how | attached (tried) | kept | yield |
|---|---|---|---|---|
{rows}

Not covered:
{missing}
"""
