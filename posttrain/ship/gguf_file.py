"""A registry entry in llama.cpp's format (what Ollama and LM Studio run): merged into its base as one
GGUF file (f16, q8_0, or q4_k_m through llama.cpp's own quantizer), or an adapter as a GGUF LoRA that
llama.cpp applies over its base's GGUF at run time. Beside the file: an Ollama Modelfile (the chat
template and stop tokens) and the entry's card. Reads the registry; never writes to it.

The base's GGUF (the file it was imported from) gives the architecture's metadata and the tokenizer;
the weights are the entry's, mapped to llama.cpp's names the way llama.cpp's `convert_hf_to_gguf.py`
maps them (Llama's q/k rows permuted for its rotary layout, Gemma's norms stored as 1 + w) and
written with PyPI's `gguf` package."""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from posttrain.registry import Entry, Registry, RegistryError
from posttrain.ship import gguf_index

log = logging.getLogger(__name__)

TYPES = ("f16", "q8_0", "q4_k_m")  # what --type takes; f32 too, for checks that must be exact
ARCHITECTURES = ("llama", "gemma3")  # the GGUF architectures whose HF -> GGUF layout is written here
# llama.cpp's general.file_type values (LlamaFileType in gguf-py) per --type.
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "q4_k_m": 15}
SOURCE_GGUF_KEY = "source_gguf"  # a base card's record of the GGUF file it was imported from


class GGUFExportError(RegistryError):
    """An entry that cannot be written as GGUF, said in one line."""


@dataclass
class ExportReport:
    path: Path
    type: str
    tensors: int
    size_bytes: int
    extras: list[Path] = field(default_factory=list)  # the Modelfile and the card

    def as_dict(self) -> dict:
        return {"path": str(self.path), "type": self.type, "tensors": self.tensors, "size_bytes": self.size_bytes,
                "extras": [str(p) for p in self.extras]}


# ---- the base's own GGUF ------------------------------------------------------------------------------
def source_gguf(base: Entry) -> Path:
    """The GGUF file a base entry was imported from: the embedded bases' package files, or the file
    `registry.py import X.gguf` recorded on the card."""
    from posttrain import models

    recorded = base.card.get(SOURCE_GGUF_KEY)
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    if base.name == models.DEFAULT_BASE_NAME:
        return models.embedded_gguf_path()
    if base.name == models.GEMMA_BASE_NAME:
        return models.gemma_gguf_path()
    where = f" (its card names {recorded}, which is gone)" if recorded else ""
    raise GGUFExportError(
        f"base {base.name!r} was not imported from a GGUF file{where}: a GGUF export takes the architecture's "
        f"metadata and tokenizer from the base's own GGUF; import the base from one (registry.py import X.gguf), "
        f"or convert the merged folder with llama.cpp's convert_hf_to_gguf.py")


def _reader(path: Path):
    import gguf

    return gguf.GGUFReader(str(path))


def architecture(arch: str | None) -> str:
    """A GGUF's general.architecture, if export knows it."""
    if arch not in ARCHITECTURES:
        raise GGUFExportError(f"GGUF export knows the {', '.join(ARCHITECTURES)} architectures, not {arch!r}")
    return arch


# ---- HF names and layouts -> llama.cpp's -----------------------------------------------------------------
def _permute(weights: torch.Tensor, n_head: int, n_head_kv: int) -> torch.Tensor:
    """convert_hf_to_gguf.py's LlamaModel.permute: HF's rotate-half rows -> GGML's interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


class Layout:
    """HF tensor name -> GGUF tensor name, and the value transform llama.cpp's converter applies."""

    def __init__(self, arch: str, config: dict):
        import gguf

        self.arch, self.config = arch, config
        arch_id = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch)
        self.names = gguf.get_tensor_name_map(arch_id, int(config["num_hidden_layers"]))

    def gguf_name(self, hf_name: str) -> str | None:
        stem, _, suffix = hf_name.rpartition(".")
        mapped = self.names.get_name(stem)
        return f"{mapped}.{suffix}" if mapped else None

    def rows(self, gguf_name: str, rows: torch.Tensor) -> torch.Tensor:
        """The row permutation of a weight (or of a LoRA's B, whose rows are the weight's rows)."""
        if self.arch == "llama":
            heads, kv = int(self.config["num_attention_heads"]), int(self.config["num_key_value_heads"])
            if ".attn_q." in gguf_name:
                return _permute(rows, heads, heads)
            if ".attn_k." in gguf_name:
                return _permute(rows, heads, kv)
        return rows

    def value(self, gguf_name: str, tensor: torch.Tensor) -> torch.Tensor:
        if self.arch == "gemma3" and gguf_name.endswith("norm.weight"):
            return tensor + 1  # HF's Gemma RMSNorm scales by (1 + w); llama.cpp stores the scale itself
        return self.rows(gguf_name, tensor)


