"""What the team flows use of the application, as small ports: the service implements them and hands them
in (``TeamPorts``); the flows never see the service itself.

Parts from the tools layer (the evolution pipeline, the rate limiter) are handed in as they are; what only the
application can do (crawl and ask with its checks, repair the index under its writer slot) comes through the
``Knowledge`` and ``IndexHealth`` protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from autogen_core.models import ChatCompletionClient
from evorag.teams._registry import PluginRegistry
from evorag.tools.answering import Answer
from evorag.tools.crawl_job import CrawlReport
from evorag.tools.evolution import EvolutionPipeline
from evorag.tools.types import CrawlRequest, Hit

from evorag.settings import Settings


class Knowledge(Protocol):
    """Crawl, search and ask, with the application's checks (roles, URL guard, writer slot, metrics)."""

    async def acrawl(self, request: CrawlRequest) -> CrawlReport: ...

    def search(self, query: str, *, source: str | None = None, limit: int = 10) -> list[Hit]: ...

    async def aask(self, question: str) -> Answer: ...


class IndexHealth(Protocol):
    """The index's crash-safety ledger: what killed crawls left half-written, and repairing it."""

    def half_written_pages(self) -> int: ...

    def repair_index(self) -> int: ...


class RateLimit(Protocol):
    def acquire(self, name: str) -> int: ...

    def release(self, slot: int) -> None: ...


@dataclass(frozen=True, slots=True)
class TeamPorts:
    """Everything a team flow may use. ``model_client`` builds the agents' model client on first need (a flow
    that needs no model never builds one); ``registry`` has the agents and teams, evorag's and the plugins'."""

    settings: Settings
    knowledge: Knowledge
    index: IndexHealth
    pipeline: EvolutionPipeline
    limiter: RateLimit
    model_client: Callable[[], ChatCompletionClient]
    registry: PluginRegistry
