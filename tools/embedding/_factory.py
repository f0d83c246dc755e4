from __future__ import annotations

import threading

from evorag.tools.embedding._base import Embedder

from evorag.errors import ConfigError
from evorag.settings import Settings

# Local models are immutable and take seconds to load: one instance per process is shared.
_local_embedders: dict[tuple[str, int], Embedder] = {}
_local_lock = threading.Lock()


def create_embedder(settings: Settings) -> Embedder:
    """Build the embedder named by ``settings.embedder``; remote ones need ``embedding_model``."""
    kind = settings.embedder
    if kind in ("local", "onnx"):
        from evorag.tools.embedding._local import OnnxInt8Embedder, SentenceTransformerEmbedder

        key = (kind, settings.embed_batch_size)
        with _local_lock:
            if key not in _local_embedders:
                cls = SentenceTransformerEmbedder if kind == "local" else OnnxInt8Embedder
                _local_embedders[key] = cls(batch_size=settings.embed_batch_size)
            return _local_embedders[key]
    if not settings.embedding_model:
        raise ConfigError(f"the {kind} embedder needs a model name", hint="set EVORAG_EMBEDDING_MODEL")
    if kind == "openai":
        from evorag.tools.embedding._remote import OpenAIEmbedder

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIEmbedder(model=settings.embedding_model, base_url=settings.openai_base_url, api_key=key,
                              batch_size=settings.embed_batch_size)
    from evorag.tools.embedding._remote import OllamaEmbedder

    return OllamaEmbedder(model=settings.embedding_model, base_url=settings.ollama_url,
                          batch_size=settings.embed_batch_size)
