"""registry.py export: an entry as llama.cpp's GGUF, merged or as a GGUF LoRA, checked from outside:
transformers' own GGUF reader (which mirrors llama.cpp's layout) loads the merged file and gives the
merged model's logits; the LoRA file's A and B, applied over the base's own GGUF, give the merged
file's weights; llama.cpp itself, where installed, answers greedily as the engine does."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from posttrain import llamacpp
from posttrain.ship import gguf_file
from conftest import ROOT, make_lora

PROMPTS = ["What is the capital of France?", "Write a haiku about autumn.", "Name three primary colours.",
           "How many legs does a spider have?", "Give me a synonym for happy.", "What is 12 times 11?"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, default_base):
    """The real default base with a random LoRA (and a DoRA) beside it, exported merged in f32."""
    from posttrain.registry import Registry

    _, base = default_base
    tmp = tmp_path_factory.mktemp("gguf")
    registry = Registry(tmp / "registry")
    registry.root.mkdir()
    (registry.root / base.name).symlink_to(base.path.resolve())
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = make_lora(base.path, tmp / "lora", seed=3, r=4, alpha=8, target_modules=modules)
    for name, param_scale in (("lora", 0.02),):
        from safetensors.torch import load_file, save_file

        weights = load_file(str(lora / "adapter_model.safetensors"))  # a trained-sized update, not noise
        save_file({k: v * param_scale if "lora_B" in k else v for k, v in weights.items()},
                  str(lora / "adapter_model.safetensors"))
        registry.import_adapter(lora, name, base=base.name, method="sft")
    dora = make_lora(base.path, tmp / "dora", seed=4, r=4, alpha=8, target_modules=["q_proj", "v_proj"], use_dora=True)
    registry.import_adapter(dora, "dora", base=base.name, method="sft")
    report = gguf_file.export_gguf(registry, "lora", tmp / "out" / "lora.gguf", "f32")
    return registry, tmp, report


def merged_model(registry, name):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    entry = registry.get(name)
    model = AutoModelForCausalLM.from_pretrained(str(registry.get(entry.base).path), dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(entry.path)).merge_and_unload().eval()


def gguf_tensors(path) -> dict[str, np.ndarray]:
    import gguf
    from gguf.quants import dequantize

    return {t.name: dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist()))).astype(np.float32)
            for t in gguf.GGUFReader(str(path)).tensors}


@torch.no_grad()
def test_merged_gguf_loads_in_transformers_with_the_merged_models_logits(exported):
    from transformers import AutoModelForCausalLM

    registry, _, report = exported
    assert report.tensors == 272 and report.path.name == "lora.gguf"
    reloaded = AutoModelForCausalLM.from_pretrained(str(report.path.parent), gguf_file=report.path.name,
                                                    dtype=torch.float32).eval()
    merged = merged_model(registry, "lora")
    tokenizer = gguf_file._tokenizer(registry, registry.get("lora"))
    ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[0]}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    assert torch.allclose(reloaded(ids).logits, merged(ids).logits, atol=1e-4)
    base = AutoModelForCausalLM.from_pretrained(str(registry.get("smollm2-135m-instruct").path), dtype=torch.float32)
    assert not torch.allclose(base(ids).logits, merged(ids).logits, atol=1e-2)  # the adapter is in the file


def test_merged_gguf_keeps_the_bases_metadata_and_carries_the_entrys_template(exported):
    import gguf

    registry, _, report = exported
    fields = gguf.GGUFReader(str(report.path)).fields
    source = gguf.GGUFReader(str(gguf_file.source_gguf(registry.get("smollm2-135m-instruct")))).fields
    assert fields["general.name"].contents() == "lora" and fields["general.file_type"].contents() == 0
    for key in ("llama.block_count", "llama.attention.head_count_kv", "tokenizer.ggml.pre", "tokenizer.ggml.eos_token_id"):
        assert fields[key].contents() == source[key].contents()
    assert fields["tokenizer.ggml.tokens"].contents() == source["tokenizer.ggml.tokens"].contents()
    assert "<|im_start|>" in fields["tokenizer.chat_template"].contents()


def test_lora_gguf_over_the_bases_gguf_gives_the_merged_weights(exported):
    import gguf

    registry, tmp, merged = exported
    report = gguf_file.export_lora_gguf(registry, "lora", tmp / "out" / "lora-adapter.gguf")
    fields = gguf.GGUFReader(str(report.path)).fields
    assert fields["general.type"].contents() == "adapter" and fields["adapter.type"].contents() == "lora"
    assert fields["adapter.lora.alpha"].contents() == 0.0  # every module's scale is folded into its B
    lora = gguf_tensors(report.path)
    base = gguf_tensors(gguf_file.source_gguf(registry.get("smollm2-135m-instruct")))
    full = gguf_tensors(merged.path)
    targets = sorted({name.removesuffix(".lora_a") for name in lora if name.endswith(".lora_a")})
    assert len(targets) == 30 * 7 and report.tensors == 2 * len(targets)
    assert any(".attn_q." in t for t in targets) and any(".attn_k." in t for t in targets)  # the permuted rows
    for name in targets:
        a, b = lora[name + ".lora_a"], lora[name + ".lora_b"]
        np.testing.assert_allclose(base[name] + b @ a, full[name], atol=2e-5, err_msg=name)


def test_modelfile_and_card_sit_beside_the_file(exported):
    registry, _, report = exported
    modelfile, card = report.extras[:2]
    assert modelfile.name == "lora.Modelfile" and card.name == "lora.README.md"
    text = modelfile.read_text()
    assert "FROM ./lora.gguf" in text and 'PARAMETER stop "<|im_end|>"' in text
    # SmolLM2's template adds its own system prompt when a conversation has none: Ollama's SYSTEM
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in text
    assert "<|im_start|>{{ .Role }}" in text
    assert card.read_text() == (registry.get("lora").path / "README.md").read_text()


def test_ollama_templates_render_what_the_chat_templates_render():
    """The Modelfile's template matches the tokenizer's chat template on conversations of several
    turns, not only on the one-turn probe that picked it."""
    from posttrain import templates
    from posttrain.tiny import make_tokenizer

    conversation = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Name a colour."}]
    for family in ("chatml", "gemma"):
        tokenizer = make_tokenizer(extra_special=("<start_of_turn>", "<end_of_turn>"))
        templates.apply(tokenizer, family)
        assert gguf_file.template_family(tokenizer) == (family, None)
        rendered = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        assert gguf_file._render_like_ollama(family, conversation) in (rendered, rendered.removeprefix(tokenizer.bos_token))
    mistral = make_tokenizer()
    templates.apply(mistral, "mistral")
    assert gguf_file.template_family(mistral) == (None, None)


def test_dora_exports_merged_and_is_refused_as_a_lora(exported):
    registry, tmp, _ = exported
    with pytest.raises(gguf_file.GGUFExportError, match="llama.cpp has no DoRA at run time"):
        gguf_file.export_lora_gguf(registry, "dora", tmp / "out" / "dora-adapter.gguf")
    assert not (tmp / "out" / "dora-adapter.gguf").exists()
    report = gguf_file.export_gguf(registry, "dora", tmp / "out" / "dora.gguf", "q8_0")
    import gguf

    kinds = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(report.path)).tensors}
    assert kinds["blk.0.attn_q.weight"] == "Q8_0" and kinds["blk.0.attn_norm.weight"] == "F32"
    merged = merged_model(registry, "dora").state_dict()["model.layers.0.self_attn.v_proj.weight"].numpy()
    np.testing.assert_allclose(gguf_tensors(report.path)["blk.0.attn_v.weight"], merged, atol=0.02)


def test_export_refuses_bad_requests_in_one_line(exported, tmp_path):
    registry, _, _ = exported
    cli = [sys.executable, str(ROOT / "scripts/registry.py"), "--registry", str(registry.root), "export"]
    cases = [
        (["lora", "--gguf", str(tmp_path / "x.bin")], "must end in .gguf"),
        (["smollm2-135m-instruct", "--lora-gguf", str(tmp_path / "x.gguf")], "is a base, not an adapter"),
        (["nope", "--gguf", str(tmp_path / "x.gguf")], "no entry 'nope'"),
        (["lora", "--lora-gguf", str(tmp_path / "x.gguf"), "--type", "q8_0"], "--type applies to --gguf"),
    ]
    if not llamacpp.available():
        cases.append((["lora", "--gguf", str(tmp_path / "x.gguf"), "--type", "q4_k_m"], "install.sh --llama-cpp"))
    for args, message in cases:
        done = subprocess.run(cli + args, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    assert list(tmp_path.iterdir()) == []


def test_a_base_imported_from_a_folder_says_how_to_convert_it(tiny_registry, tmp_path):
    with pytest.raises(gguf_file.GGUFExportError, match="was not imported from a GGUF file.*convert_hf_to_gguf"):
        gguf_file.export_gguf(tiny_registry, "ad-a", tmp_path / "x.gguf")


@pytest.mark.skipif(not llamacpp.available(), reason="llama.cpp not installed (bash scripts/install.sh --llama-cpp)")
def test_llamacpp_answers_like_the_engine(exported):
    """llama.cpp runs the exported files: the merged GGUF (f16), and the GGUF LoRA over the base
    exported unquantized, answer greedily as the engine does unquantized (--no-4bit), 32 tokens
    alike on all but at most one prompt (f16 rounding can tip a near tie). Over the base's own
    Q4_1 file, llama.cpp's quantized arithmetic parts from the engine's on some prompts (it does
    for the base alone too): counted, not required."""
    from posttrain.engine import Engine, SamplingParams

    registry, tmp, _ = exported
    f16 = gguf_file.export_gguf(registry, "lora", tmp / "out" / "lora-f16.gguf", "f16").path
    base_f32 = gguf_file.export_gguf(registry, "smollm2-135m-instruct", tmp / "out" / "base-f32.gguf", "f32").path
    adapter = gguf_file.export_lora_gguf(registry, "lora", tmp / "out" / "lora-adapter.gguf").path
    engine = Engine(registry, "smollm2-135m-instruct", quantize=False)
    expected = [a.text.strip() for a in engine.generate(PROMPTS, ["lora"] * len(PROMPTS),
                                                        SamplingParams(max_new_tokens=32, temperature=0.0))]
    tokenizer = engine.tokenizer_for("lora")
    prompts = [engine.prepare(p, 32, model="lora")[0] for p in PROMPTS]
    same = {}
    for label, model, lora in (("merged f16", f16, None), ("LoRA over the base in f32", base_f32, adapter),
                               ("LoRA over the base's Q4_1", gguf_file.source_gguf(registry.get("smollm2-135m-instruct")), adapter)):
        with llamacpp.Runner(model, lora=lora, threads=2) as runner:
            got = runner.greedy(prompts, 32, stop=engine.eos_ids)
        texts = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in got]
        same[label] = sum(g == e for g, e in zip(texts, expected))
    print(f"greedy answers alike in 32 tokens, of {len(PROMPTS)}: {same}")
    import llama_cpp  # the high-level API a user reaches for loads the same files (the LoRA via lora_path)

    llm = llama_cpp.Llama(model_path=str(base_f32), lora_path=str(adapter), n_ctx=512, n_threads=2, verbose=False)
    try:
        completion = llm.create_completion(prompts[0], max_tokens=32, temperature=0.0, top_k=1)
    finally:
        llm.close()
    assert completion["choices"][0]["text"].strip() == expected[0]
    assert same["merged f16"] >= len(PROMPTS) - 1 and same["LoRA over the base in f32"] >= len(PROMPTS) - 1, same
    assert same["LoRA over the base's Q4_1"] >= 1, same


@pytest.mark.skipif(not llamacpp.available(), reason="llama.cpp not installed (bash scripts/install.sh --llama-cpp)")
def test_the_llamacpp_backend_battles_over_the_bases_own_gguf(exported):
    """--generation-backend llamacpp: the base's GGUF loaded once, each adapter a GGUF LoRA applied
    per request; a battle's answers are the two models' own (the greedy LoRA side is the merged
    model's, as llama.cpp runs it), streams grow, and what it cannot serve is refused up front."""
    from posttrain.backend import Generator, make_generator
    from posttrain.engine import EngineError, SamplingParams

    registry, tmp, _ = exported
    generator = make_generator(registry, "smollm2-135m-instruct", backend="llamacpp")
    try:
        assert isinstance(generator, Generator) and not generator.scores
        assert generator.quantization == "llama.cpp (SmolLM2-135M-Instruct.Q4_1.gguf)"
        with pytest.raises(EngineError, match="cannot serve 'dora'.*no DoRA at run time"):
            generator.ensure_model("dora")
        with pytest.raises(EngineError, match="generates only"):
            generator.label_logprobs("lora", None, None, None)
        greedy = SamplingParams(max_new_tokens=24, temperature=0)
        base = "smollm2-135m-instruct"
        tuned = generator.generate(PROMPTS, ["lora"] * len(PROMPTS), greedy)
        plain = generator.generate(PROMPTS, [base] * len(PROMPTS), greedy)
        differ = [i for i, (a, b) in enumerate(zip(tuned, plain)) if a.text != b.text]
        assert differ, "the LoRA changed no answer"
        with_lora, without = generator.battle(PROMPTS[differ[0]], "lora", base, greedy)
        assert (with_lora.model, without.model) == ("lora", base)
        # a battle's side is the side alone (a batch of many rows may round otherwise: llama.cpp picks
        # its matmul kernels by batch size)
        alone = [generator.generate([PROMPTS[differ[0]]], [m], greedy)[0].text for m in ("lora", base)]
        assert [with_lora.text, without.text] == alone
        with llamacpp.Runner(gguf_file.source_gguf(registry.get(base))) as runner:
            ids = runner.greedy([generator.prepare(PROMPTS[0], 24, base)[0]], 24, stop=generator.eos_ids)[0]
        assert plain[0].text == generator.tokenizer.decode([t for t in ids if t not in generator.eos_ids],
                                                           skip_special_tokens=True)
        sampled = SamplingParams(max_new_tokens=12, temperature=0.8, seed=5)
        updates = list(generator.stream([PROMPTS[1], PROMPTS[1]], ["lora", "smollm2-135m-instruct"], sampled))
        assert len(updates) > 2 and all(0 < a.new_tokens <= 12 for a in updates[-1])
        assert generator.adapters == ["lora"] and len(generator.runner._adapters) == 1  # one base, one LoRA
    finally:
        generator.close()


@pytest.fixture(scope="module")
def token_rows(exported):
    """A LoRA that also trains two template tokens' rows (PEFT's trainable_token_indices, as every
    Gemma adapter of real_base.sh does), the rows moved as training moves them, in its own registry."""
    from safetensors.torch import load_file, save_file

    from posttrain.registry import Registry

    registry, tmp, _ = exported
    base = registry.get("smollm2-135m-instruct")
    own = Registry(tmp / "token-registry")
    own.root.mkdir()
    (own.root / base.name).symlink_to(base.path.resolve())
    folder = make_lora(base.path, tmp / "tok", seed=6, r=4, alpha=8, target_modules=["q_proj", "v_proj"],
                       trainable_token_indices={"embed_tokens": [1, 2]})  # <|im_start|>, <|im_end|>
    weights = load_file(str(folder / "adapter_model.safetensors"))
    torch.manual_seed(7)
    noise = {}
    for key, value in weights.items():
        if "lora_B" in key:
            weights[key] = value * 0.02
        if "trainable_tokens_delta" in key:  # the head's copy (PEFT saves one when tied) moves with the input's
            noise.setdefault("rows", torch.randn_like(value) * value.norm(dim=-1, keepdim=True) / value.shape[-1] ** 0.5)
            weights[key] = value + noise["rows"]
    assert noise, "PEFT saved no token rows"
    save_file(weights, str(folder / "adapter_model.safetensors"))
    own.import_adapter(folder, "tok", base=base.name, method="sft")
    return own, tmp


@pytest.mark.skipif(not llamacpp.available(), reason="llama.cpp not installed (bash scripts/install.sh --llama-cpp)")
def test_llamacpp_carries_trained_token_rows_like_the_engine(token_rows):
    """The backend's way with trained template rows: inputs as embeddings with the rows replaced, the
    head's logits of those ids recomputed from the final hidden state. Over the base exported
    unquantized, its greedy answers are the engine's (unquantized) on all but at most one prompt,
    and without the rows they are not: the rows matter, and the export alone refuses them."""
    from posttrain.engine import Engine, SamplingParams, read_adapter

    registry, tmp = token_rows
    with pytest.raises(gguf_file.GGUFExportError, match="trains embedding rows"):
        gguf_file.export_lora_gguf(registry, "tok", tmp / "out" / "tok-refused.gguf")
    adapter = gguf_file.export_lora_gguf(registry, "tok", tmp / "out" / "tok.gguf", token_rows="omit").path
    base_f32 = tmp / "out" / "base-f32.gguf"
    if not base_f32.is_file():
        gguf_file.export_gguf(registry, "smollm2-135m-instruct", base_f32, "f32")
    engine = Engine(registry, "smollm2-135m-instruct", quantize=False)
    expected = [a.text.strip() for a in engine.generate(PROMPTS, ["tok"] * len(PROMPTS),
                                                        SamplingParams(max_new_tokens=32, temperature=0.0))]
    tokenizer = engine.tokenizer_for("tok")
    prompts = [engine.prepare(p, 32, model="tok")[0] for p in PROMPTS]
    tokens = read_adapter(registry.get("tok").path).tokens
    inputs = next(v for k, v in tokens.items() if k.endswith("embed_tokens"))
    head = next((v for k, v in tokens.items() if k.endswith("lm_head")), inputs)
    same = {}
    for label, rows in (("with the rows", True), ("without", False)):
        with llamacpp.Runner(base_f32, lora=adapter, threads=2) as runner:
            if rows:
                runner.adapter(adapter, llamacpp.TokenRows(runner, (inputs[0].tolist(), inputs[1].numpy()),
                                                           (head[0].tolist(), head[1].numpy())))
            got = runner.greedy(prompts, 32, stop=engine.eos_ids)
        texts = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in got]
        same[label] = sum(g == e for g, e in zip(texts, expected))
    print(f"greedy answers alike in 32 tokens, of {len(PROMPTS)}: {same}")
    assert same["with the rows"] >= len(PROMPTS) - 1 and same["without"] < same["with the rows"], same


