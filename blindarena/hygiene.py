"""Vote hygiene, FastChat's rule: a battle whose answers name a model of the campaign, its base's
family or its maker lets the rater know who wrote it, so it is kept but flagged and left out of
the ladder and the pairs. Pure functions over texts; the words list is the campaign's setting
(the admin can extend it)."""

from __future__ import annotations

import re

GENERIC = {"instruct", "base", "chat", "model", "hf", "it", "sft", "dpo", "gguf", "awq", "gptq"}
LABS = {  # Hub owners -> how their models name the lab
    "huggingfacetb": ["Hugging Face", "HuggingFace"], "huggingface": ["Hugging Face", "HuggingFace"],
    "meta-llama": ["Meta"], "qwen": ["Alibaba", "Qwen"], "mistralai": ["Mistral AI", "Mistral"],
    "google": ["Google", "Gemma"], "microsoft": ["Microsoft"], "openai": ["OpenAI"], "anthropic": ["Anthropic", "Claude"],
}


def identity_words(models: list[str], base_hub_id: str | None, extra: list[str] | tuple = ()) -> list[str]:
    """The campaign's models' names, the base's family (SmolLM2-135M-Instruct -> SmolLM) and its
    lab (HuggingFaceTB -> Hugging Face), and the admin's own words; generic words and very short
    names (which would match ordinary text) are left out."""
    words = [m for m in models if len(m) >= 4 and m.lower() not in GENERIC]
    if base_hub_id and "/" in base_hub_id:
        owner, name = base_hub_id.split("/", 1)
        words += LABS.get(owner.lower(), [owner])
        for token in re.split(r"[-_.]", name):
            family = re.sub(r"\d+(\.\d+)?[a-zA-Z]?$", "", token)  # SmolLM2 -> SmolLM, Qwen2 -> Qwen
            if len(family) >= 4 and family.lower() not in GENERIC and not re.fullmatch(r"\d+[bBmM]", token):
                words.append(family)
    words += [w.strip() for w in extra if w.strip()]
    return sorted(set(words), key=str.lower)


def named(text: str, words: list[str]) -> str | None:
    """The first identity word `text` contains (case-insensitive, whole words), or None."""
    for word in words:
        if re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text or "", re.I):
            return word
    return None


def flags(battles: list[dict], words: list[str]) -> dict[int, str]:
    """{battle id: reason} for battles ({battle_id, model_a, model_b, text_a, text_b}) whose answers
    name an identity word."""
    out = {}
    for battle in battles:
        for side in ("a", "b"):
            word = named(battle[f"text_{side}"], words)
            if word:
                out[battle["battle_id"]] = f"{battle[f'model_{side}']}'s answer names {word!r}"
                break
    return out


# ---- prompt hygiene for open battles: what a few raters' repeated questions may not weigh ----------
# FastChat caps the most frequent prompts of a release; here a question (normalised: lower case,
# letters and digits) counts for at most REPEAT_SHARE of an open campaign's votes (at least one
# vote), and one rater's near-duplicate questions within a day (MiniLM cosine >= NEAR_DUPLICATE)
# count once: the first vote stands, the rest are set aside (kept, not counted), and Results says
# how many each rule set aside.
REPEAT_SHARE = 0.05
NEAR_DUPLICATE = 0.9
DAY_S = 24 * 3600


def question_key(text: str) -> str:
    """A question as the repeat caps compare it (here and at ask time): lower case, letters and digits only."""
    return " ".join(re.findall(r"[a-z0-9]+", (text or "").lower()))


def set_aside(votes: list, embed, repeat_share: float = REPEAT_SHARE, similarity: float = NEAR_DUPLICATE) -> dict[int, str]:
    """Vote id -> why it is set aside, for an open campaign's votes (each with its battle's first
    question as `prompt`, its rater and its time), in the order cast. `embed`: texts -> unit
    vectors (the data builder's MiniLM), called only when one rater asked more than one question."""
    from datetime import datetime

    ordered = sorted(votes, key=lambda v: v["id"])
    out: dict[int, str] = {}
    cap = max(1, int(repeat_share * len(ordered)))
    seen: dict[str, int] = {}
    for vote in ordered:
        key = question_key(vote.get("prompt") or "")
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > cap:
            out[vote["id"]] = f"repeated question: over {cap} votes ({repeat_share:.0%} of the campaign) on it"
    by_rater: dict[str, list] = {}
    for vote in ordered:
        if vote["id"] not in out:
            by_rater.setdefault(vote["rater"], []).append(vote)
    mine = [group for group in by_rater.values() if len(group) > 1]
    for group in mine:
        vectors = embed([v.get("prompt") or "" for v in group])
        times = [datetime.fromisoformat(v["created_at"]).timestamp() for v in group]
        for j in range(1, len(group)):
            for i in range(j):
                if group[i]["id"] not in out and times[j] - times[i] <= DAY_S and float(vectors[i] @ vectors[j]) >= similarity:
                    out[group[j]["id"]] = (f"near-duplicate: of this rater's question of vote {group[i]['id']} within a day "
                                           f"(cosine {float(vectors[i] @ vectors[j]):.2f})")
                    break
    return out
