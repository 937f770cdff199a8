"""The builder's one pipeline: generate -> parse -> filter -> MinHash dedup -> embedding dedup
-> contamination -> write. Every row that leaves keeps its stage and reason, so the funnel adds up:
generated = kept + dropped at each stage."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from posttrain.benchmarks import NAMES as BENCHMARKS
from posttrain.data import DataError, read_jsonl
from posttrain.synth import clean, generate, report


@dataclass
class BuildConfig:
    seeds: str = "data/synth/seeds.jsonl"
    out: str = "data/synth/build"
    n: int = 5000
    evol_share: float = 0.3
    batch: int = 16
    seed: int = 0
    eval_files: list[str] = field(default_factory=lambda: ["data/heldout_prompts.jsonl", *BENCHMARKS])
    include_seeds: bool = True
    thresholds: clean.Thresholds = field(default_factory=clean.Thresholds)


def read_seeds(path: str | Path) -> list[dict]:
    seeds = read_jsonl(path)
    for number, row in enumerate(seeds, 1):
        if not (isinstance(row.get("instruction"), str) and row["instruction"].strip() and isinstance(row.get("output"), str)
                and row["output"].strip()):
            raise DataError(f"{path}:{number}: a seed needs non-empty 'instruction' and 'output'")
    return [{"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"]} for r in seeds]


def eval_prompts(files: list[str]) -> list[str]:
    """Prompt texts of evaluation files: MT-Bench turns, or prompt/instruction/question fields."""
    from posttrain import benchmarks

    texts = []
    for path in files:
        if benchmarks.is_named(path):  # a benchmark set held out by name
            texts += benchmarks.texts(path)
            continue
        for row in read_jsonl(path):
            texts += row.get("turns") or [row[k] for k in ("prompt", "instruction", "question") if row.get(k)][:1]
    return texts


def sha256_file(path: str | Path) -> str:
    from posttrain import benchmarks

    if benchmarks.is_named(path):
        return benchmarks.sha256_of(path)
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(config: BuildConfig, teacher, embedder=None, progress: Callable[[str, int, int], None] | None = None) -> dict:
    out = Path(config.out)
    seeds = read_seeds(config.seeds)
    started = time.time()
    raw = generate.generate(teacher, seeds, config.n, out / "raw.jsonl", config.evol_share, config.batch, config.seed,
                            progress=(lambda done, total: progress("generate", done, total)) if progress else None)
    gen_seconds = time.time() - started
    dropped: list[dict] = []

    def drop(row: dict, stage: str, reason: str) -> None:
        dropped.append({**row, "stage": stage, "reason": reason})

    candidates = []
    for row in raw:
        parsed = generate.parse(row["reply"])
        if parsed is None:
            drop({"id": row["id"], "reply": row["reply"][:300]}, "parse", "malformed: no Instruction/Output block")
        else:
            candidates.append({"id": row["id"], "kind": row["kind"], **parsed})
    passed = []
    for row in candidates:
        reason = clean.filter_reason(row, config.thresholds)
        drop(row, "filter", reason) if reason else passed.append(row)
    pool = ([{"id": f"seed-{i}", "kind": "seed", **s} for i, s in enumerate(seeds)] if config.include_seeds else []) + passed
    final, sizes, clusters = cleaned(pool, config, embedder or clean.Embedder(), drop)
    data_path = out / "data.jsonl"
    data_path.write_text("".join(json.dumps({k: r[k] for k in ("instruction", "input", "output")}, ensure_ascii=False) + "\n"
                                 for r in final), encoding="utf-8")
    (out / "dropped.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dropped), encoding="utf-8")
    stage_counts = {stage: sum(d["stage"] == stage for d in dropped)
                    for stage in ("parse", "filter", "dedup-minhash", "dedup-embedding", "contamination")}
    funnel = {"generated": len(raw), "seeds": len(seeds) if config.include_seeds else 0, "parsed": len(candidates),
              "after_filters": len(passed), **sizes, "final": len(final), "dropped": stage_counts}
    summary = {
        "config": {**asdict(config), "teacher": teacher.name},
        "hashes": {"seeds": sha256_file(config.seeds), "data": sha256_file(data_path),
                   "eval_files": {p: sha256_file(p) for p in config.eval_files}},
        "funnel": funnel,
        "throughput_examples_per_minute": round(len(raw) / max(gen_seconds, 1e-9) * 60, 1) if gen_seconds > 0.5 else None,
        "generation_seconds": round(gen_seconds, 1),
    }
    (out / "config.json").write_text(json.dumps(summary, indent=2))
    report.write(out / "report.html", summary, final, dropped, clusters, seed=config.seed,
                 min_english_share=config.thresholds.min_english_share)
    return summary


def cleaned(pool: list[dict], config: BuildConfig, embedder, drop: Callable[[dict, str, str], None]):
    """The pool after MinHash dedup, MiniLM dedup and the contamination check against the eval
    files (each dropped row handed to `drop` with its stage): (rows kept, pool sizes after each
    dedup, the duplicate clusters for the report)."""
    t = config.thresholds
    minhash = clean.minhash_dedup(pool, t)
    for i, reason in minhash.dropped.items():
        drop(pool[i], "dedup-minhash", reason)
    pool_m = [pool[i] for i in minhash.kept]
    vectors = embedder([clean.text_of(r) for r in pool_m])
    semantic = clean.embedding_dedup(pool_m, vectors, t)
    for i, reason in semantic.dropped.items():
        drop(pool_m[i], "dedup-embedding", reason)
    pool_e = [pool_m[i] for i in semantic.kept]
    vectors_e = vectors[semantic.kept] if len(semantic.kept) else vectors[:0]
    evals = eval_prompts(config.eval_files)
    contaminated = clean.contamination(pool_e, vectors_e, evals, embedder(evals), t)
    for i, reason in contaminated.items():
        drop(pool_e[i], "contamination", reason)
    clusters = [{"kept": pool[k], "duplicates": [pool[i] for i in dups]} for k, dups in minhash.clusters.items()]
    clusters += [{"kept": pool_m[k], "duplicates": [pool_m[i] for i in dups]} for k, dups in semantic.clusters.items()]
    final = [r for i, r in enumerate(pool_e) if i not in contaminated]
    return final, {"after_minhash": len(pool_m), "after_embedding": len(pool_e)}, clusters
