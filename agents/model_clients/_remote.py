"""AutoGen's OpenAI and Ollama clients, with their failures turned into evorag errors.

Each client is a thin subclass, so it is still an ``OpenAIChatCompletionClient`` /
``OllamaChatCompletionClient`` for AutoGen (dump_component gives the upstream class). Only
``create`` and ``create_stream`` change: an unreachable endpoint becomes ModelError naming the URL
setting, a rejected key or unknown model becomes ConfigError naming that setting, any other
provider error becomes ModelError. Cancellation and programming errors pass through unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
from autogen_core.models import CreateResult
from autogen_ext.models.ollama import OllamaChatCompletionClient
from autogen_ext.models.openai import OpenAIChatCompletionClient

from evorag.errors import ConfigError, EvoragError, ModelError


def _openai_error(exc: Exception, base_url: str, model: str) -> EvoragError | None:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ModelError(
            f"the model endpoint {base_url} timed out", hint="raise EVORAG_LLM_TIMEOUT or check the server"
        )
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(
            f"cannot reach the model endpoint {base_url}",
            hint="start the server or fix EVORAG_LLM_BASE_URL",
        )
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return ConfigError(
            f"the model endpoint {base_url} rejected the API key", hint="fix EVORAG_LLM_API_KEY"
        )
    if isinstance(exc, openai.NotFoundError):
        return ConfigError(
            f"the model endpoint {base_url} does not serve model {model!r}", hint="fix EVORAG_LLM_MODEL"
        )
    if isinstance(exc, openai.APIStatusError):
        return ModelError(f"the model endpoint {base_url} answered HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, openai.OpenAIError):
        return ModelError(f"the model endpoint {base_url} failed: {exc}")
    return None


def _ollama_error(exc: Exception, host: str, model: str) -> EvoragError | None:
    import ollama

    if isinstance(exc, (ConnectionError, httpx.TransportError)):
        return ModelError(
            f"cannot reach Ollama at {host}", hint="start 'ollama serve' or fix EVORAG_OLLAMA_URL"
        )
    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404:
            return ConfigError(
                f"Ollama at {host} has no model {model!r}",
                hint=f"run 'ollama pull {model}' or fix EVORAG_LLM_MODEL",
            )
        return ModelError(f"Ollama at {host} answered HTTP {exc.status_code}: {exc.error}")
    return None


class _TranslatesErrors:
    """Mixin for a ChatCompletionClient: provider exceptions out of create/create_stream become evorag errors."""

    def _translate(self, exc: Exception) -> EvoragError | None:
        raise NotImplementedError

    async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
        try:
            return await super().create(*args, **kwargs)  # type: ignore[misc]
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from exc

    async def create_stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        try:
            async for item in super().create_stream(*args, **kwargs):  # type: ignore[misc]
                yield item
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from exc


class EvoragOpenAIChatCompletionClient(_TranslatesErrors, OpenAIChatCompletionClient):
    """OpenAIChatCompletionClient for any OpenAI-compatible endpoint, raising evorag errors."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._endpoint = str(kwargs.get("base_url") or "https://api.openai.com/v1")
        self._model_name = str(kwargs["model"])

    def _translate(self, exc: Exception) -> EvoragError | None:
        return _openai_error(exc, self._endpoint, self._model_name)


class EvoragOllamaChatCompletionClient(_TranslatesErrors, OllamaChatCompletionClient):
    """OllamaChatCompletionClient raising evorag errors."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._endpoint = str(kwargs.get("host") or "http://127.0.0.1:11434")
        self._model_name = str(kwargs["model"])

    def _translate(self, exc: Exception) -> EvoragError | None:
        return _ollama_error(exc, self._endpoint, self._model_name)
