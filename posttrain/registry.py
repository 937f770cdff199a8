"""The model registry: one folder per entry, each a plain model folder or a plain PEFT adapter
folder plus a Hub-style model card (README.md with YAML metadata). Entries appear atomically
(written to a hidden temp folder, then renamed); this module never loads a model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable


from posttrain import names
from posttrain.errors import WorkbenchError

CARD_METHODS = ("base", "sft", "qlora", "dpo", "ipo", "kto", "orpo", "simpo", "reward", "grpo", "rloo", "merged", "imported")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
CARD = "README.md"
TRAINING_LOG = "training_log.json"  # the Trainer's logged history (loss per step), beside an adapter
ADAPTER_EXTRAS = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                  "generation_config.json")
# A PEFT LoRA tensor name, as saved: base_model.model.<module path>.lora_A[.<adapter>].weight
LORA_A_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_A(?:\.[^.]+)?\.weight$")


class RegistryError(WorkbenchError, ValueError):
    """A registry operation that cannot be done; the message says what and where."""


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    card: dict

    @property
    def is_adapter(self) -> bool:
        return (self.path / ADAPTER_CONFIG).is_file()

    @property
    def method(self) -> str:
        return self.card.get("method", "unknown")

    @property
    def base(self) -> str:
        """The registry base entry this entry runs on (itself for a base)."""
        return self.card.get("base", self.name)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_hash(folder: Path, patterns: tuple[str, ...] = ("config.json", "*.safetensors")) -> str:
    """sha256 over the names and contents of a model's config and weights."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in folder.glob(pattern)})
    for path in files:
        digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return "sha256:" + digest.hexdigest()


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def read_card(path: Path) -> dict:
    """The YAML metadata of an entry's model card, read with huggingface_hub's card API (an entry
    without a card, or with a card whose metadata does not parse, has none)."""
    from huggingface_hub import ModelCard

    if not (path / CARD).is_file():
        return {}
    try:
        return ModelCard.load(path / CARD, ignore_metadata_errors=True).data.to_dict()
    except Exception:  # a hand-edited card that is not YAML at all: no metadata, the entry still lists
        return {}


def write_card(path: Path, card: dict) -> None:
    """README.md with YAML metadata, written with huggingface_hub's card API (ModelCardData keeps
    the Hub's own fields, base_model, license, datasets, tags, first)."""
    from huggingface_hub import ModelCard, ModelCardData

    card = json.loads(json.dumps(card, default=str))  # enums, paths -> plain YAML scalars
    meta = ModelCardData(**card).to_yaml()
    lines = [f"# {card['name']}", "", f"Method: `{card.get('method')}`."]
    if card.get("base") and card.get("base") != card["name"]:
        lines.append(f"Runs on registry base `{card['base']}` ({card.get('base_model')}).")
    if card.get("parent"):
        lines.append(f"Trained from `{card['parent']}`.")
    if card.get("license") == "gemma":
        lines.append("Gemma is provided under and subject to the Gemma Terms of Use found at "
                     "ai.google.dev/gemma/terms (see NOTICE.md in this folder).")
    if card.get("metrics"):
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in card["metrics"].items()]
    ModelCard(f"---\n{meta}\n---\n" + "\n".join(lines) + "\n").save(path / CARD)


