"""Crawl one documentation site into pages of clean Markdown.

``crawl_site`` walks a site breadth-first from a start URL and yields events as it goes:
``PageFetched`` (new or changed page), ``PageUnchanged`` (HTTP 304, or the same content hash as the
``known`` page), ``PageFailed``, ``PageGone`` (a known page now answers 404/410) and finally one
``CrawlFinished`` with the summary.

Scope: same scheme, host and port as the start URL (after its redirects), and a path under the start
URL's directory. Pages are found through links (navigation included), ``sitemap.xml`` (also sitemap
indexes and ``Sitemap:`` lines of robots.txt), ``llms.txt`` and the ``known`` pages of an earlier
crawl. robots.txt is honoured, include/exclude globs, depth and page limits apply.

Safety: every URL and every redirect hop goes through ``evorag.tools.url_guard.check_url``; the address
actually connected to is checked again at connection time, which closes the DNS-rebinding window.
Responses are streamed and abandoned past ``max_page_bytes``; non-HTML is never downloaded whole.

Fetching: plain HTTP goes through httpx, browser rendering (``browser=True``) through Crawl4AI's
``AsyncWebCrawler`` driving the system Chromium. Crawl4AI's ``AsyncHTTPCrawlerStrategy`` is not used
for plain HTTP because (checked in crawl4ai 0.9.5's source) it reads every body whole with
``response.read()`` (no size cap), raises a bare ``HTTPStatusError`` for 304 and for 3xx when
redirects are off (the ``Location`` is lost, so hops cannot be checked) and follows redirects
unchecked when they are on, and writes every non-HTML response to a downloads folder. Main content
is always extracted by ``evorag.tools.extract`` (Crawl4AI's Markdown keeps sidebars and navigation).

Browser mode fetches each page with httpx first (guard, redirects, conditional request, size and type
checks all apply), then renders the final URL in Chromium. Every request the browser makes is checked
by the guard in a route handler; Chromium resolves names itself, so the connection-time check does
not cover it (a DNS answer that changes between the check and Chromium's lookup is not caught).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import fnmatch
import hashlib
import os
import random
import re
import socket
import tempfile
import time
import urllib.robotparser
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

import httpcore
import httpx
import lxml.etree
from evorag.tools.extract import extract_main_content
from evorag.tools.types import Page
from evorag.tools.url_guard import check_address, check_url, parse_ip_host

from evorag.errors import BlockedURLError, CrawlError, InternalError, UserError

if TYPE_CHECKING:
    from evorag.settings import Settings

__all__ = [
    "CrawlEvent",
    "CrawlFinished",
    "CrawlOptions",
    "CrawlSummary",
    "FetchResult",
    "HttpFetcher",
    "KnownPage",
    "PageFailed",
    "PageFetched",
    "PageGone",
    "PageUnchanged",
    "crawl_site",
]

MAX_REDIRECTS = 5
_RETRY_STATUSES = {429, 500, 502, 503, 504}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_ROBOTS_MAX_BYTES = 512 * 1024
_LLMS_MAX_BYTES = 1024 * 1024
_SITEMAP_MAX_BYTES = 20 * 1024 * 1024
_MAX_SITEMAPS = 25
_DRAIN_MAX_BYTES = 64 * 1024
_MAX_BACKOFF = 10.0
_MAX_RETRY_AFTER = 30.0
_MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?<![(<\w])(https?://[^\s)<>\]]+)")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
# Links to these are not pages; skipping them saves a request each ("Show Source" links, downloads).
_NOT_PAGE_EXTENSIONS = frozenset(
    [
        ".txt",
        ".rst",
        ".md",
        ".pdf",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".tar",
        ".whl",
        ".egg",
        ".exe",
        ".dmg",
        ".msi",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".svg",
        ".webp",
        ".ico",
        ".bmp",
        ".css",
        ".js",
        ".mjs",
        ".map",
        ".json",
        ".xml",
        ".csv",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".eot",
        ".mp3",
        ".mp4",
        ".webm",
        ".ogg",
        ".wav",
        ".inv",
        ".epub",
        ".ipynb",
        ".py",
        ".c",
        ".h",
    ]
)
# Pages above this size are extracted in a worker thread so the event loop keeps serving sockets.
_THREAD_EXTRACT_BYTES = 256 * 1024


# ---------------------------------------------------------------------------------------------------
# Options and events


@dataclass(slots=True)
class CrawlOptions:
    """How to crawl one source. Defaults match ``evorag.settings.Settings``."""

    source: str = ""
    max_pages: int = 1000
    max_depth: int = 8
    include: list[str] = field(default_factory=list)
    """Globs a page must match (any of them) to be crawled; on the path, or the full URL if the glob has ``://``."""
    exclude: list[str] = field(default_factory=list)
    allow_private: bool = False
    browser: bool = False
    """Render pages with Chromium through Crawl4AI (for sites that build their content with JavaScript)."""
    selector: str | None = None
    concurrency: int = 8
    rate_per_host: float = 50.0
    retries: int = 2
    timeout: float = 20.0
    max_page_bytes: int = 5_000_000
    user_agent: str = "evorag/0.1 (+documentation indexer)"
    respect_robots: bool = True
    state_dir: Path | None = None
    """Where Crawl4AI may write (browser mode); a temporary directory, removed afterwards, when None."""
    use_sitemaps: bool = True
    use_llms_txt: bool = True
    backoff_base: float = 0.5
    """First retry delay in seconds; doubled on each retry, with jitter."""
    chromium_path: str = "/usr/bin/chromium"

    def __post_init__(self) -> None:
        for name in ("max_pages", "concurrency", "max_page_bytes"):
            if getattr(self, name) < 1:
                raise UserError(f"invalid crawl option {name}={getattr(self, name)!r}: it must be at least 1")
        for name in ("max_depth", "retries"):
            if getattr(self, name) < 0:
                raise UserError(
                    f"invalid crawl option {name}={getattr(self, name)!r}: it must not be negative"
                )
        for name in ("rate_per_host", "timeout"):
            if not getattr(self, name) > 0:
                raise UserError(f"invalid crawl option {name}={getattr(self, name)!r}: it must be positive")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CrawlOptions:
        """Options from evorag settings (crawl_* fields); keyword arguments override them."""
        values: dict[str, Any] = {
            "max_pages": settings.max_pages,
            "max_depth": settings.max_depth,
            "allow_private": settings.allow_private,
            "concurrency": settings.crawl_concurrency,
            "rate_per_host": settings.crawl_rate_per_host,
            "retries": settings.crawl_retries,
            "timeout": settings.crawl_timeout,
            "max_page_bytes": settings.max_page_bytes,
            "user_agent": settings.user_agent,
            "state_dir": settings.crawl_state_dir,
        }
        values.update(overrides)
        return cls(**values)


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


