"""Queued requests use cases: submit, follow, cancel; schedules; and serving the queue (workers + scheduler).

Every crawl (and refresh, and any evolution, heal or periodic task that is queued) is a request in the one
queue under EVORAG_HOME (see _queue for the store, _workers for how requests run, _scheduler for schedules,
_priority for the order). Who runs a request:

- a server (``evorag serve``, ``evorag mcp --http``) runs ``queue_workers`` workers that take
  any request in priority order, and the scheduler;
- a process without one (the CLI's ``evorag crawl``, stdio MCP, a Python script) runs the requests it
  submits and waits for (``run_here``) itself, and nothing else; a request it only queues
  (``submit_request``) waits for a server.

Python API for other modules (e.g. proposals from usage analysis)::

    request = rag.submit_request("evolve", {"request": "a tool that ..."}, origin="proposal", evidence=12)
    rag.queue_request(request.id)            # status, position while queued, progress while running
    await rag.wait_request(request.id, 60)   # until it finishes or 60 s pass
    rag.cancel_request(request.id)

and to run something periodically, ``register_periodic_task`` (see _request_kinds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from evorag import errors
from evorag.errors import EvoragError, InternalError, NotFoundError, PermissionDeniedError, UserError
from evorag.principals import Principal, Role
from evorag.service import _builtin_requests  # noqa: F401 - registers the built-in request kinds
from evorag.service._context import ServiceContext
from evorag.service._inputs import validate_source_name
from evorag.service._priority import Origin, request_priority
from evorag.service._queue import CANCELLED, FINISHED, QUEUE_FILE, QueueRequest, RequestQueue, Schedule
from evorag.service._recurrence import Clock, SystemClock, parse_recurrence
from evorag.service._request_kinds import RequestKind, TaskContext, request_kind, request_kinds
from evorag.service._scheduler import REFRESH_PREFIX, Scheduler, principal_record
from evorag.service._workers import Changes, WorkerOptions, Workers, current_request, process_identity

if TYPE_CHECKING:
    from evorag.service._facade import Evorag

ChangeCallback = Callable[[QueueRequest], Awaitable[None]]
_LOCAL_VIA = frozenset({"cli", "python", "scheduler", "policy", "system"})  # never accounts of the user store


class RequestsService:
    def __init__(self, ctx: ServiceContext, service: Evorag, *, clock: Clock | None = None) -> None:
        self._ctx = ctx
        self._service = service
        self.clock = clock or SystemClock()
        self.changes = Changes()
        self.identity = process_identity(os.getpid())
        self._store_lock = threading.Lock()
        self._store: RequestQueue | None = None
        settings = ctx.settings
        self.workers = Workers(
            store=self.store, writer=ctx.writer, clock=self.clock, changes=self.changes, identity=self.identity,
            options=WorkerOptions(lease_s=settings.queue_lease_seconds, poll_s=settings.queue_poll_seconds,
                                  max_attempts=settings.queue_max_attempts, count=settings.queue_workers),
            context=self._task_context)
        self.scheduler = Scheduler(store=self.store, settings=settings, clock=self.clock, identity=self.identity,
                                   notify=self.changes.notify)
        self._serving = 0
        self._background: tuple[threading.Thread, asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def store(self) -> RequestQueue:
        """The queue's database, opened on first use (and again after ``close``)."""
        with self._store_lock:
            if self._store is None:
                self._ctx.settings.ensure_home()
                self._store = RequestQueue(self._ctx.settings.home / QUEUE_FILE)
            return self._store

    def close(self) -> None:
        """Stop serving in the background, if this service does, and close the database."""
        self.stop_background()
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # Submitting
    def submit(self, kind: str, payload: dict | None = None, *, origin: Origin = "user", evidence: int = 0,
               key: str | None = None, principal: Principal | None = None) -> QueueRequest:
        """Queue a request of ``kind`` (its operation's role needed); returns it, queued. ``key``: at most one
        unfinished request per key (submitting again returns the waiting one). Priority: see _priority."""
        spec = self._kind(kind)
        who = self._ctx.check(principal, spec.operation)
        payload = dict(payload or {})
        if spec.prepare is not None:
            payload = spec.prepare(self._service, payload)
        asker = principal_record(who) | {"account": self._is_account(who)}
        request, _ = self.store().submit(
            kind=kind, payload=payload, principal=asker, origin=origin, now=self.clock.time(),
            priority=request_priority(who.role, origin=origin, evidence=evidence),
            summary=(spec.describe(payload) if spec.describe else kind)[:200],
            subject=spec.subject(payload) if spec.subject else None, writes=spec.writes, key=key,
            submitter=self.identity)
        self.changes.notify(request.id)
        return request

    async def asubmit(self, kind: str, payload: dict | None = None, *, run_here: bool = False,
                      origin: Origin = "user", evidence: int = 0, key: str | None = None,
                      principal: Principal | None = None) -> QueueRequest:
        """``submit`` from an event loop. ``run_here``: the caller wants it run now, so a process without a
        server runs it itself (as does a request submitted by a running request: an evolution's crawl of its
        documentation, which must not wait for a worker the evolution itself occupies)."""
        request = await asyncio.to_thread(self.submit, kind, payload, origin=origin, evidence=evidence, key=key,
                                          principal=principal)
        self.workers.expect(request.id)
        if run_here and (not self._serving or current_request.get() is not None):
            self.workers.ensure_own()
        return request

    # Following
    def request(self, request_id: str, *, principal: Principal | None = None) -> QueueRequest:
        """A request as it is now: position while queued, progress while running, result or reason after."""
        self._ctx.check(principal, "job_status")
        return self._read(request_id)

    def _read(self, request_id: str) -> QueueRequest:
        store = self.store()
        store.expire(now=self.clock.time(), max_attempts=self.workers.options.max_attempts)
        request = store.get(request_id)
        if request is None:
            raise NotFoundError(f"no request {request_id!r} in the queue",
                                hint=f"see `evorag queue`; only the newest {self._ctx.settings.queue_keep_finished} "
                                "finished requests are kept")
        live = self.workers.live_progress(request_id)
        if live is not None and request.status == "running":
            request.progress = live
        return request

    def requests(self, *, finished: bool = True, kinds: list[str] | None = None, limit: int = 100,
                 principal: Principal | None = None) -> list[QueueRequest]:
        """Running requests, then queued ones in the order they will run, then (``finished``) the newest
        finished ones."""
        self._ctx.check(principal, "job_status")
        store = self.store()
        store.expire(now=self.clock.time(), max_attempts=self.workers.options.max_attempts)
        statuses = None if finished else ["queued", "running"]
        found = store.requests(statuses=statuses, kinds=kinds, limit=limit)
        for request in found:
            live = self.workers.live_progress(request.id)
            if live is not None and request.status == "running":
                request.progress = live
        return found

    def cancel(self, request_id: str, *, principal: Principal | None = None) -> QueueRequest:
        """Cancel a queued request at once, or ask a running one to stop (in whichever process runs it; it
        stops within about a second). Operator role."""
        self._ctx.check(principal, "cancel_job")
        request = self.store().cancel(request_id, now=self.clock.time())
        if request.status == "running":
            self.workers.cancel_local(request_id)
        self.changes.notify(request_id)
        return request

    async def wait(self, request_id: str, timeout: float | None, *, on_change: ChangeCallback | None = None,
                   principal: Principal | None = None) -> QueueRequest:
        """Wait up to ``timeout`` s (None: until it finishes) for a request to finish; awaits
        ``on_change(request)`` whenever its status, position or progress changed. Requests run by other
        processes are followed through the database."""
        self._ctx.check(principal, "job_status")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        poll = self.workers.options.poll_s
        with self.changes.watch(request_id) as changed:
            request = await asyncio.to_thread(self._read, request_id)
            seen = _fingerprint(request)
            while not request.finished:
                remaining = poll if deadline is None else min(poll, deadline - loop.time())
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
                changed.clear()
                request = await asyncio.to_thread(self._read, request_id)
                if on_change is not None and _fingerprint(request) != seen:
                    seen = _fingerprint(request)
                    await on_change(request)
        return request

    async def result(self, request_id: str, *, on_change: ChangeCallback | None = None) -> Any:
        """Wait for a request to finish: what its run returned (the object itself when this process ran it,
        else its stored result), or its failure raised again. A caller cancelled while waiting cancels the
        request (as Ctrl-C stops a crawl in the terminal)."""
        try:
            request = await self.wait(request_id, None, on_change=on_change)
        except asyncio.CancelledError:
            with contextlib.suppress(EvoragError):
                self.store().cancel(request_id, now=self.clock.time())
                self.workers.cancel_local(request_id)
            raise
        found, outcome = self.workers.outcome(request_id)
        if found and isinstance(outcome, BaseException):
            raise outcome
        if found and outcome is not None:
            return outcome
        return _stored_outcome(request)

    # Schedules
    def schedule_source(self, name: str, spec: str, *, principal: Principal | None = None) -> Schedule:
        """Refresh source ``name`` on ``spec`` (see _recurrence; UTC), through the queue; replaces its schedule.
        Operator role (a refresh is a crawl)."""
        who = self._ctx.check(principal, "crawl")
        recurrence = parse_recurrence(spec)
        name = validate_source_name(name)
        self._service.knowledge.require_source(name)
        now = self.clock.time()
        return self.store().put_schedule(Schedule(
            name=REFRESH_PREFIX + name, kind="refresh", subject=name, spec=recurrence.text, payload={"source": name},
            principal=principal_record(who), priority=request_priority(who.role, origin="schedule"),
            summary=f"refresh source {name}", anchor=now, next_due=recurrence.next_after(now, now), created_at=now))

    def unschedule_source(self, name: str, *, principal: Principal | None = None) -> bool:
        """Stop refreshing ``name`` on a schedule; False if it had none."""
        self._ctx.check(principal, "crawl")
        return self.store().delete_schedule(REFRESH_PREFIX + validate_source_name(name))

    def drop_schedule_of_removed_source(self, name: str) -> None:
        self.store().delete_schedule(REFRESH_PREFIX + name)

    def schedules(self, *, principal: Principal | None = None) -> list[Schedule]:
        """Every schedule: source refreshes and periodic tasks, with their next run and their last request."""
        self._ctx.check(principal, "list_sources")
        return self.store().schedules()

    def source_schedules(self, *, principal: Principal | None = None) -> dict[str, Schedule]:
        return {s.subject: s for s in self.schedules(principal=principal) if s.kind == "refresh" and s.subject}

    # Serving
    async def aserve(self, stop: asyncio.Event, *, workers: int | None = None,
                     on_ready: Callable[[str], None] | None = None) -> None:
        """Run the scheduler and ``workers`` queue workers (default EVORAG_QUEUE_WORKERS) on this loop until
        ``stop`` is set; requests still running then go back to the queue for the next server."""
        await asyncio.to_thread(self.scheduler.sync_periodic)  # a bad EVORAG_SCHEDULES fails before "ready"
        self._serving += 1
        scheduler = asyncio.create_task(self.scheduler.run(stop), name="evorag-scheduler")
        try:
            if on_ready is not None:
                count = workers or self.workers.options.count
                on_ready(f"{count} queue worker{'s' if count != 1 else ''} and the scheduler on "
                         f"{self._ctx.settings.home / QUEUE_FILE}")
            await self.workers.serve(stop, workers)
        finally:
            self._serving -= 1
            stop.set()
            await asyncio.gather(scheduler, return_exceptions=True)

    def start_background(self, *, workers: int | None = None, ready_timeout: float = 60.0) -> None:
        """``aserve`` in a thread of its own, for servers whose event loop is not ours (uvicorn, Chainlit)."""
        if self._background is not None:
            return
        ready, failure, handles = threading.Event(), [], {}

        async def serve() -> None:
            handles["loop"], handles["stop"] = asyncio.get_running_loop(), asyncio.Event()
            try:
                await self.aserve(handles["stop"], workers=workers, on_ready=lambda _: ready.set())
            except BaseException as exc:
                failure.append(exc)
                raise
            finally:
                ready.set()

        thread = threading.Thread(target=lambda: _run_quietly(serve), name="evorag-queue", daemon=True)
        thread.start()
        if not ready.wait(ready_timeout) or failure:
            if failure:
                raise failure[0]
            raise InternalError("the request queue's workers did not start")
        self._background = (thread, handles["loop"], handles["stop"])

    def stop_background(self, timeout: float = 60.0) -> None:
        if self._background is None:
            return
        thread, loop, stop = self._background
        self._background = None
        with contextlib.suppress(RuntimeError):  # its loop already ended
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)

    @contextlib.contextmanager
    def background(self, *, workers: int | None = None) -> Iterator[None]:
        self.start_background(workers=workers)
        try:
            yield
        finally:
            self.stop_background()

    async def astop_own(self) -> None:
        """Stop the workers this loop runs for this process's requests; what they run goes back to the queue."""
        await self.workers.stop_own()

    # Running a request
    def _kind(self, name: str) -> RequestKind:
        spec = request_kind(name)
        if spec is None:
            raise UserError(f"unknown request kind {name!r}", hint="known kinds: " + ", ".join(sorted(request_kinds())))
        return spec

    def _is_account(self, principal: Principal) -> bool:
        """Whether ``principal`` is an account of the user store (checked again when its request runs)."""
        if principal.via in _LOCAL_VIA or not self._ctx.settings.principals_path.exists():
            return False
        return self._ctx.parts.principals.get(principal.name) is not None

    def _task_context(self, request: QueueRequest, report: Callable[[dict], None]) -> TaskContext:
        return TaskContext(service=self._service, request=request, principal=self._requester(request), report=report,
                           clock=self.clock)

    def _requester(self, request: QueueRequest) -> Principal:
        """Who asked, with their role as it is now: an account removed or demoted since cannot act any more."""
        record = request.principal
        principal = Principal(str(record.get("name")), Role.parse(record.get("role", "reader")),
                              via=str(record.get("via", "python")))
        if record.get("account"):
            account = self._ctx.parts.principals.get(principal.name)
            if account is None:
                raise PermissionDeniedError(f"the account {principal.name!r} that asked for this request was removed")
            principal = Principal(principal.name, account.role, via=principal.via)
        kind = self._kind(request.kind)
        return self._ctx.check(principal, kind.operation)


def _fingerprint(request: QueueRequest) -> tuple:
    return request.status, request.position, request.progress, request.cancel_requested, request.error


def _stored_outcome(request: QueueRequest) -> Any:
    if request.status == "done":
        return request.result
    if request.status == "cancelled":
        raise UserError(f"request {request.id} ({request.kind}) was cancelled", hint=request.error or CANCELLED)
    cls = getattr(errors, request.error_type or "", None)
    if not (isinstance(cls, type) and issubclass(cls, EvoragError)):
        cls = InternalError
    raise cls(request.error or f"request {request.id} failed", hint=request.error_hint)


def _run_quietly(main: Callable[[], Awaitable[None]]) -> None:
    with contextlib.suppress(BaseException):  # the failure was handed to start_background already
        asyncio.run(main())


__all__ = ["FINISHED", "RequestsService"]
