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
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from evorag.principals import Principal, Role, UserRecord, local_principal
from evorag.service._accounts import AccountsService, Login
from evorag.service._components import Components
from evorag.service._context import ServiceContext
from evorag.service._feedback import FeedbackService
from evorag.service._jobs import CrawlJob
from evorag.service._knowledge import KnowledgeService
from evorag.service._monitoring import AnomalyReport, Health, MonitoringService, Status
from evorag.service._priority import Origin
from evorag.service._proposals import ProposalsService
from evorag.service._queue import QueueRequest, Schedule
from evorag.service._quotas import QuotaService
from evorag.service._recurrence import Clock
from evorag.service._requests import ChangeCallback, RequestsService
from evorag.service._usage import UsageReport, UsageService
from evorag.service._writer import WriterSlot
from evorag.settings import Settings, load_settings
from evorag.tools.approvals import ApprovalRequest, Approver, Decision
from evorag.tools.catalog import SourceRecord
from evorag.tools.costs import CostReport
from evorag.tools.proposals import MissingFeature, Proposal, WeakTopic, WeakTopicSource
from evorag.tools.regression_gate import DEFAULT_TOLERANCE
from evorag.tools.result_budget import SeenResults
from evorag.tools.types import CrawlRequest, Hit
from evorag.tools.usage_log import FeedbackRecord

if TYPE_CHECKING:
    from evorag.service._admin import AdminService, BackupResult, NewCredentials, RestoreResult
    from evorag.service._approvals import ApprovalsService
    from evorag.service._budgeted import BudgetedResultsService, BudgetedSearch
    from evorag.service._conversations import TeamTurn
    from evorag.service._environment import EnvironmentService
    from evorag.service._library import LibraryService, SourceChanges
    from evorag.service._local_sources import LocalSourcesService
    from evorag.service._quality import Evaluation, MetricsReport, QualityService
    from evorag.service._sharing import ExportResult, ImportResult, SharingService
    from evorag.service._sync import SyncReport, SyncService
    from evorag.service._teams import TeamsService
    from evorag.service._toolset import Rollback, ToolsetService
    from evorag.service._webhooks import WebhooksService
    from evorag.teams import CheckResult, GapProposal, GapReport, HealingReport, PluginInfo
    from evorag.tools.answering import Answer
    from evorag.tools.crawl_job import CrawlReport, ProgressCallback
    from evorag.tools.environment_doctor import DoctorReport
    from evorag.tools.evolution import EvolutionOutcome
    from evorag.tools.local_files import FolderLimits
    from evorag.tools.plugins import ToolManifest, Version
    from evorag.tools.usage_analysis import WeakTopic as UsageWeakTopic  # numpy: only the analysis needs it
    from evorag.tools.webhooks import DeliveryAttempt, Webhook

EventCallback = Callable[[object], None]


