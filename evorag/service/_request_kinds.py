"""What the request queue can run: request kinds and periodic tasks, registered by name.

A **request kind** says how to run one kind of queued request: ``run(task)`` (a coroutine given a
``TaskContext``), the operation a requester's role must allow (evorag.principals.OPERATIONS), and whether it
``writes`` (the worker then holds the service's writer slot for the whole run, and no other writing request
runs meanwhile in any process of the home). Built in: ``crawl``, ``refresh``, ``evolve``, ``heal``, ``health``
(see _builtin_requests).

A **periodic task** is a request kind plus a default recurrence: every server (``evorag serve``,
``evorag mcp --http``) keeps a schedule ``task:NAME`` for it and submits it to the queue when
due, so it runs once per occurrence however many servers run, and a missed run runs once after a restart.
``EVORAG_SCHEDULES`` overrides the recurrence per task (``{"health": "every 6h", "usage-analysis": "off"}``).

Registering one (usage analysis, anomaly detection, webhook retries...)::

    from evorag.service import PeriodicTask, TaskContext, register_periodic_task

    async def analyse_usage(task: TaskContext) -> dict:
        task.progress({"stage": "clustering"})  # shown by `evorag queue` while it runs
        report = await asyncio.to_thread(task.service.usage_report, principal=task.principal)
        return report.to_dict()  # stored as the request's result

    register_periodic_task(PeriodicTask("usage-analysis", analyse_usage, every="daily", operation="metrics"))

Register at import time of a module the service imports, so that every process knows the kind before its
workers start; registering a name again replaces it. ``run`` returns a dict, an object with ``to_dict()``, or
None; an ``EvoragError`` it raises fails the request with that message, cancelling it raises CancelledError
inside ``run``. A periodic task acts as ``SCHEDULER`` (operator role), so its operation must not need more.
To queue a one-off request of any kind: ``Evorag.submit_request(kind, payload)``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evorag.errors import InternalError
from evorag.principals import OPERATIONS, Principal, Role
from evorag.service._queue import QueueRequest
from evorag.service._recurrence import Clock, parse_recurrence

if TYPE_CHECKING:
    from evorag.service._facade import Evorag

# Who periodic tasks act as: the system, with the operator role (they start work, never approve it).
SCHEDULER = Principal("system", Role.OPERATOR, via="scheduler")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


@dataclass(slots=True)
class TaskContext:
    """What a running request gets: the service, the request, who asked, a progress reporter, the clock."""

    service: Evorag
    request: QueueRequest
    principal: Principal
    report: Callable[[dict], None]
    clock: Clock

    @property
    def payload(self) -> dict:
        return self.request.payload

    def progress(self, fields: dict) -> None:
        """Record progress (any JSON-able dict); waiters and `evorag queue` see it. Thread-safe."""
        self.report(dict(fields))


Runner = Callable[[TaskContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RequestKind:
    name: str
    run: Runner
    operation: str
    writes: bool = False
    describe: Callable[[dict], str] | None = None  # one line for listings, from the payload
    subject: Callable[[dict], str | None] | None = None  # what it is about (a source name), for look-ups
    # Checks and completes a payload when it is submitted (blocking; raises UserError for a bad one), so a bad
    # request is refused before it is queued: ``prepare(service, payload) -> payload``.
    prepare: Callable[[Evorag, dict], dict] | None = None


@dataclass(frozen=True, slots=True)
class PeriodicTask:
    name: str
    run: Runner
    every: str = "daily"
    operation: str = "metrics"
    writes: bool = False
    payload: dict = field(default_factory=dict)


_lock = threading.Lock()
_kinds: dict[str, RequestKind] = {}
_periodic: dict[str, PeriodicTask] = {}


def register_request_kind(kind: RequestKind) -> RequestKind:
    if not _NAME.match(kind.name):
        raise InternalError(f"invalid request kind name {kind.name!r} (lowercase letters, digits, '-')")
    if kind.operation not in OPERATIONS:
        raise InternalError(f"request kind {kind.name!r} names an unknown operation {kind.operation!r}")
    with _lock:
        _kinds[kind.name] = kind
    return kind


def register_periodic_task(task: PeriodicTask) -> PeriodicTask:
    """Register ``task`` as a request kind of its name, and as a periodic task the servers schedule."""
    parse_recurrence(task.every)  # a bad default fails where it is written
    if not SCHEDULER.can(task.operation):
        raise InternalError(f"periodic task {task.name!r} needs {task.operation!r}, more than the scheduler may do")
    register_request_kind(RequestKind(task.name, task.run, task.operation, writes=task.writes,
                                      describe=lambda payload, name=task.name: f"periodic task {name}"))
    with _lock:
        _periodic[task.name] = task
    return task


def request_kind(name: str) -> RequestKind | None:
    with _lock:
        return _kinds.get(name)


def request_kinds() -> dict[str, RequestKind]:
    with _lock:
        return dict(_kinds)


def periodic_tasks() -> dict[str, PeriodicTask]:
    with _lock:
        return dict(_periodic)