@dataclass(slots=True, frozen=True)
class CrawlFinished:
    summary: CrawlSummary


CrawlEvent = PageFetched | PageUnchanged | PageFailed | PageGone | CrawlFinished


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


# ---------------------------------------------------------------------------------------------------
# HTTP fetching


class FetchError(Exception):
    """A request failed for good (after retries). ``reason`` is short and readable."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(slots=True)
class FetchResult:
    """The last response of a redirect chain. ``body`` is None unless the response was read."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes | None = None
    redirects: list[str] = field(default_factory=list)
    location: str | None = None
    """For a redirect that was not followed (``follow`` said no): where it points."""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class _TokenBucket:
    """Per-host rate limit: ``rate`` requests per second with bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.updated = time.monotonic()

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves host names itself and refuses to connect to any address the URL guard refuses.

    Checking only the URL would leave a DNS-rebinding window between the check and httpx's own
    lookup; here the checked address is the one connected to.
    """

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if self._allow_private:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        if parse_ip_host(host) is not None:
            addresses = [host]
        else:
            try:
                answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror:
                raise httpcore.ConnectError(f"host not found: {host}") from None
            addresses = list(dict.fromkeys(str(info[4][0]) for info in answers))
        for address in addresses:
            check_address(host, address, allow_private=False)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"could not connect to {host}")

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):  # pragma: no cover
        raise httpcore.ConnectError("unix sockets are not used by the crawler")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class HttpFetcher:
    """GETs pages with manual, guarded redirects, retries, per-host rate limits and a size cap.

    ``check_hop`` validates every URL before it is requested (default: the URL guard with
    ``options.allow_private``); it raises ``BlockedURLError`` to refuse one.
    """

    def __init__(self, options: CrawlOptions, *, check_hop: Callable[[str], str] | None = None) -> None:
        self.options = options
        self.check_hop = check_hop or (
            lambda url: check_url(url, allow_private=options.allow_private, resolve=False)
        )
        self._buckets: dict[str, _TokenBucket] = {}
        self._semaphore = asyncio.Semaphore(max(1, options.concurrency))
        limits = httpx.Limits(
            max_connections=max(4, options.concurrency * 2), max_keepalive_connections=options.concurrency + 2
        )
        transport = httpx.AsyncHTTPTransport(limits=limits)
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise InternalError("this httpx/httpcore version does not allow a guarded network backend")
        pool._network_backend = _GuardedBackend(options.allow_private)
        self.client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(options.timeout),
            headers={
                "User-Agent": options.user_agent,
                "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
            },
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def limit_rate(self, origin: str, rate: float) -> None:
        """Lower the rate for ``origin`` (robots.txt Crawl-delay)."""
        bucket = self._bucket(origin)
        bucket.rate = min(bucket.rate, rate)
        bucket.burst = 1.0

    def _bucket(self, origin: str) -> _TokenBucket:
        bucket = self._buckets.get(origin)
        if bucket is None:
            rate = self.options.rate_per_host
            bucket = self._buckets[origin] = _TokenBucket(rate, burst=min(rate, self.options.concurrency))
        return bucket

    async def fetch(
        self,
        url: str,
        *,
        max_bytes: int,
        accept: Callable[[FetchResult], str | None] | None = None,
        conditional: Callable[[str], dict[str, str]] | None = None,
        follow: Callable[[str], bool] | None = None,
    ) -> FetchResult:
        """GET ``url``, following up to ``MAX_REDIRECTS`` redirects, each hop checked by ``check_hop``.

        A redirect to a URL for which ``follow`` returns False is not followed: the 3xx result is
        returned with ``location`` set.

        The body of a 2xx response is read only if ``accept`` (given the response without a body)
        returns None; otherwise the returned reason is raised as ``FetchError``. Bodies above
        ``max_bytes`` are abandoned mid-stream. ``conditional(hop_url)`` gives the conditional headers
        (If-None-Match, If-Modified-Since) for each hop. Non-2xx results are returned with no body.

        Raises:
            BlockedURLError: a hop (or the address it resolves to) is refused by the guard.
            FetchError: network failure after retries, too many redirects, too large, not accepted.
        """
        redirects: list[str] = []
        current = url
        async with self._semaphore:
            for _ in range(MAX_REDIRECTS + 1):
                current = self.check_hop(current)
                headers = conditional(current) if conditional else {}
                result = await self._fetch_one(current, headers, max_bytes, accept)
                result.redirects = redirects
                location = result.headers.get("location")
                if 300 <= result.status < 400 and result.status != 304 and location:
                    redirects.append(current)
                    try:
                        current = urldefrag(urljoin(current, location.strip()))[0]
                    except ValueError:
                        raise FetchError(f"invalid redirect location {location!r}", result.status) from None
                    current = self.check_hop(current)  # a refused hop is an error even if not followed
                    if follow is not None and not follow(current):
                        result.location = current
                        return result
                    continue
                return result
        raise FetchError(f"more than {MAX_REDIRECTS} redirects", None)

    async def _fetch_one(
        self,
        url: str,
        headers: dict[str, str],
        max_bytes: int,
        accept: Callable[[FetchResult], str | None] | None,
    ) -> FetchResult:
        origin = _origin(url)
        attempt = 0
        while True:
            await self._bucket(origin).acquire()
            try:
                # A total deadline: httpx's timeouts are per operation, a trickling server could last forever.
                async with asyncio.timeout(self.options.timeout * 2):
                    result = await self._request(url, headers, max_bytes, accept)
            except (TimeoutError, httpx.TransportError) as exc:
                if attempt >= self.options.retries:
                    raise FetchError(_network_reason(exc)) from None
                delay = self._backoff(attempt)
            else:
                if result.status not in _RETRY_STATUSES or attempt >= self.options.retries:
                    return result
                delay = max(self._backoff(attempt), _retry_after(result.headers.get("retry-after")))
            attempt += 1
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        base = self.options.backoff_base * (2**attempt)
        return min(_MAX_BACKOFF, base + random.uniform(0, base))

    async def _request(
        self,
        url: str,
        headers: dict[str, str],
        max_bytes: int,
        accept: Callable[[FetchResult], str | None] | None,
    ) -> FetchResult:
        request = self.client.build_request("GET", url, headers=headers)
        response = await self.client.send(request, stream=True)
        try:
            result = FetchResult(url=url, status=response.status_code, headers=response.headers)
            if not 200 <= response.status_code < 300:
                await _drain_small_body(response)
                return result
            refusal = accept(result) if accept else None
            if refusal:
                raise FetchError(refusal, response.status_code)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"page larger than {max_bytes} bytes", response.status_code)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"page larger than {max_bytes} bytes", response.status_code)
                chunks.append(chunk)
            result.body = b"".join(chunks)
            return result
        finally:
            await response.aclose()