class Evorag:
    """evorag's Python API. Thread-safe for concurrent searches and answers; one writer at a time.

    ``settings`` (default: from the environment and evorag.toml, with ``overrides``); ``principal`` acts when a
    call names none (default: the local OS user as admin); ``model_client`` (an AutoGen ChatCompletionClient,
    named ``model_name`` in reports) replaces the configured language model for answers and agent teams.
    """

    def __init__(self, settings: Settings | None = None, *, principal: Principal | None = None,
                 model_client: Any = None, model_name: str | None = None, clock: Clock | None = None,
                 **overrides: object) -> None:
        self.settings = settings or load_settings(**overrides)
        self.principal = principal or local_principal()
        self.writer = WriterSlot()
        self.parts = Components(self.settings, writer=self.writer, model_client=model_client, model_name=model_name,
                                clock=clock.time if clock is not None else time.time)
        self._context = ServiceContext(self.settings, self.parts, self.writer, self.principal)
        self.requests = RequestsService(self._context, self, clock=clock)  # ``clock``: UTC time for schedules
        self.knowledge = KnowledgeService(self._context, self.requests)
        # quality, toolset, approvals, admin, library, sharing, budgeted, environment and webhooks are built on
        # first use (properties below): a search loads none of their modules (issue 14: cold CLI start).
        self.accounts = AccountsService(self._context)
        self.monitoring = MonitoringService(
            self._context, queued=lambda: self.requests.requests(finished=False, limit=1000),
            schedules=lambda: self.requests.store().schedules(),
            new_alerts=lambda alerts, who: [p.id for p in self.proposals.heal_from_alerts(alerts, principal=who)])
        self.usage = UsageService(self._context)
        self.feedbacks = FeedbackService(self._context)
        self.proposals = ProposalsService(self._context, self)
        self.quotas = QuotaService(self._context)
        self.parts.retrieval_gate = lambda: self.quality.retrieval_gate()

    @functools.cached_property
    def quality(self) -> QualityService:
        from evorag.service._quality import QualityService  # see __init__

        return QualityService(self._context, self.knowledge)

    @functools.cached_property
    def toolset(self) -> ToolsetService:
        from evorag.service._toolset import ToolsetService  # see __init__

        return ToolsetService(self._context)

    @functools.cached_property
    def approvals(self) -> ApprovalsService:
        from evorag.service._approvals import ApprovalsService  # see __init__

        approvals = ApprovalsService(self._context)
        approvals.on_decided.append(self.proposals.decided)
        return approvals

    @functools.cached_property
    def admin(self) -> AdminService:
        from evorag.service._admin import AdminService  # see __init__

        return AdminService(self._context, self.knowledge)

    @functools.cached_property
    def library(self) -> LibraryService:
        from evorag.service._library import LibraryService  # see __init__

        return LibraryService(self._context, self.knowledge)

    @functools.cached_property
    def sharing(self) -> SharingService:
        from evorag.service._sharing import SharingService  # see __init__

        return SharingService(self._context, self.knowledge)

    @functools.cached_property
    def budgeted(self) -> BudgetedResultsService:
        from evorag.service._budgeted import BudgetedResultsService  # see __init__

        return BudgetedResultsService(self._context, self.knowledge)

    @functools.cached_property
    def environment(self) -> EnvironmentService:
        from evorag.service._environment import EnvironmentService  # see __init__

        return EnvironmentService(self._context)

    @functools.cached_property
    def webhooks(self) -> WebhooksService:
        from evorag.service._webhooks import WebhooksService  # see __init__

        return WebhooksService(self._context)

    @functools.cached_property
    def local_sources(self) -> LocalSourcesService:
        """Local folders and git repositories, built on first use (their parsers serve no other command)."""
        from evorag.service._local_sources import LocalSourcesService  # see the docstring

        return LocalSourcesService(self._context, self.knowledge)

    @functools.cached_property
    def syncing(self) -> SyncService:
        """Syncing a project's dependency docs, built on first use (like local_sources)."""
        from evorag.service._sync import SyncService  # see the docstring

        return SyncService(self._context, self.knowledge)

    @functools.cached_property
    def teams(self) -> TeamsService:
        """The team use cases, built on first use: they load AutoGen AgentChat (~0.3 s)."""
        from evorag.service._teams import TeamsService  # see the docstring

        return TeamsService(self._context, self.knowledge)

    # Lifecycle
    def close(self) -> None:
        self.knowledge.jobs.close()
        # Background workers stop before the parts they use close; the queue's database closes too.
        self.requests.close()
        self.proposals.close()
        self.parts.close()

    async def aclose(self) -> None:
        """Stop the queue workers of this loop (what they run goes back to the queue), then close."""
        await self.knowledge.acancel_crawl_jobs()
        self.requests.close()
        self.proposals.close()
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
               max_per_page: int | None = None, principal: Principal | None = None) -> list[Hit]:
        return self.knowledge.search(query, source=source, limit=limit, code=code, max_per_page=max_per_page,
                                     principal=principal)

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

    def add_folder(self, path: str | Path, *, source: str | None = None, version: str | None = None,
                   limits: FolderLimits | None = None, on_progress: ProgressCallback | None = None,
                   principal: Principal | None = None) -> CrawlReport:
        return self.local_sources.add_folder(path, source=source, version=version, limits=limits,
                                             on_progress=on_progress, principal=principal)

    def add_git(self, repo: str, *, ref: str | None = None, source: str | None = None, version: str | None = None,
                allow_private: bool | None = None, limits: FolderLimits | None = None,
                on_progress: ProgressCallback | None = None, principal: Principal | None = None) -> CrawlReport:
        return self.local_sources.add_git(repo, ref=ref, source=source, version=version, allow_private=allow_private,
                                          limits=limits, on_progress=on_progress, principal=principal)

    def sync(self, path: str | Path = ".", *, docs_map: Path | None = None, max_pages: int | None = None,
             allow_private: bool | None = None, refresh: bool = False, registry: str | None = "https://pypi.org/pypi",
             on_entry: Callable | None = None, principal: Principal | None = None) -> SyncReport:
        return self.syncing.sync(path, docs_map=docs_map, max_pages=max_pages, allow_private=allow_private,
                                 refresh=refresh, registry=registry, on_entry=on_entry, principal=principal)

    def source_pages(self, name: str, *, principal: Principal | None = None) -> list[str]:
        return self.knowledge.source_pages(name, principal=principal)

    def remove_source(self, name: str, *, principal: Principal | None = None) -> None:
        self.knowledge.remove_source(name, principal=principal)

    # Source versions, change reports, sharing, results sized for assistants
    def source_changes(self, selector: str, *, since: str | float | None = None, limit: int = 20,
                       principal: Principal | None = None) -> SourceChanges:
        return self.library.source_changes(selector, since=since, limit=limit, principal=principal)

    def mark_latest(self, selector: str, *, principal: Principal | None = None) -> SourceRecord:
        return self.library.mark_latest(selector, principal=principal)

    def export_source(self, selector: str, dest: Path, *, principal: Principal | None = None) -> ExportResult:
        return self.sharing.export_source(selector, dest, principal=principal)

    def import_source(self, archive: Path, *, replace: bool = False,
                      principal: Principal | None = None) -> ImportResult:
        return self.sharing.import_source(archive, replace=replace, principal=principal)

    def search_within_budget(self, query: str, *, source: str | None = None, limit: int = 5, code: bool = False,
                             offset: int = 0, max_tokens: int | None = None, seen: SeenResults | None = None,
                             include_seen: bool = False, principal: Principal | None = None) -> BudgetedSearch:
        return self.budgeted.search_within_budget(query, source=source, limit=limit, code=code, offset=offset,
                                                  max_tokens=max_tokens, seen=seen, include_seen=include_seen,
                                                  principal=principal)

    async def aask_within_budget(self, question: str, *, source: str | None = None, evaluate: bool = True,
                                 max_tokens: int | None = None, seen: SeenResults | None = None,
                                 include_seen: bool = False, principal: Principal | None = None) -> dict:
        return await self.budgeted.aask_within_budget(question, source=source, evaluate=evaluate,
                                                      max_tokens=max_tokens, seen=seen, include_seen=include_seen,
                                                      principal=principal)

    def warm_up(self) -> None:
        self.knowledge.warm_up()

    # The request queue and the scheduler (evorag/service/_requests.py)
    def submit_request(self, kind: str, payload: dict | None = None, *, origin: Origin = "user", evidence: int = 0,
                       key: str | None = None, principal: Principal | None = None) -> QueueRequest:
        return self.requests.submit(kind, payload, origin=origin, evidence=evidence, key=key, principal=principal)

    async def asubmit_request(self, kind: str, payload: dict | None = None, *, run_here: bool = False,
                              origin: Origin = "user", evidence: int = 0, key: str | None = None,
                              principal: Principal | None = None) -> QueueRequest:
        return await self.requests.asubmit(kind, payload, run_here=run_here, origin=origin, evidence=evidence,
                                           key=key, principal=principal)

    def queue_request(self, request_id: str, *, principal: Principal | None = None) -> QueueRequest:
        return self.requests.request(request_id, principal=principal)

    def queue_requests(self, *, finished: bool = True, limit: int = 100,
                       principal: Principal | None = None) -> list[QueueRequest]:
        return self.requests.requests(finished=finished, limit=limit, principal=principal)

    def cancel_request(self, request_id: str, *, principal: Principal | None = None) -> QueueRequest:
        return self.requests.cancel(request_id, principal=principal)

    async def wait_request(self, request_id: str, timeout: float | None, *, on_change: ChangeCallback | None = None,
                           principal: Principal | None = None) -> QueueRequest:
        return await self.requests.wait(request_id, timeout, on_change=on_change, principal=principal)

    def schedule_source(self, name: str, spec: str, *, principal: Principal | None = None) -> Schedule:
        return self.requests.schedule_source(name, spec, principal=principal)

    def unschedule_source(self, name: str, *, principal: Principal | None = None) -> bool:
        return self.requests.unschedule_source(name, principal=principal)

    def schedules(self, *, principal: Principal | None = None) -> list[Schedule]:
        return self.requests.schedules(principal=principal)

    def source_schedules(self, *, principal: Principal | None = None) -> dict[str, Schedule]:
        return self.requests.source_schedules(principal=principal)

    async def aserve(self, stop, *, workers: int | None = None, on_ready: Callable[[str], None] | None = None) -> None:
        await self.requests.aserve(stop, workers=workers, on_ready=on_ready)

    def serve_in_background(self, *, workers: int | None = None):
        """A context manager: the scheduler and queue workers run in a thread of their own meanwhile."""
        return self.requests.background(workers=workers)

    def start_background(self, *, workers: int | None = None) -> None:
        """Start the scheduler and queue workers in a thread of their own, for servers whose start and stop are
        separate hooks (Chainlit); ``stop_background`` ends them (what runs goes back to the queue)."""
        self.requests.start_background(workers=workers)

    def stop_background(self) -> None:
        self.requests.stop_background()

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

    # Monitoring
    def anomalies(self, *, last: int = 2000, warmup: int = 48, notify: bool = False,
                  principal: Principal | None = None) -> AnomalyReport:
        return self.monitoring.anomalies(last=last, warmup=warmup, notify=notify, principal=principal)

    def costs(self, *, day: str | None = None, principal: Principal | None = None) -> CostReport:
        return self.monitoring.costs(day=day, principal=principal)

    def status(self, *, anomalies_last: int = 500, days: int = 7, principal: Principal | None = None) -> Status:
        return self.monitoring.status(anomalies_last=anomalies_last, days=days, principal=principal)

    def health(self) -> Health:
        return self.monitoring.health()

    # Quotas
    def api_call(self, principal: Principal, *, count: int = 1) -> None:
        """Count API calls of ``principal`` against EVORAG_API_CALLS_PER_MINUTE (see evorag.service._quotas)."""
        self.quotas.api_call(principal, count=count)

    # Usage analysis (evorag/service/_usage.py)
    def usage_report(self, *, since: str | float | None = None, html: Path | None = None,
                     principal: Principal | None = None) -> UsageReport:
        return self.usage.report(since=since, html=html, principal=principal)

    def usage_weak_topics(self, *, since: str | float | None = None,
                          principal: Principal | None = None) -> list[UsageWeakTopic]:
        return self.usage.weak_topics(since=since, principal=principal)

    # Feedback on answers (evorag/service/_feedback.py)
    def feedback(self, answer: int | str, value: int | str, *, comment: str = "", pages: list[str] | None = None,
                 principal: Principal | None = None) -> FeedbackRecord:
        """Thumbs up (+1, "up") or down (-1, "down") on an answer (its ``answer_id``) or a question (its text)."""
        return self.feedbacks.give(answer, value, comment=comment, pages=pages, principal=principal)

    def feedback_given(self, *, principal: Principal | None = None) -> list[FeedbackRecord]:
        return self.feedbacks.given(principal=principal)

    # Webhooks
    def add_webhook(self, url: str, events: Sequence[str], *, allow_private: bool = False,
                    principal: Principal | None = None) -> tuple[Webhook, str]:
        return self.webhooks.add(url, events, allow_private=allow_private, principal=principal)

    def list_webhooks(self, *, principal: Principal | None = None) -> list[Webhook]:
        return self.webhooks.list(principal=principal)

    def enable_webhook(self, hook_id: str, *, principal: Principal | None = None) -> Webhook:
        return self.webhooks.enable(hook_id, principal=principal)

    def remove_webhook(self, hook_id: str, *, principal: Principal | None = None) -> None:
        self.webhooks.remove(hook_id, principal=principal)

    def webhook_log(self, *, hook_id: str | None = None, last: int = 50,
                    principal: Principal | None = None) -> list[DeliveryAttempt]:
        return self.webhooks.log(hook_id=hook_id, last=last, principal=principal)

    # Proposals (evorag/service/_proposals.py)
    def make_proposals(self, *, topics: Sequence[WeakTopic] | WeakTopicSource | None = None,
                       features: Sequence[MissingFeature] | None = None, threshold: float = 0.5,
                       packages: bool = True, principal: Principal | None = None) -> list[Proposal]:
        return self.proposals.make(topics=topics, features=features, threshold=threshold, packages=packages,
                                   principal=principal)

    def list_proposals(self, *, status: str | None = None, limit: int = 100,
                       principal: Principal | None = None) -> list[Proposal]:
        return self.proposals.proposals(status=status, limit=limit, principal=principal)

    def get_proposal(self, proposal_id: str, *, principal: Principal | None = None) -> Proposal:
        return self.proposals.proposal(proposal_id, principal=principal)

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

    def retire_tool(self, selector: str, *, principal: Principal | None = None) -> Version:
        return self.toolset.retire_tool(selector, principal=principal)

    def tools_openapi(self, *, principal: Principal | None = None) -> dict:
        return self.toolset.tools_openapi(principal=principal)

    def follow_tools(self, listener: Callable[[], None], *, principal: Principal | None = None) -> Callable[[], None]:
        return self.toolset.follow_tools(listener, principal=principal)

    def refresh_tools(self, *, principal: Principal | None = None) -> bool:
        return self.toolset.refresh_tools(principal=principal)

    def versions(self, *, principal: Principal | None = None) -> list[Version]:
        return self.toolset.versions(principal=principal)

    def rollback(self, version_id: str, *, principal: Principal | None = None) -> Rollback:
        return self.toolset.rollback(version_id, principal=principal)

    def evolution_log(self, *, last: int = 500, principal: Principal | None = None) -> list[dict]:
        return self.toolset.evolution_log(last=last, principal=principal)

    def doctor(self, *, principal: Principal | None = None) -> DoctorReport:
        return self.environment.doctor(principal=principal)

    # Approvals
    def pending_approvals(self, *, principal: Principal | None = None) -> list[ApprovalRequest]:
        return self.approvals.pending(principal=principal)

    def decide_approval(self, approval_id: str, *, approve: bool, token: str | None = None, reason: str = "",
                        ask_token: Callable[[ApprovalRequest], str] | None = None,
                        principal: Principal | None = None) -> ApprovalRequest | EvolutionOutcome:
        return self.approvals.decide(approval_id, approve=approve, token=token, reason=reason, ask_token=ask_token,
                                     principal=principal)

    def record_decision(self, approval_id: str, decision: Decision) -> ApprovalRequest:
        return self.approvals.record(approval_id, decision)

    # Teams
    def installed_agents(self, *, principal: Principal | None = None) -> list[PluginInfo]:
        return self.teams.installed_agents(principal=principal)

    def installed_teams(self, *, principal: Principal | None = None) -> list[PluginInfo]:
        return self.teams.installed_teams(principal=principal)

    async def aevolve(self, request: str, *, approver: Approver, docs: Sequence[str] = (),
                      on_event: EventCallback | None = None, model_client: Any = None,
                      principal: Principal | None = None, team: str | None = None) -> EvolutionOutcome:
        return await self.teams.aevolve(request, approver=approver, docs=docs, on_event=on_event,
                                        model_client=model_client, principal=principal, team=team)

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
                        max_messages: int | None = None, model_client: Any = None, approver: Approver | None = None,
                        principal: Principal | None = None, team: str = "conversation",
                        follow_up: Callable | None = None) -> list[dict]:
        return await self.teams.aconverse(task, user_input=user_input, on_event=on_event, max_messages=max_messages,
                                          model_client=model_client, approver=approver, principal=principal,
                                          team=team, follow_up=follow_up)

    async def atalk(self, message: str, *, conversation_id: str | None = None, user_input: Callable | None = None,
                    approver: Approver | None = None, on_event: EventCallback | None = None, max_messages: int = 20,
                    model_client: Any = None, principal: Principal | None = None,
                    team: str | None = None) -> TeamTurn:
        return await self.teams.atalk(message, conversation_id=conversation_id, user_input=user_input,
                                      approver=approver, on_event=on_event, max_messages=max_messages,
                                      model_client=model_client, principal=principal, team=team)

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

    # Logging in to the UI
    def require_ui_login(self) -> None:
        self.accounts.require_login()

    def authenticate(self, username: str, password: str, *, via: str = "ui") -> Login | None:
        return self.accounts.authenticate(username, password, via=via)

    def session_principal(self, name: str, source: str | None, *, via: str = "ui") -> Principal | None:
        return self.accounts.session_principal(name, source, via=via)