def tensor_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor in a folder's safetensors files, read from headers only."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def adapter_module_shapes(folder: Path) -> dict[str, tuple[int, int, int]]:
    """{module path in the base: (in_features, rank, out_features)} of a PEFT LoRA adapter."""
    shapes = tensor_shapes(folder)
    modules: dict[str, tuple[int, int, int]] = {}
    for key, shape in shapes.items():
        match = LORA_A_KEY.match(key)
        if not match:
            continue
        module = match.group(1)
        b_key = key.replace(".lora_A", ".lora_B")
        if b_key not in shapes:
            raise RegistryError(f"{folder}: {key} has no matching lora_B tensor")
        rank, in_features = shape
        out_features = shapes[b_key][0]
        modules[module] = (in_features, rank, out_features)
    return modules


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- reading -------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            return []
        return [
            Entry(p.name, p, read_card(p))
            for p in sorted(self.root.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]

    def newest(self, method: str) -> Entry | None:
        """The most recently created entry of `method` (by its card's created_at, not its name)."""
        found = [e for e in self.entries() if e.method == method]
        return max(found, key=lambda e: str(e.card.get("created_at", ""))) if found else None

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def get(self, name: str) -> Entry:
        path = self.root / name
        if not names.is_valid(name) or not path.is_dir():
            raise RegistryError(
                f"no entry {name!r} in registry {self.root} (entries: {', '.join(self.names()) or 'none'})"
            )
        return Entry(name, path, read_card(path))

    def bases(self) -> list[Entry]:
        return [e for e in self.entries() if e.method == "base"]

    def __contains__(self, name: str) -> bool:
        return names.is_valid(name) and (self.root / name).is_dir()

    # ---- writing -------------------------------------------------------------------------
    def publish(self, name: str, write: Callable[[Path], None], card: dict) -> Entry:
        """Create entry `name`: `write(tmp)` fills a temp folder, then one rename publishes it.

        A crash leaves only a hidden `.tmp-*` folder that listings ignore; an existing entry
        is never touched."""
        check_name(name)
        if card.get("method") not in CARD_METHODS:
            raise RegistryError(f"entry {name!r}: method {card.get('method')!r} not one of {CARD_METHODS}")
        target = self.root / name
        if target.exists():
            raise RegistryError(f"entry {name!r} already exists in {self.root}; remove it or pick another name")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        try:
            write(tmp)
            card = {"name": name, **card, "created_at": card.get("created_at") or now_iso()}
            if (tmp / ADAPTER_CONFIG).is_file():
                card.setdefault("library_name", "peft")
                card["adapter_size_bytes"] = folder_size(tmp)
            else:
                card.setdefault("library_name", "transformers")
            write_card(tmp, card)
            os.rename(tmp, target)  # atomic on one filesystem; fails if target appeared meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(name)

    def tokenizer_path(self, entry: Entry) -> Path:
        """The folder whose tokenizer (and chat template) `entry` renders prompts with: an
        adapter's own when it saved one, else its base's."""
        if (entry.path / "tokenizer_config.json").is_file():
            return entry.path
        return self.get(entry.base).path

    def annotate(self, name: str, **fields) -> Entry:
        """Add fields to an entry's card (e.g. where it was pushed); the weights are untouched
        and the card is replaced in one rename."""
        entry = self.get(name)
        staging = Path(tempfile.mkdtemp(prefix=".card-", dir=self.root))
        try:
            write_card(staging, {**entry.card, **fields, "name": name})
            os.replace(staging / CARD, entry.path / CARD)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(name)

    def remove(self, name: str, force: bool = False) -> list[str]:
        """Remove an entry. A base with adapters on it is refused; so is an entry other entries name
        as their parent, unless `force`. Returns the names of the entries whose parent is now gone."""
        entry = self.get(name)
        children = [e.name for e in self.entries() if e.card.get("base") == name and e.name != name]
        if children:
            raise RegistryError(f"cannot remove base {name!r}: adapters {children} run on it; remove them first")
        orphans = [e.name for e in self.entries() if e.card.get("parent") == name and e.name != name]
        if orphans and not force:
            raise RegistryError(f"cannot remove {name!r}: it is the parent of {orphans} (their lineage names it); "
                                "--force removes it anyway")
        # Rename first so a crash mid-delete never leaves a half entry listed.
        trash = self.root / f".trash-{name}-{os.getpid()}"
        os.rename(entry.path, trash)
        shutil.rmtree(trash)
        return orphans

    # ---- importing -----------------------------------------------------------------------
    def import_base(self, source: str | Path, name: str, gguf_file: str | None = None, hub_id: str | None = None) -> Entry:
        """A model folder, .gguf or Hub id as a base. Its Hub id (the card's `base_model`, which
        adapters record as base_model_name_or_path) is `hub_id`, else read off the source: a Hub
        id itself, a Hugging Face cache path (models--OWNER--NAME/snapshots/...), or the folder's
        model card; a base without one keeps its local path there and cannot back a Hub push."""
        from posttrain.models import export_model_folder

        def write(tmp: Path) -> None:
            export_model_folder(source, tmp, gguf_file=gguf_file)

        if hub_id is not None and not HUB_ID.fullmatch(hub_id):
            raise RegistryError(f"--hub-id {hub_id!r} is not OWNER/NAME")
        # The GGUF it came from: an export back to GGUF (registry.py export --gguf) takes its
        # architecture metadata and tokenizer from there.
        extra = {"source_gguf": str((Path(source) / gguf_file).resolve())} if gguf_file else None
        return self.publish_base(name, write, source=str(source), hub_id=hub_id, extra=extra)

    def import_default_base(self, model: str | None = None) -> Entry:
        """An embedded base, imported once (idempotent): SmolLM2-135M-Instruct (the default), or
        `model` "gemma-3-270m", the pretrained Gemma 3 270M (PyPI's GGUF packages; license gemma)."""
        from posttrain import models

        model = model or models.DEFAULT_BASE_NAME
        embedded = {models.DEFAULT_BASE_NAME: (models.export_embedded_default, models.DEFAULT_BASE_SOURCE, {}),
                    models.GEMMA_BASE_NAME: (models.export_gemma, models.GEMMA_HUB_ID, {"license": models.GEMMA_LICENSE})}
        if model not in embedded:
            raise RegistryError(f"no embedded base {model!r}; import-default knows {', '.join(embedded)}")
        if model in self:
            return self.get(model)
        export, source, card = embedded[model]
        try:
            return self.publish_base(model, export, source=source, hub_id=source if "/" in source else None, extra=card)
        except FileNotFoundError as exc:
            raise RegistryError(str(exc)) from None

    def ensure_base(self, name: str, source: str | None = None) -> Entry:
        """Base entry `name`, importing it first when missing: an embedded base (SmolLM2, Gemma 3
        270M) by its own name, any other base from `source` (a folder or Hub id) when one is given."""
        from posttrain.models import EMBEDDED_BASES

        if name not in self:
            if source:  # a Space fetches even the default from the Hub: the GGUF package is not there
                return self.import_base(source, name)
            if name in EMBEDDED_BASES:
                return self.import_default_base(name)
        return self.get(name)

    def publish_base(self, name: str, write: Callable[[Path], None], source: str, hub_id: str | None = None,
                     extra: dict | None = None) -> Entry:
        def write_and_describe(tmp: Path) -> None:
            write(tmp)
            config = json.loads((tmp / "config.json").read_text())
            card.update(
                base_hash=folder_hash(tmp),
                architecture=(config.get("architectures") or ["?"])[0],
                parameters=sum(_numel(s) for s in tensor_shapes(tmp).values()),
                size_bytes=folder_size(tmp),
            )

        hub_id = hub_id or hub_id_of(source)
        card = {"method": "base", "base": name, "base_model": hub_id or source, "hub_id": hub_id,
                **({"source": source} if hub_id and hub_id != source else {}), **(extra or {})}
        return self.publish(name, write_and_describe, card)

    def set_hub_id(self, name: str, hub_id: str) -> Entry:
        """Name the Hub id of a base imported without one (its adapters' pushes need it)."""
        entry = self.get(name)
        if entry.is_adapter:
            raise RegistryError(f"{name!r} is an adapter; a Hub id belongs to its base {entry.base!r}")
        if not HUB_ID.fullmatch(hub_id):
            raise RegistryError(f"{hub_id!r} is not OWNER/NAME")
        return self.annotate(name, hub_id=hub_id, base_model=hub_id,
                             **({"source": entry.card["base_model"]} if entry.card.get("base_model") != hub_id else {}))

    def import_adapter(
        self, path: str | Path, name: str, base: str | None = None, method: str = "imported", **card
    ) -> Entry:
        """Copy a plain PEFT LoRA adapter folder in, after checking it fits a registry base."""
        path = Path(path)
        config = read_adapter_config(path)
        base_entry = self.get(base) if base else self.resolve_claimed_base(path, config)
        check_adapter_fits(path, base_entry)

        def write(tmp: Path) -> None:
            for item in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
                shutil.copy2(path / item, tmp / item)
            for item in ADAPTER_EXTRAS:  # the chat template and stop tokens it was trained with
                if (path / item).is_file():
                    shutil.copy2(path / item, tmp / item)

        modules = adapter_module_shapes(path)
        card = {
            "method": method,
            "base": base_entry.name,
            "base_model": base_entry.card.get("base_model", base_entry.name),
            "base_hash": base_entry.card.get("base_hash"),
            "claimed_base": config.get("base_model_name_or_path"),
            "peft_type": config.get("peft_type"),
            "lora_r": config.get("r"),
            "lora_alpha": config.get("lora_alpha"),
            "target_modules": sorted({m.rsplit(".", 1)[-1] for m in modules}),
            "trainable_parameters": sum(i * r + r * o for i, r, o in modules.values()),
            **card,
        }
        return self.publish(name, write, card)

    def import_path(self, path: str | Path, name: str, base: str | None = None, hub_id: str | None = None) -> Entry:
        """Import whatever `path` is: a PEFT adapter folder, a model folder, or a Hub id."""
        local = Path(path)
        if (local / ADAPTER_CONFIG).is_file():
            if hub_id:
                raise RegistryError(f"{local} is an adapter; --hub-id names a base's Hub id (give it when importing the base)")
            return self.import_adapter(local, name, base=base)
        if local.is_file() and local.suffix == ".gguf":
            return self.import_base(local.parent, name, gguf_file=local.name, hub_id=hub_id)
        if local.exists() and not (local / "config.json").is_file():
            raise RegistryError(f"{local}: neither a PEFT adapter ({ADAPTER_CONFIG}) nor a model folder (config.json)")
        if not local.exists() and not HUB_ID.fullmatch(str(path)):
            raise RegistryError(f"{path}: no such file or folder (and not a Hub id OWNER/NAME); give an adapter folder, "
                                "a model folder, a .gguf file or a Hub id")
        if local.is_dir():
            check_model_folder(local)
        return self.import_base(path, name, hub_id=hub_id)

    def resolve_claimed_base(self, path: Path, config: dict) -> Entry:
        claimed = str(config.get("base_model_name_or_path") or "")
        for entry in self.bases():
            if claimed and claimed in (entry.name, entry.card.get("base_model"), str(entry.path)):
                return entry
        raise RegistryError(
            f"{path}: adapter was trained on base {claimed!r}, which is not in registry {self.root} "
            f"(bases: {', '.join(e.name for e in self.bases()) or 'none'}); pass --base NAME to choose one"
        )


def check_models(registry: Registry, base: str, models: list[str]) -> None:
    """Every model is the base (or "__base__") or an adapter of it, read off the registry's cards
    before any model loads (the engine would refuse the same after 15-30 s of loading)."""
    for model in models:
        if model in (base, "__base__"):
            continue
        entry = registry.get(model)  # RegistryError names the known entries
        if not entry.is_adapter:
            raise RegistryError(f"{model!r} is a base, not an adapter of {base!r}; a campaign compares adapters of one base "
                                f"(and {base!r} itself)")
        if entry.base != base:
            raise RegistryError(f"adapter {model!r} was trained on base {entry.base!r}, but this campaign runs on {base!r}; "
                                f"pass --base {entry.base} or choose adapters of {base!r}")


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold one object (a model's config.json, an adapter's config): broken
    JSON or any other value is named with the file, never a traceback from deep inside."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}:{exc.lineno}: broken JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(value, dict):
        raise RegistryError(f"{path}: holds {type(value).__name__} {str(value)[:40]}, not a JSON object; is it the "
                            "model's own config file?")
    return value


def check_model_folder(folder: Path) -> None:
    """A local model folder has a config object, weights that open and a tokenizer, said before
    transformers tries (it says none of these plainly: a missing tokenizer reads as a sentencepiece error)."""
    read_json_object(folder / "config.json")
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not weights:
        raise RegistryError(f"{folder}: config.json but no weights (*.safetensors or *.bin); copy the whole model folder")
    tokenizer_files = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
    if not any((folder / f).is_file() for f in tokenizer_files):
        raise RegistryError(f"{folder}: no tokenizer files ({', '.join(tokenizer_files)}); copy the whole model folder")
    from safetensors import safe_open

    for path in weights:
        if path.suffix != ".safetensors":
            continue
        try:
            with safe_open(str(path), framework="pt"):  # reads the header, checks it covers the file
                pass
        except Exception as exc:  # a truncated or damaged file: name it
            raise RegistryError(f"{path}: the weights cannot be read ({exc}); the file is damaged or cut short, copy it "
                                "again") from None


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")  # fullmatch
_CACHE_REPO = re.compile(r"^models--([^/]+?)--(.+)$")


def hub_id_of(source: str | Path) -> str | None:
    """The Hub id a base source names: an OWNER/NAME that is not a local path, a Hugging Face cache
    folder (.../models--OWNER--NAME/snapshots/REVISION), or a local folder whose model card says
    `hub_id` (or, on this registry's own base cards, `base_model`)."""
    text = str(source)
    local = Path(text)
    if is_hub_id(text):
        return text
    for part in reversed(local.resolve().parts if local.exists() else local.parts):
        match = _CACHE_REPO.match(part)
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    folder = local if local.is_dir() else local.parent
    card = read_card(folder) if (folder / CARD).is_file() else {}
    # A Hub card's base_model names the model it was made FROM; only this registry's base cards
    # (method: base) use it for the model itself.
    keys = ("hub_id",) + (("base_model",) if card.get("method") == "base" else ())
    return next((card[k] for k in keys if is_hub_id(card.get(k))), None)


def base_hub_id(base: Entry) -> str | None:
    """A base entry's Hub id: its card's hub_id, or a base_model that is one (older cards)."""
    return next((v for v in (base.card.get("hub_id"), base.card.get("base_model")) if is_hub_id(v)), None)


def is_hub_id(value) -> bool:
    """`owner/name` that is not a local path."""
    return isinstance(value, str) and bool(HUB_ID.fullmatch(value)) and not Path(value).exists()


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def check_name(name: str) -> None:
    if not names.is_valid(name):
        raise RegistryError(names.problem(name, "entry"))


def read_adapter_config(path: Path) -> dict:
    config_path = path / ADAPTER_CONFIG
    if not config_path.is_file():
        raise RegistryError(f"{path}: no {ADAPTER_CONFIG}; not a PEFT adapter folder")
    if not (path / ADAPTER_WEIGHTS).is_file():
        raise RegistryError(f"{path}: no {ADAPTER_WEIGHTS}; save adapters with safetensors (PEFT's default)")
    config = read_json_object(config_path)
    if config.get("peft_type") != "LORA":
        raise RegistryError(f"{config_path}: peft_type {config.get('peft_type')!r}; only LORA adapters are supported")
    return config


def check_adapter_fits(adapter_dir: Path, base: Entry) -> None:
    """Refuse, naming both bases, an adapter whose LoRA shapes do not fit the base's layers."""
    config = read_adapter_config(adapter_dir)
    claimed = config.get("base_model_name_or_path")
    base_shapes = tensor_shapes(base.path)
    problems = []
    modules = adapter_module_shapes(adapter_dir)
    if not modules:
        raise RegistryError(f"{adapter_dir}: no LoRA weights found in {ADAPTER_WEIGHTS}")
    for module, (in_features, _, out_features) in sorted(modules.items()):
        weight = base_shapes.get(f"{module}.weight")
        if weight is None:
            problems.append(f"{module} does not exist in the base")
        elif tuple(weight[-2:]) != (out_features, in_features):
            problems.append(f"{module}: adapter expects {in_features}->{out_features}, base has {weight[1]}->{weight[0]}")
        if len(problems) >= 3:
            break
    if problems:
        raise RegistryError(
            f"adapter {adapter_dir} does not fit base {base.name!r} ({base.card.get('base_model', base.path)}); "
            f"the adapter was trained on {claimed!r}: " + "; ".join(problems)
        )


def default_registry_dir() -> Path:
    return Path(os.environ.get("REGISTRY_DIR", "registry"))
