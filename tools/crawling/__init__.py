"""Crawl one documentation site into pages of clean Markdown.

``crawl_site`` walks a site breadth-first from a start URL and yields events as it goes:
``PageFetched`` (new or changed page), ``PageUnchanged`` (HTTP 304, or the same content hash as the
``known`` page), ``PageSkipped`` (read and followed but not indexed: a navigation page, see
``_navigation``), ``PageFailed``, ``PageGone`` (a known page now answers 404/410) and finally one
``CrawlFinished`` with the summary. Build its options with ``CrawlOptions.from_settings``.

The parts, one job each:

- ``_options``: ``CrawlOptions`` and how the settings fill them.
- ``_events``: ``KnownPage`` (what an earlier crawl recorded) and the events.
- ``_urls``: canonical URLs, deduplication, origins, the site's scope, include/exclude globs.
- ``_fetch``: ``HttpFetcher``, the guarded HTTP client (every hop and the connected address checked,
  per-host rate limits, retries, size caps, conditional requests).
- ``_browser``: rendering in the system Chromium through Crawl4AI (``browser=True``).
- ``_robots``, ``_discovery``: robots.txt; pages listed by sitemaps and llms.txt.
- ``_page``: a page response into Markdown (content type, charset, main-content extraction).
- ``_navigation``: which pages are only lists of links (followed, not indexed).
- ``_traversal``: ``crawl_site``, the breadth-first walk that ties them together.

Plain HTTP goes through httpx, not Crawl4AI's ``AsyncHTTPCrawlerStrategy``, because (checked in
crawl4ai 0.9.5's source) it reads every body whole with ``response.read()`` (no size cap), raises a
bare ``HTTPStatusError`` for 304 and for 3xx when redirects are off (the ``Location`` is lost, so hops
cannot be checked) and follows redirects unchecked when they are on, and writes every non-HTML
response to a downloads folder. Main content is always extracted by ``evorag.tools.extract``
(Crawl4AI's Markdown keeps sidebars and navigation).
"""

from __future__ import annotations

from evorag.tools.crawling._events import (
    CrawlEvent,
    CrawlFinished,
    CrawlSummary,
    KnownPage,
    PageFailed,
    PageFetched,
    PageGone,
    PageSkipped,
    PageUnchanged,
)
from evorag.tools.crawling._fetch import FetchError, FetchResult, HttpFetcher
from evorag.tools.crawling._options import CrawlOptions
from evorag.tools.crawling._traversal import crawl_site
from evorag.tools.crawling._urls import normalize_url

__all__ = [
    "CrawlEvent",
    "CrawlFinished",
    "CrawlOptions",
    "CrawlSummary",
    "FetchError",
    "FetchResult",
    "HttpFetcher",
    "KnownPage",
    "PageFailed",
    "PageFetched",
    "PageGone",
    "PageSkipped",
    "PageUnchanged",
    "crawl_site",
    "normalize_url",
]
