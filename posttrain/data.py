"""Dataset readers: public schemas (dolly, alpaca, oasst1, hh-rlhf, ultrafeedback_binarized,
orca_dpo_pairs) and plain JSONL / JSON / CSV / Parquet in, TRL's formats out:
conversational `{"messages"}` for SFT, `{"prompt", "chosen", "rejected"}` for preferences and
`{"prompt", "completion", "label"}` for unpaired (KTO) data. Bad rows are reported with
file:line and reason, never silently dropped. Nothing here tokenizes (see chat.py)."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from posttrain.errors import WorkbenchError

log = logging.getLogger(__name__)
ROLES = ("system", "user", "assistant")
MAX_CHARS = 32_000  # longer texts are almost always scraping accidents, not examples
KINDS = {"sft": "messages", "preference": "prompt/chosen/rejected", "unpaired": "prompt/completion/label",
         "text": "text (plain language-modelling rows, e.g. general text replayed against forgetting)"}


class DataError(WorkbenchError, ValueError):
    """A data file or row that cannot be used; the message starts with file:line."""


class RowError(ValueError):
    """One bad row; the reader adds the file:line."""


@dataclass(frozen=True)
class Skipped:
    where: str  # "file:line" (or "hub-id:row N")
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class ReadResult:
    source: str
    format: str
    kind: str  # "sft" | "preference" | "unpaired"
    rows: list[dict]
    skipped: list[Skipped] = field(default_factory=list)
    hash: str = ""

    def summary(self) -> dict:
        return {
            "source": self.source, "format": self.format, "kind": self.kind, "hash": self.hash,
            "rows_kept": len(self.rows), "rows_skipped": len(self.skipped),
            "skipped": [{"where": s.where, "reason": s.reason} for s in self.skipped],
        }


# ---- raw rows from files or the Hub ----------------------------------------------------------
Raw = tuple[str, dict]  # (file:line, row)


def _not_utf8(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8"


def _read_text(path: Path) -> str:
    """A whole file as UTF-8 text, or a DataError that names the line of the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not text
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None


def _iter_jsonl(path: Path) -> Iterator[Raw | Skipped]:
    with open(path, "rb") as handle:  # bytes: a line that is not UTF-8 is one bad row, not a crash
        for number, raw_line in enumerate(handle, 1):
            where = f"{path}:{number}"
            try:
                line = raw_line.decode("utf-8-sig" if number == 1 else "utf-8")  # a leading byte-order mark
            except UnicodeDecodeError as exc:
                yield Skipped(where, _not_utf8(exc))
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Skipped(where, f"broken JSON ({exc.msg} at column {exc.colno})")
                continue
            yield (where, row) if isinstance(row, dict) else Skipped(where, f"expected a JSON object, got {type(row).__name__}")


def _iter_json(path: Path) -> Iterator[Raw | Skipped]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if not text.lstrip().startswith("["):
            raise DataError(f"{path}:{exc.lineno}: broken JSON ({exc.msg})") from None
        yield from _iter_json_records(path, text)
        return
    if isinstance(data, dict):  # {"train": [...]} or {"data": [...]}, as some dumps are
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    for number, row in enumerate(data, 1):
        where = f"{path}:item {number}"
        yield (where, row) if isinstance(row, dict) else Skipped(where, f"expected an object, got {type(row).__name__}")


