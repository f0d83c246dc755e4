"""Embedding providers reached over HTTP: OpenAI-compatible APIs and Ollama."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
from evorag.tools.embedding._base import normalize
from evorag.tools.resilience import CircuitBreaker, retry_call

from evorag.errors import ConfigError, ModelError


class _Retryable(Exception):
    """A rate limit or server error: worth another try after a pause."""


class _HttpEmbedder:
    dim: int
    name: str
    setting_hint: str

    def __init__(self, *, model: str, base_url: str, batch_size: int, timeout: float, headers: dict) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.batch_size = batch_size
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._breaker = CircuitBreaker(f"embedding provider at {base_url}", failure_threshold=3, reset_after=30.0)
        self.dim = 0  # learned from the first answer; probe() fills it before a collection is opened

    def _post(self, path: str, body: dict) -> dict:
        url = f"{self.base_url}{path}"

        def post() -> httpx.Response:
            response = self._client.post(url, json=body)
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(f"{response.status_code}: {response.text[:200]}")
            return response

        try:
            response = retry_call(post, retry_on=(httpx.TransportError, _Retryable), attempts=3,
                                  breaker=self._breaker)
        except (httpx.HTTPError, _Retryable, ConnectionError) as exc:
            raise ModelError(f"embedding provider unreachable at {url}: {exc}", hint=self.setting_hint) from exc
        if response.status_code in (401, 403):
            raise ConfigError(f"embedding provider refused the credentials ({response.status_code})",
                              hint=self.setting_hint)
        if response.status_code >= 400:
            raise ModelError(f"embedding provider answered {response.status_code}: {response.text[:200]}",
                             hint=self.setting_hint)
        return response.json()

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._embed_batch(list(texts[start : start + self.batch_size])))
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = normalize(np.asarray(rows, dtype=np.float32))
        self.dim = vectors.shape[1]
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def probe(self) -> None:
        """Ask for one embedding so ``dim`` is known; raises a clear error if the provider is down."""
        self.embed_documents(["dimension probe"])


class OpenAIEmbedder(_HttpEmbedder):
    """Any OpenAI-compatible /v1/embeddings endpoint (OpenAI, vLLM, llama.cpp server, Ollama's /v1)."""

    setting_hint = "check EVORAG_OPENAI_API_KEY, EVORAG_OPENAI_BASE_URL and EVORAG_EMBEDDING_MODEL"

    def __init__(self, *, model: str, base_url: str, api_key: str | None, batch_size: int = 64,
                 timeout: float = 60.0) -> None:
        if not api_key and "api.openai.com" in base_url:
            raise ConfigError("the openai embedder needs an API key", hint="set EVORAG_OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(model=model, base_url=base_url, batch_size=batch_size, timeout=timeout, headers=headers)
        self.name = f"openai:{model}"

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        data = self._post("/embeddings", {"model": self.model, "input": texts})
        return [item["embedding"] for item in sorted(data["data"], key=lambda item: item["index"])]


class OllamaEmbedder(_HttpEmbedder):
    setting_hint = "check EVORAG_OLLAMA_URL and EVORAG_EMBEDDING_MODEL (is `ollama serve` running?)"

    def __init__(self, *, model: str, base_url: str, batch_size: int = 64, timeout: float = 60.0) -> None:
        super().__init__(model=model, base_url=base_url, batch_size=batch_size, timeout=timeout, headers={})
        self.name = f"ollama:{model}"

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        return self._post("/api/embed", {"model": self.model, "input": texts})["embeddings"]
