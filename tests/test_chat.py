"""Loss masking, token by token: labels are -100 on every system/user/template token and equal
the ids on every assistant token (answer + end-of-turn), for several templates."""

import pytest

from conftest import make_tokenizer
from posttrain.chat import IGNORE_INDEX, TemplateError, build_example, prompt_ids
from posttrain.models import load_tokenizer

CONVERSATION = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
LLAMA3 = (
    "<|begin_of_text|>{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] "
    "+ '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
)


def expected(tokenizer, pieces: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    """Ids and labels from hand-written (text, is_answer) pieces."""
    ids, labels = [], []
    for text, trained in pieces:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE_INDEX] * len(piece)
    return ids, labels


def assert_masked(tokenizer, messages, pieces):
    example = build_example(tokenizer, messages)
    ids, labels = expected(tokenizer, pieces)
    assert example.input_ids == ids
    for position, (label, token) in enumerate(zip(example.labels, example.input_ids)):
        assert label == labels[position], f"token {position} {tokenizer.decode([token])!r}"
        assert label in (IGNORE_INDEX, token)
    # The tokens spell exactly what the template renders.
    assert tokenizer.decode(example.input_ids) == tokenizer.apply_chat_template(messages, tokenize=False)
    return example


@pytest.fixture(scope="module")
def smol_tokenizer(default_base):
    return load_tokenizer(default_base[1].path)


def test_default_model_template_multi_turn(smol_tokenizer):
    example = assert_masked(smol_tokenizer, CONVERSATION, [
        (f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", False),
        ("Hello!<|im_end|>", True),
        ("\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", False),
        ("4<|im_end|>", True),
        ("\n", False),
    ])
    trained = [t for t, l in zip(example.input_ids, example.labels) if l != IGNORE_INDEX]
    assert smol_tokenizer.decode(trained) == "Hello!<|im_end|>4<|im_end|>"


def test_default_model_template_with_system(smol_tokenizer):
    messages = [{"role": "system", "content": "Answer in French."}] + CONVERSATION[:2]
    assert_masked(smol_tokenizer, messages, [
        ("<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", False),
        ("Hello!<|im_end|>", True),
        ("\n", False),
    ])


def test_llama3_style_template():
    specials = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
    tokenizer = make_tokenizer(LLAMA3, extra_special=specials)
    messages = [{"role": "system", "content": "be brief"}] + CONVERSATION
    header = lambda role: f"<|start_header_id|>{role}<|end_header_id|>\n\n"
    assert_masked(tokenizer, messages, [
        ("<|begin_of_text|>" + header("system") + "be brief<|eot_id|>" + header("user") + "Hi<|eot_id|>" + header("assistant"), False),
        ("Hello!<|eot_id|>", True),
        (header("user") + "What is 2+2?<|eot_id|>" + header("assistant"), False),
        ("4<|eot_id|>", True),
    ])


def test_mistral_style_template():
    tokenizer = make_tokenizer(MISTRAL)
    assert_masked(tokenizer, CONVERSATION, [
        ("<|im_start|>[INST] Hi [/INST]", False), ("Hello!<|im_end|>", True),
        ("[INST] What is 2+2? [/INST]", False), ("4<|im_end|>", True),
    ])


def test_gemma_template_masks_token_by_token_and_folds_the_system_message():
    from posttrain import templates

    specials = ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>")
    tokenizer = make_tokenizer(templates.GEMMA, extra_special=specials)
    tokenizer.bos_token, tokenizer.eos_token = "<bos>", "<eos>"
    messages = [{"role": "system", "content": "Be brief."}] + CONVERSATION
    assert_masked(tokenizer, messages, [
        ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n", False),
        ("Hello!<end_of_turn>", True),
        ("\n<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n", False),
        ("4<end_of_turn>", True),
        ("\n", False),
    ])
    assert templates.end_of_turn_id(tokenizer) == tokenizer.convert_tokens_to_ids("<end_of_turn>")
    prompt = tokenizer.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_unstable_template_and_bad_conversations_are_refused():
    unstable = make_tokenizer("{{ messages|length }}{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(TemplateError, match="not prefix-stable"):
        build_example(unstable, CONVERSATION)
    tokenizer = make_tokenizer()
    with pytest.raises(TemplateError, match="end with an assistant"):
        build_example(tokenizer, CONVERSATION[:1])
    with pytest.raises(TemplateError, match="no assistant tokens left"):
        build_example(tokenizer, CONVERSATION[:2], max_length=3)


def test_truncation_keeps_labels_aligned():
    tokenizer = make_tokenizer()
    full = build_example(tokenizer, CONVERSATION)
    cut = build_example(tokenizer, CONVERSATION, max_length=len(full.input_ids) - 3)
    assert cut.input_ids == full.input_ids[:-3] and cut.labels == full.labels[:-3]


def test_prompt_ids_match_the_training_prefix():
    tokenizer = make_tokenizer()
    example = build_example(tokenizer, CONVERSATION[:2])
    prefix = prompt_ids(tokenizer, CONVERSATION[:1])
    assert example.input_ids[: len(prefix)] == prefix
    assert all(label == IGNORE_INDEX for label in example.labels[: len(prefix)])
    assert example.labels[len(prefix)] == example.input_ids[len(prefix)]