def _iter_json_records(path: Path, text: str) -> Iterator[Raw | Skipped]:
    """A JSON array read record by record (json.JSONDecoder.raw_decode): for a file that is cut
    off inside a record (a download stopped early, ShareGPT's packaged 125 MB of its 642 MB; the
    text does not end with ']'), every complete record is read and one warning says where the file
    ends; a broken record in an array that does end with ']' stops the read, naming its index."""
    decoder = json.JSONDecoder()
    position, number = text.index("[") + 1, 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            if position >= len(text):
                log.warning("%s: the JSON array has no closing ']'; read %d complete records", path, number)
            return
        try:
            row, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            if text.rstrip().endswith("]"):  # the array is whole, so this record is broken, not cut off
                line = text.count("\n", 0, exc.pos) + 1
                raise DataError(f"{path}:{line}: broken JSON in record {number + 1} ({exc.msg})") from None
            log.warning("%s: the file ends inside record %d; read the %d complete records before it (a cut-off "
                        "download?)", path, number + 1, number)
            return
        number += 1
        where = f"{path}:item {number}"
        yield (where, row) if isinstance(row, dict) else Skipped(where, f"expected an object, got {type(row).__name__}")


def _iter_csv(path: Path) -> Iterator[Raw | Skipped]:
    import io

    with io.StringIO(_read_text(path), newline="") as handle:
        reader = csv.DictReader(handle)
        start = 2
        for row in reader:
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if None in row:
                yield Skipped(where, "more fields than the header has")
                continue
            yield where, {k: _maybe_json(v) for k, v in row.items()}


def _maybe_json(value: str | None):
    # CSV cells holding message lists are JSON text; everything else stays a string.
    if value and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _iter_table(rows: Iterable[dict], name: str) -> Iterator[Raw]:
    for number, row in enumerate(rows):
        yield f"{name}:row {number}", dict(row)


def iter_raw(source: str | Path, split: str = "train") -> tuple[Iterator[Raw | Skipped], str]:
    """Rows of a local file (by extension) or, when no such file exists, of a Hub dataset id."""
    path = Path(source)
    if path.is_dir():
        from datasets import load_from_disk

        if not any((path / marker).is_file() for marker in ("dataset_info.json", "dataset_dict.json", "state.json")):
            raise DataError(f"{path}: a folder, but not a saved `datasets` dataset (no dataset_info.json / "
                            "dataset_dict.json); give a .jsonl, .json, .csv or .parquet file inside it")
        try:
            dataset = load_from_disk(str(path))
        except Exception as exc:  # a damaged save: say which folder, in one line
            raise DataError(f"{path}: the saved dataset cannot be read ({type(exc).__name__}: {exc})") from None
        dataset = dataset[split] if hasattr(dataset, "keys") else dataset
        return _iter_table(dataset, str(path)), f"fingerprint:{dataset._fingerprint}"
    if path.is_file():
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        suffix = "".join(path.suffixes[-1:]).lower()
        if suffix in (".jsonl", ".ndjson"):
            return _iter_jsonl(path), digest
        if suffix == ".json":
            return _iter_json(path), digest
        if suffix == ".csv":
            return _iter_csv(path), digest
        if suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq  # to_pylist keeps nested lists as lists (pandas: arrays)

            try:
                table = pq.read_table(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"{path}: not a readable Parquet file ({exc}); is it empty or cut short?") from None
            return _iter_table(table.to_pylist(), str(path)), digest
        raise DataError(f"{path}: unknown file type {suffix!r} (use .jsonl, .json, .csv or .parquet)")
    if re.match(r"^[\w.-]+/[\w.-]+$", str(source)):
        from datasets import load_dataset

        try:
            dataset = load_dataset(str(source), split=split)
        except Exception as exc:
            raise DataError(f"{source}: not a local file, and loading it from the Hub failed: {exc}") from None
        return _iter_table(dataset, str(source)), f"fingerprint:{dataset._fingerprint}"
    raise DataError(f"{source}: no such file, and not a Hub dataset id (owner/name)")


# ---- validation helpers ----------------------------------------------------------------------
def _text(row: dict, key: str, required: bool = True, max_chars: int = MAX_CHARS) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value):  # missing or NaN
        if required:
            raise RowError(f"missing field {key!r}")
        return ""
    if not isinstance(value, str):
        raise RowError(f"field {key!r} should be text, got {type(value).__name__}")
    if required and not value.strip():
        raise RowError(f"field {key!r} is empty")
    if len(value) > max_chars:
        raise RowError(f"field {key!r} is too long ({len(value)} > {max_chars} characters)")
    return value


