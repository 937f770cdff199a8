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
