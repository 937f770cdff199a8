"""llama.cpp, the engine people run small models in on CPUs, through `llama-cpp-python` (built from
its PyPI sdist by `bash scripts/install.sh --llama-cpp`): loading a GGUF (with GGUF LoRAs over it),
greedy decoding of one or many sequences at once through its batch API, and quantizing. Optional:
everything here says in one line when llama.cpp is not installed."""

from __future__ import annotations

from posttrain.errors import WorkbenchError

PIN = "llama-cpp-python==0.3.36"
INSTALL = "bash scripts/install.sh --llama-cpp"  # builds PIN from source (about 25 minutes on 2 cores)


class LlamaCppMissing(WorkbenchError):
    """llama.cpp is not installed here."""


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def require(what: str):
    """The llama_cpp module, or a one-line error saying what needed it and how to install it."""
    try:
        import llama_cpp
    except ImportError:
        raise LlamaCppMissing(f"{what} needs llama.cpp, which is not installed: {INSTALL} "
                              f"(builds {PIN} from its sdist)") from None
    return llama_cpp
