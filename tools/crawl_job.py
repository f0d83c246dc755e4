"""One crawl of one source, end to end: crawler events in, indexed pages out.

Fetching runs ahead while a worker thread embeds and writes batches, so the network and the model
overlap. Vanished pages are removed only on evidence: a 404/410, or absence from a crawl that
finished its whole frontier without hitting a limit. A page the crawler read but did not index (a
navigation page: ``PageSkipped``) is listed in ``CrawlReport.skipped`` and leaves the index if it was in it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from evorag.tools.catalog import Catalog
from evorag.tools.crawling import (
    CrawlFinished,
    CrawlOptions,
    KnownPage,
    PageFailed,
    PageFetched,
    PageGone,
    PageSkipped,
    PageUnchanged,
    crawl_site,
)
from evorag.tools.indexer import Indexer
from evorag.tools.types import Page

from evorag.errors import CrawlError


@dataclass(slots=True)
class CrawlReport:
    source: str
    start_url: str
    pages_indexed: int = 0
    pages_unchanged: int = 0
    pages_removed: int = 0
    pages_failed: int = 0
    chunks_indexed: int = 0
    failures: list[dict] = field(default_factory=list)
    # Pages read (their links followed) but not indexed: {"url", "reason"}, e.g. navigation pages.
    skipped: list[dict] = field(default_factory=list)
    complete: bool = False
    external_links: int = 0
    recovered_pages: int = 0
    elapsed_s: float = 0.0
    version: str | None = None
    # The change report this crawl closed: its id and how many pages were added, changed, removed.
    changes: dict | None = None

    @property
    def reembedded_pages(self) -> int:
        return self.pages_indexed

    def to_dict(self) -> dict:
        data = asdict(self)
        data["reembedded_pages"] = self.reembedded_pages
        return data


@dataclass(slots=True)
class CrawlProgress:
    """What a progress bar shows; handed to the callback after every event.

    ``discovered`` is the bar's total: pages found so far that the crawl will visit (at most
    ``max_pages``, never below ``done``); it grows as links are found and equals ``done`` at the end.
    """

    done: int = 0
    discovered: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    last_url: str = ""


ProgressCallback = Callable[[CrawlProgress], None]

# Below this many new chunks Qdrant Edge's exact search stays fast (~7 ms per hybrid query at 100k chunks),
# and the index build (which blocks the process) is not worth it.
OPTIMIZE_AFTER_CHUNKS = 50_000
# A crawl where most pages fail is stopped rather than hammering a broken site to the end.
ABORT_AFTER_PAGES = 20
ABORT_FAILURE_SHARE = 0.8


def _mostly_failing(failed: int, attempted: int) -> bool:
    return attempted >= ABORT_AFTER_PAGES and failed >= ABORT_FAILURE_SHARE * attempted


# Pages are embedded in batches: bigger batches amortise model overhead, smaller ones commit sooner.
BATCH_PAGES = 16


async def run_crawl(
    *,
    source: str,
    start_url: str,
    options: CrawlOptions,
    catalog: Catalog,
    indexer: Indexer,
    on_progress: ProgressCallback | None = None,
    version: str | None = None,
) -> CrawlReport:
    """Crawl ``start_url`` into ``source`` (documentation ``version``: None for an unversioned source)."""
    started = time.monotonic()
    report = CrawlReport(source=source, start_url=start_url, version=version)
    # SQLite and the store block: they run in threads, so the loop keeps fetching and serving meanwhile.
    report.recovered_pages = await asyncio.to_thread(indexer.recover)
    known_records = await asyncio.to_thread(catalog.pages, source, version)
    known = {
        url: KnownPage(etag=rec.etag, last_modified=rec.last_modified, content_hash=rec.indexed_hash)
        for url, rec in known_records.items()
        if rec.indexed_hash is not None
    }
    progress = CrawlProgress()
    seen: set[str] = set()
    batch: list[Page] = []
    writer: asyncio.Task | None = None

    def report_progress() -> None:
        if on_progress:
            on_progress(progress)

    def on_discovered(total: int) -> None:
        progress.discovered = total

    async def flush() -> None:
        nonlocal writer, batch
        if writer is not None:
            await writer  # one batch in flight: keeps memory bounded and ordering simple
        pages, batch = batch, []
        if pages:
            writer = asyncio.create_task(asyncio.to_thread(_write, pages))

    def _write(pages: list[Page]) -> None:
        result = indexer.index_pages(source, pages, version=version)
        report.pages_indexed += result.pages
        report.chunks_indexed += result.chunks
        progress.indexed += result.pages
        progress.chunks += result.chunks

    finished: CrawlFinished | None = None
    try:
        async for event in crawl_site(start_url, options, known, on_discovered=on_discovered):
            if isinstance(event, PageFetched):
                seen.add(event.page.url)
                batch.append(event.page)
                if len(batch) >= BATCH_PAGES:
                    await flush()
                progress.last_url = event.page.url
            elif isinstance(event, PageUnchanged):
                seen.add(event.url)
                report.pages_unchanged += 1
                progress.unchanged += 1
                progress.last_url = event.url
            elif isinstance(event, PageGone | PageSkipped):
                seen.add(event.url)  # removed here: not again among the vanished pages at the end
                if isinstance(event, PageSkipped):
                    report.skipped.append({"url": event.url, "reason": event.reason})
                    progress.last_url = event.url
                if event.url in known:
                    await flush()
                    if writer is not None:
                        # The batch in flight writes the same catalog connection: one transaction at a time.
                        await writer
                    report.pages_removed += await asyncio.to_thread(
                        functools.partial(indexer.remove_pages, source, [event.url], version=version))
            elif isinstance(event, PageFailed):
                # A known page that fails transiently keeps its indexed version.
                seen.add(event.url)
                report.pages_failed += 1
                progress.failed += 1
                report.failures.append({"url": event.url, "reason": event.reason, "status": event.status})
                if _mostly_failing(report.pages_failed, progress.done + 1):
                    await flush()
                    if writer is not None:
                        await writer
                    reasons = sorted({f["reason"] for f in report.failures})[:3]
                    raise CrawlError(
                        f"aborted: {report.pages_failed} of {progress.done + 1} pages failed ({'; '.join(reasons)})",
                        hint="the site may be down or blocking us; pages indexed so far are kept, "
                        "run the same command later to resume",
                    )
            elif isinstance(event, CrawlFinished):
                finished = event
                # Found pages that were never visited (past max_pages, or redirecting to a page already
                # crawled) are not part of this crawl: the finished bar is full.
                progress.discovered = progress.done
                continue
            progress.done += 1
            report_progress()
        await flush()
        if writer is not None:
            await writer
    finally:
        if writer is not None and not writer.done():
            await asyncio.shield(writer)

    if finished is not None:
        summary = finished.summary
        report.complete = bool(summary.complete)
        report.external_links = len(summary.external_links)
        if report.complete:
            vanished = sorted(set(known) - seen)
            report.pages_removed += await asyncio.to_thread(
                functools.partial(indexer.remove_pages, source, vanished, version=version))
        closed = await asyncio.to_thread(functools.partial(
            catalog.finish_crawl, source, report.to_dict(), summary.external_links, version=version,
            unvisited=summary.unvisited))
        if closed is not None:
            report.changes = {"report_id": closed.id, **{change: closed.count(change)
                                                         for change in ("added", "changed", "removed")}}
    if report.chunks_indexed >= OPTIMIZE_AFTER_CHUNKS:
        # Build the HNSW and sparse indexes once after a bulk ingest (it blocks for a while: not per page).
        await asyncio.to_thread(indexer.store.optimize)
    report_progress()
    report.elapsed_s = round(time.monotonic() - started, 3)
    return report
