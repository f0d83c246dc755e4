"""A model client that meters another: every call's tokens and seconds go to the cost ledger, attributed to the
principal, operation and agent acting (evorag.tools.costs), and calls to priced models are refused once the
daily budget is spent. The one place where model usage is recorded: the service wraps every client it hands out
(the answerer's and the agent teams') in one of these.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from autogen_core.models import ChatCompletionClient, CreateResult, ModelInfo, RequestUsage
from evorag.tools.costs import CostLedger


def _tokens(usage: RequestUsage | None) -> tuple[int, int]:
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


class MeteredChatCompletionClient(ChatCompletionClient):
    """Forwards everything to ``inner``; ``model`` names it in the ledger and selects its price."""

    component_type = "model"

    def __init__(self, inner: ChatCompletionClient, *, ledger: CostLedger, model: str) -> None:
        self.inner = inner
        self.ledger = ledger
        self.model = model

    async def create(self, messages: Sequence[Any], **kwargs: Any) -> CreateResult:
        await asyncio.to_thread(self.ledger.check_budget, self.model)
        started = time.perf_counter()
        try:
            result = await self.inner.create(messages, **kwargs)
        except BaseException:
            await self._record(None, started, ok=False)
            raise
        await self._record(result.usage, started, ok=True)
        return result

    async def create_stream(self, messages: Sequence[Any], **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        await asyncio.to_thread(self.ledger.check_budget, self.model)
        started = time.perf_counter()
        usage, ok = None, False
        try:
            async for item in self.inner.create_stream(messages, **kwargs):
                if isinstance(item, CreateResult):
                    usage, ok = item.usage, True
                yield item
        finally:
            await self._record(usage, started, ok=ok)

    async def _record(self, usage: RequestUsage | None, started: float, *, ok: bool) -> None:
        prompt, completion = _tokens(usage)
        seconds = round(time.perf_counter() - started, 4)
        # A thread of its own: the ledger is SQLite, and this runs on the event loop.
        await asyncio.to_thread(self.ledger.record, model=self.model, prompt_tokens=prompt,
                                               completion_tokens=completion, seconds=seconds, ok=ok)

    # Everything else is the inner client's
    async def close(self) -> None:
        await self.inner.close()

    def actual_usage(self) -> RequestUsage:
        return self.inner.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self.inner.total_usage()

    def count_tokens(self, messages: Sequence[Any], **kwargs: Any) -> int:
        return self.inner.count_tokens(messages, **kwargs)

    def remaining_tokens(self, messages: Sequence[Any], **kwargs: Any) -> int:
        return self.inner.remaining_tokens(messages, **kwargs)

    @property
    def capabilities(self):  # type: ignore[override]
        return self.inner.capabilities

    @property
    def model_info(self) -> ModelInfo:
        return self.inner.model_info

    def dump_component(self):  # a serialised team names the real client, not this wrapper
        return self.inner.dump_component()

    def __getattr__(self, name: str) -> Any:
        # Attributes a caller knows the inner client by (e.g. a replay client's script position).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def metered(client: ChatCompletionClient | None, *, ledger: CostLedger, model: str) -> ChatCompletionClient | None:
    """``client`` metered (None stays None; a client already metered is not wrapped twice)."""
    if client is None or isinstance(client, MeteredChatCompletionClient):
        return client
    return MeteredChatCompletionClient(client, ledger=ledger, model=model)
