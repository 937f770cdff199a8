import pytest
import torch

from conftest import make_lora, make_tiny_model
from posttrain.engine import BASE, Engine, EngineError, SamplingParams
from posttrain.registry import Registry

GREEDY = SamplingParams(max_new_tokens=8, min_new_tokens=8, temperature=0)


@pytest.fixture()
def engine(tiny_registry):
    return Engine(tiny_registry, "tiny", quantize=False)


def peft_generate(registry: Registry, adapter: str | None, engine: Engine, prompt: str, tokens: int) -> list[int]:
    """The reference: plain transformers + PEFT, one adapter at a time."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(registry.get("tiny").path))
    if adapter:
        model = PeftModel.from_pretrained(model, str(registry.get(adapter).path))
    ids, _ = engine.prepare(prompt, tokens)
    out = model.generate(torch.tensor([ids]), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                         pad_token_id=engine.tokenizer.pad_token_id)
    return out[0, len(ids):].tolist()


def engine_ids(engine: Engine, answer) -> list[int]:
    return engine.tokenizer(answer.text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("adapter", [None, "ad-a", "ad-b"])
def test_engine_matches_plain_peft(engine, tiny_registry, adapter):
    reference = peft_generate(tiny_registry, adapter, engine, "hello world", 8)
    (answer,) = engine.generate(["hello world"], [adapter or BASE], GREEDY)
    assert answer.new_tokens == 8
    assert engine.tokenizer.decode(reference, skip_special_tokens=True) == answer.text


def test_logits_match_peft_for_mixed_batch(engine, tiny_registry):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([engine.prepare("two plus two", 4)[0]] * 3)
    engine.ensure_model("ad-a"), engine.ensure_model("ad-b")
    engine._route(torch.tensor([engine.adapter_index("ad-a"), 0, engine.adapter_index("ad-b")]))
    mixed = engine.model(ids).logits
    engine._route(None)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_registry.get("tiny").path))
    peft = PeftModel.from_pretrained(base, str(tiny_registry.get("ad-a").path), adapter_name="ad-a")
    peft.load_adapter(str(tiny_registry.get("ad-b").path), adapter_name="ad-b")
    with torch.no_grad():
        for row, name in enumerate(["ad-a", None, "ad-b"]):
            if name:
                peft.set_adapter(name)
                expected = peft(ids[:1]).logits
            else:
                with peft.disable_adapter():
                    expected = peft(ids[:1]).logits
            torch.testing.assert_close(mixed[row : row + 1], expected, rtol=1e-4, atol=1e-4)


def test_one_adapter_for_every_row_routes_without_per_row_copies(engine):
    """A batch on one adapter multiplies by that adapter's weights as they are (no per-row gather),
    with the logits of the per-row route; and a shrinking batch keeps no buffer per batch size
    (it once kept one for each size rows left at: a batch of 64 Gemma rows grew past 24 GB)."""
    ids = torch.tensor([engine.prepare("two plus two", 4)[0]] * 3)
    engine.ensure_model("ad-a"), engine.ensure_model("ad-b")
    a, b = engine.adapter_index("ad-a"), engine.adapter_index("ad-b")
    with torch.no_grad():
        engine._route(torch.tensor([a, a, a]))
        layer = next(iter(engine._layers.values()))
        assert layer._routed[0].dim() == 2 and layer._routed[0].data_ptr() == layer.lora_A[a].data_ptr()
        uniform = engine.model(ids).logits
        engine._route(torch.tensor([a, b, a]))
        mixed = engine.model(ids).logits
        engine._route(None)
    torch.testing.assert_close(uniform[[0, 2]], mixed[[0, 2]], rtol=1e-5, atol=1e-5)
    engine.generate(["hello world", "write a poem", "two", "hello"], ["ad-a", "ad-b", BASE, "ad-a"],
                    SamplingParams(max_new_tokens=12, temperature=1.0, seed=1))
    assert all(not layer._buffers_by_rows for layer in engine._layers.values())


def test_battle_in_one_call_equals_each_alone(engine):
    a, b = engine.battle("write a poem", "ad-a", "ad-b", GREEDY)
    (alone_a,) = engine.generate(["write a poem"], ["ad-a"], GREEDY)
    (alone_b,) = engine.generate(["write a poem"], ["ad-b"], GREEDY)
    assert (a.text, b.text) == (alone_a.text, alone_b.text)
    assert a.text != b.text and a.model == "ad-a" and b.model == "ad-b"


def test_adapter_vs_plain_base_and_base_name_alias(engine):
    base_answer, adapter_answer = engine.battle("hello", "tiny", "ad-a", GREEDY)
    (alone,) = engine.generate(["hello"], [BASE], GREEDY)
    assert base_answer.text == alone.text != adapter_answer.text


def test_stream_grows_and_ends_with_the_generate_result(engine):
    params = SamplingParams(max_new_tokens=6, min_new_tokens=6, temperature=0)
    snapshots = list(engine.stream(["hello", "hello"], ["ad-a", "ad-b"], params))
    lengths = [s[0].new_tokens for s in snapshots]  # how many snapshots depends on the reader's pace: not asserted
    assert snapshots and lengths == sorted(lengths) and lengths[-1] == 6
    final = engine.generate(["hello", "hello"], ["ad-a", "ad-b"], params)
    assert [a.text for a in snapshots[-1]] == [a.text for a in final]
    assert all(final[row].text.startswith(s[row].text) for s in snapshots for row in (0, 1))  # each one grows the last


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_seeded_sampling_is_reproducible(engine, top_p):
    params = SamplingParams(max_new_tokens=10, temperature=1.5, top_p=top_p, seed=7)
    first = engine.generate(["hello", "hello"], ["ad-a", "ad-b"], params)
    again = engine.generate(["hello", "hello"], ["ad-a", "ad-b"], params)
    other = engine.generate(["hello", "hello"], ["ad-a", "ad-b"], SamplingParams(max_new_tokens=10, temperature=1.5, top_p=top_p, seed=8))
    assert [a.text for a in first] == [a.text for a in again]
    assert [a.text for a in first] != [a.text for a in other]


def test_long_prompt_is_truncated_and_said(engine):
    long_prompt = "the quick brown fox jumps over the lazy dog " * 40
    (answer,) = engine.generate([long_prompt], ["ad-a"], SamplingParams(max_new_tokens=16, temperature=0))
    assert answer.truncated_tokens > 0 and "truncated" in answer.notice
    assert answer.prompt_tokens + 16 <= engine.context_length
    (short,) = engine.generate(["hello"], ["ad-a"], GREEDY)
    assert short.truncated_tokens == 0 and short.notice == ""


def test_adapter_for_another_base_is_refused(tiny_registry, tmp_path):
    other = make_tiny_model(tmp_path / "other-llama", hidden=24)
    tiny_registry.import_base(other, "other")
    tiny_registry.import_adapter(make_lora(other, tmp_path / "on-other", seed=5), "on-other", base="other")
    engine = Engine(tiny_registry, "tiny", quantize=False)
    with pytest.raises(EngineError, match="'on-other' was trained on base 'other'.*runs base 'tiny'"):
        engine.generate(["hello"], ["on-other"], GREEDY)
    with pytest.raises(EngineError, match="is an adapter"):
        Engine(tiny_registry, "ad-a", quantize=False)


def test_partial_and_different_rank_adapters_share_the_batch(tiny_registry, tiny_dir, tmp_path):
    make_lora(tiny_dir, tmp_path / "qv", seed=6, r=2, alpha=4, target_modules=["q_proj", "v_proj"])
    tiny_registry.import_adapter(tmp_path / "qv", "qv", base="tiny")
    engine = Engine(tiny_registry, "tiny", quantize=False)
    a, qv = engine.battle("hello world", "ad-a", "qv", GREEDY)
    assert engine.tokenizer.decode(peft_generate(tiny_registry, "qv", engine, "hello world", 8),
                                   skip_special_tokens=True) == qv.text
    assert engine.tokenizer.decode(peft_generate(tiny_registry, "ad-a", engine, "hello world", 8),
                                   skip_special_tokens=True) == a.text


def test_bad_requests_are_refused(engine):
    with pytest.raises(EngineError, match="one model per prompt"):
        engine.generate(["a", "b"], ["ad-a"], GREEDY)
    with pytest.raises(EngineError, match="empty prompt"):
        engine.generate(["  "], ["ad-a"], GREEDY)
    with pytest.raises(EngineError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="no entry 'ghost'"):
        engine.generate(["hi"], ["ghost"], GREEDY)


def write_variant(base_dir, out_dir, seed: int, **lora) -> str:
    """A PEFT adapter with random weights; a DoRA one gets magnitudes away from its initial norms
    (at init DoRA equals LoRA, which would test nothing)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base_dir)),
                           LoraConfig(**{"r": 4, "lora_alpha": 8, "target_modules": "all-linear",
                                         "init_lora_weights": False, **lora}))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_magnitude_vector" in name:
                parameter.mul_(1 + 0.5 * torch.randn_like(parameter))
    model.save_pretrained(out_dir)
    return str(out_dir)


