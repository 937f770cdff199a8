"""Chat templates to training tokens with the loss masked on everything but the assistant's
answers. The labels are -100 on system, user and template tokens, and equal the input ids on
each assistant answer and its end-of-turn token. Templates are used as the tokenizer ships
them; we never write our own look-alike."""

from __future__ import annotations

from dataclasses import dataclass

from posttrain.errors import WorkbenchError

IGNORE_INDEX = -100


class TemplateError(WorkbenchError, ValueError):
    """A conversation the tokenizer's chat template cannot turn into masked training tokens."""


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)


def segments(tokenizer, messages: list[dict]) -> list[tuple[str, bool]]:
    """Split the rendered conversation into (text, trained) pieces.

    Each assistant turn is the text between the render of the turns before it (with the
    generation prompt) and the render through it. Whitespace the template puts after the
    end-of-turn token belongs to the template, not to the answer."""
    if not messages or messages[-1]["role"] != "assistant":
        raise TemplateError("a training conversation must end with an assistant message")
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not prompt.startswith(done) or not through.startswith(prompt):
            raise TemplateError(
                f"chat template of {tokenizer.name_or_path!r} is not prefix-stable at message {i}: "
                "earlier turns render differently once later turns are added"
            )
        answer = through[len(prompt):]
        stripped = answer.rstrip()
        pieces += [(prompt[len(done):], False), (stripped, True), (answer[len(stripped):], False)]
        done = through
    return [(text, trained) for text, trained in pieces if text]


def build_example(tokenizer, messages: list[dict], max_length: int | None = None) -> Example:
    """Token ids and labels for one conversation; pieces are tokenized separately so a token
    never straddles the prompt/answer boundary (it cannot at inference either)."""
    input_ids: list[int] = []
    labels: list[int] = []
    for text, trained in segments(tokenizer, messages):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    example = Example(input_ids, labels)
    if example.trained_tokens == 0:
        raise TemplateError(f"no assistant tokens left within max_length={max_length}")
    return example


def prompt_ids(tokenizer, prompt: list[dict]) -> list[int]:
    """The tokens a model sees before it answers `prompt` (generation prompt included)."""
    text = _render(tokenizer, prompt, generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
