"""What a crawl knows from earlier crawls (``KnownPage``) and the events it reports as it goes."""

from __future__ import annotations

from dataclasses import dataclass

from evorag.tools.types import Page


@dataclass(slots=True, frozen=True)
class KnownPage:
    """What an earlier crawl recorded about a page, for conditional requests and change detection."""

    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None


@dataclass(slots=True, frozen=True)
class PageFetched:
    page: Page
    depth: int


@dataclass(slots=True, frozen=True)
class PageUnchanged:
    url: str


@dataclass(slots=True, frozen=True)
class PageFailed:
    url: str
    reason: str
    status: int | None = None


@dataclass(slots=True, frozen=True)
class PageSkipped:
    """A page read and followed for its links but not indexed (e.g. a navigation page): ``reason`` says why.
    A page of an earlier crawl that is skipped now leaves the index."""

    url: str
    reason: str


@dataclass(slots=True, frozen=True)
class PageGone:
    url: str
    status: int


@dataclass(slots=True, frozen=True)
class CrawlSummary:
    discovered: int
    fetched: int
    unchanged: int
    failed: int
    gone: int
    complete: bool
    """True when the crawl exhausted its frontier without hitting ``max_pages``."""
    external_links: list[str]
    """Sorted unique links from page content to other sites: what the crawl did not follow."""
    elapsed: float
    unvisited: tuple[tuple[str, str, str], ...] = ()
    """In-scope pages the crawl knew of but did not visit: (url, reason, found via). Reasons: ``page limit``
    (still queued when max_pages was reached), ``excluded`` (by the include/exclude globs), ``depth limit``
    (linked from a page at max_depth); found via ``sitemap``, ``llms.txt``, ``link`` or ``known``. Pages
    robots.txt disallows are not listed: the site asked not to be crawled there."""
    skipped: int = 0
    """Pages read but not indexed (``PageSkipped`` events)."""


@dataclass(slots=True, frozen=True)
class CrawlFinished:
    summary: CrawlSummary


CrawlEvent = PageFetched | PageUnchanged | PageSkipped | PageFailed | PageGone | CrawlFinished