def _messages(value, key: str, max_chars: int = MAX_CHARS) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": _text({key: value}, key, max_chars=max_chars)}]
    if not isinstance(value, list) or not value:
        raise RowError(f"field {key!r} should be a non-empty list of messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise RowError(f"{key}[{i}] should be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise RowError(f"{key}[{i}]: role {role!r} is not one of {ROLES}")
        out.append({"role": role, "content": _text(message, "content", max_chars=max_chars)})
    return out


def _check_conversation(messages: list[dict]) -> list[dict]:
    if messages[-1]["role"] != "assistant":
        raise RowError("conversation does not end with an assistant message")
    if not any(m["role"] == "user" for m in messages):
        raise RowError("conversation has no user message")
    return messages


def _user_text(instruction: str, extra: str) -> str:
    return f"{instruction}\n\n{extra}" if extra.strip() else instruction


# ---- converters: raw row -> TRL row ------------------------------------------------------------
def from_dolly(row: dict, max_chars: int) -> dict:
    user = _user_text(_text(row, "instruction", max_chars=max_chars), _text(row, "context", False, max_chars))
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": _text(row, "response", max_chars=max_chars)}]}


def from_alpaca(row: dict, max_chars: int) -> dict:
    user = _user_text(_text(row, "instruction", max_chars=max_chars), _text(row, "input", False, max_chars))
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": _text(row, "output", max_chars=max_chars)}]}


def from_messages(row: dict, max_chars: int) -> dict:
    return {"messages": _check_conversation(_messages(row.get("messages"), "messages", max_chars))}


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bing": "assistant",
                  "bard": "assistant", "assistant": "assistant", "model": "assistant", "system": "system"}


def from_sharegpt(row: dict, max_chars: int) -> dict:
    """ShareGPT's schema ({"id", "conversations": [{"from", "value"}]}, as FastChat, Axolotl and
    LLaMA-Factory read it) -> TRL messages. Leading answers before any question and a trailing
    unanswered question are dropped (as FastChat does); two turns of one side in a row are not."""
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise RowError("field 'conversations' should be a non-empty list of {from, value} turns")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise RowError(f"conversations[{i}] should be an object with 'from' and 'value'")
        role = SHAREGPT_ROLES.get(str(turn["from"]).lower())
        if role is None:
            raise RowError(f"conversations[{i}]: 'from' {turn['from']!r} is not one of {sorted(SHAREGPT_ROLES)}")
        messages.append({"role": role, "content": _text({"value": turn["value"]}, "value", max_chars=max_chars)})
    system = [m for m in messages[:1] if m["role"] == "system"]
    dialogue = messages[len(system):]
    while dialogue and dialogue[0]["role"] != "user":
        dialogue = dialogue[1:]
    while dialogue and dialogue[-1]["role"] != "assistant":
        dialogue = dialogue[:-1]
    for i, (a, b) in enumerate(zip(dialogue, dialogue[1:])):
        if a["role"] == b["role"] or b["role"] == "system":
            raise RowError(f"conversations: turns {i + 1} and {i + 2} are both {a['role']!r} (or a system turn mid-way)")
    if not dialogue:
        raise RowError("conversation has no answered question")
    return {"messages": system + dialogue}


def from_text(row: dict, max_chars: int) -> dict:
    return {"text": _text(row, "text", max_chars=max_chars)}


def from_prompt_completion(row: dict, max_chars: int) -> dict:
    prompt = _prompt(row.get("prompt"), max_chars)
    return {"messages": prompt + _messages(row.get("completion"), "completion", max_chars)}


