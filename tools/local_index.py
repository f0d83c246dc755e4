"""Indexing documents read from disk (a folder, a git checkout) into a source, with a crawl's semantics.

Each document is one file cited by a URL (``file://`` for a folder; a PDF's pages as ``URL#page=N``). Re-running
compares content hashes with the catalog: only new and changed pages are embedded, unchanged ones are
counted, and pages of files that are gone are removed (only after a walk that saw the whole folder: what a
limit hid may still exist). A file that cannot be read keeps the pages it had. Writes go through the
``Indexer`` protocol (crash-safe: a killed run leaves pending pages that ``Indexer.recover`` settles first) and
the run closes a change report, as a crawl does (``Catalog.finish_crawl``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evorag.tools.catalog import Catalog
from evorag.tools.crawl_job import BATCH_PAGES, CrawlProgress, CrawlReport, ProgressCallback
from evorag.tools.file_formats import Section, UnreadableFile, convert
from evorag.tools.indexer import Indexer
from evorag.tools.local_files import FolderLimits, FolderWalk, read_file
from evorag.tools.types import Page


@dataclass(slots=True)
class FileDocument:
    """One file's contribution: its sections (none: it has no text), or why it could not be read."""

    path: str  # relative to the folder, POSIX
    url: str  # its citation
    sections: list[Section] = field(default_factory=list)
    error: str | None = None


def read_documents(walk: FolderWalk, limits: FolderLimits, cite: Callable[[str], str]) -> Iterator[FileDocument]:
    """Read and convert the files of ``walk`` one at a time (memory holds one file)."""
    for relative in walk.files:
        url = cite(relative)
        try:
            sections = convert(relative, read_file(walk.root, relative, limits), max_pdf_pages=limits.max_pdf_pages)
        except (OSError, ValueError, UnreadableFile) as exc:
            yield FileDocument(relative, url, error=str(exc) or type(exc).__name__)
        else:
            yield FileDocument(relative, url, sections)


def index_documents(
    documents: Iterable[FileDocument],
    *,
    source: str,
    start_url: str,
    version: str | None,
    walk: FolderWalk,
    catalog: Catalog,
    indexer: Indexer,
    on_progress: ProgressCallback | None = None,
) -> CrawlReport:
    """Index ``documents`` into ``source`` (``version``) and close the run's change report (blocking)."""
    started = time.monotonic()
    report = CrawlReport(source=source, start_url=start_url, version=version)
    report.recovered_pages = indexer.recover()
    known = {url: record.indexed_hash for url, record in catalog.pages(source, version).items()
             if record.indexed_hash is not None}
    progress = CrawlProgress(discovered=len(walk.files))
    seen: set[str] = set()
    batch: list[Page] = []

    def flush() -> None:
        if batch:
            result = indexer.index_pages(source, batch, version=version)
            report.pages_indexed += result.pages
            report.chunks_indexed += result.chunks
            progress.indexed += result.pages
            progress.chunks += result.chunks
            batch.clear()

    for relative, reason in walk.skipped:
        report.failures.append({"url": relative, "reason": reason, "status": None})
    for document in documents:
        progress.done += 1
        progress.last_url = document.url
        if document.error is not None:
            # Unreadable now (perhaps mid-edit): what was indexed of it stays.
            seen.update(url for url in known if url == document.url or url.startswith(document.url + "#"))
            report.failures.append({"url": document.path, "reason": document.error, "status": None})
            progress.failed += 1
        elif not document.sections:
            report.failures.append({"url": document.path, "reason": "no text to index", "status": None})
        for section in document.sections:
            url = f"{document.url}#{section.fragment}" if section.fragment else document.url
            content_hash = hashlib.sha256(section.markdown.encode("utf-8")).hexdigest()
            seen.add(url)
            if known.get(url) == content_hash:
                report.pages_unchanged += 1
                progress.unchanged += 1
                continue
            batch.append(Page(url=url, title=section.title, markdown=section.markdown, content_hash=content_hash,
                              fetched_at=time.time()))
            if len(batch) >= BATCH_PAGES:
                flush()
        if on_progress:
            on_progress(progress)
    flush()
    report.pages_failed = len(report.failures)
    report.complete = walk.complete
    if walk.complete:
        report.pages_removed = indexer.remove_pages(source, sorted(set(known) - seen), version=version)
    closed = catalog.finish_crawl(source, report.to_dict(), version=version)
    if closed is not None:
        report.changes = {"report_id": closed.id, **{change: closed.count(change)
                                                     for change in ("added", "changed", "removed")}}
    report.elapsed_s = round(time.monotonic() - started, 3)
    progress.discovered = progress.done  # modules without docstrings were found but hold nothing: the bar is full
    if on_progress:
        on_progress(progress)
    return report


def file_url(root: Path, relative: str) -> str:
    """The citation of a file in a folder: its absolute ``file://`` URL (percent-encoded)."""
    return (root / relative).as_uri()
