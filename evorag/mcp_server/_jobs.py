"""Background crawl jobs: a crawl outlives the tool call that started it.

Jobs run as asyncio tasks on the server's event loop, one crawl at a time (the service allows one
writer, and its write lock is a thread lock held across awaits: two crawls on one loop would block the
loop). Later jobs wait as ``queued``. Finished jobs are kept (the newest ``keep_finished``) so clients
can read the report after reconnecting.

Every job is also written to a journal under ``EVORAG_HOME`` at each change of status, so its id stays
valid across a server restart: a job that was queued or running when the server died comes back as
``interrupted``, saying how to resume (the pages it indexed are kept, and the same crawl continues).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Literal

from evorag.errors import EvoragError, NotFoundError, UserError

JobStatus = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled", "interrupted"})
INTERRUPTED = (
    "the server stopped before this crawl finished; call crawl_and_index_documentation again with the "
    "same url and source to resume (pages already indexed are kept)"
)
logger = logging.getLogger("evorag.mcp")


@dataclass(slots=True)
class CrawlJob:
    id: str
    url: str
    source: str | None
    status: JobStatus = "queued"
    progress: dict = field(default_factory=dict)
    report: dict | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CrawlJob:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


class JobJournal:
    """The jobs, one JSON row each, in SQLite: written on every change of status, read at start-up."""

    def __init__(self, path) -> None:
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at REAL, data TEXT)")

    def save(self, job: CrawlJob) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (id, created_at, data) VALUES (?, ?, ?)",
                (job.id, job.created_at, json.dumps(job.to_dict(), default=str)),
            )

    def load(self) -> list[CrawlJob]:
        with self._lock:
            rows = self._db.execute("SELECT data FROM jobs ORDER BY created_at").fetchall()
        jobs = []
        for (data,) in rows:
            try:
                jobs.append(CrawlJob.from_dict(json.loads(data)))
            except (ValueError, TypeError) as exc:  # a row we cannot read must not stop the server
                logger.warning("skipping an unreadable crawl job record: %s", exc)
        return jobs

    def forget(self, job_ids: list[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM jobs WHERE id = ?", [(job_id,) for job_id in job_ids])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CrawlJobs:
    """Starts, tracks and cancels crawl jobs of one service."""

    def __init__(self, service, *, keep_finished: int = 100) -> None:
        self._service = service
        self._keep_finished = keep_finished
        self._jobs: dict[str, CrawlJob] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._writer = asyncio.Lock()
        self._journal = JobJournal(service.settings.home / "mcp_jobs.sqlite3")
        self._recover()

    def _recover(self) -> None:
        """Jobs of earlier server runs; those that never finished there are now interrupted."""
        for job in self._journal.load():
            if job.status not in FINISHED:
                job.status, job.error, job.finished_at = "interrupted", INTERRUPTED, time.time()
                self._journal.save(job)
            self._jobs[job.id] = job
        self._forget_old()

    def start(self, request) -> CrawlJob:
        """Queue ``request`` (a validated CrawlRequest) and return its job. Needs a running loop."""
        job = CrawlJob(id=uuid.uuid4().hex[:12], url=request.url, source=request.source)
        self._jobs[job.id] = job
        self._journal.save(job)
        self._changed[job.id] = asyncio.Event()
        self._tasks[job.id] = asyncio.get_running_loop().create_task(
            self._run(job, request), name=f"crawl-{job.id}"
        )
        self._forget_old()
        return job

    def get(self, job_id: str) -> CrawlJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(
                f"no crawl job {job_id!r}",
                hint="job ids come from crawl_and_index_documentation; only the newest "
                f"{self._keep_finished} finished jobs are kept",
            )
        return job

    def jobs(self) -> list[CrawlJob]:
        return list(self._jobs.values())

    def cancel(self, job_id: str) -> CrawlJob:
        """Ask a queued or running job to stop; pages already indexed stay, a re-crawl resumes."""
        job = self.get(job_id)
        if job.status in FINISHED:
            raise UserError(f"crawl job {job_id} is already {job.status}")
        self._tasks[job_id].cancel()
        return job

    async def wait(self, job_id: str, timeout: float, on_change=None) -> CrawlJob:
        """Wait up to ``timeout`` s for the job to finish; awaits ``on_change(job)`` after every update."""
        job = self.get(job_id)
        if job.status in FINISHED:  # also jobs of an earlier server run, which have no event
            return job
        event = self._changed[job_id]
        deadline = asyncio.get_running_loop().time() + timeout
        while job.status not in FINISHED:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                break
            event.clear()
            if on_change is not None:
                await on_change(job)
        return job

    @contextlib.asynccontextmanager
    async def exclusive(self, *, enabled: bool = True):
        """Hold the writer slot (crawl jobs wait) for other work that crawls, e.g. an evolution with docs."""
        if not enabled:
            yield
            return
        async with self._writer:
            yield

    async def aclose(self) -> None:
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._journal.close()

    async def _run(self, job: CrawlJob, request) -> None:
        def on_progress(progress) -> None:
            job.progress = asdict(progress)
            self._changed[job.id].set()

        try:
            async with self._writer:
                job.status, job.started_at = "running", time.time()
                self._journal.save(job)
                self._changed[job.id].set()
                report = await self._service.acrawl(request, on_progress=on_progress)
            job.report, job.status = report.to_dict(), "done"
        except asyncio.CancelledError:
            job.status, job.error = "cancelled", "cancelled on request; run the crawl again to resume"
        except EvoragError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a job must record its failure, not die silently
            job.status, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()
            with contextlib.suppress(sqlite3.Error):  # closed at shutdown: the job is then interrupted
                self._journal.save(job)
            self._changed[job.id].set()
            self._tasks.pop(job.id, None)

    def _forget_old(self) -> None:
        finished = sorted(
            (j for j in self._jobs.values() if j.status in FINISHED), key=lambda j: j.created_at
        )
        forgotten = finished[: max(0, len(finished) - self._keep_finished)]
        for job in forgotten:
            self._jobs.pop(job.id, None)
            self._changed.pop(job.id, None)
        if forgotten:
            self._journal.forget([job.id for job in forgotten])