def _prompt(value, max_chars: int) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": _text({"prompt": value}, "prompt", max_chars=max_chars)}]
    prompt = _messages(value, "prompt", max_chars)
    if prompt[-1]["role"] != "user":
        raise RowError("prompt does not end with a user message")
    return prompt


def _reply(value, key: str, max_chars: int, prompt: list[dict] | None = None) -> list[dict]:
    """A preference side's reply: its last assistant message, or, when it goes on for several turns
    after the prompt (assistant, user, ..., assistant: a conversation battle's export), all of them."""
    reply = _messages(value, key, max_chars)
    if reply[-1]["role"] != "assistant":
        raise RowError(f"{key!r} does not end with an assistant message")
    if prompt and reply[: len(prompt)] == prompt:  # chosen / rejected may repeat the prompt
        reply = reply[len(prompt):]
    return reply if reply and reply[0]["role"] == "assistant" else reply[-1:]


def from_preference(row: dict, max_chars: int) -> dict:
    """TRL preference rows, standard or conversational; chosen/rejected may repeat the prompt."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if row.get("prompt") is None and isinstance(chosen, list):  # implicit prompt
        chosen, rejected = _messages(chosen, "chosen", max_chars), _messages(rejected, "rejected", max_chars)
        if chosen[:-1] != rejected[:-1]:
            raise RowError("chosen and rejected differ before their last message")
        prompt = chosen[:-1]
    else:
        prompt = _prompt(row.get("prompt"), max_chars)
    pair = {"prompt": prompt, "chosen": _reply(chosen, "chosen", max_chars, prompt),
            "rejected": _reply(rejected, "rejected", max_chars, prompt)}
    if not any(m["role"] == "user" for m in pair["prompt"]):
        raise RowError("prompt has no user message")
    if pair["chosen"] == pair["rejected"]:
        raise RowError("chosen and rejected are the same text")
    return pair


def from_ultrafeedback(row: dict, max_chars: int) -> dict:
    # ultrafeedback_binarized: chosen/rejected are whole conversations that start with the prompt.
    return from_preference({"chosen": row.get("chosen"), "rejected": row.get("rejected")}, max_chars)


def from_orca(row: dict, max_chars: int) -> dict:
    system = _text(row, "system", False, max_chars)
    prompt = ([{"role": "system", "content": system}] if system.strip() else []) + [
        {"role": "user", "content": _text(row, "question", max_chars=max_chars)}]
    return from_preference({"prompt": prompt, "chosen": _text(row, "chosen", max_chars=max_chars),
                            "rejected": _text(row, "rejected", max_chars=max_chars)}, max_chars)


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def parse_hh(transcript: str) -> list[dict]:
    """'\\n\\nHuman: ...\\n\\nAssistant: ...' -> messages."""
    parts = _HH_TURN.split(transcript)
    if parts[0].strip() or len(parts) < 3:
        raise RowError("transcript does not start with '\\n\\nHuman:'")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[who], "content": text.strip()} for who, text in zip(parts[1::2], parts[2::2])]


def from_hh(row: dict, max_chars: int) -> dict:
    chosen = parse_hh(_text(row, "chosen", max_chars=max_chars))
    rejected = parse_hh(_text(row, "rejected", max_chars=max_chars))
    if any(not m["content"] for m in chosen[-1:] + rejected[-1:]):
        raise RowError("last assistant reply is empty")
    return from_preference({"chosen": chosen, "rejected": rejected}, max_chars)


def from_unpaired(row: dict, max_chars: int) -> dict:
    label = row.get("label")
    if isinstance(label, str) and label.lower() in ("true", "false"):
        label = label.lower() == "true"
    if not isinstance(label, bool):
        raise RowError(f"field 'label' should be true or false, got {label!r}")
    return {"prompt": _prompt(row.get("prompt"), max_chars),
            "completion": _reply(row.get("completion"), "completion", max_chars), "label": label}


Converter = Callable[[dict, int], dict]
# name: (kind, keys that identify it, converter); detection takes the first match in this order.
ROW_FORMATS: dict[str, tuple[str, tuple[str, ...], Converter]] = {
    "ultrafeedback": ("preference", ("prompt_id", "chosen", "rejected"), from_ultrafeedback),
    "orca": ("preference", ("question", "chosen", "rejected"), from_orca),
    "preference": ("preference", ("prompt", "chosen", "rejected"), from_preference),
    "hh-rlhf": ("preference", ("chosen", "rejected"), from_hh),
    "unpaired": ("unpaired", ("prompt", "completion", "label"), from_unpaired),
    "dolly": ("sft", ("instruction", "context", "response"), from_dolly),
    "alpaca": ("sft", ("instruction", "output"), from_alpaca),
    "messages": ("sft", ("messages",), from_messages),
    "sharegpt": ("sft", ("conversations",), from_sharegpt),
    "prompt-completion": ("sft", ("prompt", "completion"), from_prompt_completion),
    "text": ("text", ("text",), from_text),  # last: only a row with nothing else it could be
}
FORMATS = ("auto", "oasst1", *ROW_FORMATS)


def detect_format(row: dict) -> str:
    if {"message_id", "parent_id", "role", "text"} <= row.keys():
        return "oasst1"
    for name, (_, keys, _) in ROW_FORMATS.items():
        if set(keys) <= row.keys():
            if name == "hh-rlhf" and isinstance(row.get("chosen"), list):
                return "preference"  # implicit-prompt conversational preference
            return name
    raise RowError(f"cannot tell the format from fields {sorted(row)}; pass --format")


# ---- oasst1: message trees -> conversations and ranked pairs ----------------------------------
def oasst1_tree(raw: list[Raw], max_chars: int) -> tuple[dict[str, dict], dict[str | None, list[str]], list[Skipped]]:
    """OASST1's message rows as a tree: (message id -> node, parent id -> child ids, skipped rows)."""
    nodes: dict[str, dict] = {}
    children: dict[str | None, list[str]] = {}
    skipped = []
    for where, row in raw:
        try:
            if row.get("deleted") or row.get("review_result") is False:
                raise RowError("message is deleted or failed review")
            role = {"prompter": "user", "assistant": "assistant"}.get(row.get("role"))
            if role is None:
                raise RowError(f"role {row.get('role')!r} is not 'prompter' or 'assistant'")
            node = {"id": str(row["message_id"]), "role": role, "where": where,
                    "text": _text(row, "text", max_chars=max_chars), "rank": row.get("rank")}
        except (RowError, KeyError) as exc:
            skipped.append(Skipped(where, str(exc)))
            continue
        parent = row.get("parent_id")
        node["parent"] = str(parent) if parent is not None and parent == parent else None
        nodes[node["id"]] = node
        children.setdefault(node["parent"], []).append(node["id"])
    return nodes, children, skipped