def test_dora_and_rslora_adapters_share_a_batch_with_lora_and_match_peft_row_by_row(tiny_registry, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir = tiny_registry.get("tiny").path
    tiny_registry.import_adapter(write_variant(base_dir, tmp_path / "dora", 5, use_dora=True), "ad-dora", base="tiny")
    tiny_registry.import_adapter(write_variant(base_dir, tmp_path / "rs", 6, use_rslora=True, lora_alpha=16),
                                 "ad-rs", base="tiny")
    engine = Engine(tiny_registry, "tiny", quantize=False)
    rows = ["ad-dora", "ad-a", BASE, "ad-rs", "ad-dora"]
    ids = torch.tensor([engine.prepare("two plus two", 4)[0]] * len(rows))
    for name in rows:
        engine.ensure_model(name)
    engine._route(torch.tensor([engine.adapter_index(name) for name in rows]))
    with torch.no_grad():
        mixed = engine.model(ids).logits
    engine._route(None)
    with torch.no_grad():
        base_logits = AutoModelForCausalLM.from_pretrained(str(base_dir))(ids[:1]).logits
        for row, name in enumerate(rows):
            if name == BASE:
                expected = base_logits
            else:
                peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir)),
                                                 str(tiny_registry.get(name).path))
                expected = peft(ids[:1]).logits
            torch.testing.assert_close(mixed[row : row + 1], expected, rtol=1e-4, atol=1e-4)
    dora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir)), str(tiny_registry.get("ad-dora").path))
    with torch.no_grad(), dora.disable_adapter():
        assert not torch.allclose(mixed[:1], dora(ids[:1]).logits, atol=1e-3)  # the DoRA row really differs from the base
    a, b = engine.battle("write a poem", "ad-dora", "ad-a", GREEDY)  # a DoRA-vs-LoRA battle in one call
    assert (a.text, b.text) == (engine.generate(["write a poem"], ["ad-dora"], GREEDY)[0].text,
                                engine.generate(["write a poem"], ["ad-a"], GREEDY)[0].text)


