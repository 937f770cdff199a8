"""Verifiable instruction following (IFEval; Zhou et al., 2023, "Instruction-Following Evaluation
for Large Language Models"): the paper's 25 instruction types as checkers written from its
definitions, strict and loose, over rows in IFEval's own `input_data.jsonl` schema (`key`,
`prompt`, `instruction_id_list`, `kwargs`) with a `response`. Pure functions of text; no model,
no UI. Words and sentences are split by rules here (NLTK's punkt data cannot be downloaded).

The verifier of training (verified rows, rewrites, on-policy pairs, RL rewards) and of the IFEval
benchmark (evals/ifeval.py scores models with it)."""

from __future__ import annotations

import json
import re
from typing import Callable

from posttrain.errors import WorkbenchError

RELATIONS = ("less than", "at least")
CONSTRAINED = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
_ABBREVIATIONS = re.compile(r"\b(?:mr|mrs|ms|dr|prof|sr|jr|st|vs|etc|e\.g|i\.e|no|fig|approx|inc|ltd|co)\.$", re.I)


class IFEvalError(WorkbenchError, ValueError):
    """A row or a kwarg that IFEval's schema does not allow (the message names the row)."""


def words(text: str) -> list[str]:
    """Words as the checkers count them: runs of letters, digits, apostrophes and hyphens."""
    return re.findall(r"[\w'-]+", text or "")


def sentences(text: str) -> list[str]:
    """Sentences: text up to ., ! or ? followed by space or the end (not after a common
    abbreviation, an initial or inside a number), newline-separated lines of their own."""
    out = []
    for line in (text or "").splitlines():
        current = ""
        for piece in re.split(r"(?<=[.!?])\s+", line.strip()):
            current = f"{current} {piece}".strip()
            if not current:
                continue
            if _ABBREVIATIONS.search(current) or re.search(r"\b[A-Z]\.$", current):
                continue  # "Dr." or "J." do not end a sentence
            out.append(current)
            current = ""
        if current:
            out.append(current)
    return [s for s in out if re.search(r"\w", s)]


def echoes(prompt: str, response: str, n: int = 6, share: float = 0.5) -> bool:
    """Whether the response repeats its prompt: at least `share` of the prompt's word n-grams occur
    in it. A pretrained base that continues its prompt passes the checkers that look for words the
    prompt itself contains (keywords, "P.S.", "<<title>>", "[address]", "My answer is yes."), which
    IFEval cannot tell from following them; IFEval's own scores count such answers as it does."""
    grams = lambda text: {" ".join(t[i : i + n]) for t in [words(text.lower())] for i in range(max(0, len(t) - n + 1))}
    mine = grams(prompt)
    return bool(mine) and len(mine & grams(response)) / len(mine) >= share


def parrots(row: dict, response: str) -> bool:
    """An answer that passes by repeating its prompt rather than following it: it echoes the prompt,
    and the row does not ask for the request to be repeated (combination:repeat_prompt). Training
    data and simulated raters treat it as failing: picked as "passing", such answers teach a model to
    parrot (on-policy pairs of 2026-12-06: a DPO model that echoed 29 of 175 held-out prompts)."""
    return "combination:repeat_prompt" not in row.get("instruction_id_list", ()) and echoes(row.get("prompt") or "", response)


def _compare(count: int, relation: str, n: int) -> bool:
    if relation not in RELATIONS:
        raise IFEvalError(f"relation must be one of {RELATIONS}, got {relation!r}")
    return count < n if relation == "less than" else count >= n


def _language(text: str) -> str | None:
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect is random otherwise
    try:
        return detect(text)
    except LangDetectException:  # no letters to go on
        return None


def _paragraphs_by_divider(text: str) -> list[str] | None:
    """Paragraphs separated by the Markdown divider ***; None when one in the middle is empty."""
    parts = re.split(r"\s?\*\*\*\s?", text)
    if parts and not parts[0].strip():
        parts = parts[1:]
    if parts and not parts[-1].strip():
        parts = parts[:-1]
    return None if any(not p.strip() for p in parts) else parts