def oasst1_rows(raw: list[Raw], kind: str, max_chars: int) -> Iterator[dict | Skipped]:
    """Conversations follow the best-ranked reply at every step; pairs take, under each prompter
    message, the rank-0 reply as chosen against every lower-ranked sibling."""
    nodes, children, skipped = oasst1_tree(raw, max_chars)
    yield from skipped

    def ranked(ids: list[str]) -> list[dict]:
        rank = lambda n: n["rank"] if isinstance(n["rank"], (int, float)) and n["rank"] == n["rank"] else 1e9
        return sorted((nodes[i] for i in ids), key=rank)

    def history(node: dict) -> list[dict]:
        path = []
        while node is not None:
            path.append({"role": node["role"], "content": node["text"]})
            node = nodes.get(node["parent"]) if node["parent"] else None
        return path[::-1]

    for root in ranked(children.get(None, [])):
        if root["role"] != "user":
            yield Skipped(root["where"], "tree root is not a prompter message")
            continue
        if kind == "sft":
            node, path = root, []
            while True:
                path.append({"role": node["role"], "content": node["text"]})
                replies = ranked(children.get(node["id"], []))
                if not replies:
                    break
                node = replies[0]
            if path[-1]["role"] == "assistant":
                yield {"messages": path}
            else:
                yield Skipped(root["where"], "tree has no assistant reply")
            continue
        stack = [root]
        while stack:
            node = stack.pop()
            replies = ranked(children.get(node["id"], []))
            stack.extend(replies)
            scored = [r for r in replies if r["role"] == "assistant" and isinstance(r["rank"], (int, float))]
            if node["role"] == "user" and len(scored) >= 2:
                prompt = history(node)
                for worse in scored[1:]:
                    yield {"prompt": prompt, "chosen": [{"role": "assistant", "content": scored[0]["text"]}],
                           "rejected": [{"role": "assistant", "content": worse["text"]}]}