async def _drain_small_body(response: httpx.Response) -> None:
    """Read the (empty or short) body of a 3xx/304/4xx so the connection can be reused.

    httpcore closes a connection whose response was not read to the end; for a re-crawl made of
    304s that would mean a new TCP connection per page.
    """
    declared = response.headers.get("content-length", "")
    if response.status_code in (204, 304) or (declared.isdigit() and int(declared) <= _DRAIN_MAX_BYTES):
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > _DRAIN_MAX_BYTES:
                return


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, including the members of exception groups (anyio)."""
    found: list[BaseException] = []
    pending = [exc]
    while pending and len(found) < 50:
        current = pending.pop()
        found.append(current)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None and linked not in found:
                pending.append(linked)
    return found


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return min(_MAX_RETRY_AFTER, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, min(_MAX_RETRY_AFTER, when - time.time()))


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError)):
        return "timed out"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host not found"
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "host not found" in lowered or "name or service not known" in lowered or "nodename" in lowered:
        return text if text.startswith("host not found") else "host not found"
    if "unreachable" in lowered:
        return "network unreachable"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection closed by the server ({text})"
    return text


# ---------------------------------------------------------------------------------------------------
# Browser rendering (Crawl4AI + system Chromium)


class _BrowserRenderer:
    """Renders pages in the system Chromium through Crawl4AI's managed-browser mode.

    Every request the page makes (subresources, frames, navigations) is checked by the URL guard
    and aborted when refused. Crawl4AI writes only under ``state_dir`` (CRAWL4_AI_BASE_DIRECTORY).
    """

    def __init__(self, options: CrawlOptions) -> None:
        self.options = options
        self._crawler: Any = None
        self._run_config: Any = None

    async def start(self) -> None:
        chromium = self.options.chromium_path
        if not os.path.exists(chromium):
            raise CrawlError(
                f"browser mode needs Chromium at {chromium}, which does not exist",
                hint="install it (apt-get install chromium) or crawl without --browser",
            )
        base = Path(self.options.state_dir) / "crawl4ai" if self.options.state_dir else _process_temp_dir()
        home = base / ".crawl4ai"
        home.mkdir(parents=True, exist_ok=True)
        # Crawl4AI looks for "<browser>.path" before asking Playwright, which would download a browser.
        (home / "chromium.path").write_text(chromium)
        # Crawl4AI reads this variable at import time, so it must be set before the first import.
        os.environ["CRAWL4_AI_BASE_DIRECTORY"] = str(base)
        os.environ.setdefault("CRAWL4AI_NO_CLOUD_NOTICE", "1")
        from crawl4ai import AsyncWebCrawler, BrowserConfig, CacheMode, CrawlerRunConfig

        browser_config = BrowserConfig(
            browser_type="chromium",
            headless=True,
            use_managed_browser=True,
            user_agent=self.options.user_agent,
            user_data_dir=str(base / "profile"),
            extra_args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            verbose=False,
        )
        self._run_config = CrawlerRunConfig(
            cache_mode=CacheMode.BYPASS,
            page_timeout=int(self.options.timeout * 1000),
            wait_until="load",
            verbose=False,
        )
        self._crawler = AsyncWebCrawler(config=browser_config, base_directory=str(base))
        self._crawler.crawler_strategy.set_hook("on_page_context_created", self._guard_page)
        try:
            await self._crawler.start()
        except Exception as exc:  # noqa: BLE001 - Playwright and Crawl4AI raise many unrelated types
            raise CrawlError(f"could not start Chromium through Crawl4AI: {exc}") from None

    async def _guard_page(self, page: Any, context: Any = None, **_: Any) -> Any:
        allow_private = self.options.allow_private

        async def route(route: Any) -> None:
            url = route.request.url
            if url.startswith(("data:", "blob:", "about:")):
                await route.continue_()
                return
            try:
                await asyncio.to_thread(check_url, url, allow_private=allow_private, resolve=True)
            except UserError:
                await route.abort("blockedbyclient")
                return
            await route.continue_()

        await (context or page.context).route("**/*", route)
        return page

    async def render(self, url: str) -> str:
        result = await self._crawler.arun(url, config=self._run_config)
        if not result.success:
            raise FetchError(f"browser could not render the page: {result.error_message}", result.status_code)
        final = result.redirected_url or url
        check_url(final, allow_private=self.options.allow_private, resolve=False)
        return result.html or ""

    async def aclose(self) -> None:
        if self._crawler is not None:
            await self._crawler.close()


_TEMP_DIR: tempfile.TemporaryDirectory | None = None


def _process_temp_dir() -> Path:
    """One temporary Crawl4AI home per process: Crawl4AI fixes some paths at import time."""
    global _TEMP_DIR
    if _TEMP_DIR is None:
        _TEMP_DIR = tempfile.TemporaryDirectory(prefix="evorag-crawl4ai-")
    return Path(_TEMP_DIR.name)


# ---------------------------------------------------------------------------------------------------
# The crawl


@dataclass(slots=True)
class _Scope:
    scheme: str
    netloc: str
    prefix: str

    def contains(self, url: str) -> bool:
        parts = urlsplit(url)
        return (
            parts.scheme == self.scheme
            and parts.netloc == self.netloc
            and (parts.path or "/").startswith(self.prefix)
        )


@dataclass(slots=True)
class _VisitOutcome:
    events: list[CrawlEvent]
    links: list[str] = field(default_factory=list)
    content_links: list[str] = field(default_factory=list)
    final_url: str | None = None


class _SiteCrawler:
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
        self.renderer: _BrowserRenderer | None = None
        self.robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self.robots_agent = (
            options.user_agent.split("/", 1)[0].split()[0] if options.user_agent.strip() else "*"
        )
        self.scope: _Scope | None = None
        self.seen: set[str] = set()
        self.judged_links: set[str] = set()
        self.frontier: deque[tuple[str, int]] = deque()
        self.external: set[str] = set()
        self.counts = {"discovered": 0, "fetched": 0, "unchanged": 0, "failed": 0, "gone": 0}
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
        in_flight: dict[asyncio.Task[_VisitOutcome], int] = {}
        try:
            if self.options.browser:
                self.renderer = _BrowserRenderer(self.options)
                await self.renderer.start()
            self.scope = _scope_for(start)
            await self._load_robots(start, is_start=True)
            if not self._robots_allow(start):
                raise CrawlError(
                    f"robots.txt of {_origin(start)} does not allow crawling {start}",
                    hint="crawl another part of the site, or turn off respect_robots if you have permission",
                )
            self.seen.add(_dedupe_key(start))
            self.counts["discovered"] = 1
            self._report_total()
            outcome = await self._visit(start, 0, is_start=True)
            for event in outcome.events:
                yield self._count(event)
            final = outcome.final_url or start
            if final != start:
                self.scope = _scope_for(final)
                self.seen.add(_dedupe_key(final))
                await self._load_robots(final, is_start=True)
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
        key = {PageFetched: "fetched", PageUnchanged: "unchanged", PageFailed: "failed", PageGone: "gone"}[
            type(event)
        ]
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
            return
        for link in outcome.links:
            # Navigation repeats the same links on every page; each is judged once.
            if link not in self.judged_links:
                self.judged_links.add(link)
                self._enqueue(link, depth + 1)

    def _enqueue(self, url: str, depth: int) -> bool:
        assert self.scope is not None
        try:
            url = normalize_url(url)
        except ValueError:
            return False
        key = _dedupe_key(url)
        if key in self.seen or not self.scope.contains(url):
            return False
        path = urlsplit(url).path
        if os.path.splitext(path)[1].lower() in _NOT_PAGE_EXTENSIONS:
            return False
        self.seen.add(key)
        if not self._wanted(url) or not self._robots_allow(url):
            return False
        self.frontier.append((url, depth))
        self.counts["discovered"] += 1
        return True

    def _wanted(self, url: str) -> bool:
        path = urlsplit(url).path or "/"
        path_and_query = path + ("?" + urlsplit(url).query if urlsplit(url).query else "")

        def matches(pattern: str) -> bool:
            if "://" in pattern:
                return fnmatch.fnmatchcase(url, pattern)
            return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path_and_query, pattern)

        if self.options.include and not any(matches(p) for p in self.options.include):
            return False
        return not any(matches(p) for p in self.options.exclude)

    async def _seed(self) -> None:
        """Queue pages from sitemaps, llms.txt and the known pages at depth 1."""
        if self.options.max_depth < 1:
            return
        assert self.scope is not None
        origin = f"{self.scope.scheme}://{self.scope.netloc}"
        prefix_root = origin + self.scope.prefix
        jobs = []
        if self.options.use_sitemaps:
            robots = self.robots.get(origin)
            listed = list(robots.site_maps() or []) if robots is not None else []
            candidates = listed or [origin + "/sitemap.xml"]
            if prefix_root + "sitemap.xml" not in candidates:
                candidates.append(prefix_root + "sitemap.xml")
            jobs.append(self._sitemap_urls(candidates))
        if self.options.use_llms_txt:
            llms = dict.fromkeys([prefix_root + "llms.txt", origin + "/llms.txt"])
            jobs.extend(self._llms_urls(url) for url in llms)
        for urls in await asyncio.gather(*jobs):
            for url in urls:
                self._enqueue(url, 1)
        for url in self.known:
            self._enqueue(url, 1)

    async def _fetch_text(self, url: str, max_bytes: int) -> FetchResult | None:
        assert self.fetcher is not None
        try:
            return await self.fetcher.fetch(url, max_bytes=max_bytes)
        except (FetchError, UserError):
            return None

    async def _llms_urls(self, url: str) -> list[str]:
        result = await self._fetch_text(url, _LLMS_MAX_BYTES)
        if result is None or result.status != 200 or not result.body:
            return []
        text = result.body.decode("utf-8", errors="replace")
        urls = []
        for match in _MARKDOWN_LINK.finditer(text):
            link = match.group(1) or match.group(2)
            try:
                absolute = urldefrag(urljoin(result.url, link))[0]
            except ValueError:
                continue
            # llms.txt links often point at the Markdown twin of a page ("page.html.md"); crawl the page.
            absolute = absolute.removesuffix(".md")
            urls.append(absolute)
        return urls

    async def _sitemap_urls(self, candidates: list[str]) -> list[str]:
        pending = deque(dict.fromkeys(candidates))
        fetched: set[str] = set()
        urls: list[str] = []
        while pending and len(fetched) < _MAX_SITEMAPS:
            sitemap = pending.popleft()
            if sitemap in fetched:
                continue
            fetched.add(sitemap)
            result = await self._fetch_text(sitemap, _SITEMAP_MAX_BYTES)
            if result is None or result.status != 200 or not result.body:
                continue
            pages, children = _parse_sitemap(result.body)
            urls.extend(pages)
            pending.extend(child for child in children if child not in fetched)
        return urls

    def _claim_redirect_target(self, url: str) -> bool:
        """Follow a redirect only to an in-scope, allowed page that no other URL of this crawl claimed."""
        if not self._in_scope(url) or not self._robots_allow(url):
            return False
        key = _dedupe_key(normalize_url(url))
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

    # -- robots.txt ---------------------------------------------------------------------------------

    async def _load_robots(self, url: str, *, is_start: bool = False) -> None:
        origin = _origin(url)
        if not self.options.respect_robots or origin in self.robots:
            return
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        assert self.fetcher is not None
        try:
            result = await self.fetcher.fetch(origin + "/robots.txt", max_bytes=_ROBOTS_MAX_BYTES)
        except FetchError as exc:
            if is_start and exc.status is None and not exc.reason.startswith("page larger"):
                raise CrawlError(
                    f"could not reach {url}: {exc.reason}", hint="check the URL and your network"
                ) from None
            result = None
        except UserError:
            result = None  # a robots.txt redirecting somewhere refused counts as no robots.txt
        if result is None or 400 <= result.status < 500:
            parser.allow_all = True  # RFC 9309: an unavailable robots.txt allows everything
        elif result.status >= 500:
            parser.disallow_all = True  # RFC 9309: an unreachable robots.txt disallows everything
        elif result.status == 200 and result.body is not None:
            parser.parse(result.body.decode("utf-8", errors="replace").splitlines())
        else:
            parser.allow_all = True
        parser.modified()
        self.robots[origin] = parser
        delay = (
            parser.crawl_delay(self.robots_agent) if not (parser.allow_all or parser.disallow_all) else None
        )
        if delay:
            self.fetcher.limit_rate(origin, 1.0 / float(delay))

    def _robots_allow(self, url: str) -> bool:
        if not self.options.respect_robots:
            return True
        parser = self.robots.get(_origin(url))
        return True if parser is None else parser.can_fetch(self.robots_agent, url)

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
        assert self.fetcher is not None
        try:
            result = await self.fetcher.fetch(
                url,
                max_bytes=self.options.max_page_bytes,
                accept=_accept_html,
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
            if _dedupe_key(normalize_url(location)) == _dedupe_key(url):
                return _VisitOutcome([PageFailed(url, "redirects to itself", result.status)])
            if not self._robots_allow(location):
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
            reason = f"HTTP {status} {_reason_phrase(status)}".strip()
            if is_start:
                raise CrawlError(f"could not crawl {url}: {reason}", hint="check the start URL")
            outcome.events.append(PageFailed(url, reason, status))
            return outcome

        html = _decode_html(result.body, result.headers.get("content-type", ""))
        if self.renderer is not None:
            try:
                html = await self.renderer.render(final)
            except (FetchError, UserError) as exc:
                reason = exc.reason if isinstance(exc, FetchError) else exc.message
                outcome.events.append(PageFailed(final, reason, status))
                return outcome
        if len(html) > _THREAD_EXTRACT_BYTES:
            extracted = await asyncio.to_thread(
                extract_main_content, html, final, selector=self.options.selector
            )
        else:
            extracted = extract_main_content(html, final, selector=self.options.selector)
        outcome.links = extracted.links
        outcome.content_links = extracted.content_links
        if not extracted.markdown:
            outcome.events.append(PageFailed(final, "no text content", status))
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


# ---------------------------------------------------------------------------------------------------
# Helpers


def normalize_url(url: str) -> str:
    """Canonical form used to compare URLs: lower-case scheme and host, no default port or fragment.

    Raises:
        ValueError: the URL cannot be parsed.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    if parts.username is not None:
        netloc = f"{parts.username}{':' + parts.password if parts.password is not None else ''}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _normalized_known(known: Mapping[str, KnownPage]) -> dict[str, KnownPage]:
    normalized = {}
    for url, page in known.items():
        try:
            normalized[normalize_url(url)] = page
        except ValueError:
            continue  # a URL stored by an older version that no longer parses: it is simply not revalidated
    return normalized


