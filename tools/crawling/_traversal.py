"""Site traversal: breadth-first from a start URL within its scope, honouring robots.txt, limits and globs.

Scope: same scheme, host and port as the start URL (after its redirects), and a path under the start
URL's directory. Pages are found through links (navigation included), ``sitemap.xml`` (also sitemap
indexes and ``Sitemap:`` lines of robots.txt), ``llms.txt`` and the ``known`` pages of an earlier
crawl. robots.txt is honoured, include/exclude globs, depth and page limits apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from evorag.tools.crawling._browser import BrowserRenderer
from evorag.tools.crawling._discovery import llms_txt_urls, sitemap_urls
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
from evorag.tools.crawling._fetch import FetchError, HttpFetcher
from evorag.tools.crawling._navigation import NAVIGATION_REASON, is_navigation_page
from evorag.tools.crawling._options import CrawlOptions
from evorag.tools.crawling._page import accept_html, decode_html, extract_page, reason_phrase
from evorag.tools.crawling._robots import RobotsRules
from evorag.tools.crawling._urls import (
    Scope,
    dedupe_key,
    looks_like_page,
    normalize_url,
    origin_of,
    scope_for,
    wanted,
)
from evorag.tools.extract import extract_main_content
from evorag.tools.types import Page
from evorag.tools.url_guard import check_url

from evorag.errors import BlockedURLError, CrawlError, UserError

_MAX_UNVISITED = 5000  # pages known but not visited, remembered per crawl


async def crawl_site(
    start_url: str,
    options: CrawlOptions,
    known: Mapping[str, KnownPage] | None = None,
    on_event: Callable[[CrawlEvent], None] | None = None,
    on_discovered: Callable[[int], None] | None = None,
) -> AsyncIterator[CrawlEvent]:
    """Crawl the site at ``start_url``, yielding events; the last one is ``CrawlFinished``.

    ``known`` maps URLs indexed by an earlier crawl to what was recorded about them: they are
    revalidated with conditional requests (and come back as ``PageUnchanged`` cheaply), and also seed
    the crawl, so a resumed crawl reaches them even when the pages linking to them answer 304.
    To stop early, close the generator (``contextlib.aclosing``) or cancel the consuming task:
    in-flight requests are cancelled and connections closed.

    ``on_discovered(total)`` is called whenever the number of pages this crawl will visit, as far as
    it knows, grows: pages found so far, capped at ``options.max_pages``. Each page is counted before
    its visit, so ``total`` is never below the number of page events yielded.

    Raises:
        UserError: ``start_url`` is malformed, or ``options.selector`` is not valid CSS.
        BlockedURLError: the start URL, or a redirect of it, is refused by the URL guard.
        CrawlError: the start page cannot be fetched (host unreachable, HTTP error, robots.txt).
    """
    crawler = _SiteCrawler(start_url, options, known or {}, on_discovered)
    async for event in crawler.run():
        if on_event is not None:
            on_event(event)
        yield event


@dataclass(slots=True)
class _VisitOutcome:
    events: list[CrawlEvent]
    links: list[str] = field(default_factory=list)
    content_links: list[str] = field(default_factory=list)
    final_url: str | None = None


class _SiteCrawler:
    """One crawl: the frontier, what was seen, the scope, and the visit of each page."""

    def __init__(
        self,
        start_url: str,
        options: CrawlOptions,
        known: Mapping[str, KnownPage],
        on_discovered: Callable[[int], None] | None = None,
    ) -> None:
        self.options = options
        self.start_url = start_url
        self.known = _normalized_known(known)
        self.fetcher: HttpFetcher | None = None
        self.renderer: BrowserRenderer | None = None
        self.robots: RobotsRules | None = None
        self.scope: Scope | None = None
        self.seen: set[str] = set()
        self.judged_links: set[str] = set()
        self.frontier: deque[tuple[str, int]] = deque()
        self.external: set[str] = set()
        # Pages known but not visited, for proposals (see CrawlSummary.unvisited): url -> (reason, via).
        self.unvisited: dict[str, tuple[str, str]] = {}
        self.found_via: dict[str, str] = {}
        self.visited: set[str] = set()
        self.counts = {"discovered": 0, "fetched": 0, "unchanged": 0, "skipped": 0, "failed": 0, "gone": 0}
        self.on_discovered = on_discovered
        self.reported_total = 0

    async def run(self) -> AsyncIterator[CrawlEvent]:
        started = time.monotonic()
        # getaddrinfo blocks: resolve the start host off the event loop.
        start = await asyncio.to_thread(
            check_url, self.start_url, allow_private=self.options.allow_private, resolve=True
        )
        if self.options.selector:
            extract_main_content("<html></html>", start, selector=self.options.selector)  # validates it
        self.fetcher = HttpFetcher(self.options)
        self.robots = RobotsRules(self.fetcher, self.options.user_agent, respect=self.options.respect_robots)
        in_flight: dict[asyncio.Task[_VisitOutcome], int] = {}
        try:
            if self.options.browser:
                self.renderer = BrowserRenderer(self.options)
                await self.renderer.start()
            self.scope = scope_for(start)
            await self._robots().load(start, is_start=True)
            if not self._robots_allows(start):
                raise CrawlError(
                    f"robots.txt of {origin_of(start)} does not allow crawling {start}",
                    hint="crawl another part of the site, or turn off respect_robots if you have permission",
                )
            self.seen.add(dedupe_key(start))
            self.visited.add(dedupe_key(start))
            self.counts["discovered"] = 1
            self._report_total()
            outcome = await self._visit(start, 0, is_start=True)
            for event in outcome.events:
                yield self._count(event)
            final = outcome.final_url or start
            if final != start:
                self.scope = scope_for(final)
                self.seen.add(dedupe_key(final))
                await self._robots().load(final, is_start=True)
            self._absorb(outcome, 0)
            await self._seed()
            self._report_total()

            visits = 1
            while self.frontier or in_flight:
                while (
                    self.frontier
                    and len(in_flight) < self.options.concurrency
                    and visits < self.options.max_pages
                ):
                    url, depth = self.frontier.popleft()
                    self.visited.add(dedupe_key(url))
                    visits += 1
                    task = asyncio.create_task(self._visit(url, depth))
                    in_flight[task] = depth
                if not in_flight:
                    break
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    depth = in_flight.pop(task)
                    outcome = task.result()
                    for event in outcome.events:
                        yield self._count(event)
                    self._absorb(outcome, depth)
                    self._report_total()
            summary = CrawlSummary(
                discovered=self.counts["discovered"],
                fetched=self.counts["fetched"],
                unchanged=self.counts["unchanged"],
                failed=self.counts["failed"],
                gone=self.counts["gone"],
                complete=not self.frontier,
                external_links=sorted(self.external),
                elapsed=time.monotonic() - started,
                unvisited=self._unvisited(),
                skipped=self.counts["skipped"],
            )
            yield CrawlFinished(summary)
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.fetcher.aclose()
            if self.renderer is not None:
                with contextlib.suppress(Exception):
                    await self.renderer.aclose()

    def _report_total(self) -> None:
        # Visits stop at max_pages (the start page included): pages found past it are not this crawl's.
        total = min(self.counts["discovered"], self.options.max_pages)
        if self.on_discovered is not None and total != self.reported_total:
            self.reported_total = total
            self.on_discovered(total)

    def _count(self, event: CrawlEvent) -> CrawlEvent:
        key = {PageFetched: "fetched", PageUnchanged: "unchanged", PageSkipped: "skipped", PageFailed: "failed",
               PageGone: "gone"}[type(event)]
        self.counts[key] += 1
        return event

    # -- discovery -----------------------------------------------------------------------------------

    def _absorb(self, outcome: _VisitOutcome, depth: int) -> None:
        assert self.scope is not None
        site_host = urlsplit(f"{self.scope.scheme}://{self.scope.netloc}/").hostname
        for link in outcome.content_links:
            if urlsplit(link).hostname != site_host:
                self.external.add(link)
        if depth + 1 > self.options.max_depth:
            for link in outcome.links:
                self._note_depth_cut(link)
            return
        for link in outcome.links:
            # Navigation repeats the same links on every page; each is judged once.
            if link not in self.judged_links:
                self.judged_links.add(link)
                self._enqueue(link, depth + 1)

    def _enqueue(self, url: str, depth: int, via: str = "link") -> bool:
        assert self.scope is not None
        try:
            url = normalize_url(url)
        except ValueError:
            return False
        key = dedupe_key(url)
        if key in self.seen or not self.scope.contains(url) or not looks_like_page(url):
            return False
        self.seen.add(key)
        if not self._robots_allows(url):
            return False
        if not self._wanted(url):
            self._note_unvisited(url, "excluded", via)
            return False
        self.found_via[url] = via
        self.frontier.append((url, depth))
        self.counts["discovered"] += 1
        return True

    def _note_unvisited(self, url: str, reason: str, via: str) -> None:
        if len(self.unvisited) < _MAX_UNVISITED:
            self.unvisited.setdefault(url, (reason, via))

    def _note_depth_cut(self, link: str) -> None:
        """A link not followed because its page is at max_depth: remembered if it is an in-scope page the
        crawl has not found otherwise (``_unvisited`` drops it if another path reaches it later)."""
        assert self.scope is not None
        try:
            url = normalize_url(link)
        except ValueError:
            return
        if (dedupe_key(url) not in self.seen and self.scope.contains(url) and looks_like_page(url)
                and self._wanted(url) and self._robots_allows(url)):
            self._note_unvisited(url, "depth limit", "link")

    def _unvisited(self) -> tuple[tuple[str, str, str], ...]:
        for url, _ in self.frontier:
            self._note_unvisited(url, "page limit", self.found_via.get(url, "link"))
        return tuple((url, reason, via) for url, (reason, via) in sorted(self.unvisited.items())
                     if dedupe_key(url) not in self.visited)

    def _wanted(self, url: str) -> bool:
        return wanted(url, self.options.include, self.options.exclude)

    def _robots_allows(self, url: str) -> bool:
        return self._robots().allows(url)

    def _robots(self) -> RobotsRules:
        assert self.robots is not None, "run() creates the robots rules"
        return self.robots

    def _fetcher(self) -> HttpFetcher:
        assert self.fetcher is not None, "run() creates the fetcher"
        return self.fetcher

    async def _seed(self) -> None:
        """Queue pages from sitemaps, llms.txt and the known pages at depth 1."""
        if self.options.max_depth < 1:
            return
        assert self.scope is not None
        origin = f"{self.scope.scheme}://{self.scope.netloc}"
        prefix_root = origin + self.scope.prefix
        jobs, names = [], []
        if self.options.use_sitemaps:
            candidates = self._robots().sitemaps(origin) or [origin + "/sitemap.xml"]
            if prefix_root + "sitemap.xml" not in candidates:
                candidates.append(prefix_root + "sitemap.xml")
            jobs.append(sitemap_urls(self._fetcher(), candidates))
            names.append("sitemap")
        if self.options.use_llms_txt:
            llms = dict.fromkeys([prefix_root + "llms.txt", origin + "/llms.txt"])
            jobs.extend(llms_txt_urls(self._fetcher(), url) for url in llms)
            names.extend("llms.txt" for _ in llms)
        for via, urls in zip(names, await asyncio.gather(*jobs), strict=True):
            for url in urls:
                self._enqueue(url, 1, via)
        for url in self.known:
            self._enqueue(url, 1, "known")

    def _claim_redirect_target(self, url: str) -> bool:
        """Follow a redirect only to an in-scope, allowed page that no other URL of this crawl claimed."""
        if not self._in_scope(url) or not self._robots_allows(url):
            return False
        key = dedupe_key(normalize_url(url))
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def _in_scope(self, url: str) -> bool:
        assert self.scope is not None
        try:
            return self.scope.contains(normalize_url(url))
        except ValueError:
            return False

    # -- one page -----------------------------------------------------------------------------------

    def _conditional_headers(self, url: str) -> dict[str, str]:
        known = self.known.get(url)
        headers: dict[str, str] = {}
        if known is not None:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        return headers

    async def _visit(self, url: str, depth: int, *, is_start: bool = False) -> _VisitOutcome:
        try:
            result = await self._fetcher().fetch(
                url,
                max_bytes=self.options.max_page_bytes,
                accept=accept_html,
                conditional=self._conditional_headers,
                follow=None if is_start else self._claim_redirect_target,
            )
        except BlockedURLError as exc:
            if is_start:
                raise
            return _VisitOutcome([PageFailed(url, exc.message)])
        except FetchError as exc:
            if is_start and exc.status is None:
                raise CrawlError(
                    f"could not reach {url}: {exc.reason}", hint="check the URL and your network"
                ) from None
            if is_start:
                raise CrawlError(f"could not crawl {url}: {exc.reason}", hint="check the start URL") from None
            return _VisitOutcome([PageFailed(url, exc.reason, exc.status)])

        if result.location is not None:
            location = result.location
            if not self._in_scope(location):
                return _VisitOutcome(
                    [PageFailed(url, f"redirects outside the site to {location}", result.status)]
                )
            if dedupe_key(normalize_url(location)) == dedupe_key(url):
                return _VisitOutcome([PageFailed(url, "redirects to itself", result.status)])
            if not self._robots_allows(location):
                return _VisitOutcome(
                    [PageFailed(url, f"redirects to {location}, which robots.txt disallows", result.status)]
                )
            return _VisitOutcome([])  # it redirects to a page this crawl already has (or will have)
        final = normalize_url(result.url)
        outcome = _VisitOutcome([], final_url=final)
        status = result.status
        if status == 304:
            outcome.events.append(PageUnchanged(final))
            return outcome
        if status in (404, 410) and (final in self.known or url in self.known):
            outcome.events.append(PageGone(final if final in self.known else url, status))
            return outcome
        if status >= 300 or result.body is None:
            reason = f"HTTP {status} {reason_phrase(status)}".strip()
            if is_start:
                raise CrawlError(f"could not crawl {url}: {reason}", hint="check the start URL")
            outcome.events.append(PageFailed(url, reason, status))
            return outcome

        html = decode_html(result.body, result.headers.get("content-type", ""))
        if self.renderer is not None:
            try:
                html = await self.renderer.render(final)
            except (FetchError, UserError) as exc:
                reason = exc.reason if isinstance(exc, FetchError) else exc.message
                outcome.events.append(PageFailed(final, reason, status))
                return outcome
        extracted = await extract_page(html, final, self.options.selector)
        outcome.links = extracted.links
        outcome.content_links = extracted.content_links
        if not extracted.markdown:
            outcome.events.append(PageFailed(final, "no text content", status))
            return outcome
        # Before the unchanged-hash shortcut, so a page indexed by an earlier crawl that is now only a list of
        # links is reported (and leaves the index) rather than kept as unchanged. Its links are followed.
        if not self.options.index_navigation_pages and is_navigation_page(extracted.words):
            outcome.events.append(PageSkipped(final, NAVIGATION_REASON))
            return outcome
        content_hash = hashlib.sha256(extracted.markdown.encode("utf-8")).hexdigest()
        known = self.known.get(final)
        if known is not None and known.content_hash == content_hash:
            outcome.events.append(PageUnchanged(final))
            return outcome
        page = Page(
            url=final,
            title=extracted.title,
            markdown=extracted.markdown,
            content_hash=content_hash,
            fetched_at=time.time(),
            etag=result.headers.get("etag"),
            last_modified=result.headers.get("last-modified"),
            links=extracted.links,
        )
        if is_start and not self._wanted(final):
            return outcome  # the start page is only a way in: include/exclude keep it out of the index
        outcome.events.append(PageFetched(page, depth))
        return outcome


def _normalized_known(known: Mapping[str, KnownPage]) -> dict[str, KnownPage]:
    normalized = {}
    for url, page in known.items():
        try:
            normalized[normalize_url(url)] = page
        except ValueError:
            continue  # a URL stored by an older version that no longer parses: it is simply not revalidated
    return normalized