# ---- the one entry point ---------------------------------------------------------------------
def read(
    source: str | Path, format: str = "auto", on_error: str = "skip", kind: str | None = None,
    split: str = "train", max_chars: int = MAX_CHARS,
) -> ReadResult:
    """Read `source` into TRL rows. on_error="stop" raises at the first bad row; "skip" keeps
    going and lists every skipped row. `kind` picks sft or preference output for oasst1."""
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if on_error not in ("skip", "stop"):
        raise DataError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
    items, digest = iter_raw(source, split)
    skipped: list[Skipped] = []
    raw: list[Raw] = []

    def fail_or_skip(bad: Skipped) -> None:
        if on_error == "stop":
            raise DataError(str(bad))
        skipped.append(bad)

    for item in items:
        if isinstance(item, Skipped):
            fail_or_skip(item)
        else:
            raw.append(item)
    if format == "auto":
        if not raw:
            raise DataError(f"{source}: no readable rows" + (f" ({skipped[0]})" if skipped else ""))
        try:
            format = detect_format(raw[0][1])
        except RowError as exc:
            raise DataError(f"{raw[0][0]}: {exc}") from None
    rows: list[dict] = []
    if format == "oasst1":
        out_kind = kind or "sft"
        for item in oasst1_rows(raw, out_kind, max_chars):
            fail_or_skip(item) if isinstance(item, Skipped) else rows.append(item)
    else:
        out_kind, _, convert = ROW_FORMATS[format]
        for where, row in raw:
            try:
                rows.append(convert(row, max_chars))
            except RowError as exc:
                fail_or_skip(Skipped(where, str(exc)))
    if kind and kind != out_kind:
        raise DataError(f"{source}: format {format!r} gives {out_kind} data ({KINDS[out_kind]}), not {kind}")
    skipped.sort(key=_line_number)  # file order, whichever stage found the problem
    return ReadResult(str(source), format, out_kind, rows, skipped, digest)


def _line_number(skipped: Skipped) -> int:
    # Every `where` ends in its line, item or row number.
    return int(re.search(r"(\d+)$", skipped.where).group(1))


def jsonl_objects(path: str | Path, error: type[Exception] = None) -> list[tuple[str, dict]]:
    """("file:line", row) for every row of a JSONL file (blank lines skipped, a leading byte-order
    mark allowed); a line that is not UTF-8, broken JSON or not an object raises `error` (the
    caller's own error class; DataError by default) with its file:line."""
    error = error or DataError
    rows = []
    try:
        for item in _iter_jsonl(Path(path)):
            if isinstance(item, Skipped):
                raise error(str(item))
            rows.append(item)
    except DataError as exc:
        raise error(str(exc)) from None
    return rows


def read_jsonl(path: str | Path) -> list[dict]:
    """All rows of a JSONL file; a bad line raises DataError with file:line (see jsonl_objects)."""
    return [row for _, row in jsonl_objects(path)]


def write_jsonl(rows: Iterable[dict], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
