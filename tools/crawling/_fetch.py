"""The guarded HTTP fetcher: every hop checked, per-host rate limits, retries, size caps, conditional GETs.

Every URL and every redirect hop goes through ``check_hop`` (by default ``evorag.tools.url_guard.check_url``),
and the address actually connected to is checked again at connection time (``_GuardedBackend``), which
closes the DNS-rebinding window. Responses are streamed and abandoned past ``max_bytes``; a body is read
only when the caller accepts the response (content type), so non-HTML is never downloaded whole.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin

import httpcore
import httpx
from evorag.tools.crawling._options import CrawlOptions
from evorag.tools.crawling._urls import origin_of
from evorag.tools.url_guard import check_address, check_url, parse_ip_host

from evorag.errors import InternalError

MAX_REDIRECTS = 5
_RETRY_STATUSES = {429, 500, 502, 503, 504}
_DRAIN_MAX_BYTES = 64 * 1024
_MAX_BACKOFF = 10.0
_MAX_RETRY_AFTER = 30.0


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


class TokenBucket:
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
        self._buckets: dict[str, TokenBucket] = {}
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

    def _bucket(self, origin: str) -> TokenBucket:
        bucket = self._buckets.get(origin)
        if bucket is None:
            rate = self.options.rate_per_host
            bucket = self._buckets[origin] = TokenBucket(rate, burst=min(rate, self.options.concurrency))
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
        origin = origin_of(url)
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
