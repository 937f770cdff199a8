"""Where each tensor of a GGUF file lies, read from its header alone. `gguf.GGUFReader` parses every
metadata value into NumPy views first, which takes ~17 CPU-seconds on Gemma's 262,144-token
vocabulary; skipping the values takes a fraction of a second. The file layout is GGUF v2/v3's
(https://github.com/ggml-org/ggml/blob/master/docs/gguf.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posttrain.errors import WorkbenchError

# value type -> its fixed size in bytes (8: string, 9: array are sized by their content)
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4


class GGUFIndexError(WorkbenchError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGML's order: shape[0] is the row length
    type: int  # a gguf.GGMLQuantizationType value
    start: int  # the data's byte offset in the file


def _skip(data: memoryview, pos: int, kind: int) -> int:
    if kind in _SIZES:
        return pos + _SIZES[kind]
    if kind == _STRING:
        return pos + 8 + struct.unpack_from("<Q", data, pos)[0]
    if kind == _ARRAY:
        item, count = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if item in _SIZES:
            return pos + count * _SIZES[item]
        for _ in range(count):
            pos = _skip(data, pos, item)
        return pos
    raise GGUFIndexError(f"unknown GGUF value type {kind} at byte {pos}")


def _string(data: memoryview, pos: int) -> tuple[str, int]:
    size = struct.unpack_from("<Q", data, pos)[0]
    return bytes(data[pos + 8:pos + 8 + size]).decode("utf-8"), pos + 8 + size


@dataclass(frozen=True)
class Header:
    architecture: str | None  # general.architecture
    tensors: dict[str, TensorInfo]


def header(path: str | Path) -> Header:
    """The architecture and every tensor's name, shape, type and byte offset, from the header of the
    GGUF at `path`."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    data = memoryview(raw)
    if bytes(data[:4]) != b"GGUF":
        raise GGUFIndexError(f"{path}: not a GGUF file")
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    if version < 2:
        raise GGUFIndexError(f"{path}: GGUF version {version} is too old (2 or later)")
    pos, alignment, architecture = 24, 32, None
    for _ in range(n_kv):
        key, pos = _string(data, pos)
        kind = struct.unpack_from("<I", data, pos)[0]
        if key == "general.alignment" and kind == _UINT32:
            alignment = struct.unpack_from("<I", data, pos + 4)[0]
        if key == "general.architecture" and kind == _STRING:
            architecture = _string(data, pos + 4)[0]
        pos = _skip(data, pos + 4, kind)
    infos = []
    for _ in range(n_tensors):
        name, pos = _string(data, pos)
        dims = struct.unpack_from("<I", data, pos)[0]
        shape = struct.unpack_from(f"<{dims}Q", data, pos + 4)
        kind, offset = struct.unpack_from("<IQ", data, pos + 4 + 8 * dims)
        pos += 4 + 8 * dims + 12
        infos.append((name, tuple(shape), kind, offset))
    base = -(-pos // alignment) * alignment
    return Header(architecture, {name: TensorInfo(name, shape, kind, base + offset) for name, shape, kind, offset in infos})


class Rows:
    """A 2-D tensor of a GGUF file (token_embd: one row per token), its rows dequantized on demand."""

    def __init__(self, path: str | Path, name: str):
        import gguf

        info = header(path).tensors.get(name)
        if info is None or len(info.shape) != 2:
            raise GGUFIndexError(f"{path}: no 2-D tensor {name!r}")
        self.type = gguf.GGMLQuantizationType(info.type)
        block, size = gguf.GGML_QUANT_SIZES[self.type]
        self.table = np.memmap(path, dtype=np.uint8, mode="r", offset=info.start, shape=(info.shape[1], info.shape[0] // block * size))

    def __getitem__(self, ids) -> np.ndarray:
        """[len(ids), row length], float32."""
        from gguf.quants import dequantize

        picked = np.asarray(self.table[np.asarray(ids, dtype=np.int64)])
        return np.asarray(dequantize(picked, self.type), dtype=np.float32).reshape(len(picked), -1)
