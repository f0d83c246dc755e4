"""all-MiniLM-L6-v2's forward pass for one query, in numpy: a search never imports torch.

Importing torch and building the SentenceTransformer takes seconds on a small machine, which every cold
``evorag search`` paid for one short text. The model is small (6 layers, width 384): numpy runs one query in
milliseconds from the same ``model.safetensors`` (memory-mapped, so only the query's token rows and the
layer weights are read) and the same ``tokenizer.json``. Documents are still embedded by torch in batches;
queries embedded here land within 1e-4 cosine of torch's vectors (tests/test_query_embedding.py).

Why not ONNX Runtime on an exported graph: exporting needs the ``onnx`` package (whose current releases need
a newer protobuf than evorag's other dependencies allow), a first run that imports torch anyway and a cache
that can go stale, and onnxruntime's import + session load + first query took 1.3 s where numpy took 0.6 s
(measured on a busy 2-core machine, before the weights were memory-mapped, which cut numpy's share further).

Only the architecture of this model is implemented: a BERT encoder with absolute positions, exact GELU,
mean pooling and normalization. ``MiniLMQueryEncoder`` checks the model's configuration and raises
``QueryEncoderUnavailable`` for anything else, and the caller falls back to torch.
"""

from __future__ import annotations

import json
import mmap
import threading
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8")}
_MODULES = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize")


class QueryEncoderUnavailable(Exception):
    """The model folder is not one this encoder reproduces exactly (or is unreadable): use torch."""


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QueryEncoderUnavailable(f"cannot read {path.name}: {exc}") from exc


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as read-only arrays over a memory map (nothing is copied).

    The format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
    byte range, then the raw little-endian data.
    """
    try:
        with path.open("rb") as handle:
            buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        header_size = int.from_bytes(buffer[:8], "little")
        header = json.loads(buffer[8 : 8 + header_size])
    except (OSError, ValueError) as exc:
        raise QueryEncoderUnavailable(f"cannot read {path.name}: {exc}") from exc
    start = 8 + header_size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise QueryEncoderUnavailable(f"tensor {name} has dtype {info.get('dtype')}, not float32")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or start + end > len(buffer):
            raise QueryEncoderUnavailable(f"tensor {name} does not fit its byte range in {path.name}")
        tensors[name] = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + begin).reshape(shape)
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz & Stegun 7.1.26): below float32's resolution of GELU's output, and numpy
    has no erf of its own."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's "gelu" is the exact one, x * Phi(x), not the tanh approximation.
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + np.float32(eps)) * weight + bias


class _Layer:
    """One encoder layer's weights as ``x @ w`` operands: first transposed views of the memory map.

    Row-major copies make a short query ~35% faster (22 ms against 35 ms on a busy 2-core machine) but cost
    ~90 ms to make (43 MB read and rearranged): a cold command embeds one query and keeps the views; a
    process that embeds a second one copies them then (``compact``).
    """

    def __init__(self, tensors: dict[str, np.ndarray], prefix: str, width: int, inner: int) -> None:
        def get(name: str) -> np.ndarray:
            return tensors[prefix + name]

        shapes = {"attention.self.query.weight": (width, width), "attention.self.key.weight": (width, width),
                  "attention.self.value.weight": (width, width), "attention.output.dense.weight": (width, width),
                  "intermediate.dense.weight": (inner, width), "output.dense.weight": (width, inner)}
        for name, shape in shapes.items():
            if get(name).shape != shape:
                raise QueryEncoderUnavailable(f"tensor {prefix}{name} is {get(name).shape}, not {shape}")
        self.query = (get("attention.self.query.weight").T, get("attention.self.query.bias"))
        self.key = (get("attention.self.key.weight").T, get("attention.self.key.bias"))
        self.value = (get("attention.self.value.weight").T, get("attention.self.value.bias"))
        self.out = (get("attention.output.dense.weight").T, get("attention.output.dense.bias"))
        self.norm1 = (get("attention.output.LayerNorm.weight"), get("attention.output.LayerNorm.bias"))
        self.up = (get("intermediate.dense.weight").T, get("intermediate.dense.bias"))
        self.down = (get("output.dense.weight").T, get("output.dense.bias"))
        self.norm2 = (get("output.LayerNorm.weight"), get("output.LayerNorm.bias"))

    def compact(self) -> None:
        # Each attribute is swapped whole: a query running meanwhile sees either layout, both correct.
        for name in ("query", "key", "value", "out", "up", "down"):
            weight, bias = getattr(self, name)
            setattr(self, name, (np.ascontiguousarray(weight), bias))


def _dense(x: np.ndarray, weight_and_bias: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    weight, bias = weight_and_bias
    return x @ weight + bias


class _SingleThreadedBlas:
    """BLAS on one thread during a query, restored after it; queries take turns.

    A query is a few rows times 384: splitting such products across threads gains little, and on a busy
    machine OpenBLAS' spinning threads made a query 10-30x slower (measured: 0.7 s against 0.04 s). Whether
    OpenBLAS keeps the setting per process or per calling thread varies, so each query sets and restores it
    itself, under a lock: concurrent queries cannot restore it under each other (the forward pass holds the
    GIL for much of its ~10 ms anyway).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._controller = None
        self._limiter = None

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            if self._controller is None:
                from threadpoolctl import ThreadpoolController

                self._controller = ThreadpoolController()
            self._limiter = self._controller.limit(limits=1, user_api="blas")
        except ImportError:  # threadpoolctl comes with scikit-learn; without it BLAS keeps its threads
            self._limiter = None
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._limiter is not None:
                self._limiter.restore_original_limits()
        finally:
            self._limiter = None
            self._lock.release()


