"""The scheduler: turns due schedules into queued requests. It runs inside every long-running server
(``evorag serve``, ``evorag mcp --http``) next to the queue workers, which run what it submits. (The chat
UI does not run them yet: run ``evorag serve`` beside it.)

Two sorts of schedules live in the queue's database (see _queue): per-source refreshes (``refresh:NAME``, set
with ``evorag sources schedule NAME SPEC``) and periodic tasks (``task:NAME``, one per task registered with
``register_periodic_task``; EVORAG_SCHEDULES overrides their recurrence or turns one ``off``).

Each tick submits every due schedule once and moves it to its next occurrence after now, atomically
(``RequestQueue.submit_due``), so a restart loses nothing (a schedule due while no server ran is submitted at
the first tick after the start) and runs a missed occurrence once, not once per missed occurrence; two
servers on one home submit each occurrence once. Due times are UTC wall-clock seconds from ``clock``; the wait
between ticks is on the event loop's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from evorag.errors import ConfigError, EvoragError
from evorag.service._priority import request_priority
from evorag.service._queue import QueueRequest, RequestQueue, Schedule
from evorag.service._recurrence import Clock, parse_recurrence
from evorag.service._request_kinds import SCHEDULER, periodic_tasks, request_kind, request_kinds
from evorag.settings import Settings

logger = logging.getLogger("evorag.scheduler")
TASK_PREFIX = "task:"
REFRESH_PREFIX = "refresh:"


def principal_record(principal) -> dict:
    """How a principal is stored with a request: who, with which role, through which interface. Proof of a
    person is never stored: a queued request runs later, when nobody is proven present."""
    return {"name": principal.name, "role": str(principal.role), "via": principal.via}


def next_due(schedule: Schedule, now: float) -> float:
    return parse_recurrence(schedule.spec).next_after(now, schedule.anchor)


class Scheduler:
    def __init__(self, *, store: Callable[[], RequestQueue], settings: Settings, clock: Clock, identity: str,
                 notify: Callable[[], None]) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._identity = identity
        self._notify = notify

    def sync_periodic(self) -> list[Schedule]:
        """Create, update or drop the ``task:NAME`` schedules to match the registered periodic tasks and
        EVORAG_SCHEDULES; a schedule whose recurrence did not change keeps its next due time."""
        store, now, overrides = self._store(), self._clock.time(), self._settings.schedules
        unknown = sorted(set(overrides) - set(periodic_tasks()))
        if unknown:
            logger.warning("EVORAG_SCHEDULES names tasks nobody registered: %s", ", ".join(unknown))
        kept = []
        for name, task in sorted(periodic_tasks().items()):
            schedule_name = TASK_PREFIX + name
            spec = overrides.get(name, task.every)
            existing = store.schedule(schedule_name)
            if spec.strip().lower() == "off":
                if existing is not None:
                    store.delete_schedule(schedule_name)
                continue
            try:
                recurrence = parse_recurrence(spec)
            except EvoragError as exc:
                raise ConfigError(f"invalid schedule for periodic task {name!r}: {exc.message}",
                                  hint="fix EVORAG_SCHEDULES (a JSON object: task name -> schedule or \"off\")") from None
            if existing is not None and existing.spec == recurrence.text and existing.kind == name:
                kept.append(existing)
                continue
            kept.append(store.put_schedule(Schedule(
                name=schedule_name, kind=name, subject=None, spec=recurrence.text, payload=dict(task.payload),
                principal=principal_record(SCHEDULER), priority=request_priority(SCHEDULER.role, origin="schedule"),
                summary=f"periodic task {name}", anchor=now, next_due=recurrence.next_after(now, now),
                created_at=now)))
        return kept

    def tick(self) -> list[QueueRequest]:
        """Submit what is due now; returns the requests submitted."""
        kinds = request_kinds()
        submitted = self._store().submit_due(
            now=self._clock.time(), kinds=list(kinds), next_due=next_due, submitter=self._identity,
            writes=lambda name: bool(getattr(request_kind(name), "writes", False)))
        for request in submitted:
            logger.info("scheduled %s submitted as request %s", request.summary or request.kind, request.id)
        if submitted:
            self._notify()
        return submitted

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``scheduler_tick_seconds`` until ``stop`` is set; the first tick runs at once."""
        await asyncio.to_thread(self.sync_periodic)
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.tick)
                await asyncio.to_thread(self._store().prune, self._settings.queue_keep_finished)
            except Exception as exc:  # noqa: BLE001 - a busy database or a bad row: the next tick tries again
                logger.warning("scheduler tick failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.scheduler_tick_seconds)