@pytest.mark.skipif(not llamacpp.available(), reason="llama.cpp not installed (bash scripts/install.sh --llama-cpp)")
def test_the_llamacpp_backend_serves_adapters_with_token_rows(token_rows):
    from posttrain.backend import make_generator
    from posttrain.engine import SamplingParams

    registry, _ = token_rows
    generator = make_generator(registry, "smollm2-135m-instruct", backend="llamacpp")
    try:
        greedy = SamplingParams(max_new_tokens=16, temperature=0)
        tok, base = generator.battle(PROMPTS[0], "tok", "smollm2-135m-instruct", greedy)
        assert tok.model == "tok" and tok.text and tok.text != base.text
        assert tok.text == generator.generate([PROMPTS[0]], ["tok"], greedy)[0].text
        from pathlib import Path

        assert [p.name for p in Path(generator._cache.name).iterdir()] == ["tok.gguf"]  # no Modelfile or card it never reads
    finally:
        generator.close()


@pytest.mark.skipif(not llamacpp.available(), reason="llama.cpp not installed (bash scripts/install.sh --llama-cpp)")
def test_demo_runs_through_llamacpp(exported):
    registry, _, _ = exported
    done = subprocess.run([sys.executable, str(ROOT / "scripts/demo.py"), "--registry", str(registry.root), "--a", "lora",
                           "--b", "smollm2-135m-instruct", "--max-new-tokens", "16", "--generation-backend", "llamacpp"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "[lora]" in done.stdout and "base llama.cpp (SmolLM2-135M-Instruct.Q4_1.gguf)" in done.stdout
    refused = subprocess.run([sys.executable, str(ROOT / "scripts/demo.py"), "--registry", str(registry.root), "--a", "dora",
                              "--generation-backend", "llamacpp"], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "no DoRA at run time" in refused.stderr and "Traceback" not in refused.stderr


def test_without_llamacpp_each_command_says_how_to_install_it(monkeypatch, tiny_registry, tmp_path):
    import importlib.util

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    assert not llamacpp.available()
    with pytest.raises(llamacpp.LlamaCppMissing, match=r"llama.cpp generation needs llama.cpp.*install.sh --llama-cpp"):
        llamacpp.Runner(tmp_path / "x.gguf")
    spec = importlib.util.spec_from_file_location("bench_script", ROOT / "scripts" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(SystemExit, match="llama.cpp is not installed: bash scripts/install.sh --llama-cpp"):
        bench.bench_llamacpp(tiny_registry, "tiny", None, quantize=False)


def test_a_base_imported_from_a_gguf_file_remembers_it_and_exports_back(tmp_path):
    """`registry.py import X.gguf`: the card records the file, so the base (and its adapters) can be
    written back as GGUF with that file's metadata and tokenizer; a file since moved is named."""
    import shutil

    import gguf

    from posttrain.models import embedded_gguf_path
    from posttrain.registry import Registry

    copy = tmp_path / "models" / "smol.gguf"
    copy.parent.mkdir()
    shutil.copy(embedded_gguf_path(), copy)
    registry = Registry(tmp_path / "registry")
    entry = registry.import_path(str(copy), "smol-copy")
    assert entry.card["source_gguf"] == str(copy.resolve())
    out = gguf_file.export_gguf(registry, "smol-copy", tmp_path / "smol-q8.gguf", "q8_0").path
    fields = gguf.GGUFReader(str(out)).fields
    assert fields["general.name"].contents() == "smol-copy" and fields["general.file_type"].contents() == 7
    copy.unlink()
    with pytest.raises(gguf_file.GGUFExportError, match=r"its card names .*smol.gguf, which is gone"):
        gguf_file.export_gguf(registry, "smol-copy", tmp_path / "again.gguf")


def test_the_header_index_finds_every_tensor_where_gguf_reader_does():
    """gguf_index reads the tensor table without parsing the metadata values (GGUFReader takes ~17 s
    on Gemma's 262k-token vocabulary): the same names, shapes, types and offsets, and the same rows."""
    import gguf
    from gguf.quants import dequantize

    from posttrain.models import embedded_gguf_path
    from posttrain.ship import gguf_index

    path = embedded_gguf_path()
    header = gguf_index.header(path)
    reader = gguf.GGUFReader(str(path))
    assert header.architecture == reader.fields["general.architecture"].contents() == "llama"
    assert {t.name: (tuple(int(n) for n in t.shape), int(t.tensor_type), t.data_offset) for t in reader.tensors} == \
        {name: (t.shape, t.type, t.start) for name, t in header.tensors.items()}
    embedding = next(t for t in reader.tensors if t.name == "token_embd.weight")
    ids = [0, 1, 2, 4242, 49151]
    expected = dequantize(embedding.data[ids], embedding.tensor_type).reshape(len(ids), -1)
    np.testing.assert_array_equal(gguf_index.Rows(path, "token_embd.weight")[ids], expected)
    with pytest.raises(gguf_index.GGUFIndexError, match="no 2-D tensor 'nope'"):
        gguf_index.Rows(path, "nope")
