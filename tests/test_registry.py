import json
import subprocess
import sys

import pytest

from conftest import ROOT, make_lora, make_tiny_model
from posttrain.registry import Registry, RegistryError, read_card


def run_cli(registry: Registry, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "registry.py"), "--registry", str(registry.root), *args],
        capture_output=True, text=True, cwd=ROOT,
    )


def test_base_entry_has_hub_style_card(tiny_registry):
    entry = tiny_registry.get("tiny")
    text = (entry.path / "README.md").read_text()
    assert text.startswith("---\n") and "\n---\n" in text
    card = read_card(entry.path)
    assert card["method"] == "base" and card["base"] == "tiny"
    assert card["base_hash"].startswith("sha256:") and len(card["base_hash"]) == 71
    assert card["parameters"] > 0 and card["library_name"] == "transformers"
    assert (entry.path / "model.safetensors").is_file() and (entry.path / "tokenizer.json").is_file()


def test_adapter_card_and_plain_peft_loading(tiny_registry):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    entry = tiny_registry.get("ad-a")
    card = entry.card
    assert entry.is_adapter and card["method"] == "sft" and card["base"] == "tiny"
    assert card["base_hash"] == tiny_registry.get("tiny").card["base_hash"]
    assert card["trainable_parameters"] > 0 and card["adapter_size_bytes"] > 0
    # An entry is a plain PEFT folder: PEFT loads it with no help from us.
    base = AutoModelForCausalLM.from_pretrained(str(tiny_registry.get("tiny").path))
    model = PeftModel.from_pretrained(base, str(entry.path))
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert trainable == card["trainable_parameters"]


def test_mismatched_adapter_is_refused_naming_both_bases(tiny_registry, tmp_path):
    other = make_tiny_model(tmp_path / "wider-llama", hidden=24)
    adapter = make_lora(other, tmp_path / "wide-adapter", seed=3)
    with pytest.raises(RegistryError) as err:
        tiny_registry.import_adapter(adapter, "wide", base="tiny")
    message = str(err.value)
    assert "'tiny'" in message and "wider-llama" in message and "24" in message
    assert "wide" not in tiny_registry.names()


def test_adapter_base_is_found_from_its_config_or_refused(tiny_registry, tiny_dir, tmp_path):
    adapter = make_lora(tiny_dir, tmp_path / "claims-tiny", seed=4)
    # PEFT wrote the path it trained on, which is where 'tiny' was imported from.
    assert tiny_registry.import_adapter(adapter, "claims").base == "tiny"
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "base_model_name_or_path": "Qwen/Qwen2-0.5B"}))
    with pytest.raises(RegistryError, match="'Qwen/Qwen2-0.5B', which is not in registry.*--base"):
        tiny_registry.import_adapter(adapter, "claims-qwen")


def test_publish_is_atomic_and_never_overwrites(tiny_registry):
    def crash(tmp):
        (tmp / "adapter_config.json").write_text("{}")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        tiny_registry.publish("half", crash, {"method": "sft"})
    assert "half" not in tiny_registry.names()
    assert not any(p.name.startswith(".tmp-") for p in tiny_registry.root.iterdir())
    before = (tiny_registry.get("ad-a").path / "adapter_model.safetensors").read_bytes()
    with pytest.raises(RegistryError, match="already exists"):
        tiny_registry.publish("ad-a", lambda tmp: None, {"method": "sft"})
    assert (tiny_registry.get("ad-a").path / "adapter_model.safetensors").read_bytes() == before


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../up", "x" * 101, "sp ace"])
def test_bad_names_are_refused(tiny_registry, name):
    with pytest.raises(RegistryError, match="bad entry name|no entry"):
        tiny_registry.publish(name, lambda tmp: None, {"method": "sft"})


def test_remove_refuses_a_base_with_adapters(tiny_registry):
    with pytest.raises(RegistryError, match="ad-a"):
        tiny_registry.remove("tiny")
    tiny_registry.remove("ad-a")
    assert tiny_registry.names() == ["ad-b", "tiny"]


def test_cli_list_show_import_remove(tiny_registry, tiny_dir, tmp_path):
    listed = run_cli(tiny_registry, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [c["name"] for c in json.loads(listed.stdout)] == ["ad-a", "ad-b", "tiny"]
    shown = json.loads(run_cli(tiny_registry, "show", "ad-b", "--json").stdout)
    assert shown["method"] == "sft" and shown["metrics"] == {} and shown["base"] == "tiny"
    adapter = make_lora(tiny_dir, tmp_path / "plain", seed=9)
    imported = run_cli(tiny_registry, "import", str(adapter), "--name", "plain", "--base", "tiny")
    assert imported.returncode == 0, imported.stderr
    assert tiny_registry.get("plain").card["method"] == "imported"
    missing = run_cli(tiny_registry, "show", "nope")
    assert missing.returncode == 2 and "no entry 'nope'" in missing.stderr and missing.stdout == ""
    assert run_cli(tiny_registry, "remove", "plain").returncode == 0
    assert "plain" not in tiny_registry.names()


def test_ensure_base_imports_only_what_it_can(tiny_registry, tiny_dir):
    assert tiny_registry.ensure_base("tiny").name == "tiny"  # present: returned as is
    assert tiny_registry.ensure_base("tiny-copy", source=str(tiny_dir)).card["method"] == "base"
    with pytest.raises(RegistryError, match="no entry 'qwen2-0.5b'"):
        tiny_registry.ensure_base("qwen2-0.5b")  # not the embedded default, and no source given


def test_the_newest_entry_of_a_method_is_the_latest_created_not_the_last_by_name(tmp_path, tiny_dir):
    from conftest import make_lora
    from posttrain.registry import Registry

    registry = Registry(tmp_path / "registry")
    registry.import_base(tiny_dir, "tiny")
    for name, created in (("zz-old", "2026-11-01T10:00:00+00:00"), ("aa-new", "2026-12-01T10:00:00+00:00")):
        registry.import_adapter(make_lora(tiny_dir, tmp_path / name, seed=1), name, base="tiny", method="sft")
        registry.annotate(name, created_at=created)  # by name the old one sorts last
    assert registry.newest("sft").name == "aa-new" and registry.newest("reward") is None