# ---- the entry's weights -------------------------------------------------------------------------------
@torch.no_grad()
def merged_state_dict(registry: Registry, entry: Entry) -> dict[str, torch.Tensor]:
    """The entry's full weights in fp32 (an adapter merged into its base by PEFT: LoRA, rsLoRA, DoRA,
    trained token rows alike)."""
    from transformers import AutoModelForCausalLM

    base = registry.get(entry.base)
    model = AutoModelForCausalLM.from_pretrained(str(base.path), dtype=torch.float32)
    if entry.is_adapter:
        if entry.method == "reward":
            raise GGUFExportError(f"{entry.name!r} is a reward model, not a causal LM llama.cpp can generate with")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(entry.path)).merge_and_unload()
    return {name: tensor.detach().float() for name, tensor in model.state_dict().items()}


def _tokenizer(registry: Registry, entry: Entry):
    from posttrain.models import load_tokenizer

    return load_tokenizer(registry.tokenizer_path(entry))


def _stop_ids(registry: Registry, entry: Entry, tokenizer) -> list[int]:
    from posttrain.engine import adapter_stop_ids

    from posttrain.templates import end_of_turn_id

    ids = set(adapter_stop_ids(entry.path)) | set(adapter_stop_ids(registry.get(entry.base).path))
    if tokenizer.chat_template:
        try:
            ids.add(end_of_turn_id(tokenizer))
        except ValueError:  # a template that drops the answer it is given: its eos stops it
            pass
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


# ---- writing -------------------------------------------------------------------------------------------
def _copy_metadata(reader, writer, skip: set[str]) -> None:
    import gguf

    for key, value in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in skip:
            continue
        kinds = value.types
        sub = kinds[-1] if kinds[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value.contents(), kinds[0], sub_type=sub)


