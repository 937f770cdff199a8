"""A run's data: the training rows and the held-out ones (a file, or a share of the data), read
through posttrain.data into the shape the method takes, with replayed general rows mixed in,
tokenized and sorted into the datasets the trainer gets."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from posttrain.chat import TemplateError, build_example
from posttrain.data import DataError, read
from posttrain.errors import RecipeError
from posttrain.methods import METHODS, Method
from posttrain.recipe import RunArguments

log = logging.getLogger(__name__)


@dataclass
class Splits:
    train: list[dict]
    eval: list[dict]
    info: dict


def load_prompt_splits(run: RunArguments) -> Splits:
    """Prompts for an online RL round (posttrain/rl.py's formats), with held-out prompts."""
    import hashlib

    from posttrain import rl

    rows = rl.read_prompts(run.data)
    rows = rows[: run.max_rows] if run.max_rows else rows
    digest = lambda path: "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    info = {"dataset": run.data, "dataset_format": "prompts", "dataset_hash": digest(run.data), "rows_skipped": 0}
    if run.eval_data:
        eval_rows = rl.read_prompts(run.eval_data)
        info.update(eval_dataset=run.eval_data, eval_dataset_hash=digest(run.eval_data))
    else:
        random.Random(0).shuffle(rows)
        n_eval = max(1, int(len(rows) * run.eval_fraction))
        rows, eval_rows = rows[n_eval:], rows[:n_eval]
        info.update(eval_dataset=f"{run.data} ({run.eval_fraction:.0%} held out, seed 0)")
    if not rows or not eval_rows:
        raise DataError(f"{run.data}: {len(rows)} training and {len(eval_rows)} held-out prompts; need at least one of each")
    info.update(train_rows=len(rows), eval_rows=len(eval_rows))
    return Splits(rows, eval_rows, info)


def load_splits(run: RunArguments, method_name: str) -> Splits:
    data = METHODS[method_name].data
    if data == "prompts":
        return load_prompt_splits(run)
    data_kind = "sft" if data == "conversations" else "preference"
    train = read(run.data, format=run.data_format, on_error=run.on_bad_rows, split=run.data_split,
                 kind="preference" if run.data_format == "oasst1" and data_kind != "sft" else None)
    if data == "unpaired" and train.kind == "unpaired":
        data_kind = "unpaired"
    if train.kind != data_kind:
        raise DataError(f"{run.data}: {method_name} needs {data_kind} data, but format {train.format!r} gives {train.kind}")
    rows = train.rows[: run.max_rows] if run.max_rows else list(train.rows)
    info = {"dataset": run.data, "dataset_format": train.format, "dataset_hash": train.hash,
            "rows_skipped": len(train.skipped)}
    if run.eval_data:
        held = read(run.eval_data, format=run.data_format, on_error=run.on_bad_rows, split=run.eval_split,
                    kind=data_kind if data_kind != "unpaired" else None)
        eval_rows = held.rows
        info.update(eval_dataset=run.eval_data, eval_dataset_hash=held.hash)
    else:
        random.Random(0).shuffle(rows)
        n_eval = max(1, int(len(rows) * run.eval_fraction))
        rows, eval_rows = rows[n_eval:], rows[:n_eval]
        info.update(eval_dataset=f"{run.data} ({run.eval_fraction:.0%} held out, seed 0)")
    if len(rows) < 1 or len(eval_rows) < 1:
        raise DataError(f"{run.data}: {len(rows)} training and {len(eval_rows)} held-out rows; need at least one of each")
    for skipped in train.skipped[:5]:
        log.warning("skipped %s", skipped)
    if train.skipped:
        log.warning("%d bad rows skipped in %s", len(train.skipped), run.data)
    info.update(train_rows=len(rows), eval_rows=len(eval_rows))
    if run.replay_data:
        replay = replay_rows(run, method_name, data_kind, len(rows))
        info.update(replay_data=run.replay_data, replay_ratio=run.replay_ratio, replay_rows=len(replay))
        rows = rows + replay
    return Splits(rows, eval_rows, info)


def replay_rows(run: RunArguments, method_name: str, data_kind: str, train_rows: int) -> list[dict]:
    """round(replay_ratio x training rows) rows of the replay data (seed 0; repeated when it has
    fewer), in the run's own format: conversations or plain text for SFT, pairs (or unpaired rows
    for KTO on unpaired data) for preference training."""
    if not 0 < run.replay_ratio <= 10:
        raise RecipeError(f"replay_ratio must be above 0 and at most 10 when replay_data is set, got {run.replay_ratio}")
    replay = read(run.replay_data, on_error=run.on_bad_rows, split=run.data_split)
    allowed = ("sft", "text") if data_kind == "sft" else (data_kind,)
    if replay.kind not in allowed:
        raise DataError(f"{run.replay_data}: {method_name} replays {' or '.join(KIND_WORDS[k] for k in allowed)}, "
                        f"but format {replay.format!r} gives {KIND_WORDS.get(replay.kind, replay.kind)}")
    wanted = max(1, round(run.replay_ratio * train_rows))
    rng = random.Random(0)
    pool = list(replay.rows)
    picked = []
    while len(picked) < wanted:
        rng.shuffle(pool)
        picked += pool[: wanted - len(picked)]
    return picked


KIND_WORDS = {"sft": "conversations", "text": "plain text", "preference": "preference pairs", "unpaired": "unpaired rows"}


def tokenized(tokenizer, conversations: list[dict], max_length: int):
    """SFT rows -> a datasets.Dataset of input_ids + labels (prompt tokens masked; a replayed
    plain-text row is trained on every token)."""
    from datasets import Dataset

    examples, dropped = [], 0
    for row in conversations:
        if "text" in row:  # replayed plain text: language modelling, every token trained
            ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"][: max_length - 1] + [tokenizer.eos_token_id]
            examples.append({"input_ids": ids, "labels": list(ids)})
            continue
        try:
            example = build_example(tokenizer, row["messages"], max_length)
        except TemplateError:
            dropped += 1
            continue
        examples.append({"input_ids": example.input_ids, "labels": example.labels})
    if dropped:
        log.warning("%d conversations left no assistant tokens within max_length=%d", dropped, max_length)
    return Dataset.from_list(examples)


def unpaired(pairs: list[dict]) -> list[dict]:
    """Preference pairs -> KTO rows: chosen is desirable, rejected is not."""
    rows = []
    for pair in pairs:
        if "label" in pair:
            rows.append(pair)
            continue
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return rows


def metrics_too_long(how: Method, tokenizer, rows: list[dict], max_length: int) -> int:
    from posttrain.heldout import too_long

    if how.data == "conversations":
        return too_long(tokenizer, rows, "sft", max_length)
    return too_long(tokenizer, [r for r in rows if "chosen" in r], "pairs", max_length)


def datasets(how: Method, tokenizer, splits: Splits, max_length: int):
    """The method's training and held-out datasets, in the shape its TRL trainer takes."""
    from datasets import Dataset

    if how.data == "conversations":
        return tokenized(tokenizer, splits.train, max_length), tokenized(tokenizer, splits.eval, max_length)
    if how.data == "unpaired":
        return with_lengths(unpaired(splits.train), tokenizer), with_lengths(unpaired(splits.eval), tokenizer)
    if how.data == "pairs":
        return with_lengths(splits.train, tokenizer), with_lengths(splits.eval, tokenizer)
    return Dataset.from_list(splits.train), Dataset.from_list(splits.eval)


def with_lengths(rows: list[dict], tokenizer):
    """Rows plus a `length` column (tokens of the prompt and its longest answer), which the
    Trainer's `group_by_length` sampling reads to batch rows of similar length: pairs cannot be
    packed (each side is scored whole), so this is how they avoid computing on padding."""
    from datasets import Dataset

    text = lambda value: value if isinstance(value, str) else " ".join(str(m.get("content", "")) for m in value or [])
    lengths = [len(tokenizer(text(r.get("prompt")) + " " + max((text(r.get(k)) for k in ("chosen", "rejected", "completion")),
                                                                key=len), add_special_tokens=False)["input_ids"])
               for r in rows]
    return Dataset.from_list(rows).add_column("length", lengths) if rows else Dataset.from_list(rows)
