"""The parts one service is made of, each built on first use, once, thread-safely.

Opening the index loads the embedding model (seconds), the evolution pipeline opens a git repository, the
model client may load a local model: a command that needs none of them (``evorag sources``, ``evorag users``)
never pays for them, and the parts it does need are built where they are first needed (use cases build them
off the event loop).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from evorag.approval_token import token_digests, withhold_from_process
from evorag.principals import PrincipalStore
from evorag.service._writer import WriterSlot
from evorag.settings import Settings
from evorag.tools.approvals import ApprovalStore
from evorag.tools.audit import AuditLog
from evorag.tools.catalog import Catalog
from evorag.tools.costs import CostLedger
from evorag.tools.embedding import Embedder, create_embedder
from evorag.tools.memory import EvolutionMemory
from evorag.tools.rate_limit import CallRateLimiter, SlidingWindowLimiter
from evorag.tools.search import HybridSearcher
from evorag.tools.usage_log import FILENAME as USAGE_FILENAME
from evorag.tools.usage_log import UsageLog

if TYPE_CHECKING:
    # Built on first use, and imported there: a search never loads the answerer, the evaluator, the evolution
    # pipeline (the sandbox, the gates, the plugin repository) or the webhooks (httpx); see issue 14.
    from evorag.tools.answering import Answerer, ExtractiveAnswerer
    from evorag.tools.evaluation import Evaluator
    from evorag.tools.evolution import EvolutionPipeline, GateVerdict
    from evorag.tools.indexer import Indexer
    from evorag.tools.metrics_store import MetricsStore
    from evorag.tools.plugins import ToolRegistry
    from evorag.tools.webhooks import WebhookNotifier


class Components:
    """The lazily built parts of one service. ``model_client`` replaces the configured language model for
    every use (the answerer and the agent teams): the test seam, and a way to bring one's own client."""

    def __init__(self, settings: Settings, *, writer: WriterSlot, model_client: Any = None,
                 model_name: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock  # UTC epoch seconds for the records that are read by day or period (costs, usage)
        self.writer = writer
        self._model_client = model_client
        self._model_name = model_name
        self._parts: dict[str, Any] = {}
        self._lock = threading.RLock()
        # The quality use case's regression gate over the golden set; wired by the service, run by the pipeline.
        self.retrieval_gate: Callable[[], GateVerdict] | None = None

    def _part(self, name: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._parts:
                # The home is created by the first part that needs it, not by constructing the service: a
                # refused restore into a new home leaves no empty directory behind.
                self.settings.ensure_home()
                self._parts[name] = build()
            return self._parts[name]

    # Knowledge
    @property
    def catalog(self) -> Catalog:
        return self._part("catalog", lambda: Catalog(self.settings.catalog_path))

    @property
    def embedder(self) -> Embedder:
        return self._part("embedder", lambda: create_embedder(self.settings))

    @property
    def store(self):
        """The vector store, open on the embedder's collection (loads the embedding model when the dimension
        has to be probed)."""
        return self._part("store", self._open_store)

    def _open_store(self):
        # qdrant-client takes ~0.7 s to import: commands that never open the index do without it.
        from evorag.tools.stores import store_from_settings

        embedder = self.embedder
        if not embedder.dim and hasattr(embedder, "probe"):
            embedder.probe()
        store = store_from_settings(self.settings)
        store.open(embedder.name, embedder.dim)
        return store

    def indexer(self) -> Indexer:
        from evorag.tools.indexer import Indexer  # see TYPE_CHECKING above

        return Indexer(self.store, self.embedder, self.catalog, max_chars=self.settings.chunk_max_chars,
                       min_chars=self.settings.chunk_min_chars)

    def searcher(self) -> HybridSearcher:
        return HybridSearcher(self.store, self.embedder)

    # Answers and their quality
    @property
    def metrics(self) -> MetricsStore:
        from evorag.tools.metrics_store import MetricsStore  # see TYPE_CHECKING above

        return self._part("metrics", lambda: MetricsStore(self.settings.metrics_path))

    @property
    def evaluator(self) -> Evaluator:
        def build() -> Evaluator:
            from evorag.tools.evaluation import Evaluator, EvaluatorConfig, Weights  # see TYPE_CHECKING above

            config = EvaluatorConfig()
            config.weights = Weights.from_mapping(self.settings.eval_weights)
            embed = self.embedder.embed_documents if self.settings.eval_embeddings else None
            return Evaluator(config, embed=embed)

        return self._part("evaluator", build)

    def model_client(self, purpose: str = "answer"):
        """The given model client, else the configured one for ``purpose`` (see agents.model_clients). With
        ``llm_provider=none`` answers have none (they are extractive); anything else raises ConfigError."""
        if self._model_client is not None:
            # One wrapper per client handed in: every use of it is the same object, as it was before metering.
            given = self._model_client
            with self._lock:
                cached = self._parts.get("metered_given")
                if cached is None or cached[0] is not given or cached[1] != self.model_name():
                    cached = self._parts["metered_given"] = (given, self.model_name(), self.metered(given))
            return cached[2]
        if self.settings.llm_provider == "none" and purpose == "answer":
            return None
        # AutoGen's model layer takes ~0.3 s to import: only answering and team runs need it.
        from evorag.agents.model_clients import create_model_client

        return self.metered(create_model_client(self.settings, purpose=purpose))

    def metered(self, client: Any, model_name: str | None = None) -> Any:
        """``client`` with every call's tokens recorded in the cost ledger and the daily budget enforced."""
        from evorag.agents.model_clients._metered import metered  # AutoGen: see model_client

        return metered(client, ledger=self.costs, model=model_name or self.model_name())

    @property
    def costs(self) -> CostLedger:
        """Every model call's tokens and cost, by principal, operation, model and agent."""
        return self._part("costs", lambda: CostLedger(self.settings.home / "costs.sqlite3",
                                                      prices=self.settings.model_prices,
                                                      daily_budget=self.settings.daily_budget_usd,
                                                      clock=self.clock))

    def model_name(self) -> str:
        if self._model_client is not None:
            return self._model_name or type(self._model_client).__name__
        from evorag.agents.model_clients import model_label  # see model_client

        return model_label(self.settings)

    @property
    def answerer(self) -> Answerer:
        from evorag.tools.answering import Answerer  # see TYPE_CHECKING above

        return self._part("answerer", lambda: Answerer(self.model_client("answer"), model_name=self.model_name(),
                                                       timeout=self.settings.answer_timeout,
                                                       extractive=self.extractive))

    @property
    def extractive(self) -> ExtractiveAnswerer:
        """Extractive answers, with the index's embedding model; kept across answerers for its sentence vectors."""
        from evorag.tools.answering import ExtractiveAnswerer, ExtractiveConfig  # see TYPE_CHECKING above

        return self._part("extractive", lambda: ExtractiveAnswerer(
            self.embedder.embed_documents, ExtractiveConfig(min_similarity=self.settings.answer_min_similarity)))

    @contextlib.contextmanager
    def override(self, *, model_client: Any, model_name: str | None = None) -> Iterator[None]:
        """Use ``model_client`` for everything inside the block (a fresh answerer, so a fresh breaker)."""
        with self._lock:
            saved = (self._model_client, self._model_name, self._parts.pop("answerer", None))
            self._model_client, self._model_name = model_client, model_name
        try:
            yield
        finally:
            with self._lock:
                self._model_client, self._model_name = saved[0], saved[1]
                self._parts.pop("answerer", None)
                if saved[2] is not None:
                    self._parts["answerer"] = saved[2]

    # Self-evolution
    @property
    def pipeline(self) -> EvolutionPipeline:
        """The gates, approvals, audit log, tool repository and registry (opens the plugins' git repository)."""
        return self._part("pipeline", self._build_pipeline)

    def _build_pipeline(self) -> EvolutionPipeline:
        from evorag.tools.evolution import EvolutionPipeline  # see TYPE_CHECKING above
        from evorag.tools.plugins import PluginRepository, ToolRegistry
        from evorag.tools.sandbox import default_sandbox
        from evorag.tools.tool_envs import ToolEnvironments

        settings = self.settings
        # From here on this process runs agents, the sandbox and pip: none of them may inherit the human
        # approval token. The settings already hold what verifying it needs.
        withhold_from_process()
        secrets = [v.get_secret_value() for v in (settings.approval_token, settings.openai_api_key,
                                                  settings.qdrant_api_key) if v is not None]
        repository = PluginRepository(settings.plugins_path)
        sandbox_factory = lambda: default_sandbox(settings)
        environments = ToolEnvironments(settings.envs_path, timeout=settings.tool_env_timeout)
        gate = self.retrieval_gate
        approvals = ApprovalStore(settings.home / "approvals.sqlite3", token_digests=token_digests(settings))
        return EvolutionPipeline(
            repository=repository,
            registry=ToolRegistry(repository, sandbox_factory, environments=environments),
            environments=environments,
            sandbox_factory=sandbox_factory,
            approvals=approvals,
            audit=AuditLog(settings.audit_path, known_secrets=secrets,
                           on_entry=lambda entry: self._notify(entry, approvals)),
            staging_dir=settings.home / "staging",
            dependency_allowlist=settings.dependency_allowlist,
            resolve_dependencies=settings.resolve_dependencies,
            retrieval_gate=gate if settings.gate_baseline and gate is not None else None,
            approval_ttl=settings.approval_timeout,
            min_coverage=settings.min_coverage,
            memory=self.memory,
            writer=self.writer,
        )

    @property
    def registry(self) -> ToolRegistry:
        return self.pipeline.registry

    @property
    def memory(self) -> EvolutionMemory:
        """Long-term memory of evolution requests and outcomes (mem0 loads on first use)."""
        return self._part("memory", lambda: EvolutionMemory(self.settings))

    @property
    def rate_limiter(self) -> SlidingWindowLimiter:
        """The hourly per-principal limit on evolutions (and hand-added tools), shared by every process of the home."""
        return self._part("rate_limiter", lambda: SlidingWindowLimiter(
            self.settings.home / "rate_limit.sqlite3", limit=self.settings.evolutions_per_hour,
            limits_by_role=self.settings.evolutions_per_hour_by_role))

    @property
    def api_limiter(self) -> CallRateLimiter:
        """The per-principal limit on API calls per minute, in this process (see evorag.service._quotas)."""
        return self._part("api_limiter", lambda: CallRateLimiter(limit=self.settings.api_calls_per_minute))

    def built(self, name: str) -> Any:
        """The part ``name`` if it was built already, else None (readers that must not build it, e.g. metrics)."""
        with self._lock:
            return self._parts.get(name)

    # Notifications
    @property
    def webhooks(self) -> WebhookNotifier:
        """Signed notifications of events to the registered webhooks (deliveries run off the caller's thread)."""
        # See TYPE_CHECKING above.
        from evorag.tools.webhooks import DeliveryPolicy, WebhookNotifier, WebhookStore

        settings = self.settings
        return self._part("webhooks", lambda: WebhookNotifier(
            WebhookStore(settings.home / "webhooks.sqlite3"),
            DeliveryPolicy(max_attempts=settings.webhook_max_attempts, backoff=settings.webhook_backoff_seconds,
                           timeout=settings.webhook_timeout, disable_after=settings.webhook_disable_after)))

    def _notify(self, entry: dict, approvals: ApprovalStore) -> None:
        """Webhook events from the audit trail: a change left waiting for an approver, a deploy, a rollback.
        Approvers get what the change is and its risk; the diff and the tests stay in evorag."""
        event = entry.get("event")
        principal = (entry.get("principal") or {}).get("name")
        if event == "approval_pending":
            request = approvals.get(entry["approval_id"])
            self.webhooks.emit("approval_pending", {
                "approval_id": request.id, "tool": request.tool, "risk": request.risk, "summary": request.summary,
                "requested_by": request.requested_by, "expires_at": request.expires_at})
        elif event == "deployed":
            self.webhooks.emit("deploy", {"tool": entry.get("tool"), "version": entry.get("version"),
                                          "run_id": entry.get("run_id"), "by": principal})
        elif event == "rollback":
            self.webhooks.emit("rollback", {"to_version": entry.get("version"),
                                            "new_checkpoint": entry.get("new_checkpoint"),
                                            "removed": entry.get("removed"), "by": principal})

    # Usage
    @property
    def usage_log(self) -> UsageLog:
        """Every search, answer, tool call and evolution request, with who asked and how it went."""
        settings = self.settings
        secrets = [v.get_secret_value() for v in (settings.approval_token, settings.openai_api_key,
                                                  settings.qdrant_api_key) if v is not None]
        return self._part("usage_log", lambda: UsageLog(settings.home / USAGE_FILENAME, known_secrets=secrets,
                                                                 clock=self.clock))

    # Principals
    @property
    def principals(self) -> PrincipalStore:
        """The users, roles and (hashed) credentials under the home."""
        return self._part("principals", lambda: PrincipalStore(self.settings.principals_path))

    def close(self) -> None:
        """Close every part that was opened, newest first; using a part again opens it again."""
        with self._lock:
            parts, self._parts = self._parts, {}
        for part in reversed(list(parts.values())):
            close = getattr(part, "close", None)
            if callable(close):
                close()
