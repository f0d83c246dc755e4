"""The ``forbidden`` provider: a model client whose every request fails loudly.

It is the test suite's default (tests/conftest.py): a test that forgot to hand in its scripted model client
must fail, not quietly load the local model or fall back to an extractive answer. How it fails depends on who
asks, so that nothing in between can swallow it:

* the answerer (``purpose="answer"``) turns any ``Exception`` from a model into an extractive answer, so its
  client raises ``ForbiddenModelRequest``, a ``BaseException``;
* agent teams (any other purpose) run agents on AutoGen's runtime, which only logs a ``BaseException`` from
  an agent and then waits forever, while an ``Exception`` ends the run with an error: their client raises
  ``ForbiddenModelError``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from typing import Any

from autogen_core.models import CreateResult
from autogen_ext.models.replay import ReplayChatCompletionClient

from evorag.errors import InternalError


class ForbiddenModelRequest(BaseException):
    """The answerer asked a language model while ``llm_provider`` is ``forbidden`` (a request that must not
    happen, not an error to handle)."""


class ForbiddenModelError(InternalError):
    """An agent asked a language model while ``llm_provider`` is ``forbidden``."""


class ForbiddenChatCompletionClient(ReplayChatCompletionClient):
    def __init__(self, purpose: str) -> None:
        super().__init__([])
        self.purpose = purpose

    def _refuse(self) -> BaseException:
        test = os.environ.get("PYTEST_CURRENT_TEST")
        message = (f"a language model request for the {self.purpose} while EVORAG_LLM_PROVIDER=forbidden"
                   + (f" (in {test})" if test else "")
                   + ": hand a model client in (Evorag(model_client=...), model_client=... of a team run) "
                   "or choose a provider")
        return ForbiddenModelRequest(message) if self.purpose == "answer" else ForbiddenModelError(message)

    async def create(self, messages: Any, **kwargs: Any) -> CreateResult:  # type: ignore[override]
        raise self._refuse()

    async def create_stream(self, messages: Any, **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:  # type: ignore[override]
        raise self._refuse()
        yield  # pragma: no cover - makes this an async generator like the method it replaces