# ---- the 25 checkers: (response, **kwargs) -> bool ------------------------------------------------
def existence(r, keywords):
    return all(re.search(re.escape(k), r, re.I) for k in keywords)


def frequency(r, keyword, frequency, relation):
    return _compare(len(re.findall(re.escape(keyword), r, re.I)), relation, frequency)


def forbidden_words(r, forbidden_words):
    return not any(re.search(r"\b" + re.escape(w) + r"\b", r, re.I) for w in forbidden_words)


def letter_frequency(r, letter, let_frequency, let_relation):
    if len(letter) != 1:
        raise IFEvalError(f"letter must be one character, got {letter!r}")
    return _compare(r.lower().count(letter.lower()), let_relation, let_frequency)


def response_language(r, language):
    found = _language(r)
    return found is None or found == language  # no letters to judge by: the reference counts it as followed


def number_sentences(r, num_sentences, relation):
    return _compare(len(sentences(r)), relation, num_sentences)


def number_paragraphs(r, num_paragraphs):
    parts = _paragraphs_by_divider(r)
    return parts is not None and len(parts) == num_paragraphs


def number_words(r, num_words, relation):
    """Words as the reference counts them (NLTK's RegexpTokenizer(r"\w+")): "state-of-the-art" is four."""
    return _compare(len(re.findall(r"\w+", r)), relation, num_words)


