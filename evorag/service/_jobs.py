"""Crawl jobs: every crawl runs as a job, whoever starts it (the CLI, the MCP server, the UI, Python).

A job is an asyncio task on the loop that started it. Jobs write one at a time: each takes the service's
writer slot, and waits as ``queued`` until it has it. Every change of status is written to a journal under
``EVORAG_HOME`` (SQLite), with the process that runs the job, so a job id stays valid across restarts and
processes: a job whose process is gone before it finished reads as ``interrupted``, saying how to resume
(the pages it indexed are kept, and the same crawl continues). The newest ``keep_finished`` finished jobs
are kept so that clients can read a report after reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from evorag.errors import EvoragError, InternalError, NotFoundError, UserError
from evorag.service._writer import WriterSlot
from evorag.tools.crawl_job import CrawlProgress, CrawlReport, ProgressCallback

JobStatus = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled", "interrupted"})
INTERRUPTED = (
    "the evorag process running this crawl stopped before it finished; crawl the same url into the same "
    "source again to resume (pages already indexed are kept)"
)
CANCELLED = "cancelled on request; run the crawl again to resume"
logger = logging.getLogger("evorag.jobs")

# What a job runs: the crawl itself, given the callback that records its progress.
CrawlWork = Callable[[ProgressCallback], Awaitable[CrawlReport]]


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

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CrawlJob:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def _started(pid: int) -> str | None:
    try:
        return f"{psutil.Process(pid).create_time():.3f}"
    except psutil.Error:  # no such process (or not ours to see)
        return None


def process_identity(pid: int) -> str:
    """``pid:start time`` of a running process: a process id alone may be reused after a crash."""
    return f"{pid}:{_started(pid)}"


def _running(owner: str | None) -> bool:
    """Whether the process that recorded ``owner`` still runs (the same pid, started at the same time)."""
    pid, _, started = (owner or "").partition(":")
    return pid.isdigit() and started not in ("", "None") and _started(int(pid)) == started


class JobJournal:
    """The jobs, one JSON row each with the process that runs them; written on every change of status."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at REAL, status TEXT, "
                         "owner TEXT, data TEXT)")

    def save(self, job: CrawlJob, owner: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (id, created_at, status, owner, data) VALUES (?, ?, ?, ?, ?)",
                (job.id, job.created_at, job.status, owner, json.dumps(job.to_dict(), default=str)),
            )

    def load(self, job_id: str) -> tuple[CrawlJob, str | None] | None:
        with self._lock:
            row = self._db.execute("SELECT data, owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._parse(row) if row else None

    def all(self) -> list[tuple[CrawlJob, str | None]]:
        with self._lock:
            rows = self._db.execute("SELECT data, owner FROM jobs ORDER BY created_at").fetchall()
        return [parsed for parsed in map(self._parse, rows) if parsed is not None]

    def prune(self, keep_finished: int) -> list[str]:
        """Forget all but the newest ``keep_finished`` finished jobs; returns the ids forgotten."""
        marks = ",".join("?" * len(FINISHED))
        with self._lock:
            ids = [row[0] for row in self._db.execute(
                f"SELECT id FROM jobs WHERE status IN ({marks}) ORDER BY created_at DESC LIMIT -1 OFFSET ?",
                (*sorted(FINISHED), keep_finished))]
            self._db.executemany("DELETE FROM jobs WHERE id = ?", [(job_id,) for job_id in ids])
        return ids

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _parse(row) -> tuple[CrawlJob, str | None] | None:
        data, owner = row
        try:
            return CrawlJob.from_dict(json.loads(data)), owner
        except (ValueError, TypeError) as exc:  # a row we cannot read must not stop anyone
            logger.warning("skipping an unreadable crawl job record: %s", exc)
            return None


class CrawlJobs:
    """Starts, tracks, waits for and cancels the crawl jobs of one service."""

    def __init__(self, journal_path: Path, writer: WriterSlot, *, keep_finished: int = 100) -> None:
        self._journal_path = journal_path
        self._writer = writer
        self._keep_finished = keep_finished
        self._owner = process_identity(os.getpid())
        self._journal_db: JobJournal | None = None
        self._journal_lock = threading.Lock()
        self._jobs: dict[str, CrawlJob] = {}  # jobs this process runs or ran
        self._tasks: dict[str, asyncio.Task] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._outcomes: dict[str, CrawlReport | BaseException] = {}

    def _journal(self) -> JobJournal:
        with self._journal_lock:
            if self._journal_db is None:
                self._journal_db = JobJournal(self._journal_path)
            return self._journal_db

    def _save(self, job: CrawlJob) -> None:
        self._journal().save(job, self._owner)

    async def start(self, *, url: str, source: str | None, work: CrawlWork,
                    on_progress: ProgressCallback | None = None) -> CrawlJob:
        """Queue ``work`` as a job on the running loop and return the job at once."""
        job = CrawlJob(id=uuid.uuid4().hex[:12], url=url, source=source)
        await asyncio.to_thread(self._save, job)
        self._jobs[job.id] = job
        self._changed[job.id] = asyncio.Event()
        self._tasks[job.id] = asyncio.get_running_loop().create_task(
            self._run(job, work, on_progress), name=f"crawl-{job.id}")
        await asyncio.to_thread(self._forget_old)
        return job

    def get(self, job_id: str) -> CrawlJob:
        """The job as it is now; a job of a process that stopped before it finished is ``interrupted``."""
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        stored = self._journal().load(job_id)
        if stored is None:
            raise NotFoundError(
                f"no crawl job {job_id!r}",
                hint=f"job ids come from starting a crawl; only the newest {self._keep_finished} finished jobs "
                "are kept",
            )
        job, owner = stored
        if not job.finished and not _running(owner):
            job.status, job.error, job.finished_at = "interrupted", INTERRUPTED, time.time()
            self._journal().save(job, owner or "")
        return job

    def all(self) -> list[CrawlJob]:
        """Every job the journal holds, oldest first (this process's as they are now)."""
        return [self._jobs.get(job.id) or self.get(job.id) for job, _ in self._journal().all()]

    def cancel(self, job_id: str) -> CrawlJob:
        """Ask a queued or running job to stop (from any thread); pages already indexed stay, a re-crawl resumes."""
        job = self.get(job_id)
        if job.finished:
            raise UserError(f"crawl job {job_id} is already {job.status}")
        task = self._tasks.get(job_id)
        if task is None:
            raise UserError(f"crawl job {job_id} runs in another evorag process",
                            hint="cancel it through the server or the command that started it")
        # Through the task's loop: callers may be in a worker thread (an MCP tool call, a UI handler).
        task.get_loop().call_soon_threadsafe(task.cancel)
        return job

    async def wait(self, job_id: str, timeout: float, on_change=None) -> CrawlJob:
        """Wait up to ``timeout`` s for the job to finish; awaits ``on_change(job)`` after every update.
        Jobs of other processes are not waited for: their state is read once."""
        job = await asyncio.to_thread(self.get, job_id)
        event = self._changed.get(job_id)
        if job.finished or event is None:
            return job
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not job.finished:
            remaining = deadline - loop.time()
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

    async def result(self, job_id: str) -> CrawlReport:
        """Wait for a job of this process to finish: its report, or its failure raised again. A caller that is
        cancelled while waiting cancels the job (as Ctrl-C stops a crawl in the terminal)."""
        task = self._tasks.get(job_id)
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                raise
        outcome = self._outcomes.pop(job_id, None)
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is None:
            job = self.get(job_id)
            raise InternalError(f"crawl job {job_id} has no result to wait for ({job.status})")
        return outcome

    async def aclose(self) -> None:
        """Cancel the jobs still running (each is recorded as cancelled) and close the journal."""
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.close()

    def close(self) -> None:
        with self._journal_lock:
            if self._journal_db is not None:
                self._journal_db.close()
                self._journal_db = None

    async def _run(self, job: CrawlJob, work: CrawlWork, on_progress: ProgressCallback | None) -> None:
        def progress(state: CrawlProgress) -> None:
            job.progress = asdict(state)
            self._changed[job.id].set()
            if on_progress is not None:
                on_progress(state)

        try:
            async with self._writer:
                job.status, job.started_at = "running", time.time()
                await asyncio.to_thread(self._save, job)
                self._changed[job.id].set()
                report = await work(progress)
            job.report, job.status = report.to_dict(), "done"
            self._outcomes[job.id] = report
        except asyncio.CancelledError:
            job.status, job.error = "cancelled", CANCELLED
            self._outcomes[job.id] = UserError(f"crawl job {job.id} was cancelled", hint=CANCELLED)
        except EvoragError as exc:
            job.status, job.error = "failed", str(exc)
            self._outcomes[job.id] = exc
        except Exception as exc:
            logger.exception("crawl job %s failed", job.id)
            job.status, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            self._outcomes[job.id] = exc
        finally:
            job.finished_at = time.time()
            # Written here, on the loop: the job may be ending because its loop shuts down, when no thread can
            # be awaited any more. One small row; a closed journal leaves the job to read as interrupted.
            with contextlib.suppress(sqlite3.Error, EvoragError):
                self._save(job)
            self._changed[job.id].set()
            self._tasks.pop(job.id, None)

    def _forget_old(self) -> None:
        forgotten = self._journal().prune(self._keep_finished)
        for job_id in forgotten:
            self._jobs.pop(job_id, None)
            self._changed.pop(job_id, None)
            self._outcomes.pop(job_id, None)
