"""Chat templates a recipe can name (`chat_template: chatml | llama3 | mistral | gemma | FILE.jinja`), the
end-of-turn token a template closes each answer with, and the template's special tokens that a
base never trained. Written from the public formats; a tokenizer's own template wins unless a
recipe names another. Never loads a model."""

from __future__ import annotations

from pathlib import Path

import torch

from posttrain.errors import WorkbenchError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Mistral has no system role: a system message is put before the first user turn.
MISTRAL = (
    "{{ bos_token }}"
    "{% set system = namespace(text='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set system.text = message['content'] + '\n\n' %}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + system.text + message['content'] + ' [/INST]' }}"
    "{% set system.text = '' %}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)
# Gemma's turns (its public -it template): <start_of_turn>user / <start_of_turn>model, each closed by
# <end_of_turn>; no system role: a system message opens the first user turn, then a blank line.
GEMMA = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim "
    "+ '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3, "mistral": MISTRAL, "gemma": GEMMA}
# The special tokens each named template writes; they must exist in the base's vocabulary.
TEMPLATE_TOKENS = {
    "chatml": ["<|im_start|>", "<|im_end|>"],
    "llama3": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    "mistral": [],
    "gemma": ["<start_of_turn>", "<end_of_turn>"],
}
_PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "SENTINEL-ANSWER"}]


class ChatTemplateError(WorkbenchError, ValueError):
    """A chat template that is missing, unknown, or does not fit the tokenizer."""


def resolve(value: str) -> str:
    """A named template's Jinja text, or the text of a Jinja file."""
    if value in TEMPLATES:
        return TEMPLATES[value]
    path = Path(value)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    raise ChatTemplateError(
        f"chat_template {value!r} is neither one of {', '.join(TEMPLATES)} nor a Jinja file"
    )


def apply(tokenizer, value: str | None) -> None:
    """Give `tokenizer` the named template (when `value` is set) and check it has one at all."""
    if value:
        text = resolve(value)
        missing = [t for t in TEMPLATE_TOKENS.get(value, []) if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)]
        if missing:
            raise ChatTemplateError(
                f"chat_template {value!r} needs tokens {missing} that the vocabulary of {tokenizer.name_or_path!r} "
                "does not have; pick a template whose tokens it has (or a Jinja file)"
            )
        for token in TEMPLATE_TOKENS.get(value, []):  # keep them whole when text is tokenized
            if token not in tokenizer.all_special_tokens:
                tokenizer.add_special_tokens({"additional_special_tokens": [token]}, replace_extra_special_tokens=False)
        tokenizer.chat_template = text
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(
            f"the tokenizer of {tokenizer.name_or_path!r} has no chat template (a base model); set the recipe "
            f"field chat_template (--chat_template {' | '.join(TEMPLATES)} | FILE.jinja)"
        )


def special_ids(tokenizer) -> set[int]:
    """Named special tokens plus every added token flagged special (ChatML's `<|im_end|>` is one
    in Qwen2's tokenizer without being its eos)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return set(tokenizer.all_special_ids) | {i for i, token in added.items() if getattr(token, "special", False)}


def end_of_turn_id(tokenizer) -> int:
    """The token that closes an assistant turn, read off the template itself: render a turn and
    take the first special token after the answer (ChatML `<|im_end|>`, Llama-3 `<|eot_id|>`,
    Mistral `</s>`). Falls back to eos when the template closes turns with plain text."""
    text = tokenizer.apply_chat_template(_PROBE, tokenize=False)
    tail = text[text.index("SENTINEL-ANSWER") + len("SENTINEL-ANSWER"):]
    special = special_ids(tokenizer)
    for token in tokenizer(tail, add_special_tokens=False)["input_ids"]:
        if token in special:
            return token
    return tokenizer.eos_token_id


def template_token_ids(tokenizer) -> list[int]:
    """Ids of the special tokens a rendered conversation uses (role headers, end of turn)."""
    text = tokenizer.apply_chat_template(_PROBE, tokenize=False, add_generation_prompt=False)
    special = special_ids(tokenizer)
    return sorted({t for t in tokenizer(text, add_special_tokens=False)["input_ids"] if t in special})


def untrained_rows(weight: torch.Tensor, ids: list[int], ratio: float = 0.05) -> list[int]:
    """Those `ids` whose embedding row was never trained: a norm far below the typical row's
    (Llama-3 base ships its header / end-of-turn rows near zero)."""
    norms = weight.detach().float().norm(dim=-1)
    typical = norms.median()
    return [i for i in ids if norms[i] < ratio * typical]
