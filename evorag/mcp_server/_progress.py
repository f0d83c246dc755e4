"""Progress notifications (sent only when the client asked for progress): a crawl job's counts, a team's events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mcp.server.fastmcp import Context

from evorag.service import FINISHED, CrawlJob
from evorag.team_events import event_summary

PROGRESS_INTERVAL_S = 0.25


class CrawlProgress:
    """``on_change`` for ``wait_crawl_job``: at most one notification per PROGRESS_INTERVAL_S, and the last one."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._last_sent = 0.0

    async def __call__(self, job: CrawlJob) -> None:
        if time.monotonic() - self._last_sent < PROGRESS_INTERVAL_S and job.status not in FINISHED:
            return
        self._last_sent = time.monotonic()
        p = job.progress
        done = p.get("done", 0)
        await self._ctx.report_progress(
            done,
            # Pages found so far (capped at max_pages): the total grows as links are discovered.
            max(p.get("discovered", 0), done) or None,
            f"{job.status}: {p.get('indexed', 0)} indexed, {p.get('unchanged', 0)} unchanged, "
            f"{p.get('failed', 0)} failed",
        )


class TeamProgress:
    """Turns team events into progress notifications: ``async with TeamProgress(ctx) as on_event: ...``."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._count = 0
        self._pending: set[asyncio.Task] = set()

    async def __aenter__(self) -> Callable[[object], None]:
        return self._on_event

    async def __aexit__(self, *exc: object) -> None:
        # Progress must arrive before the result: after it, the progress token is no longer valid.
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _on_event(self, event: object) -> None:
        self._count += 1
        try:
            task = asyncio.get_running_loop().create_task(
                self._ctx.report_progress(self._count, None, event_summary(event))
            )
        except RuntimeError:  # called outside the loop's thread: progress is best effort
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