def _encode(tensor: np.ndarray, kind: str, gguf_name: str):
    """(data, raw dtype) for the writer: norms and vectors stay f32, as llama.cpp keeps them."""
    import gguf
    from gguf.quants import quantize

    if kind == "f32" or tensor.ndim < 2:
        return tensor.astype(np.float32), None
    if kind == "q8_0" and tensor.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        return quantize(tensor.astype(np.float32), gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return tensor.astype(np.float16), None


def _out_path(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix != ".gguf":
        raise GGUFExportError(f"{out}: the output file must end in .gguf")
    if out.is_dir():
        raise GGUFExportError(f"{out} is a folder; name the .gguf file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def export_gguf(registry: Registry, name: str, out: str | Path, kind: str = "f16") -> ExportReport:
    """`name` (a base or an adapter merged into its base) as one GGUF file of type `kind`."""
    import gguf

    if kind not in TYPES + ("f32",):
        raise GGUFExportError(f"--type {kind!r}: one of {', '.join(TYPES)}")
    if kind == "q4_k_m":
        from posttrain.llamacpp import require

        require("--type q4_k_m (llama.cpp's own quantizer)")  # before minutes of merging, not after
    out = _out_path(out)
    entry = registry.get(name)
    base = registry.get(entry.base)
    reader = _reader(source_gguf(base))
    arch = architecture(reader.fields["general.architecture"].contents())
    config = json.loads((base.path / "config.json").read_text())
    layout = Layout(arch, config.get("text_config", config))
    weights = merged_state_dict(registry, entry)
    by_gguf = {}
    for hf_name, tensor in weights.items():
        gguf_name = layout.gguf_name(hf_name)
        if gguf_name is not None:
            by_gguf.setdefault(gguf_name, (hf_name, tensor))
    missing = [t.name for t in reader.tensors if t.name not in by_gguf]
    if missing:
        raise GGUFExportError(f"{name!r}: the base's GGUF has tensors the model does not ({', '.join(missing[:5])})")

    tokenizer = _tokenizer(registry, entry)
    staged = out.with_name(out.name + ".partial")  # renamed to OUT only when whole: no half file under its name
    written = out.with_name(out.name + ".f16.partial") if kind == "q4_k_m" else staged
    try:
        writer = gguf.GGUFWriter(str(written), arch)
        _copy_metadata(reader, writer, skip={"general.file_type", "general.name", "tokenizer.chat_template"})
        writer.add_name(name)
        writer.add_file_type(FILE_TYPES["f16" if kind == "q4_k_m" else kind])
        if tokenizer.chat_template:
            writer.add_chat_template(tokenizer.chat_template)
        for info in reader.tensors:
            hf_name, tensor = by_gguf[info.name]
            value = layout.value(info.name, tensor).numpy()
            expected = tuple(int(n) for n in reversed(info.shape.tolist()))
            if value.shape != expected:
                raise GGUFExportError(f"{name!r}: {hf_name} is {value.shape}, the base's {info.name} is {expected}")
            data, raw = _encode(value, kind, info.name)
            writer.add_tensor(info.name, data, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        if kind == "q4_k_m":
            quantize_with_llamacpp(written, staged, kind)
        staged.replace(out)
    finally:
        for leftover in {staged, written}:
            leftover.unlink(missing_ok=True)
    extras = write_beside(registry, entry, out, tokenizer)
    return ExportReport(out, kind, len(reader.tensors), out.stat().st_size, extras)


def quantize_with_llamacpp(source: Path, out: Path, kind: str) -> None:
    """llama-quantize's own logic (its k-quants have no numpy implementation in PyPI's gguf)."""
    from posttrain.llamacpp import require

    llama_cpp = require(f"--type {kind}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}[kind]
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if status != 0:
        out.unlink(missing_ok=True)
        raise GGUFExportError(f"llama.cpp could not quantize {source} to {kind} (status {status})")


# ---- LoRA -----------------------------------------------------------------------------------------------
def export_lora_gguf(registry: Registry, name: str, out: str | Path, token_rows: str = "refuse",
                     beside: bool = True) -> ExportReport:
    """An adapter as llama.cpp's GGUF LoRA (convert_lora_to_gguf.py's layout: `<tensor>.lora_a` [r, in]
    and `.lora_b` [out, r] per module, adapter.lora.alpha), applied over the base's own GGUF.
    token_rows: "refuse" an adapter that trains embedding rows (the file alone would serve it wrong),
    or "omit" them (the llamacpp backend carries them itself: llamacpp.TokenRows). beside: also
    write the Modelfile and card next to the file (the backend, which only loads it, does not)."""
    import gguf

    out = _out_path(out)
    entry = registry.get(name)
    if not entry.is_adapter:
        raise GGUFExportError(f"{name!r} is a base, not an adapter: write it with --gguf")
    if entry.method == "reward":
        raise GGUFExportError(f"{name!r} is a reward model, not a causal LM llama.cpp can generate with")
    weights = _lora_weights(entry, token_rows)
    base = registry.get(entry.base)
    base_gguf = source_gguf(base)
    index = gguf_index.header(base_gguf)  # (gguf.GGUFReader parses Gemma's 262k-token vocabulary first: ~17 s)
    arch = architecture(index.architecture)
    base_config = json.loads((base.path / "config.json").read_text())
    layout = Layout(arch, base_config.get("text_config", base_config))
    shapes = {t.name: tuple(reversed(t.shape)) for t in index.tensors.values()}
    staged = out.with_name(out.name + ".partial")
    try:
        writer = gguf.GGUFWriter(str(staged), arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_name(name)
        # The engine's B already carries each module's scale (alpha / r, rsLoRA's alpha / sqrt(r), any
        # alpha_pattern); llama.cpp scales by alpha / r, or by 1 when alpha is 0: so alpha 0, scales folded.
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)
        count = 0
        for module, (a, b_scaled) in sorted(weights.lora.items()):
            gguf_name = layout.gguf_name(module.removeprefix("base_model.model.") + ".weight")
            if gguf_name is None or gguf_name not in shapes:
                raise GGUFExportError(f"{name!r}: its LoRA on {module} has no tensor in the base's GGUF")
            if shapes[gguf_name] != (b_scaled.shape[0], a.shape[1]):
                raise GGUFExportError(f"{name!r}: {module}'s LoRA is {b_scaled.shape[0]}x{a.shape[1]}, "
                                      f"the base's {gguf_name} is {shapes[gguf_name]}")
            writer.add_tensor(gguf_name + ".lora_a", a.numpy().astype(np.float32))
            writer.add_tensor(gguf_name + ".lora_b", layout.rows(gguf_name, b_scaled).numpy().astype(np.float32))
            count += 2
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        staged.replace(out)
    finally:
        staged.unlink(missing_ok=True)
    extras = write_beside(registry, entry, out, _tokenizer(registry, entry), lora_over=base_gguf) if beside else []
    return ExportReport(out, "lora", count, out.stat().st_size, extras)


def _lora_weights(entry: Entry, token_rows: str):
    """The adapter's LoRA weights, if a GGUF LoRA can carry them (see export_lora_gguf's token_rows)."""
    from posttrain.engine import read_adapter
    from posttrain.registry import read_adapter_config

    if read_adapter_config(entry.path).get("use_dora"):
        raise GGUFExportError(f"{entry.name!r} is a DoRA adapter: llama.cpp has no DoRA at run time (its magnitude "
                              f"vectors would be dropped); write it merged with --gguf")
    if token_rows not in ("refuse", "omit"):
        raise GGUFExportError(f"token_rows must be 'refuse' or 'omit', got {token_rows!r}")
    weights = read_adapter(entry.path)
    if weights.tokens and token_rows == "refuse":
        raise GGUFExportError(
            f"{entry.name!r} trains embedding rows of its template's tokens ({', '.join(weights.tokens)}), which a "
            f"llama.cpp LoRA cannot carry over tied embeddings; write it merged with --gguf")
    return weights


# ---- beside the file: Modelfile and card -------------------------------------------------------------------
# Ollama's templates (Go text/template) for the chat formats this project trains with; which one an
# entry uses is found by rendering a probe conversation with its own tokenizer.
OLLAMA_TEMPLATES = {
    "chatml": ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
               "<|im_start|>assistant\n"),
    "gemma": ("{{- range .Messages }}<start_of_turn>{{ if eq .Role \"assistant\" }}model{{ else }}{{ .Role }}"
              "{{ end }}\n{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n"),
}
_PROBE = [{"role": "user", "content": "PROBE-QUESTION"}]


def _render_like_ollama(family: str, messages: list[dict]) -> str:
    if family == "chatml":
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"
    turns = "".join(f"<start_of_turn>{'model' if m['role'] == 'assistant' else m['role']}\n{m['content']}<end_of_turn>\n"
                    for m in messages)
    return turns + "<start_of_turn>model\n"


def template_family(tokenizer) -> tuple[str | None, str | None]:
    """(the Ollama template that renders exactly what the entry's chat template renders, the system
    prompt the template adds when a conversation has none); (None, None) when no template here does."""
    if not tokenizer.chat_template:
        return None, None
    rendered = tokenizer.apply_chat_template(_PROBE, add_generation_prompt=True, tokenize=False)
    bos = tokenizer.bos_token or ""
    # Gemma's template writes its bos first (llama.cpp adds that itself); SmolLM2's bos is <|im_start|>.
    candidates = [rendered] + ([rendered[len(bos):]] if bos and rendered.startswith(bos) else [])
    for family in OLLAMA_TEMPLATES:
        expected = _render_like_ollama(family, _PROBE)
        for text in candidates:
            if text == expected:
                return family, None
            default_system = re.fullmatch(r"<\|im_start\|>system\n(.*)<\|im_end\|>\n", text.removesuffix(expected), re.S)
            if family == "chatml" and text.endswith(expected) and default_system:
                return family, default_system.group(1)  # SmolLM2's "You are a helpful AI assistant named SmolLM..."
    return None, None


def modelfile(registry: Registry, entry: Entry, out: Path, tokenizer, lora_over: Path | None) -> str:
    lines = [f"# {entry.name}: exported by scripts/registry.py export (method {entry.method}, base {entry.base})"]
    if lora_over is not None:  # the base's own GGUF, already found (Gemma's is sha256-checked on each look-up)
        base_file = lora_over
        lines += [f"# the base's own GGUF ({base_file.name}); llama.cpp applies the adapter over it at run time",
                  f"FROM {base_file}", f"ADAPTER ./{out.name}"]
    else:
        lines.append(f"FROM ./{out.name}")
    family, system = template_family(tokenizer)
    if family:
        lines.append(f'TEMPLATE """{OLLAMA_TEMPLATES[family]}"""')
        if system:
            lines.append(f'SYSTEM """{system}"""')
    elif tokenizer.chat_template:
        lines.append("# its chat template has no Ollama form here; the GGUF's tokenizer.chat_template holds it")
    else:
        lines.append('TEMPLATE """{{ .Prompt }}\n\n"""  # a pretrained base: a completion, no chat turns')
    for token in tokenizer.convert_ids_to_tokens(_stop_ids(registry, entry, tokenizer)):
        lines.append(f"PARAMETER stop {json.dumps(token)}")
    lines.append("PARAMETER temperature 0")
    license_name = entry.card.get("license") or registry.get(entry.base).card.get("license")
    if license_name:
        lines.append(f'LICENSE """{license_name}"""')
    return "\n".join(lines) + "\n"


def write_beside(registry: Registry, entry: Entry, out: Path, tokenizer, lora_over: Path | None = None) -> list[Path]:
    """`OUT.Modelfile` and `OUT.README.md` (the entry's card) next to OUT.gguf; a base under the Gemma
    terms also gets their notice."""
    from posttrain.models import GEMMA_NOTICE
    from posttrain.registry import CARD

    stem = out.with_suffix("")
    written = [stem.with_name(stem.name + ".Modelfile"), stem.with_name(stem.name + ".README.md")]
    written[0].write_text(modelfile(registry, entry, out, tokenizer, lora_over))
    shutil.copy(entry.path / CARD, written[1])
    notice = registry.get(entry.base).path / GEMMA_NOTICE
    if notice.is_file():
        written.append(stem.with_name(stem.name + "." + GEMMA_NOTICE))
        shutil.copy(notice, written[-1])
    return written
