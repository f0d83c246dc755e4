"""Operations: structured logs and Prometheus metrics for the servers.

* ``configure_logging(json=, level=, secrets=)``: one stderr handler on the root logger, JSON lines
  (``ts``, ``level``, ``logger``, ``message`` and any ``extra=`` fields) or plain text. ``level``
  applies to evorag's loggers; other libraries only log warnings and above (httpx, the MCP SDK and
  uvicorn are chatty at INFO). Known secret values are masked in every line as a last line of defence:
  the code itself never logs tool arguments or tokens.
* ``ServerMetrics``: the counters and histograms of one server, in a private registry (several servers
  in one process, as in tests, do not collide), rendered in the Prometheus text format.
* ``MetricsMiddleware``: counts HTTP responses by method, path and status, including the 401/403
  answers of the auth guard it wraps.
* ``UsageCollector``: model tokens and cost by principal and operation (read from the home's cost ledger at
  each scrape, so every process of the home is counted) and quota refusals by limit and principal (this
  process). Costs per principal are for the operator role ("costs"): ``ServerMetrics.render`` leaves them
  out for a reader.
"""

from __future__ import annotations

import json as _json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDACTED = "***"
# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)
# Seconds: searches take milliseconds, answers with a local model and evolutions take minutes.
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
HTTP_PATHS = frozenset({"/mcp", "/metrics", "/healthz"})
HTTP_METHODS = frozenset({"GET", "POST", "DELETE", "OPTIONS", "HEAD"})

# The *_created series double every counter for a timestamp Prometheus does not need (process-wide switch).
disable_created_metrics()


# Logging


