"""Hub-shaped bases, offline: tiny random Llamas whose tokenizers behave like the real ones.

- qwen2-base:  ChatML template, eos `<|endoftext|>`, every turn ends with `<|im_end|>`.
- llama3-base: no chat template; header and end-of-turn tokens in the vocabulary, rows untrained.
- mistral:     `[INST] ... [/INST]` template, answers end with `</s>` (eos).
- gemma3-base: no chat template; `<start_of_turn>` / `<end_of_turn>` in the vocabulary (trained rows),
               `<eos>` its eos: the recipe names `gemma`, and every answer stops at `<end_of_turn>`.

Each is trained with SFT then DPO through scripts/train.py (the recipe's chat_template), served
by the engine in a battle that must stop on the end-of-turn token, and merged with the logit
check. Also: a bf16 base stays bf16 on disk through import and merge."""

import importlib.util
import json
import shutil

import pytest
import torch

from conftest import CHATML, ROOT, make_tokenizer
from posttrain import templates
from posttrain.engine import Engine, SamplingParams
from posttrain.merge import merge, stored_dtype
from posttrain.registry import Registry

SHAPES = {
    # name: (Hub id, extra special tokens, bos, eos, tokenizer's own template, recipe's chat_template, end of turn)
    "qwen2-base": ("Qwen/Qwen2-0.5B", ["<|endoftext|>"], None, "<|endoftext|>", CHATML, None, "<|im_end|>"),
    "llama3-base": ("meta-llama/Meta-Llama-3-8B",
                    ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                    "<|begin_of_text|>", "<|end_of_text|>", None, "llama3", "<|eot_id|>"),
    "mistral": ("mistralai/Mistral-7B-v0.1", ["<s>", "</s>"], "<s>", "</s>", None, "mistral", "</s>"),
    # the pretrained Gemma 3 270M: no template; its turn tokens exist in the vocabulary, trained
    "gemma3-base": ("google/gemma-3-270m", ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"], "<bos>",
                    "<eos>", None, "gemma", "<end_of_turn>"),
}
UNTRAINED = {"llama3-base": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
PROMPTS = ["hello", "how are you", "write a poem", "two plus two", "python code", "the quick fox", "the sea",
           "a question", "the sky today", "lazy dog", "answer me", "hello world"]


def train_main():
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def make_shape(folder, shape: str, dtype=torch.float32):
    """A tiny Llama (untied head, like the 7B/8B models) with a tokenizer shaped like `shape`'s."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    _, extra, bos, eos, own_template, _, _ = SHAPES[shape]
    tokenizer = make_tokenizer(extra_special=extra)
    tokenizer.eos_token, tokenizer.pad_token = eos, eos
    tokenizer.bos_token = bos
    tokenizer.chat_template = own_template
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         tie_word_embeddings=False, initializer_range=0.5, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=None)
    # initializer_range 0.5: with the usual 0.02 a 32-wide random head cannot put more than ~0.6 of
    # logit on any token, so no LoRA could make it answer, let alone stop, with confidence.
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(dtype)
    with torch.no_grad():  # as in Llama-3 base: these rows were never trained
        for token in UNTRAINED.get(shape, []):
            index = tokenizer.convert_tokens_to_ids(token)
            model.model.embed_tokens.weight[index].zero_()
            model.lm_head.weight[index].zero_()
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def import_as_hub(registry: Registry, folder, name: str, hub_id: str):
    """The base as `registry.py import HUB_ID` would leave it: its card names the Hub id."""
    return registry.publish_base(name, lambda tmp: shutil.copytree(folder, tmp, dirs_exist_ok=True), source=hub_id)


def write_data(tmp_path):
    """Conversations whose answer is always 'ok' (and pairs preferring it): a tiny model learns
    the answer and the end of turn after it in a few steps."""
    sft, pairs = tmp_path / "sft.jsonl", tmp_path / "pairs.jsonl"
    with open(sft, "w") as handle:
        for prompt in PROMPTS * 3:
            handle.write(json.dumps({"messages": [{"role": "user", "content": prompt},
                                                  {"role": "assistant", "content": "ok"}]}) + "\n")
    with open(pairs, "w") as handle:
        for prompt in PROMPTS * 2:
            handle.write(json.dumps({"prompt": prompt, "chosen": "ok", "rejected": "no no no no"}) + "\n")
    return sft, pairs


def common_flags(registry, tmp_path, name):
    return ["--registry", str(registry.root), "--output_dir", str(tmp_path / "runs" / name), "--use_cpu", "true",
            "--bf16", "false", "--report_to", "none", "--max_length", "64", "--per_device_train_batch_size", "8",
            "--save_strategy", "no", "--logging_steps", "5", "--lora_r", "8", "--lora_alpha", "16", "--seed", "0"]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_hub_shaped_base_trains_serves_and_merges(shape, tmp_path):
    hub_id, _, _, _, own_template, recipe_template, end_of_turn = SHAPES[shape]
    registry = Registry(tmp_path / "registry")
    import_as_hub(registry, make_shape(tmp_path / "src", shape), shape, hub_id)
    sft_data, pair_data = write_data(tmp_path)
    main = train_main()
    template = ["--chat_template", recipe_template] if recipe_template else []

    if own_template is None:  # a base without a template is refused, naming the field
        with pytest.raises(templates.ChatTemplateError, match="chat_template"):
            from posttrain.train import run_tokenizer, RunArguments

            run_tokenizer(registry, registry.get(shape), None, RunArguments(name="x", base=shape))

    assert main(["sft", "--name", "sft", "--base", shape, "--data", str(sft_data), "--eval_fraction", "0.1",
                 "--max_steps", "30", "--learning_rate", "3e-2", "--warmup_steps", "0", *template,
                 *common_flags(registry, tmp_path, "sft")]) == 0
    sft = registry.get("sft")
    assert sft.card["end_of_turn_token"] == end_of_turn
    eot = sft.card["end_of_turn_id"]
    stops = json.loads((sft.path / "generation_config.json").read_text())["eos_token_id"]
    assert eot in stops
    adapter_config = json.loads((sft.path / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == hub_id  # what AutoPeftModel and the Hub understand
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(str(sft.path))  # plain transformers renders as we trained
    if recipe_template:
        assert saved.chat_template == templates.resolve(recipe_template)
    from safetensors import safe_open

    with safe_open(str(sft.path / "adapter_model.safetensors"), "pt") as handle:
        token_keys = [k for k in handle.keys() if "trainable_tokens" in k]
    if shape in UNTRAINED:  # the template's untrained rows were trained, in the embedding and the head
        assert any("embed_tokens" in k for k in token_keys) and any("lm_head" in k for k in token_keys)
    else:
        assert not token_keys

    assert main(["dpo", "--name", "dpo", "--base", shape, "--parent", "sft", "--data", str(pair_data),
                 "--eval_fraction", "0.2", "--max_steps", "4", "--learning_rate", "1e-2", "--beta", "0.1",
                 *common_flags(registry, tmp_path, "dpo")]) == 0
    dpo = registry.get("dpo")
    assert dpo.card["end_of_turn_token"] == end_of_turn and dpo.card["chat_template"] == (recipe_template or "tokenizer")

    # A battle through the engine stops on the end-of-turn token, not on the base's eos.
    engine = Engine(registry, shape, quantize=False)  # bitsandbytes needs wider layers than 32
    a, b = engine.battle("how are you", "sft", "dpo", SamplingParams(max_new_tokens=24, temperature=0))
    for answer in (a, b):
        assert answer.finish_reason == "stop" and answer.new_tokens < 24, (shape, answer)
        assert answer.text.strip() == "ok", (shape, answer)
    ids, _ = engine.prepare("how are you", 8, "sft")  # the engine renders as plain transformers does
    text = saved.apply_chat_template([{"role": "user", "content": "how are you"}], tokenize=False, add_generation_prompt=True)
    assert ids == saved(text, add_special_tokens=False)["input_ids"]

    merged, report = merge(registry, "dpo", "dpo-merged")
    assert report.max_abs_logit_diff <= report.tolerance
    assert eot in json.loads((merged.path / "generation_config.json").read_text())["eos_token_id"]
    assert AutoTokenizer.from_pretrained(str(merged.path)).chat_template == saved.chat_template
    if own_template is None:
        battle_a_plain_base_against_its_adapter(registry, merged.path, saved, tmp_path)


def battle_a_plain_base_against_its_adapter(registry: Registry, trained, saved, tmp_path):
    """A base WITHOUT a chat template (the trained weights above, their template stripped, as a
    pretrained base ships) battles its adapter: the base's row borrows the adapter's template,
    renders exactly as the adapter's does, and both rows stop at the end of turn."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    plain = tmp_path / "plain-base"
    shutil.copytree(trained, plain)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    for extra in plain.glob("chat_template.*"):
        extra.unlink()
    registry.publish_base("plain", lambda tmp: shutil.copytree(plain, tmp, dirs_exist_ok=True), source=str(plain))
    adapter = tmp_path / "ident"  # LoRA B = 0: the base's own answers, with the template it was "trained" with
    get_peft_model(AutoModelForCausalLM.from_pretrained(str(plain)),
                   LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")).save_pretrained(adapter)
    saved.save_pretrained(adapter)
    registry.import_adapter(adapter, "ident", base="plain", method="sft")
    engine = Engine(registry, "plain", quantize=False)
    base_row, adapter_row = engine.battle("how are you", "__base__", "ident", SamplingParams(max_new_tokens=24, temperature=0))
    for answer in (base_row, adapter_row):
        assert answer.finish_reason == "stop" and answer.text.strip() == "ok", answer
    assert base_row.notice == "prompted with the chat template of 'ident' (the base has none)" and not adapter_row.notice
    assert engine.prepare("how are you", 8, "__base__") == engine.prepare("how are you", 8, "ident")
    assert engine.base_prompting(["__base__", "ident"]) == base_row.notice
    # IFEval's answers in batches of one row: the base's own batch comes first and still borrows
    from evals import ifeval

    fresh = Engine(registry, "plain", quantize=False)
    rows = [{"key": 1, "prompt": "how are you", "instruction_id_list": [], "kwargs": []}]
    answers = ifeval.answer(fresh, ["__base__", "ident"], rows, SamplingParams(max_new_tokens=24, temperature=0), batch_rows=1)
    assert answers == {"__base__": ["ok"], "ident": ["ok"]}
    # and its held-out perplexity is measured on the same rendering (evaluate.py's metrics)
    assert fresh.tokenizer_for("__base__").chat_template == fresh.tokenizer_for("ident").chat_template


def test_bf16_base_stays_bf16_through_import_and_merge(tmp_path):
    from peft import LoraConfig, get_peft_model
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    source = make_shape(tmp_path / "src", "qwen2-base", dtype=torch.bfloat16)
    registry = Registry(tmp_path / "registry")
    base = registry.import_base(source, "bf16-base")
    assert stored_dtype(base.path) == torch.bfloat16
    with safe_open(str(next(base.path.glob("*.safetensors"))), "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.bfloat16}
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base.path)),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(tmp_path / "lora")
    registry.import_adapter(tmp_path / "lora", "lora", base="bf16-base", method="sft")
    merged, _ = merge(registry, "lora", "merged", tolerance=1.0)
    with safe_open(str(next(merged.path.glob("*.safetensors"))), "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.bfloat16}


def test_resume_refuses_checkpoints_of_another_recipe(tmp_path, tiny_registry):
    """warmup_steps and weight_decay were outside the old allow-list: a changed one resumed the old
    run silently. Now any field but the named few is refused; a longer run resumes."""
    from trl import ModelConfig, SFTConfig

    from posttrain.registry import RegistryError
    from posttrain.train import RunArguments, run

    data = ROOT / "data" / "sft"

    def sft(name, steps=2, **changed):
        args = RunArguments(name=name, base="tiny", data=str(data / "train.jsonl"), eval_data=str(data / "heldout.jsonl"),
                            registry=str(tiny_registry.root))
        config = SFTConfig(output_dir=str(tmp_path / "runs"), use_cpu=True, bf16=False, report_to="none", max_length=64,
                           per_device_train_batch_size=4, max_steps=steps, save_strategy="steps", save_steps=2,
                           **({"learning_rate": 1e-3, "logging_steps": 1} | changed))
        return run("sft", args, config, ModelConfig(lora_r=4, lora_alpha=8))

    sft("first")
    tiny_registry.remove("first")  # the checkpoints in runs/ stay
    for changed in ({"learning_rate": 5e-3}, {"warmup_steps": 1}, {"weight_decay": 0.1}):
        with pytest.raises(RegistryError, match="another recipe or other data.*rm -r"):
            sft("first", **changed)
    assert sft("first", steps=3, logging_steps=2).card["config"]["max_steps"] == 3  # longer, logged otherwise: a resume


@pytest.mark.parametrize("config_class", ["SFTConfig", "DPOConfig", "KTOConfig", "RewardConfig"])
def test_every_training_field_but_the_named_few_is_in_the_fingerprint(config_class):
    import copy
    import enum
    from dataclasses import fields

    import trl
    from trl import ModelConfig

    from posttrain.fingerprint import NOT_FINGERPRINTED, fingerprint_of
    from posttrain.recipe import RunArguments

    def other(value):
        if isinstance(value, bool):
            return not value
        if isinstance(value, enum.Enum):
            return next(m for m in type(value) if m != value)
        if isinstance(value, (int, float)):
            return value * 2 + 1
        if isinstance(value, str):
            return value + "-x"
        if isinstance(value, (list, tuple)):
            return [*value, "x"]
        if isinstance(value, dict):
            return {**value, "x": 1}
        return "changed" if value is None else None

    config = getattr(trl, config_class)(output_dir="/tmp/fp", use_cpu=True, report_to="none")
    run_args, model = RunArguments(name="n"), ModelConfig(lora_r=4)
    info = {"dataset_hash": "a", "eval_dataset_hash": "b"}
    first = fingerprint_of(run_args, config, info, model)
    for f in fields(config):
        if f.name.startswith("_"):
            continue
        changed = copy.copy(config)
        setattr(changed, f.name, other(getattr(config, f.name)))
        same = fingerprint_of(run_args, changed, info, model) == first
        assert same == (f.name in NOT_FINGERPRINTED), f"{config_class}.{f.name}"
    for f in fields(run_args):
        changed = copy.copy(run_args)
        setattr(changed, f.name, other(getattr(run_args, f.name)))
        assert (fingerprint_of(changed, config, info, model) == first) == (f.name in ("registry", "recipe")), f.name
    assert fingerprint_of(run_args, config, info, ModelConfig(lora_r=8)) != first
    assert fingerprint_of(run_args, config, {**info, "dataset_hash": "c"}, model) != first


@pytest.mark.parametrize("recipe,shape", [("qlora_llama3_8b.yaml", "llama3-base"), ("sft_qwen2_0.5b_dolly.yaml", "qwen2-base"),
                                          ("sft_qwen2_0.5b_oasst1.yaml", "qwen2-base"), ("dpo_qwen2_0.5b_hh.yaml", "qwen2-base")])
def test_shipped_recipes_name_a_template_that_stops_right(recipe, shape, tmp_path):
    import yaml

    from posttrain.models import load_tokenizer

    settings = yaml.safe_load((ROOT / "posttrain" / "recipes" / recipe).read_text())
    tokenizer = load_tokenizer(make_shape(tmp_path / "src", shape))
    templates.apply(tokenizer, settings["chat_template"])
    assert tokenizer.convert_ids_to_tokens(templates.end_of_turn_id(tokenizer)) == SHAPES[shape][-1]
    assert templates.end_of_turn_id(tokenizer) != tokenizer.eos_token_id or shape == "mistral"
