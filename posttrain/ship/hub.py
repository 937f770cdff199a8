"""Registry entries to and from Hugging Face Hub model repos, as the Hub's own tools do it: the
adapter files exactly as PEFT writes them, a model card whose YAML follows the Hub's metadata
conventions (base_model, library_name, pipeline_tag, datasets, tags) plus our lineage fields.
A push uploads a staged copy and only adds `hub_repo` to the entry's own card."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from posttrain.registry import (ADAPTER_CONFIG, HUB_ID, CARD_METHODS, Entry, Registry, RegistryError, base_hub_id,
                                is_hub_id, read_card, write_card)

LINEAGE = ("method", "parent", "recipe", "config", "dataset", "dataset_format", "dataset_hash", "eval_dataset",
           "eval_dataset_hash", "metrics", "created_at", "chat_template", "end_of_turn_token", "end_of_turn_id",
           "fingerprint", "steps", "hardware")


def hub_card(entry: Entry, registry: Registry) -> dict:
    """The entry's card with the Hub's metadata conventions filled in."""
    card = dict(entry.card)
    base_model = card.get("base_model")
    if entry.is_adapter:
        base = registry.get(entry.base) if entry.base in registry else None
        base_model = (base.card.get("base_model") if base else None) or base_model
        card["library_name"] = "peft"
    else:
        card["library_name"] = "transformers"
    if is_hub_id(base_model):
        card["base_model"] = base_model
    else:
        card.pop("base_model", None)  # a local path means nothing on the Hub
    card["pipeline_tag"] = "text-classification" if entry.method == "reward" else "text-generation"
    datasets = [d for d in (card.get("dataset"), card.get("eval_dataset")) if is_hub_id(d)]
    if datasets:
        card["datasets"] = sorted(set(datasets))
    tags = ["posttrain-workbench", entry.method]
    if entry.is_adapter:
        tags += ["lora", "peft"]
    if entry.method in ("dpo", "ipo", "kto"):
        tags.append(entry.method.upper() if entry.method != "ipo" else "ipo")
    card["tags"] = sorted(set(card.get("tags", []) + tags))
    card["registry_name"] = entry.name
    return card


def push(registry: Registry, name: str, repo: str, private: bool = False, token: str | None = None, api=None) -> str:
    """Upload entry `name` as the Hub model repo `repo`; returns the repo's URL."""
    if not HUB_ID.match(repo):
        raise RegistryError(f"--repo {repo!r} is not OWNER/NAME")
    entry = registry.get(name)
    if entry.is_adapter:
        base = registry.get(entry.base)
        if base_hub_id(base) is None:
            raise RegistryError(
                f"adapter {name!r} runs on base {base.name!r}, which has no Hub id (imported from {base.card.get('base_model')}), "
                f"so nobody could load it from the Hub; name it: scripts/registry.py hub-id {base.name} OWNER/NAME "
                f"(or import the base with --hub-id OWNER/NAME)")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    card = hub_card(entry, registry)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        shutil.copytree(entry.path, staged)
        write_card(staged, {**card, "name": name})
        if entry.is_adapter and card.get("base_model"):  # the Hub id, not this machine's path
            config_path = staged / ADAPTER_CONFIG
            config = json.loads(config_path.read_text())
            config["base_model_name_or_path"] = card["base_model"]
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
        url = api.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(staged), repo_id=repo, repo_type="model",
                          commit_message=f"Upload {entry.method} entry {name} from posttrain-workbench")
    registry.annotate(name, hub_repo=repo)  # a Space bundle links the pushed repo
    return str(getattr(url, "url", url))


def pull(registry: Registry, repo: str, name: str, base: str | None = None, download=None) -> Entry:
    """Import a Hub repo: an adapter (with the lineage its card holds) or a base model."""
    if download is None:
        from huggingface_hub import snapshot_download as download
    folder = Path(download(repo_id=repo))
    if not (folder / ADAPTER_CONFIG).is_file():
        return registry.import_base(repo, name)
    card = read_card(folder)
    if base is None and card.get("base_model"):  # the base this registry holds under that Hub id
        base = next((b.name for b in registry.bases() if b.card.get("base_model") == card["base_model"]), None)
    lineage = {k: card[k] for k in LINEAGE if k in card}
    method = lineage.pop("method", "imported")
    if method not in CARD_METHODS or method == "base":
        method = "imported"
    return registry.import_adapter(folder, name, base=base, method=method, hub_repo=repo, **lineage)
