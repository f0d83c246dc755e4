"""Queue workers: coroutines that claim requests from the queue, run them, and keep their lease alive.

A worker claims the highest-priority request it can run now (see _queue.RequestQueue.claim). Before
claiming it tries to take the service's writer slot without waiting: holding it, it may take any request;
otherwise only requests that do not write. A writing request (a crawl, a refresh) then runs holding the slot,
so it waits as ``queued``, with its position, while another write runs, never as ``running``.

While a request runs, a heartbeat renews its lease every ``lease/3`` seconds (at most every second) on the
event loop's monotonic clock, stores its progress, and stops the run when someone cancelled it (in any
process) or when the lease was lost. A worker that stops (its server shuts down) releases its request back
to the queue; one that is killed leaves it to expire and be claimed again.

Two kinds of pools: ``serve`` runs workers that take any request (servers: ``evorag serve``, ``mcp --http``);
``ensure_own`` runs, in a process without a server, workers that take only the requests this
process submitted and stop when there are none left (the CLI's ``evorag crawl``, stdio MCP, Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from evorag.errors import EvoragError, UserError
from evorag.principals import acting_as
from evorag.service._queue import CANCELLED, QueueRequest, RequestQueue
from evorag.service._recurrence import Clock
from evorag.service._request_kinds import TaskContext, request_kind, request_kinds
from evorag.service._writer import WriterSlot

logger = logging.getLogger("evorag.queue")
QUEUED_AGAIN = "queued again: the worker running it stopped (its server shut down)"
MAX_KEPT_OUTCOMES = 100
# The request whose run the current task belongs to (None outside runs): what it submits runs in this process.
current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar("evorag_request", default=None)


def process_identity(pid: int) -> str:
    """``pid:start time`` of a running process: a process id alone may be reused after a crash."""
    try:
        started = f"{psutil.Process(pid).create_time():.3f}"
    except psutil.Error:  # no such process (or not ours to see)
        started = "None"
    return f"{pid}:{started}"


class Changes:
    """Wakes coroutines waiting for a request to change, on any event loop, from any thread. Watchers of
    ``None`` (idle workers) are woken by every change: a new request, or one that finished and freed a slot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[str | None, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def watch(self, request_id: str | None) -> Iterator[asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._watchers.setdefault(request_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._watchers[request_id].discard(entry)
                if not self._watchers[request_id]:
                    del self._watchers[request_id]

    def notify(self, request_id: str | None = None) -> None:
        with self._lock:
            targets = set(self._watchers.get(None, ()))
            if request_id is not None:
                targets |= self._watchers.get(request_id, set())
        for loop, event in targets:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there any more
                loop.call_soon_threadsafe(event.set)


@dataclass(slots=True)
class _Run:
    """A request this process runs."""

    request: QueueRequest
    progress: dict
    task: asyncio.Task | None = None
    dirty: bool = False
    stop_reason: str | None = None  # "cancel" (asked), "lost" (lease gone), "shutdown" (worker stopping)

    def stop(self, reason: str) -> None:
        """Stop the run from any thread."""
        self.stop_reason = self.stop_reason or reason
        if self.task is not None:
            with contextlib.suppress(RuntimeError):
                self.task.get_loop().call_soon_threadsafe(self.task.cancel)


@dataclass(slots=True)
class WorkerOptions:
    lease_s: float
    poll_s: float
    max_attempts: int
    count: int


@dataclass(slots=True)
class _OwnPool:
    tasks: set[asyncio.Task] = field(default_factory=set)


class Workers:
    """The queue workers of one service, and what it knows of the requests it runs."""

    def __init__(self, *, store: Callable[[], RequestQueue], writer: WriterSlot, clock: Clock, changes: Changes,
                 identity: str, options: WorkerOptions,
                 context: Callable[[QueueRequest, Callable[[dict], None]], TaskContext]) -> None:
        self._store = store
        self._writer = writer
        self._clock = clock
        self._changes = changes
        self._identity = identity
        self.options = options
        self._context = context
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._own: dict[asyncio.AbstractEventLoop, _OwnPool] = {}
        # Outcomes kept for callers that may wait for them (``RequestsService.result``); bounded, as a caller
        # that never asks (an MCP client following a crawl by its id) leaves them behind.
        self._expected: dict[str, None] = {}
        self._outcomes: dict[str, Any] = {}

    # What this process runs
    def live_progress(self, request_id: str) -> dict | None:
        run = self._runs.get(request_id)
        return dict(run.progress) if run is not None else None

    def cancel_local(self, request_id: str) -> bool:
        """Stop a request this process runs (recorded as cancelled); False if it runs elsewhere."""
        run = self._runs.get(request_id)
        if run is None:
            return False
        run.stop("cancel")
        return True

    def expect(self, request_id: str) -> None:
        """Keep the outcome (the value or the exception itself) of a run of this process for ``outcome``."""
        with self._lock:
            self._expected[request_id] = None
            _trim(self._expected, MAX_KEPT_OUTCOMES)

    def outcome(self, request_id: str) -> tuple[bool, Any]:
        with self._lock:
            self._expected.pop(request_id, None)
            if request_id in self._outcomes:
                return True, self._outcomes.pop(request_id)
        return False, None

    # Pools
    async def serve(self, stop: asyncio.Event, count: int | None = None) -> None:
        """Run workers that take any request of a known kind until ``stop`` is set; then release what they
        run back to the queue."""
        tasks = [asyncio.create_task(self._work(f"w{n}", stop=stop, own=False), name=f"evorag-worker-{n}")
                 for n in range(count or self.options.count)]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def ensure_own(self) -> None:
        """Make sure this event loop runs workers for the requests this process submitted."""
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._own.setdefault(loop, _OwnPool())
            pool.tasks = {task for task in pool.tasks if not task.done()}
            for n in range(len(pool.tasks), self.options.count):
                task = loop.create_task(self._work(f"own{n}", stop=None, own=True), name=f"evorag-own-worker-{n}")
                pool.tasks.add(task)
        self._changes.notify()

    async def stop_own(self) -> None:
        """Stop this loop's own workers; what they run goes back to the queue."""
        with self._lock:
            pool = self._own.pop(asyncio.get_running_loop(), None)
        if pool is not None and pool.tasks:
            for task in pool.tasks:
                task.cancel()
            await asyncio.gather(*pool.tasks, return_exceptions=True)

    async def _work(self, name: str, *, stop: asyncio.Event | None, own: bool) -> None:
        owner = f"{self._identity}/{name}"
        while stop is None or not stop.is_set():
            with self._changes.watch(None) as changed:  # before claiming: a change meanwhile is not missed
                try:
                    claimed = await self._claim(owner, own)
                except Exception as exc:  # noqa: BLE001 - a busy or broken database: keep trying
                    logger.warning("could not claim a request: %s", exc)
                    claimed = None
                if claimed is None:
                    if own and self._own_finished():
                        return
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), self.options.poll_s)
                    continue
            await self._execute(*claimed)

    def _own_finished(self) -> bool:
        """True (and this worker leaves its pool) when no request of this process waits any more."""
        store = self._store()
        with self._lock:  # against ``ensure_own``: a request submitted meanwhile finds a worker
            if store.waiting(self._identity):
                return False
            pool = self._own.get(asyncio.get_running_loop())
            if pool is not None:
                pool.tasks.discard(asyncio.current_task())
            return True

    async def _claim(self, owner: str, own: bool) -> tuple[QueueRequest, bool] | None:
        holding = self._writer.try_acquire()
        kinds = [name for name, kind in request_kinds().items() if holding or not kind.writes]
        claim = asyncio.ensure_future(asyncio.to_thread(
            self._store().claim, owner, kinds=kinds, now=self._clock.time(), lease_s=self.options.lease_s,
            max_attempts=self.options.max_attempts, submitter=self._identity if own else None))
        try:
            request = await asyncio.shield(claim)
        except BaseException:
            request = None
            with contextlib.suppress(BaseException):
                request = await claim  # the claim may have gone through: give the request back
            if request is not None:
                self._store().release(request, now=self._clock.time(), note=QUEUED_AGAIN)
            if holding:
                self._writer.release()
            raise
        if holding and (request is None or not request.writes):
            self._writer.release()
            holding = False
        return (request, holding) if request is not None else None

    async def _execute(self, request: QueueRequest, holding_writer: bool) -> None:
        run = _Run(request=request, progress=dict(request.progress))
        self._runs[request.id] = run
        handler = asyncio.get_running_loop().create_task(self._call(run), name=f"evorag-request-{request.id}")
        run.task = handler
        beat = asyncio.get_running_loop().create_task(self._heartbeat(run))
        self._changes.notify(request.id)
        try:
            await asyncio.wait({handler})
        except asyncio.CancelledError:  # the worker itself stops: so does the run, and it goes back to the queue
            run.stop("shutdown")
            await asyncio.wait({handler})
            raise
        finally:
            beat.cancel()
            # Recorded here on the loop, not in a thread: the loop may be shutting down, when no thread can be
            # awaited any more. One small row.
            self._conclude(run, handler)
            if holding_writer:
                self._writer.release()
            self._runs.pop(request.id, None)
            self._changes.notify(request.id)

    async def _call(self, run: _Run) -> Any:
        request = run.request
        kind = request_kind(request.kind)
        if kind is None:
            raise UserError(f"this evorag process does not know requests of kind {request.kind!r}")

        def report(fields: dict) -> None:
            run.progress, run.dirty = fields, True
            self._changes.notify(request.id)

        current_request.set(request.id)
        task = self._context(request, report)
        with acting_as(task.principal):
            return await kind.run(task)

    async def _heartbeat(self, run: _Run) -> None:
        every = max(0.05, min(self.options.lease_s / 3, 1.0))
        while True:
            await asyncio.sleep(every)
            progress = run.progress if run.dirty else None
            run.dirty = False
            try:
                state = await asyncio.to_thread(self._store().heartbeat, run.request, now=self._clock.time(),
                                                lease_s=self.options.lease_s, progress=progress)
            except Exception as exc:  # noqa: BLE001 - try again at the next beat; the lease has slack
                logger.warning("could not renew the lease of request %s: %s", run.request.id, exc)
                continue
            if state == "cancel":
                run.stop("cancel")
            elif state == "lost":
                logger.warning("request %s lost its lease (it was queued again); stopping this run", run.request.id)
                run.stop("lost")
                return

    def _conclude(self, run: _Run, handler: asyncio.Task) -> None:
        store, request, now = self._store(), run.request, self._clock.time()
        outcome: Any = None
        try:
            if not handler.done():  # the worker was stopped twice while its run was still stopping
                store.release(request, now=now, note=QUEUED_AGAIN)
                return
            if handler.cancelled() or isinstance(handler.exception(), asyncio.CancelledError):
                if run.stop_reason == "cancel":
                    store.finish(request, "cancelled", now=now, progress=run.progress, error=CANCELLED,
                                 error_type="UserError")
                    outcome = UserError(f"request {request.id} ({request.kind}) was cancelled", hint=CANCELLED)
                elif run.stop_reason == "shutdown":
                    store.release(request, now=now, note=QUEUED_AGAIN)
                    return
                elif run.stop_reason == "lost":
                    return  # another run replaced this one: it records the outcome
                else:
                    store.finish(request, "failed", now=now, progress=run.progress, error_type="InternalError",
                                 error="internal error: the run was cancelled without a reason")
                    return
            elif handler.exception() is not None:
                outcome = exc = handler.exception()
                if isinstance(exc, EvoragError):
                    store.finish(request, "failed", now=now, progress=run.progress, error=exc.message,
                                 error_hint=exc.hint, error_type=type(exc).__name__)
                else:
                    logger.error("request %s (%s) failed", request.id, request.kind, exc_info=exc)
                    store.finish(request, "failed", now=now, progress=run.progress, error_type="InternalError",
                                 error=f"internal error: {type(exc).__name__}: {exc}")
            else:
                outcome = value = handler.result()
                result = value.to_dict() if hasattr(value, "to_dict") else value
                store.finish(request, "done", now=now, progress=run.progress,
                             result=result if isinstance(result, dict) else {"value": result})
        except Exception as exc:  # noqa: BLE001 - a closed or busy database: the lease expires and it re-runs
            logger.warning("could not record the end of request %s: %s", request.id, exc)
            return
        with self._lock:
            if request.id in self._expected:
                self._outcomes[request.id] = outcome
                _trim(self._outcomes, MAX_KEPT_OUTCOMES)


def _trim(kept: dict, limit: int) -> None:
    for oldest in list(kept)[:max(0, len(kept) - limit)]:
        del kept[oldest]
