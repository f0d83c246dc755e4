"""``Evorag``: the application's one object. It composes the use case modules and forwards to them.

Every public method is one use case with typed arguments and a typed result, and the place where interfaces
(the CLI, the MCP server, the UI) and Python callers enter. The work is done in the use case modules
(_knowledge, _quality, _toolset, _approvals, _teams, _admin); this class holds no logic of its own. A new
use case is a new module with a class taking the ``ServiceContext``, one attribute below, and its methods
forwarded here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from evorag.principals import Principal, Role, UserRecord, local_principal
from evorag.service._admin import AdminService, BackupResult, NewCredentials, RestoreResult
from evorag.service._approvals import ApprovalsService
from evorag.service._components import Components
from evorag.service._context import ServiceContext
from evorag.service._jobs import CrawlJob
from evorag.service._knowledge import KnowledgeService
from evorag.service._quality import Evaluation, MetricsReport, QualityService
from evorag.service._toolset import Rollback, ToolsetService
from evorag.service._writer import WriterSlot
from evorag.settings import Settings, load_settings
from evorag.tools.answering import Answer
from evorag.tools.approvals import ApprovalRequest, Approver
from evorag.tools.catalog import SourceRecord
from evorag.tools.crawl_job import CrawlReport, ProgressCallback
from evorag.tools.evolution import EvolutionOutcome
from evorag.tools.plugins import ToolManifest, Version
from evorag.tools.regression_gate import DEFAULT_TOLERANCE
from evorag.tools.types import CrawlRequest, Hit

if TYPE_CHECKING:
    from evorag.service._teams import TeamsService
    from evorag.teams import CheckResult, GapProposal, GapReport, HealingReport

EventCallback = Callable[[object], None]


class Evorag:
    """evorag's Python API. Thread-safe for concurrent searches and answers; one writer at a time.

    ``settings`` (default: from the environment and evorag.toml, with ``overrides``); ``principal`` acts when a
    call names none (default: the local OS user as admin); ``model_client`` (an AutoGen ChatCompletionClient,
    named ``model_name`` in reports) replaces the configured language model for answers and agent teams.
    """

    def __init__(self, settings: Settings | None = None, *, principal: Principal | None = None,
                 model_client: Any = None, model_name: str | None = None, **overrides: object) -> None:
        self.settings = settings or load_settings(**overrides)
        self.principal = principal or local_principal()
        self.writer = WriterSlot()
        self.parts = Components(self.settings, writer=self.writer, model_client=model_client, model_name=model_name)
        self._context = ServiceContext(self.settings, self.parts, self.writer, self.principal)
        self.knowledge = KnowledgeService(self._context)
        self.quality = QualityService(self._context, self.knowledge)
        self.toolset = ToolsetService(self._context)
        self.approvals = ApprovalsService(self._context)
        self.admin = AdminService(self._context, self.knowledge)
        self.parts.retrieval_gate = self.quality.retrieval_gate

    @functools.cached_property
    def teams(self) -> TeamsService:
        """The team use cases, built on first use: they load AutoGen AgentChat (~0.3 s)."""
        from evorag.service._teams import TeamsService  # see the docstring

        return TeamsService(self._context, self.knowledge)

    # Lifecycle
    def close(self) -> None:
        self.knowledge.jobs.close()
        self.parts.close()

    async def aclose(self) -> None:
        """Cancel this service's running crawl jobs (each recorded as cancelled), then close."""
        await self.knowledge.acancel_crawl_jobs()
        self.parts.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def override(self, *, model_client: Any, model_name: str | None = None) -> Iterator[Self]:
        """Use ``model_client`` (named ``model_name``) for every answer and team run inside the block."""
        with self.parts.override(model_client=model_client, model_name=model_name):
            yield self

    # The parts, for callers that work below the use cases (benchmarks, tests, the health of a home)
    @property
    def catalog(self):
        return self.parts.catalog

    @property
    def store(self):
        return self.parts.store

    @property
    def embedder(self):
        return self.parts.embedder

    @property
    def metrics(self):
        return self.parts.metrics

    @property
    def answerer(self):
        return self.parts.answerer

    @property
    def evolution(self):
        """The evolution pipeline: gates, approvals, audit log, tool repository and registry."""
        return self.parts.pipeline

    @property
    def registry(self):
        return self.parts.registry

    @property
    def memory_store(self):
        return self.parts.memory

    @property
    def principals(self):
        return self.parts.principals

    # Knowledge
    def crawl(self, request: CrawlRequest, on_progress: ProgressCallback | None = None, *,
              principal: Principal | None = None) -> CrawlReport:
        return self.knowledge.crawl(request, on_progress, principal=principal)

    async def acrawl(self, request: CrawlRequest, on_progress: ProgressCallback | None = None, *,
                     principal: Principal | None = None) -> CrawlReport:
        return await self.knowledge.acrawl(request, on_progress, principal=principal)

    async def start_crawl(self, request: CrawlRequest, *, on_progress: ProgressCallback | None = None,
                          principal: Principal | None = None) -> CrawlJob:
        return await self.knowledge.start_crawl(request, on_progress=on_progress, principal=principal)

    def crawl_job(self, job_id: str, *, principal: Principal | None = None) -> CrawlJob:
        return self.knowledge.crawl_job(job_id, principal=principal)

    def crawl_jobs(self, *, principal: Principal | None = None) -> list[CrawlJob]:
        return self.knowledge.crawl_jobs(principal=principal)

    async def wait_crawl_job(self, job_id: str, timeout: float, *, on_change=None,
                             principal: Principal | None = None) -> CrawlJob:
        return await self.knowledge.wait_crawl_job(job_id, timeout, on_change=on_change, principal=principal)

    def cancel_crawl_job(self, job_id: str, *, principal: Principal | None = None) -> CrawlJob:
        return self.knowledge.cancel_crawl_job(job_id, principal=principal)

    async def acancel_crawl_jobs(self) -> None:
        await self.knowledge.acancel_crawl_jobs()

    def search(self, query: str, *, source: str | None = None, limit: int = 10, code: bool = False,
               principal: Principal | None = None) -> list[Hit]:
        return self.knowledge.search(query, source=source, limit=limit, code=code, principal=principal)

    def ask(self, question: str, *, source: str | None = None, evaluate: bool = True, reference: str | None = None,
            relevance: dict | None = None, principal: Principal | None = None) -> Answer:
        return self.knowledge.ask(question, source=source, evaluate=evaluate, reference=reference,
                                  relevance=relevance, principal=principal)

    async def aask(self, question: str, *, source: str | None = None, evaluate: bool = True,
                   reference: str | None = None, relevance: dict | None = None,
                   principal: Principal | None = None) -> Answer:
        return await self.knowledge.aask(question, source=source, evaluate=evaluate, reference=reference,
                                         relevance=relevance, principal=principal)

    def sources(self, *, principal: Principal | None = None) -> list[SourceRecord]:
        return self.knowledge.sources(principal=principal)

    def source_pages(self, name: str, *, principal: Principal | None = None) -> list[str]:
        return self.knowledge.source_pages(name, principal=principal)

    def remove_source(self, name: str, *, principal: Principal | None = None) -> None:
        self.knowledge.remove_source(name, principal=principal)

    # Quality
    def metrics_report(self, *, last: int = 20, html: Path | None = None,
                       principal: Principal | None = None) -> MetricsReport:
        return self.quality.metrics_report(last=last, html=html, principal=principal)

    def evaluate(self, dataset: Path, *, source: str | None = None, max_queries: int | None = None,
                 answers: bool = True, baseline: Path | None = None, save_baseline: Path | None = None,
                 tolerance: float = DEFAULT_TOLERANCE, on_index_progress: Callable[[int, int], None] | None = None,
                 principal: Principal | None = None) -> Evaluation:
        return self.quality.evaluate(dataset, source=source, max_queries=max_queries, answers=answers,
                                     baseline=baseline, save_baseline=save_baseline, tolerance=tolerance,
                                     on_index_progress=on_index_progress, principal=principal)

    # The deployed tool set
    def add_tool(self, path: Path, *, request: str = "", approver: Approver | None = None,
                 principal: Principal | None = None) -> EvolutionOutcome:
        return self.toolset.add_tool(path, request=request, approver=approver, principal=principal)

    async def aadd_tool(self, path: Path, *, request: str = "", approver: Approver | None = None,
                        principal: Principal | None = None) -> EvolutionOutcome:
        return await self.toolset.aadd_tool(path, request=request, approver=approver, principal=principal)

    def tools(self, *, principal: Principal | None = None) -> list[ToolManifest]:
        return self.toolset.tools(principal=principal)

    def tool_docs(self, *, principal: Principal | None = None) -> str:
        return self.toolset.tool_docs(principal=principal)

    def tool_set_checkpoint(self, *, principal: Principal | None = None) -> str:
        return self.toolset.tool_set_checkpoint(principal=principal)

    def call_tool(self, name: str, arguments: dict[str, Any], *, principal: Principal | None = None) -> Any:
        return self.toolset.call_tool(name, arguments, principal=principal)

    def versions(self, *, principal: Principal | None = None) -> list[Version]:
        return self.toolset.versions(principal=principal)

    def rollback(self, version_id: str, *, principal: Principal | None = None) -> Rollback:
        return self.toolset.rollback(version_id, principal=principal)

    def evolution_log(self, *, last: int = 500, principal: Principal | None = None) -> list[dict]:
        return self.toolset.evolution_log(last=last, principal=principal)

    # Approvals
    def pending_approvals(self, *, principal: Principal | None = None) -> list[ApprovalRequest]:
        return self.approvals.pending(principal=principal)

    def decide_approval(self, approval_id: str, *, approve: bool, token: str | None = None, reason: str = "",
                        ask_token: Callable[[ApprovalRequest], str] | None = None,
                        principal: Principal | None = None) -> ApprovalRequest | EvolutionOutcome:
        return self.approvals.decide(approval_id, approve=approve, token=token, reason=reason, ask_token=ask_token,
                                     principal=principal)

    # Teams
    async def aevolve(self, request: str, *, approver: Approver, docs: Sequence[str] = (),
                      on_event: EventCallback | None = None, model_client: Any = None,
                      principal: Principal | None = None) -> EvolutionOutcome:
        return await self.teams.aevolve(request, approver=approver, docs=docs, on_event=on_event,
                                        model_client=model_client, principal=principal)

    async def aheal(self, description: str, *, approver: Approver, on_event: EventCallback | None = None,
                    model_client: Any = None, principal: Principal | None = None) -> HealingReport:
        return await self.teams.aheal(description, approver=approver, on_event=on_event, model_client=model_client,
                                      principal=principal)

    async def ahealth_checks(self, *, principal: Principal | None = None) -> list[CheckResult]:
        return await self.teams.ahealth_checks(principal=principal)

    def find_gaps(self, *, threshold: float = 0.5, principal: Principal | None = None) -> list[GapProposal]:
        return self.teams.find_gaps(threshold=threshold, principal=principal)

    async def afill_gaps(self, proposals: list[GapProposal], *, approver: Approver, max_pages: int | None = None,
                         on_event: EventCallback | None = None, principal: Principal | None = None) -> GapReport:
        return await self.teams.afill_gaps(proposals, approver=approver, max_pages=max_pages, on_event=on_event,
                                           principal=principal)

    async def agaps(self, *, threshold: float = 0.5, crawl: bool = False, approver: Approver | None = None,
                    on_event: EventCallback | None = None, principal: Principal | None = None) -> GapReport:
        return await self.teams.agaps(threshold=threshold, crawl=crawl, approver=approver, on_event=on_event,
                                      principal=principal)

    async def aconverse(self, task: str, *, user_input: Callable | None = None, on_event: EventCallback | None = None,
                        max_messages: int = 20, model_client: Any = None,
                        principal: Principal | None = None) -> list[dict]:
        return await self.teams.aconverse(task, user_input=user_input, on_event=on_event, max_messages=max_messages,
                                          model_client=model_client, principal=principal)

    async def arun_spec(self, path: Path, *, on_event: EventCallback | None = None,
                        principal: Principal | None = None) -> dict:
        return await self.teams.arun_spec(path, on_event=on_event, principal=principal)

    async def aserve_agents(self, names: Sequence[str], *, on_ready: Callable[[str], None] | None = None,
                            model_client: Any = None, principal: Principal | None = None) -> None:
        await self.teams.aserve_agents(names, on_ready=on_ready, model_client=model_client, principal=principal)

    @staticmethod
    def serve_agent_host(host: str, port: int, *, insecure_remote: bool = False,
                         on_ready: Callable[[str], None] | None = None) -> None:
        """Serve AutoGen's gRPC agent runtime host (``evorag agents-host``) until stopped; needs no home."""
        from evorag.teams import serve_host  # AutoGen: see ``teams``

        serve_host(host, port, insecure_remote=insecure_remote, on_ready=on_ready)

    # Administration
    def backup(self, dest: Path, *, include_secret: bool = False, principal: Principal | None = None) -> BackupResult:
        return self.admin.backup(dest, include_secret=include_secret, principal=principal)

    def restore(self, archive: Path, *, force: bool = False, use_backup_secret: bool = False, gates: bool = True,
                principal: Principal | None = None) -> RestoreResult:
        return self.admin.restore(archive, force=force, use_backup_secret=use_backup_secret, gates=gates,
                                  principal=principal)

    def config(self, *, principal: Principal | None = None) -> dict[str, Any]:
        return self.admin.config(principal=principal)

    def users(self, *, principal: Principal | None = None) -> list[UserRecord]:
        return self.admin.users(principal=principal)

    def add_user(self, name: str, role: Role | str, *, password: Callable[[], str] | None = None,
                 principal: Principal | None = None) -> NewCredentials:
        return self.admin.add_user(name, role, password=password, principal=principal)

    def remove_user(self, name: str, *, principal: Principal | None = None) -> None:
        self.admin.remove_user(name, principal=principal)

    def rotate_token(self, name: str, *, principal: Principal | None = None) -> NewCredentials:
        return self.admin.rotate_token(name, principal=principal)

    def set_user_password(self, name: str, password: Callable[[], str], *,
                          principal: Principal | None = None) -> None:
        self.admin.set_user_password(name, password, principal=principal)