def test_a_completion_row_ends_at_a_blank_line_and_its_prompt_is_plain_text():
    from conftest import make_tokenizer
    from posttrain.engine import BLANK_LINE, _BatchStreamer, completion_text

    tokenizer = make_tokenizer()
    assert completion_text([{"role": "user", "content": " Name a river. "}]) == "Name a river.\n\n"
    assert completion_text([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                            {"role": "user", "content": "Bye"}]) == "Hi\n\nHello\n\nBye\n\n"
    ids = tokenizer("The Nile is long.\n\nNext question", add_special_tokens=False)["input_ids"]
    streamer = _BatchStreamer(2, eos_ids=set(), paragraph_rows={0: tokenizer})
    streamer.put(torch.tensor([[0], [0]]))  # the prompt
    for token in ids:
        streamer.put(torch.tensor([[token], [token]]))
    assert streamer.done == [True, False]  # row 0 is a completion: its paragraph ended; row 1 goes on
    assert len(streamer.tokens[0]) < len(ids) == len(streamer.tokens[1])
    assert BLANK_LINE.split(tokenizer.decode(streamer.tokens[0]))[0].strip() == "The Nile is long."
    assert not BLANK_LINE.search("\n\nleading blank lines are not an end")


def test_the_engine_refuses_an_unknown_base_prompt(tiny_registry):
    from posttrain.engine import EngineError

    with pytest.raises(EngineError, match="base prompt must be one of template, completion"):
        Engine(tiny_registry, "tiny", quantize=False, base_prompt="chat")


def _reference(engine: Engine, prompts, models, params):
    """transformers' generate over the same batch (every row kept to the end): the reference."""
    engine.drop_finished_rows = False
    try:
        return engine.generate(prompts, models, params)
    finally:
        engine.drop_finished_rows = True


@pytest.mark.parametrize("params", [
    SamplingParams(max_new_tokens=12, temperature=0),
    SamplingParams(max_new_tokens=12, temperature=0, repetition_penalty=1.3, min_new_tokens=3),
    SamplingParams(max_new_tokens=12, temperature=1.2, top_p=0.9, seed=3),
])
def test_rows_leave_the_batch_as_they_end_with_generates_answers(engine, params):
    prompts = ["hello world", "write a poem", "two plus two", "the quick brown fox jumps", "hello"]
    models = ["ad-a", "ad-b", BASE, "ad-a", "ad-b"]
    free = engine.generate(prompts, models, SamplingParams(max_new_tokens=12, temperature=0))
    # End of turn: tokens that some rows say early, so rows end at different steps (one never does).
    ends = {engine.tokenizer(free[0].text, add_special_tokens=False)["input_ids"][2],
            engine.tokenizer(free[2].text, add_special_tokens=False)["input_ids"][5]}
    engine.eos_ids |= ends
    answers, reference = engine.generate(prompts, models, params), _reference(engine, prompts, models, params)
    if params.temperature == 0:  # (a sampled row's draws depend on which rows share its step)
        assert [(a.text, a.new_tokens, a.finish_reason) for a in answers] == \
               [(r.text, r.new_tokens, r.finish_reason) for r in reference]
        assert {a.finish_reason for a in answers} == {"stop", "length"}
        assert len({a.new_tokens for a in answers}) >= 2
    again = engine.generate(prompts, models, params)
    assert [a.text for a in again] == [a.text for a in answers]
    alone = [engine.generate([p], [m], params)[0] for p, m in zip(prompts, models)] if params.temperature == 0 else answers
    assert [a.text for a in alone] == [a.text for a in answers]
