"""Crawl jobs: every crawl is a request in the one request queue (kind ``crawl``, or ``refresh`` when a
schedule started it), whoever starts it (the CLI, the MCP server, the UI, Python). There is one job system:
this module is the crawl-shaped view of the queue (see _requests), not a second journal.

What that gives a crawl: a job id valid in every process of the home and across restarts; ``queued`` with its
position while it waits (for a worker, or for the writer: crawls run one at a time across every process of
the home); ``running`` with its progress; ``done`` with its report, ``failed`` with the reason, ``cancelled``;
cancelling works from any process; and a crawl whose process died is queued again once its lease expires and
resumed by the next worker (the pages it indexed are kept), at most ``queue_max_attempts`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from evorag.errors import NotFoundError
from evorag.service._queue import FINISHED, QueueRequest
from evorag.service._requests import RequestsService
from evorag.tools.types import CrawlRequest

if TYPE_CHECKING:
    # Imported where used: the crawler (httpx, lxml) loads when a crawl job is followed, never for a search.
    from evorag.tools.crawl_job import CrawlReport, ProgressCallback

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
CRAWL_KINDS = ("crawl", "refresh")
RESUME = "run the crawl again to resume (pages already indexed are kept)"

__all__ = ["FINISHED", "CrawlJob", "CrawlJobs"]


@dataclass(slots=True)
class CrawlJob:
    id: str
    url: str
    source: str | None
    status: JobStatus = "queued"
    progress: dict = field(default_factory=dict)
    report: dict | None = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    position: int | None = None  # 1 = next, while queued
    attempts: int = 0
    kind: str = "crawl"
    version: str | None = None
    requested_by: str | None = None
    note: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, request: QueueRequest) -> CrawlJob:
        payload = request.payload
        error = request.error
        if request.status == "cancelled":
            error = f"{error or 'cancelled on request'}; {RESUME}"
        report = request.result
        if report is not None and request.kind == "refresh":
            payload = {**payload, "url": report.get("start_url"), "version": report.get("version")}
        return cls(id=request.id, url=str(payload.get("url") or ""), source=payload.get("source"),
                   status=request.status, progress=dict(request.progress), report=report, error=error,
                   created_at=request.created_at, started_at=request.started_at, finished_at=request.finished_at,
                   position=request.position, attempts=request.attempts, kind=request.kind,
                   version=payload.get("version"), requested_by=request.requested_by, note=request.note)


class CrawlJobs:
    """Starts, follows, waits for and cancels crawl jobs through the request queue."""

    def __init__(self, requests: RequestsService) -> None:
        self._requests = requests
        self._followers: set[asyncio.Task] = set()

    async def start(self, request: CrawlRequest, *, on_progress: ProgressCallback | None = None) -> CrawlJob:
        """Check ``request`` (raising before any job exists when no crawl could get past), queue it, and make
        sure it runs: in this process when no server runs here. Returns the job at once."""
        payload = asdict(request) | {"include": list(request.include), "exclude": list(request.exclude)}
        queued = await self._requests.asubmit("crawl", payload, run_here=True)
        if on_progress is not None:
            follower = asyncio.get_running_loop().create_task(self._follow(queued.id, on_progress))
            self._followers.add(follower)
            follower.add_done_callback(self._followers.discard)
        return CrawlJob.of(queued)

    def get(self, job_id: str) -> CrawlJob:
        return CrawlJob.of(self._crawl(job_id))

    def all(self) -> list[CrawlJob]:
        """Every crawl job the queue holds, oldest first."""
        found = self._requests.requests(kinds=list(CRAWL_KINDS), limit=10_000)
        return [CrawlJob.of(request) for request in sorted(found, key=lambda request: request.seq)]

    def cancel(self, job_id: str) -> CrawlJob:
        """Cancel a queued job, or stop a running one (in whichever process runs it); pages indexed stay."""
        self._crawl(job_id)
        return CrawlJob.of(self._requests.cancel(job_id))

    async def wait(self, job_id: str, timeout: float, on_change=None) -> CrawlJob:
        """Wait up to ``timeout`` s for the job to finish; awaits ``on_change(job)`` after every update."""
        await asyncio.to_thread(self._crawl, job_id)

        async def changed(request: QueueRequest) -> None:
            if on_change is not None:
                await on_change(CrawlJob.of(request))

        return CrawlJob.of(await self._requests.wait(job_id, timeout, on_change=changed))

    async def result(self, job_id: str) -> CrawlReport:
        """Wait for the job: its report, or its failure raised again. A caller cancelled while waiting cancels
        the job (as Ctrl-C stops a crawl in the terminal)."""
        from evorag.tools.crawl_job import CrawlReport  # see TYPE_CHECKING above

        outcome = await self._requests.result(job_id)
        if isinstance(outcome, CrawlReport):
            return outcome
        known = {f.name for f in dataclasses.fields(CrawlReport)}
        return CrawlReport(**{name: value for name, value in outcome.items() if name in known})

    async def aclose(self) -> None:
        """Stop following jobs and stop this loop's workers (what they run goes back to the queue)."""
        for follower in list(self._followers):
            follower.cancel()
        await self._requests.astop_own()

    def close(self) -> None:
        """Close the queue's database (opened again on next use): a restore swaps the home under it."""
        self._requests.close()

    def _crawl(self, job_id: str) -> QueueRequest:
        try:
            request = self._requests.request(job_id)
        except NotFoundError:
            request = None
        if request is None or request.kind not in CRAWL_KINDS:
            raise NotFoundError(f"no crawl job {job_id!r}",
                                hint="job ids come from starting a crawl; see `evorag queue` for the newest ones")
        return request

    async def _follow(self, job_id: str, on_progress: ProgressCallback) -> None:
        from evorag.tools.crawl_job import CrawlProgress  # see TYPE_CHECKING above

        known = {f.name for f in dataclasses.fields(CrawlProgress)}

        async def changed(request: QueueRequest) -> None:
            fields = {name: value for name, value in request.progress.items() if name in known}
            if fields:
                on_progress(CrawlProgress(**fields))

        with contextlib.suppress(Exception):  # progress is a courtesy: the job's own outcome says what happened
            await self._requests.wait(job_id, None, on_change=changed)

