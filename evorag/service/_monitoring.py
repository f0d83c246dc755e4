"""Monitoring use cases: anomalies in the answer history (evorag.tools.metric_anomalies), model costs
(evorag.tools.costs), the status of a home (resources, queue, cost today, recent anomalies) and the health checks
behind ``/healthz`` (the store, the catalog, the model client)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psutil

from evorag.errors import UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.costs import CostReport
from evorag.tools.metric_anomalies import Alert, scan
from evorag.tools.resources import snapshot

MAX_RECORDS = 100_000


@dataclass(slots=True)
class AnomalyReport:
    """Alerts over the newest ``records`` answers, oldest first; ``values`` says how many values each stream
    had (a stream with fewer than ``warmup`` is still learning)."""

    records: int
    warmup: int
    values: dict[str, int]
    alerts: list[Alert] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"records": self.records, "warmup": self.warmup, "values": self.values,
                "alerts": [alert.to_dict() for alert in self.alerts]}


@dataclass(slots=True)
class Status:
    """A home at a glance. ``queue_waiting`` is None when the queue could not be read."""

    resources: dict
    queue_waiting: int | None
    queue_running: int | None
    cost_today_usd: float
    model_calls_today: int
    budget_usd: float | None
    recent_anomalies: list[Alert]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["recent_anomalies"] = [alert.to_dict() for alert in self.recent_anomalies]
        return data


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass(slots=True)
class Health:
    """The health checks; ``ok`` only when every one passed."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_dict(self) -> dict:
        return {"status": "ok" if self.ok else "failing", "checks": [asdict(check) for check in self.checks]}


class MonitoringService:
    def __init__(self, ctx: ServiceContext, queued: Callable[[], list] | None = None) -> None:
        self._ctx = ctx
        self._queued = queued  # the unfinished queue requests, when the service has a queue

    def anomalies(self, *, last: int = 2000, warmup: int = 48, notify: bool = False,
                  principal: Principal | None = None) -> AnomalyReport:
        """Anomalies in answer quality, grounding, retrieval nDCG and latency over the newest ``last`` answers
        (reader role). ``notify`` (operator role) sends each alert not sent before as an ``anomaly`` webhook
        event, once per home."""
        self._ctx.check(principal, "metrics")
        if notify:
            self._ctx.check(principal, "heal")
        if not 1 <= last <= MAX_RECORDS:
            raise UserError(f"last must be between 1 and {MAX_RECORDS}, got {last}")
        if not 8 <= warmup <= 10_000:
            raise UserError(f"warmup must be between 8 and 10000, got {warmup}")
        records = self._ctx.parts.metrics.history(last=last, kind="answer")
        alerts, values = scan(records, warmup=warmup)
        if notify and records:
            self._notify(alerts, newest=int(records[-1]["id"]))
        return AnomalyReport(records=len(records), warmup=warmup, values=values, alerts=alerts)

    def _notify(self, alerts: list[Alert], *, newest: int) -> None:
        webhooks = self._ctx.parts.webhooks
        sent_up_to = webhooks.store.advance_cursor("anomalies", newest)
        for alert in alerts:
            if alert.record_id is not None and alert.record_id > sent_up_to:
                webhooks.emit("anomaly", alert.to_dict())

    def costs(self, *, day: str | None = None, principal: Principal | None = None) -> CostReport:
        """Model calls, tokens and cost of ``day`` (YYYY-MM-DD, UTC; default today) by principal, operation,
        model and agent, with the daily budget (operator role)."""
        self._ctx.check(principal, "costs")
        if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise UserError(f"day must be YYYY-MM-DD, got {day!r}")
        return self._ctx.parts.costs.report(day)

    def status(self, *, anomalies_last: int = 500, principal: Principal | None = None) -> Status:
        """CPU, memory and disk, the request queue, today's model cost and the anomalies among the newest
        ``anomalies_last`` answers (reader role). Opens neither the index nor a model."""
        self._ctx.check(principal, "metrics")
        settings = self._ctx.settings
        settings.ensure_home()
        waiting = running = None
        if self._queued is not None:
            try:
                pending = self._queued()
            except Exception:  # noqa: BLE001 - a status shows what it can: the queue is one line of it
                pending = None
            if pending is not None:
                waiting = sum(1 for r in pending if getattr(r, "status", None) in ("queued", "waiting"))
                running = sum(1 for r in pending if getattr(r, "status", None) == "running")
        report = self._ctx.parts.costs.report()
        alerts, _ = scan(self._ctx.parts.metrics.history(last=anomalies_last, kind="answer"))
        resources = snapshot(settings.home)
        # snapshot()'s CPU figure is "since the last call", meaningless in a fresh process: sample 0.2 s.
        resources["cpu_percent"] = psutil.cpu_percent(interval=0.2)
        resources["cpu_count"] = psutil.cpu_count()
        return Status(resources=resources, queue_waiting=waiting, queue_running=running,
                      cost_today_usd=report.total_usd, model_calls_today=report.calls,
                      budget_usd=report.budget_usd, recent_anomalies=alerts[-10:])

    def health(self) -> Health:
        """The checks ``/healthz`` answers with (blocking; the first call may load the embedding model to open
        the store). Open to anyone: it says whether the parts work, not what they hold."""
        return Health([_timed("catalog", self._check_catalog), _timed("store", self._check_store),
                       _timed("model", self._check_model)])

    def _check_catalog(self) -> str:
        return f"{len(self._ctx.parts.catalog.sources())} sources"

    def _check_store(self) -> str:
        return f"{self._ctx.parts.store.count()} chunks"

    def _check_model(self) -> str:
        parts = self._ctx.parts
        client = parts.model_client("answer")
        if client is None:
            return "no language model: answers are extractive"
        ledger = parts.costs
        if ledger.daily_budget is not None:
            ledger.check_budget(parts.model_name())  # a spent budget stops the model: not healthy
        return parts.model_name()


def _timed(name: str, check: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail, ok = check(), True
    except Exception as exc:  # noqa: BLE001 - a failing check is the answer, not an error of the health endpoint
        detail, ok = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}", False
    return Check(name, ok, detail, round(time.perf_counter() - started, 3))
