"""Monitoring use cases: anomalies in the answer history (evorag.tools.metric_anomalies), model costs
(evorag.tools.costs), the status of a home (resources, queue, schedules and their last runs, cost today and by
day, recent anomalies, the evolutions' success rate, the agents' latency and tokens) and the health checks behind
``/healthz`` (the store, the catalog, the model client)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psutil

from evorag.errors import UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.audit import AuditLog
from evorag.tools.costs import CostReport, UsageRow
from evorag.tools.metric_anomalies import Alert, scan
from evorag.tools.resources import snapshot

MAX_RECORDS = 100_000
MAX_STATUS_DAYS = 90
# How an evolution ended (EvolutionOutcome.status); "pending" waits for a person and is not decided yet.
DECIDED = ("deployed", "rejected", "model_unavailable")


@dataclass(slots=True)
class AnomalyReport:
    """Alerts over the newest ``records`` answers, oldest first; ``values`` says how many values each stream
    had (a stream with fewer than ``warmup`` is still learning)."""

    records: int
    warmup: int
    values: dict[str, int]
    alerts: list[Alert] = field(default_factory=list)
    heal_proposals: list[str] = field(default_factory=list)  # notify: ids of the heal proposals made

    def to_dict(self) -> dict:
        return {"records": self.records, "warmup": self.warmup, "values": self.values,
                "alerts": [alert.to_dict() for alert in self.alerts], "heal_proposals": self.heal_proposals}


@dataclass(slots=True)
class ScheduleRun:
    """A schedule (``refresh:SOURCE`` or ``task:NAME``), its next run and the request it last submitted as that
    request is now (``last_status`` None: it never ran, or the finished request was pruned from the queue)."""

    name: str
    spec: str
    next_due: float
    last_submitted_at: float | None
    last_status: str | None
    last_finished_at: float | None
    last_error: str | None


@dataclass(slots=True)
class EvolutionStats:
    """The evolutions that finished in the window, counted by how they ended (a ``pending`` one decided later
    counts as its decision). ``success_rate`` is deployed / decided (pending excluded), None when none was
    decided."""

    finished: int
    by_status: dict[str, int]
    success_rate: float | None


@dataclass(slots=True)
class DayCost:
    day: str
    cost_usd: float
    calls: int


@dataclass(slots=True)
class Status:
    """A home at a glance. ``queue_waiting`` is None when the queue could not be read, ``schedules`` likewise
    (then None, not empty). The evolutions, the agents (model calls made by agents: calls, tokens, mean seconds
    per call) and ``cost_by_day`` cover the last ``window_days`` UTC days, today included."""

    resources: dict
    queue_waiting: int | None
    queue_running: int | None
    cost_today_usd: float
    model_calls_today: int
    budget_usd: float | None
    recent_anomalies: list[Alert]
    window_days: int = 7
    schedules: list[ScheduleRun] | None = None
    evolutions: EvolutionStats = field(default_factory=lambda: EvolutionStats(0, {}, None))
    agents: list[UsageRow] = field(default_factory=list)
    cost_by_day: list[DayCost] = field(default_factory=list)

    @property
    def budget_left_usd(self) -> float | None:
        return None if self.budget_usd is None else round(max(0.0, self.budget_usd - self.cost_today_usd), 6)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["recent_anomalies"] = [alert.to_dict() for alert in self.recent_anomalies]
        data["budget_left_usd"] = self.budget_left_usd
        return data


def evolution_stats(entries: list[dict], since: float) -> EvolutionStats:
    """Count the evolutions finished since ``since`` in the audit ``entries`` (oldest first). A run that finished
    ``pending`` takes the decision recorded later under its run id (a deploy, a rejection or a rollback) or under
    its approval's id (an approver's rejection names only the approval)."""
    outcome: dict[str, str] = {}
    run_of_approval: dict[str, str] = {}
    for entry in entries:
        run_id, event, approval_id = entry.get("run_id"), entry.get("event"), entry.get("approval_id")
        if run_id and approval_id:
            run_of_approval[str(approval_id)] = run_id
        run_id = run_id or run_of_approval.get(str(approval_id))
        if not run_id:
            continue
        if event == "evolution_finished" and float(entry.get("ts") or 0) >= since:
            outcome[run_id] = str(entry.get("status") or "unknown")
        elif run_id in outcome and outcome[run_id] == "pending" and event == "deployed":
            outcome[run_id] = "deployed"
        elif run_id in outcome and outcome[run_id] in ("pending", "deployed") and event in ("rejected", "rolled_back"):
            outcome[run_id] = "rejected"
    counts: dict[str, int] = {}
    for status in outcome.values():
        counts[status] = counts.get(status, 0) + 1
    decided = sum(counts.get(status, 0) for status in DECIDED)
    rate = round(counts.get("deployed", 0) / decided, 4) if decided else None
    return EvolutionStats(finished=len(outcome), by_status=dict(sorted(counts.items())), success_rate=rate)


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
    def __init__(self, ctx: ServiceContext, queued: Callable[[], list] | None = None,
                 schedules: Callable[[], list] | None = None,
                 new_alerts: Callable[[list[Alert], Principal | None], list[str]] | None = None) -> None:
        self._ctx = ctx
        self._queued = queued  # the unfinished queue requests, when the service has a queue
        self._schedules = schedules  # the queue's schedules, likewise
        self._new_alerts = new_alerts  # given the alerts notified for the first time: the heal proposals' ids

    def anomalies(self, *, last: int = 2000, warmup: int = 48, notify: bool = False,
                  principal: Principal | None = None) -> AnomalyReport:
        """Anomalies in answer quality, grounding, retrieval nDCG and latency over the newest ``last`` answers
        (reader role). ``notify`` (operator role) sends each alert not sent before as an ``anomaly`` webhook
        event, once per home, and makes a heal proposal of it where a health check applies."""
        self._ctx.check(principal, "metrics")
        if notify:
            self._ctx.check(principal, "heal")
        if not 1 <= last <= MAX_RECORDS:
            raise UserError(f"last must be between 1 and {MAX_RECORDS}, got {last}")
        if not 8 <= warmup <= 10_000:
            raise UserError(f"warmup must be between 8 and 10000, got {warmup}")
        records = self._ctx.parts.metrics.history(last=last, kind="answer")
        alerts, values = scan(records, warmup=warmup)
        report = AnomalyReport(records=len(records), warmup=warmup, values=values, alerts=alerts)
        if notify and records:
            report.heal_proposals = self._notify(alerts, newest=int(records[-1]["id"]), principal=principal)
        return report

    def _notify(self, alerts: list[Alert], *, newest: int, principal: Principal | None) -> list[str]:
        """Make heal proposals of the alerts past the home's cursor, then move the cursor and send those alerts
        (each is sent exactly once); returns the proposals' ids. Proposals come first so that a failure leaves
        the cursor where it was and the next run makes them; two processes racing here make each proposal once
        (the store keeps one per alert) and only the one that moves the cursor sends."""
        webhooks = self._ctx.parts.webhooks

        def past(cursor: int) -> list[Alert]:
            return [alert for alert in alerts if alert.record_id is not None and alert.record_id > cursor]

        pending = past(webhooks.store.cursor("anomalies"))
        proposed = self._new_alerts(pending, principal) if pending and self._new_alerts is not None else []
        for alert in past(webhooks.store.advance_cursor("anomalies", newest)):
            webhooks.emit("anomaly", alert.to_dict())
        return proposed

    def costs(self, *, day: str | None = None, principal: Principal | None = None) -> CostReport:
        """Model calls, tokens and cost of ``day`` (YYYY-MM-DD, UTC; default today) by principal, operation,
        model and agent, with the daily budget (operator role)."""
        self._ctx.check(principal, "costs")
        if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise UserError(f"day must be YYYY-MM-DD, got {day!r}")
        return self._ctx.parts.costs.report(day)

    def status(self, *, anomalies_last: int = 500, days: int = 7, principal: Principal | None = None) -> Status:
        """CPU, memory and disk, the request queue, the schedules and their last runs, today's model cost, the
        anomalies among the newest ``anomalies_last`` answers, and over the last ``days`` UTC days the cost by
        day, the evolutions' success rate and the agents' latency and tokens (reader role). Opens neither the
        index nor a model."""
        self._ctx.check(principal, "metrics")
        if not 1 <= days <= MAX_STATUS_DAYS:
            raise UserError(f"days must be between 1 and {MAX_STATUS_DAYS}, got {days}")
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
        ledger = self._ctx.parts.costs
        report = ledger.report()
        by_day = [DayCost(day, cost, calls) for day, cost, calls in ledger.daily_totals(days)]
        # The window starts at the first of its UTC days, like cost_by_day.
        since = dt.datetime.fromisoformat(by_day[0].day).replace(tzinfo=dt.UTC).timestamp()
        # The audit log is read as a file: the evolution pipeline (a git repository) is not opened for a status.
        evolutions = evolution_stats(AuditLog(settings.audit_path).entries(), since)
        alerts, _ = scan(self._ctx.parts.metrics.history(last=anomalies_last, kind="answer"))
        resources = snapshot(settings.home)
        # snapshot()'s CPU figure is "since the last call", meaningless in a fresh process: sample 0.2 s.
        resources["cpu_percent"] = psutil.cpu_percent(interval=0.2)
        resources["cpu_count"] = psutil.cpu_count()
        return Status(resources=resources, queue_waiting=waiting, queue_running=running,
                      cost_today_usd=report.total_usd, model_calls_today=report.calls,
                      budget_usd=report.budget_usd, recent_anomalies=alerts[-10:], window_days=days,
                      schedules=self._schedule_runs(), evolutions=evolutions, agents=ledger.agents_since(since),
                      cost_by_day=by_day)

    def _schedule_runs(self) -> list[ScheduleRun] | None:
        if self._schedules is None:
            return None
        try:
            schedules = self._schedules()
        except Exception:  # noqa: BLE001 - as for the queue: the schedules are one part of a status
            return None
        return [ScheduleRun(s.name, s.spec, s.next_due, s.last_submitted_at, s.last_status, s.last_finished_at,
                            s.last_error) for s in schedules]

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