_blas_threads = _SingleThreadedBlas()


class MiniLMQueryEncoder:
    """Embeds one text with a sentence-transformers BERT model folder (mean pooling, normalized)."""

    def __init__(self, model_dir: Path) -> None:
        """Read and check the model folder; raises QueryEncoderUnavailable for anything it cannot reproduce."""
        config = _read_json(model_dir / "config.json")
        modules = _read_json(model_dir / "modules.json")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        sentence_config = _read_json(model_dir / "sentence_bert_config.json")
        if [module.get("type") for module in modules] != list(_MODULES):
            raise QueryEncoderUnavailable("the model is not Transformer + Pooling + Normalize")
        if not pooling.get("pooling_mode_mean_tokens") or any(
                value for key, value in pooling.items() if key.startswith("pooling_mode_") and key != "pooling_mode_mean_tokens"):
            raise QueryEncoderUnavailable("the model's pooling is not the mean of its tokens")
        if (config.get("model_type"), config.get("hidden_act"), config.get("position_embedding_type", "absolute")) != (
                "bert", "gelu", "absolute"):
            raise QueryEncoderUnavailable("the model is not a BERT encoder with exact GELU and absolute positions")
        self.width = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        if self.width % self.heads:
            raise QueryEncoderUnavailable("the model's width does not split into its attention heads")
        self.eps = float(config["layer_norm_eps"])
        self.max_tokens = min(int(sentence_config["max_seq_length"]), int(config["max_position_embeddings"]))

        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises its own Exception subclass for a bad file
            raise QueryEncoderUnavailable(f"cannot read tokenizer.json: {exc}") from exc
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._tokenizer.no_padding()

        tensors = read_safetensors(model_dir / "model.safetensors")
        try:
            self._words = tensors["embeddings.word_embeddings.weight"]
            self._positions = tensors["embeddings.position_embeddings.weight"]
            self._token_type = tensors["embeddings.token_type_embeddings.weight"][0]
            self._embedding_norm = (tensors["embeddings.LayerNorm.weight"], tensors["embeddings.LayerNorm.bias"])
            self._layers = [_Layer(tensors, f"encoder.layer.{index}.", self.width, int(config["intermediate_size"]))
                            for index in range(int(config["num_hidden_layers"]))]
        except KeyError as exc:
            raise QueryEncoderUnavailable(f"the weights lack tensor {exc}") from exc
        if self._words.shape[1] != self.width or self._positions.shape[0] < self.max_tokens:
            raise QueryEncoderUnavailable("the weights do not match the model's configuration")
        self._queries = 0
        self._compact_lock = threading.Lock()

    def token_ids(self, text: str) -> list[int]:
        """The word pieces the model sees: [CLS] ... [SEP], truncated to ``max_tokens`` like the torch path."""
        return self._tokenizer.encode(text).ids

    def embed(self, text: str) -> np.ndarray:
        """The unit-length float32 vector of ``text``."""
        ids = np.asarray(self.token_ids(text), dtype=np.int64)
        with self._compact_lock:
            self._queries += 1
            if self._queries == 2:  # not a one-query command: worth the faster layout (see _Layer)
                for layer in self._layers:
                    layer.compact()
        with _blas_threads:
            pooled = self._encode(ids).mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)

    def _encode(self, ids: np.ndarray) -> np.ndarray:
        count, width, heads = len(ids), self.width, self.heads
        head_width = width // heads
        scale = np.float32(1.0 / np.sqrt(head_width))
        x = self._words[ids] + self._positions[:count] + self._token_type
        x = _layer_norm(x, *self._embedding_norm, self.eps)
        for layer in self._layers:
            # (tokens, width) -> (heads, tokens, head_width)
            query, key, value = (_dense(x, part).reshape(count, heads, head_width).transpose(1, 0, 2)
                                 for part in (layer.query, layer.key, layer.value))
            scores = (query @ key.transpose(0, 2, 1)) * scale  # one sequence, no padding: nothing to mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ value).transpose(1, 0, 2).reshape(count, width)
            x = _layer_norm(_dense(context, layer.out) + x, *layer.norm1, self.eps)
            x = _layer_norm(_dense(_gelu(_dense(x, layer.up)), layer.down) + x, *layer.norm2, self.eps)
        return x
