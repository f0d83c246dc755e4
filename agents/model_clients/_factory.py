"""One factory for every model client: the answerer and the agent team call it with the same settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from autogen_core.models import ChatCompletionClient, ModelFamily, ModelInfo
from evorag.agents.model_clients._forbidden import ForbiddenChatCompletionClient
from evorag.agents.model_clients._gguf import SMOLLM2_FILE
from evorag.agents.model_clients._local import LocalChatCompletionClient
from evorag.agents.model_clients._replay import replay_client_from_file

from evorag.errors import ConfigError

if TYPE_CHECKING:
    from evorag.settings import Settings

PROVIDERS = ("local", "openai", "ollama", "replay", "none", "forbidden")
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "ollama": "llama3.2"}


def _unknown_model_info(settings: Settings) -> ModelInfo:
    """What we assume of a model AutoGen has no entry for: text only, tools only if the settings say so."""
    return ModelInfo(
        vision=False,
        function_calling=settings.llm_function_calling,
        json_output=False,
        family=ModelFamily.UNKNOWN,
        structured_output=False,
    )


def model_label(settings: Settings) -> str:
    """A short name for reports, e.g. ``local:SmolLM2-135M-Instruct.Q4_1`` or ``openai:gpt-4o-mini``."""
    provider = settings.llm_provider
    if provider == "local":
        return f"local:{Path(settings.llm_model or SMOLLM2_FILE).stem}"
    if provider == "replay":
        return f"replay:{settings.replay_file.name if settings.replay_file else '?'}"
    if provider in ("none", "forbidden"):
        return provider
    return f"{provider}:{settings.llm_model or DEFAULT_MODELS.get(provider, '?')}"


def create_model_client(settings: Settings, *, purpose: str = "answer") -> ChatCompletionClient:
    """The ChatCompletionClient that ``settings.llm_provider`` names.

    ``purpose`` says who asks ("answer", "agents", ...). Every purpose gets the same model today;
    the argument lets one get its own model later without touching the callers.

    Construction is cheap and offline for every provider: the local model loads on its first
    request, remote endpoints are first contacted on the first request. Raises ConfigError for
    an unknown provider, a missing API key for api.openai.com, or a missing replay file setting;
    UserError for a bad replay file. Remote clients raise ModelError from create() when their
    endpoint is unreachable (no retries, so that happens at once on a refused connection).
    """
    provider = settings.llm_provider
    if provider == "local":
        return LocalChatCompletionClient(
            model_path=settings.llm_model,
            cache_dir=str(settings.home / "cache" / "llm"),
            runtime=settings.llm_runtime,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            threads=settings.llm_threads,
        )
    if provider == "openai":
        return _openai_client(settings)
    if provider == "ollama":
        return _ollama_client(settings)
    if provider == "replay":
        if settings.replay_file is None:
            raise ConfigError(
                "llm_provider is replay but no replay file is set", hint="set EVORAG_REPLAY_FILE"
            )
        return replay_client_from_file(settings.replay_file)
    if provider == "forbidden":
        return ForbiddenChatCompletionClient(purpose)
    if provider == "none":
        raise ConfigError(f"no language model for the {purpose}: llm_provider is none",
                          hint=f"set EVORAG_LLM_PROVIDER to one of {', '.join(PROVIDERS[:4])}")
    raise ConfigError(
        f"unknown language model provider {provider!r}",
        hint=f"set EVORAG_LLM_PROVIDER to one of {', '.join(PROVIDERS)}",
    )


def _openai_client(settings: Settings) -> ChatCompletionClient:
    # The openai package takes seconds to import: only this provider needs it.
    from evorag.agents.model_clients._remote import EvoragOpenAIChatCompletionClient

    base_url = settings.llm_base_url or settings.openai_base_url
    secret = settings.llm_api_key or settings.openai_api_key
    host = (urlparse(base_url).hostname or "").lower()
    if secret is None or not secret.get_secret_value():
        if host == "api.openai.com" or host.endswith(".openai.com"):
            raise ConfigError("the openai provider needs an API key", hint="set EVORAG_LLM_API_KEY")
        api_key = "not-needed"  # local OpenAI-compatible servers ignore it, the client library requires one
    else:
        api_key = secret.get_secret_value()
    model = settings.llm_model or DEFAULT_MODELS["openai"]
    common = {
        "model": model,
        "base_url": base_url,
        "api_key": api_key,
        "max_retries": 0,  # the answerer has its own timeout and circuit breaker: fail fast
        "timeout": settings.llm_timeout,
        "max_tokens": settings.llm_max_tokens,
        "temperature": settings.llm_temperature,
    }
    try:
        return EvoragOpenAIChatCompletionClient(**common)
    except ValueError:
        # AutoGen knows only OpenAI's own model names; anything else needs a declared ModelInfo.
        return EvoragOpenAIChatCompletionClient(**common, model_info=_unknown_model_info(settings))


def _ollama_client(settings: Settings) -> ChatCompletionClient:
    # The ollama package: see _openai_client.
    from evorag.agents.model_clients._remote import EvoragOllamaChatCompletionClient

    model = settings.llm_model or DEFAULT_MODELS["ollama"]
    common = {
        "model": model,
        "host": settings.ollama_url,
        "options": {"num_predict": settings.llm_max_tokens, "temperature": settings.llm_temperature},
    }
    try:
        return EvoragOllamaChatCompletionClient(**common)
    except ValueError:
        return EvoragOllamaChatCompletionClient(**common, model_info=_unknown_model_info(settings))