def nth_paragraph_first_word(r, num_paragraphs, nth_paragraph, first_word):
    """As the reference reads it: paragraphs split at exactly two newlines (the empty ones not
    counted, yet indexed), the paragraph's first whitespace token with ' and " stripped on the left,
    cut at the first . , ? ! ' or ", lowercased ("P.S." reads "p", "[your" stays "[your")."""
    parts = r.split("\n\n")
    counted = sum(1 for p in parts if p.strip())
    if nth_paragraph > counted or counted != num_paragraphs:
        return False
    paragraph = parts[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first = re.split(r"[.,?!'\"]", word, maxsplit=1)[0].lower()
    return first == first_word.lower()


def number_placeholders(r, num_placeholders):
    return len(re.findall(r"\[[^\]\n]*\]", r)) >= num_placeholders


def postscript(r, postscript_marker):
    marker = postscript_marker.strip().lower()
    if marker == "p.p.s":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "p.s.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker) + r".*$"
    return bool(re.findall(pattern, r.lower(), flags=re.MULTILINE))


def number_bullet_lists(r, num_bullets):
    stars = re.findall(r"^\s*\*[^\*].*$", r, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", r, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def constrained_response(r):
    return any(option in r.strip() for option in CONSTRAINED)


def number_highlighted_sections(r, num_highlights):
    single = [h for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", r) if h.strip("*").strip()]
    return len(single) + len(double) >= num_highlights


def multiple_sections(r, section_spliter, num_sections):
    return len(re.split(r"\s?" + re.escape(section_spliter) + r"\s?\d+\s?", r)) - 1 >= num_sections


def json_format(r):
    text = r.strip()
    text = re.sub(r"^```(?:json|Json|JSON)?\s*", "", text)
    text = re.sub(r"\s*```$", "", text).strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def title(r):
    return any(t.strip("<>").strip() for t in re.findall(r"<<[^\n]+>>", r))


def two_responses(r):
    parts = [p.strip() for p in r.split("******")]
    parts = [p for i, p in enumerate(parts) if p or 0 < i < len(parts) - 1]  # empty ends do not count
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]


def repeat_prompt(r, prompt_to_repeat):
    return r.strip().lower().startswith(prompt_to_repeat.strip().lower())


def end_checker(r, end_phrase):
    return r.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def quotation(r):
    text = r.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


def capital_word_frequency(r, capital_frequency, capital_relation):
    return _compare(sum(1 for w in words(r) if w.isupper()), capital_relation, capital_frequency)


def english_capital(r):
    return r.isupper() and _language(r) in ("en", None)  # None: as the reference, an undetectable text passes


def english_lowercase(r):
    return r.islower() and _language(r) in ("en", None)


def no_comma(r):
    return "," not in r


CHECKERS: dict[str, Callable[..., bool]] = {
    "keywords:existence": existence,
    "keywords:frequency": frequency,
    "keywords:forbidden_words": forbidden_words,
    "keywords:letter_frequency": letter_frequency,
    "language:response_language": response_language,
    "length_constraints:number_sentences": number_sentences,
    "length_constraints:number_paragraphs": number_paragraphs,
    "length_constraints:number_words": number_words,
    "length_constraints:nth_paragraph_first_word": nth_paragraph_first_word,
    "detectable_content:number_placeholders": number_placeholders,
    "detectable_content:postscript": postscript,
    "detectable_format:number_bullet_lists": number_bullet_lists,
    "detectable_format:constrained_response": constrained_response,
    "detectable_format:number_highlighted_sections": number_highlighted_sections,
    "detectable_format:multiple_sections": multiple_sections,
    "detectable_format:json_format": json_format,
    "detectable_format:title": title,
    "combination:two_responses": two_responses,
    "combination:repeat_prompt": repeat_prompt,
    "startend:end_checker": end_checker,
    "startend:quotation": quotation,
    "change_case:capital_word_frequency": capital_word_frequency,
    "change_case:english_capital": english_capital,
    "change_case:english_lowercase": english_lowercase,
    "punctuation:no_comma": no_comma,
}


def follows(instruction_id: str, response: str, kwargs: dict | None = None) -> bool:
    """Whether `response` follows one instruction (strict). IFEval's files pad kwargs with None for
    arguments an instruction does not take: those are dropped."""
    checker = CHECKERS.get(instruction_id)
    if checker is None:
        raise IFEvalError(f"unknown instruction id {instruction_id!r}; IFEval has {len(CHECKERS)}: "
                          f"{', '.join(sorted(CHECKERS)[:3])}, ...")
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    try:
        return bool(response.strip()) and bool(checker(response, **given))
    except TypeError as exc:
        raise IFEvalError(f"{instruction_id}: kwargs {sorted(given)} do not fit ({exc})") from None


def loose_variants(response: str) -> list[str]:
    """The paper's loose responses, as the reference builds them: as is, with every `*` removed,
    without its first line, its last, both (stripped), and those three with every `*` removed;
    the empty ones do not count."""
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    variants = [response, response.replace("*", ""), *cut, *(c.replace("*", "") for c in cut)]
    return [v for v in variants if v.strip()]


def check_row(row: dict) -> dict:
    """One IFEval row with its `response`: {"key", "follow_all_instructions",
    "follow_all_instructions_loose", "follow_instruction_list", "follow_instruction_list_loose"}."""
    ids, kwargs = row["instruction_id_list"], row.get("kwargs") or [{}] * len(row["instruction_id_list"])
    if len(kwargs) != len(ids):
        raise IFEvalError(f"row {row.get('key')!r}: {len(ids)} instruction ids but {len(kwargs)} kwargs")
    response = row.get("response") or ""
    strict = [follows(i, response, k) for i, k in zip(ids, kwargs)]
    variants = loose_variants(response)
    loose = [any(follows(i, v, k) for v in variants) for i, k in zip(ids, kwargs)]
    return {"key": row.get("key"), "follow_all_instructions": all(strict), "follow_all_instructions_loose": all(loose),
            "follow_instruction_list": strict, "follow_instruction_list_loose": loose}


LIST_ARGUMENTS = {"keywords", "forbidden_words"}  # lists of words; a bare string would be checked letter by letter
INT_ARGUMENTS = {"frequency", "let_frequency", "num_sentences", "num_paragraphs", "num_words", "nth_paragraph",
                 "num_placeholders", "num_bullets", "num_highlights", "num_sections", "capital_frequency"}


def kwargs_problem(instruction_id: str, kwargs) -> str | None:
    """Why one instruction's kwargs cannot be checked (None: they can): not an object, an argument
    the checker does not take, or a value of the wrong type (IFEval's types: word lists, integers,
    strings; None means "not given", as in IFEval's padded files)."""
    import inspect

    if kwargs is None:
        return None
    if not isinstance(kwargs, dict):
        return f"kwargs for {instruction_id} must be an object, got {kwargs!r}"
    taken = set(list(inspect.signature(CHECKERS[instruction_id]).parameters)[1:])
    for name, value in kwargs.items():
        if value is None:
            continue
        if name not in taken:
            return f"{instruction_id} takes {sorted(taken) or 'no arguments'}, not {name!r}"
        if name in LIST_ARGUMENTS:
            if not (isinstance(value, list) and value and all(isinstance(w, str) and w for w in value)):
                return f"{instruction_id}: {name} must be a list of words, e.g. [\"river\"], got {value!r}"
        elif name in INT_ARGUMENTS:
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                return f"{instruction_id}: {name} must be a whole number of 0 or more, got {value!r}"
        elif not isinstance(value, str):
            return f"{instruction_id}: {name} must be text, got {value!r}"
    return None


def row_problem(row: dict, responses: bool = False) -> str | None:
    """Why an IFEval-schema row cannot be checked (None: it can)."""
    missing = [k for k in ("prompt", "instruction_id_list") if k not in row]
    if missing:
        return f"missing {', '.join(missing)} (IFEval's input_data.jsonl schema)"
    ids, kwargs = row["instruction_id_list"], row.get("kwargs")
    if not isinstance(row["prompt"], str):
        return f"prompt must be text, got {row['prompt']!r}"
    if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        return f"instruction_id_list must be a list of instruction ids, got {ids!r}"
    unknown = [i for i in ids if i not in CHECKERS]
    if unknown:
        return f"unknown instruction id(s) {unknown}"
    if kwargs is not None and not (isinstance(kwargs, list) and len(kwargs) == len(ids)):
        return f"kwargs must be a list of {len(ids)} objects, one per instruction id, got {kwargs!r}"
    for instruction, given in zip(ids, kwargs or [None] * len(ids)):
        problem = kwargs_problem(instruction, given)
        if problem:
            return problem
    if responses and "response" not in row:
        return "missing response (the answer to check, beside IFEval's input_data.jsonl schema)"
    if responses and not isinstance(row["response"], str):
        return f"response must be text, got {row['response']!r}"
    return None


def read_rows(path, responses: bool = False) -> list[dict]:
    """IFEval-schema rows from a JSONL file (`key`, `prompt`, `instruction_id_list`, `kwargs`, and,
    with `responses`, the `response` to check); a bad line is named by file:line and the reason.
    "ifeval" (or "ifeval:N") stands for IFEval's own 541 rows (posttrain.benchmarks)."""
    from posttrain import benchmarks
    from posttrain.data import jsonl_objects

    if benchmarks.is_named(path):
        try:
            benchmark, n = benchmarks.parse(path)
        except benchmarks.BenchmarkError as exc:
            raise IFEvalError(str(exc)) from None
        if benchmark.schema != "ifeval" or responses:
            raise IFEvalError(f"{path}: not IFEval-schema rows{' with responses' if responses else ''} "
                              f"(the IFEval set is 'ifeval'; {benchmark.name} is prompts for the arena)")
        return benchmarks.ifeval_rows(n)

    rows = []
    for where, row in jsonl_objects(path, IFEvalError):
        problem = row_problem(row, responses)
        if problem:
            raise IFEvalError(f"{where}: {problem}")
        rows.append({"key": row.get("key", int(where.rsplit(":", 1)[1])), **row})  # no key: the line number
    if not rows:
        raise IFEvalError(f"{path}: no rows")
    return rows