def _dedupe_key(url: str) -> str:
    """``/docs/`` and ``/docs/index.html`` are the same page on virtually every documentation host."""
    for index in ("index.html", "index.htm"):
        if url.endswith("/" + index):
            return url[: -len(index)]
    return url


def _origin(url: str) -> str:
    parts = urlsplit(normalize_url(url))
    return f"{parts.scheme}://{parts.netloc}"


def _scope_for(url: str) -> _Scope:
    parts = urlsplit(url)
    path = parts.path or "/"
    prefix = path[: path.rfind("/") + 1] or "/"
    return _Scope(parts.scheme, parts.netloc, prefix)


def _accept_html(result: FetchResult) -> str | None:
    content_type = result.content_type
    if not content_type or content_type in _HTML_TYPES:
        return None
    return f"not HTML: {content_type}"


def _decode_html(body: bytes, content_type_header: str) -> str:
    charset = None
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type_header, re.IGNORECASE)
    if match:
        charset = match.group(1)
    else:
        meta = _META_CHARSET.search(body[:4096])
        if meta:
            charset = meta.group(1).decode("ascii", errors="ignore")
    if charset:
        try:
            return body.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def _reason_phrase(status: int) -> str:
    try:
        from http import HTTPStatus

        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _parse_sitemap(body: bytes) -> tuple[list[str], list[str]]:
    """Page URLs and child sitemap URLs of a sitemap, sitemap index, gzipped sitemap or text sitemap."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, _SITEMAP_MAX_BYTES)
        except zlib.error:
            return [], []
    stripped = body.lstrip()
    if not stripped.startswith(b"<"):
        lines = body.decode("utf-8", errors="replace").splitlines()
        return [line.strip() for line in lines if line.strip().startswith(("http://", "https://"))], []
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    try:
        root = lxml.etree.fromstring(stripped, parser=parser)
    except lxml.etree.XMLSyntaxError:
        return [], []
    if root is None:
        return [], []
    pages: list[str] = []
    children: list[str] = []
    is_index = lxml.etree.QName(root).localname == "sitemapindex"
    for element in root.iter("{*}loc"):
        text = (element.text or "").strip()
        if text:
            (children if is_index else pages).append(text)
    return pages, children