class _Masking:
    """Replaces known secret values (and their JSON-escaped forms) in formatted lines."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= 4:  # masking "a" would mangle every line
                forms.add(secret)
                forms.add(_json.dumps(secret)[1:-1])
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, extras, exc (traceback)."""

    def __init__(self, mask: _Masking | None = None) -> None:
        super().__init__()
        self._mask = mask or _Masking(())

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._mask(_json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """``time level logger: message`` with the secrets masked."""

    def __init__(self, mask: _Masking | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._mask = mask or _Masking(())

    def format(self, record: logging.LogRecord) -> str:
        return self._mask(super().format(record))


class _EvoragHandler(logging.StreamHandler):
    """Marks the handler ``configure_logging`` installed, so calling it again replaces it."""


def configure_logging(json: bool = False, level: str | int = "INFO", *, secrets: Iterable[str] = ()) -> None:
    """Send logs to stderr as JSON lines (``json=True``) or plain text; idempotent.

    ``level`` (a name such as ``"info"`` or a number) applies to the ``evorag`` loggers; other libraries
    log WARNING and above. ``secrets`` are masked in every line. Raises ValueError for an unknown level
    name. Call it before building the MCP server: FastMCP configures the root logger itself when it
    finds no handler there.
    """
    if isinstance(level, str):
        if level.upper() not in LEVELS:
            raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
        level = getattr(logging, level.upper())
    mask = _Masking(secrets)
    handler = _EvoragHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(mask) if json else TextFormatter(mask))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _EvoragHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    logging.getLogger("evorag").setLevel(level)


# Metrics


class ServerMetrics:
    """The metrics of one evorag server. Thread-safe (prometheus_client's metrics are)."""

    def __init__(self, usage: UsageCollector | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Who used how much: a registry of its own, rendered only for principals who may see costs.
        self.usage_registry = CollectorRegistry(auto_describe=False)
        if usage is not None:
            self.usage_registry.register(usage)
        ProcessCollector(registry=self.registry)  # memory, CPU, open files of the server process
        self.tool_duration = Histogram(
            "evorag_mcp_tool_duration_seconds",
            "Duration of MCP tool calls; its _count is the number of calls.",
            ["tool", "outcome"],
            buckets=TOOL_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "evorag_http_requests",
            "HTTP responses of the MCP server by method, path and status.",
            ["method", "path", "status"],
            registry=self.registry,
        )
        self.crawl_jobs_started = Counter(
            "evorag_crawl_jobs_started", "Crawl jobs started over MCP.", registry=self.registry
        )
        self.crawl_jobs_finished = Counter(
            "evorag_crawl_jobs_finished",
            "Crawl jobs by final status (done, failed, cancelled).",
            ["status"],
            registry=self.registry,
        )
        self.evolutions = Counter(
            "evorag_evolution_outcomes",
            "Outcomes of evolve_rag_capability (deployed, rejected, pending).",
            ["status"],
            registry=self.registry,
        )
        self.approval_decisions = Counter(
            "evorag_approval_decisions",
            "Approve/reject decisions over MCP by resulting status.",
            ["decision", "status"],
            registry=self.registry,
        )

    def observe_tool(self, tool: str, ok: bool, seconds: float) -> None:
        self.tool_duration.labels(tool=tool, outcome="ok" if ok else "error").observe(seconds)

    def count_http(self, method: str, path: str, status: int) -> None:
        # Fixed label sets: a client must not be able to grow the series by inventing paths or methods.
        self.http_requests.labels(
            method=method if method in HTTP_METHODS else "other",
            path=path if path in HTTP_PATHS else "other",
            status=str(status),
        ).inc()

    def render(self, *, usage: bool = True) -> tuple[bytes, str]:
        """The text exposition and its content type; ``usage``: with the cost and quota metrics."""
        body = generate_latest(self.registry)
        if usage:
            body += generate_latest(self.usage_registry)
        return body, CONTENT_TYPE_LATEST


class UsageCollector:
    """Collected at each scrape: ``totals()`` gives rows with principal, operation, calls, prompt_tokens,
    completion_tokens and cost_usd (evorag.tools.costs.CostTotal); ``rejections()`` counts by (limit, principal)."""

    def __init__(self, totals: Callable[[], Iterable], rejections: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._totals = totals
        self._rejections = rejections

    def collect(self):
        calls = CounterMetricFamily("evorag_model_calls", "Model calls by principal and operation.",
                                    labels=["principal", "operation"])
        tokens = CounterMetricFamily("evorag_model_tokens", "Model tokens by principal, operation and kind "
                                     "(prompt, completion).", labels=["principal", "operation", "kind"])
        cost = CounterMetricFamily("evorag_model_cost_usd", "Model cost in USD (EVORAG_MODEL_PRICES) by principal "
                                   "and operation.", labels=["principal", "operation"])
        for row in self._totals():
            labels = [row.principal, row.operation]
            calls.add_metric(labels, row.calls)
            tokens.add_metric([*labels, "prompt"], row.prompt_tokens)
            tokens.add_metric([*labels, "completion"], row.completion_tokens)
            cost.add_metric(labels, row.cost_usd)
        rejected = CounterMetricFamily("evorag_quota_rejections", "Calls refused by a per-principal limit "
                                       "(evolutions_per_hour, api_calls_per_minute) in this process.",
                                       labels=["limit", "principal"])
        for (limit, principal), count in sorted(self._rejections().items()):
            rejected.add_metric([limit, principal], count)
        return [calls, tokens, cost, rejected]


class MetricsMiddleware:
    """Counts every HTTP response when it starts (streams such as GET /mcp may never end)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def counting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                self.metrics.count_http(scope.get("method", ""), scope.get("path", ""), message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            if not started:  # the server will answer 500
                self.metrics.count_http(scope.get("method", ""), scope.get("path", ""), 500)
            raise


class ToolTimer:
    """Times one tool call and records it in the metrics and one log line (never its arguments)."""

    def __init__(self, metrics: ServerMetrics, logger: logging.Logger, tool: str) -> None:
        self._metrics, self._logger, self._tool = metrics, logger, tool
        self._start = time.perf_counter()

    def done(self, error: BaseException | None = None) -> None:
        seconds = time.perf_counter() - self._start
        self._metrics.observe_tool(self._tool, error is None, seconds)
        fields: dict[str, object] = {
            "tool": self._tool,
            "duration_ms": round(seconds * 1000, 1),
            "status": "ok" if error is None else "error",
        }
        if error is not None:
            # The type only: messages can quote the arguments.
            cause = error.__cause__ or error
            fields["error"] = type(cause).__name__
        self._logger.info(
            "tool %s %s in %.1f ms", self._tool, fields["status"], fields["duration_ms"], extra=fields
        )
