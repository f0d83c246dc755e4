"""The crawler against real HTTP servers on 127.0.0.1 serving the fixture sites (tests/sites)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from evorag.tools.crawling import (
    CrawlFinished,
    CrawlOptions,
    FetchError,
    HttpFetcher,
    KnownPage,
    PageFailed,
    PageFetched,
    PageGone,
    PageUnchanged,
    crawl_site,
)
from evorag.tools.crawling._discovery import parse_sitemap
from evorag.tools.crawling._fetch import TokenBucket
from evorag.tools.url_guard import check_url
from sitefixtures import SITES, flaky, redirect, respond, send, serve, stream

from evorag.errors import BlockedURLError, CrawlError, InternalError, UserError
from evorag.settings import Settings


def options(**overrides) -> CrawlOptions:
    values = {"allow_private": True, "backoff_base": 0.01, "timeout": 5.0, "rate_per_host": 1000.0}
    values.update(overrides)
    return CrawlOptions(**values)


def crawl(start: str, opts: CrawlOptions | None = None, known=None) -> list:
    async def run() -> list:
        return [event async for event in crawl_site(start, opts or options(), known=known)]

    return asyncio.run(run())


def fetched(events: list) -> dict[str, PageFetched]:
    return {event.page.url: event for event in events if isinstance(event, PageFetched)}


def failed(events: list) -> dict[str, PageFailed]:
    return {event.url: event for event in events if isinstance(event, PageFailed)}


def summary(events: list):
    assert isinstance(events[-1], CrawlFinished)
    assert sum(isinstance(event, CrawlFinished) for event in events) == 1
    return events[-1].summary


def known_from(events: list) -> dict[str, KnownPage]:
    return {
        url: KnownPage(event.page.etag, event.page.last_modified, event.page.content_hash)
        for url, event in fetched(events).items()
    }


# -- options -----------------------------------------------------------------------------------------

# Every crawl option a setting fills: (the setting, a value other than the default).
CHANGED_SETTINGS = {
    "max_pages": ("max_pages", 7), "max_depth": ("max_depth", 3), "allow_private": ("allow_private", True),
    "concurrency": ("crawl_concurrency", 5), "rate_per_host": ("crawl_rate_per_host", 12.5),
    "retries": ("crawl_retries", 4), "timeout": ("crawl_timeout", 9.0),
    "max_page_bytes": ("max_page_bytes", 123_456),
    "user_agent": ("user_agent", "docbot/2 (+https://example.org)"),
}


def test_options_from_settings_take_every_crawl_setting_and_the_request_on_top(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, **dict(CHANGED_SETTINGS.values()))
    opts = CrawlOptions.from_settings(settings)
    defaults = CrawlOptions()
    for option, (_, value) in CHANGED_SETTINGS.items():
        assert getattr(opts, option) == value != getattr(defaults, option), option
    assert opts.state_dir == settings.crawl_state_dir == tmp_path / "crawls"

    request = CrawlOptions.from_settings(settings, source="docs", include=["/guide/*"], exclude=["*/old/*"],
                                         selector="main", browser=True, max_pages=2, allow_private=False)
    assert (request.source, request.include, request.exclude, request.selector, request.browser) == (
        "docs", ["/guide/*"], ["*/old/*"], "main", True)
    assert (request.max_pages, request.allow_private, request.max_depth) == (2, False, 3)

    with pytest.raises(InternalError, match="unknown crawl option.*max_page\\b"):
        CrawlOptions.from_settings(settings, max_page=3)
    with pytest.raises(UserError, match="max_depth=-1"):
        CrawlOptions.from_settings(settings, max_depth=-1)


def test_option_defaults_are_the_setting_defaults(tmp_path: Path) -> None:
    """The dataclass defaults serve tests and tools only; they must not drift from the settings."""
    assert CrawlOptions.from_settings(Settings(home=tmp_path)) == CrawlOptions(state_dir=tmp_path / "crawls")


# -- discovery ---------------------------------------------------------------------------------------


def test_sphinx_site_crawl_finds_linked_sitemap_and_llms_pages_and_respects_robots_and_scope() -> None:
    with serve("sphinx") as server:
        events = crawl(server.url("/docs/index.html"))
        pages = fetched(events)
        docs = server.origin + "/docs/"
        assert set(pages) == {
            docs + "index.html",
            docs + "quickstart.html",
            docs + "api.html",
            docs + "advanced.html",
            docs + "changelog.html",  # only in the sitemap (reached through the sitemap index)
            docs + "recipes.html",  # only in llms.txt (as recipes.html.md)
        }
        assert server.count("/docs/internal/notes.html") == 0  # robots.txt: Disallow /docs/internal/
        assert server.count("/blog/announcement.html") == 0  # outside the /docs/ prefix
        assert server.count("/docs/_sources/quickstart.html.txt") == 0  # not a page
        assert failed(events) == {
            docs + "genindex.html": PageFailed(docs + "genindex.html", "HTTP 404 Not Found", 404)
        }

        quickstart = pages[docs + "quickstart.html"]
        assert quickstart.depth == 1
        assert quickstart.page.title == "Quickstart"
        assert quickstart.page.etag and quickstart.page.last_modified
        assert 'tinyhttp.get("https://example.org/", timeout=5)' in quickstart.page.markdown
        assert "Quick search" not in quickstart.page.markdown
        assert docs + "api.html" in quickstart.page.links
        assert len(quickstart.page.content_hash) == 64

        result = summary(events)
        assert result.complete
        assert (result.fetched, result.failed, result.unchanged, result.gone) == (6, 1, 0, 0)
        assert result.discovered == 7
        assert result.external_links == [
            "https://github.com/tinyhttp-example/tinyhttp",
            "https://www.rfc-editor.org/rfc/rfc9110",
        ]


def test_mkdocs_directory_urls_and_root_sitemap() -> None:
    with serve("mkdocs") as server:
        events = crawl(server.url("/"))
        assert set(fetched(events)) == {
            server.url(path) for path in ("/", "/configuration/", "/inputs/", "/outputs/")
        }
        assert not failed(events)
        assert server.count("/index.html") == 0  # "/" and "/index.html" are one page


def test_docusaurus_and_plain_sites() -> None:
    with serve("docusaurus") as server:
        pages = fetched(crawl(server.url("/docs/")))
        assert set(pages) == {
            server.url(p) for p in ("/docs/", "/docs/queues/", "/docs/workers/", "/docs/retries/")
        }
        assert pages[server.url("/docs/queues/")].page.title == "Queues"
    with serve("plain") as server:
        pages = fetched(crawl(server.url("/index.html")))
        assert {page.page.title for page in pages.values()} == {"kvstore", "Commands", "Replication"}


def test_depth_limit() -> None:
    with serve("sphinx") as server:
        only_start = crawl(server.url("/docs/index.html"), options(max_depth=0))
        assert list(fetched(only_start)) == [server.url("/docs/index.html")]
        assert server.count("/sitemap.xml") == 0
        assert summary(only_start).complete


def test_page_limit_marks_the_crawl_incomplete() -> None:
    with serve("sphinx") as server:
        events = crawl(server.url("/docs/index.html"), options(max_pages=3, concurrency=2))
        result = summary(events)
        assert len(fetched(events)) + len(failed(events)) == 3
        assert not result.complete
        assert result.discovered > 3


def test_include_and_exclude_globs() -> None:
    with serve("sphinx") as server:
        events = crawl(
            server.url("/docs/index.html"),
            options(include=["/docs/*.html"], exclude=["*/api.html", "*change*"]),
        )
        names = {url.rsplit("/", 1)[1] for url in fetched(events)}
        assert names == {"index.html", "quickstart.html", "advanced.html", "recipes.html"}
        assert server.count("/docs/api.html") == 0
        assert server.count("/docs/changelog.html") == 0

        events = crawl(server.url("/docs/index.html"), options(include=[server.origin + "/docs/a*"]))
        # The start page is crawled to find links but not reported when it does not match.
        assert {url.rsplit("/", 1)[1] for url in fetched(events)} == {"api.html", "advanced.html"}


def test_robots_can_be_ignored_when_asked() -> None:
    with serve("sphinx") as server:
        crawl(server.url("/docs/index.html"), options(respect_robots=False))
        assert server.count("/docs/internal/notes.html") == 1
        assert server.count("/robots.txt") == 0


# -- re-crawls -------------------------------------------------------------------------------------------


def test_recrawl_with_known_pages_uses_conditional_requests() -> None:
    with serve("sphinx") as server:
        first = crawl(server.url("/docs/index.html"))
        known = known_from(first)
        before = len(server.requests)
        second = crawl(server.url("/docs/index.html"), known=known)
        assert {event.url for event in second if isinstance(event, PageUnchanged)} == set(known)
        assert not fetched(second)
        result = summary(second)
        assert (result.unchanged, result.fetched) == (6, 0)
        pages = {url.replace(server.origin, "") for url in known}
        sent = [headers for path, headers in server.requests[before:] if path in pages]
        assert len(sent) == len(pages)
        assert all(headers.get("if-none-match", "").startswith('"') for headers in sent)


def test_recrawl_without_validators_compares_content_hashes(tmp_path: Path) -> None:
    with serve("sphinx") as server:
        server.etags = False
        known = {
            url: KnownPage(content_hash=page.content_hash)  # no ETag / Last-Modified: a full GET each time
            for url, page in known_from(crawl(server.url("/docs/index.html"))).items()
        }
        second = crawl(server.url("/docs/index.html"), known=known)
        assert {event.url for event in second if isinstance(event, PageUnchanged)} == set(known)
        assert not fetched(second)


def test_recrawl_fetches_changed_pages_and_reports_removed_ones(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(SITES / "sphinx", site)
    with serve(site) as server:
        first = crawl(server.url("/docs/index.html"))
        known = known_from(first)
        quickstart = site / "docs" / "quickstart.html"
        quickstart.write_text(quickstart.read_text().replace("a couple of minutes", "under a minute"))
        os.utime(quickstart, (time.time() + 5, time.time() + 5))
        (site / "docs" / "recipes.html").unlink()
        (site / "llms.txt").unlink()  # recipes.html was only listed there

        second = crawl(server.url("/docs/index.html"), known=known)
        changed = fetched(second)
        assert list(changed) == [server.url("/docs/quickstart.html")]
        new_page = changed[server.url("/docs/quickstart.html")].page
        assert "under a minute" in new_page.markdown
        assert new_page.content_hash != known[server.url("/docs/quickstart.html")].content_hash
        gone = [event for event in second if isinstance(event, PageGone)]
        assert gone == [PageGone(server.url("/docs/recipes.html"), 404)]
        result = summary(second)
        assert (result.fetched, result.unchanged, result.gone) == (1, 4, 1)


# -- failures ----------------------------------------------------------------------------------------


@pytest.fixture
def trouble_site(tmp_path: Path):
    """A start page linking to every kind of troublesome response."""
    links = [
        "report",
        "huge",
        "huge-unannounced",
        "empty",
        "blank",
        "flaky",
        "busy",
        "missing",
        "to-gopher",
        "loop",
        "chain0",
        "elsewhere",
        "moved",
    ]
    (tmp_path / "index.html").write_text(
        "<html><body><main><h1>Trouble</h1><p>Links to troublesome pages.</p>"
        + "".join(f'<a href="/{name}">{name}</a> ' for name in links)
        + "</main></body></html>"
    )
    with serve(tmp_path) as server:
        page = b"<html><body><main><h1>Recovered</h1><p>This page works on the third try.</p></main></body></html>"
        server.routes.update(
            {
                "/report": respond(200, b"%PDF-1.7 ...", "application/pdf"),
                "/huge": stream(50 * 1024 * 1024),
                "/huge-unannounced": stream(50 * 1024 * 1024, declare_length=False),
                "/empty": respond(200, b"", "text/html"),
                "/blank": respond(200, b"<html><body><nav>menu</nav></body></html>", "text/html"),
                "/flaky": flaky(2, respond(200, page)),
                "/busy": flaky(10, respond(200, page), status=503),
                "/missing": respond(404, b"<h1>Not found</h1>"),
                "/to-gopher": redirect("gopher://127.0.0.1:70/_evil"),
                "/loop": redirect("/loop"),
                "/elsewhere": redirect("http://127.0.0.1:9/"),
                "/moved": redirect("/flaky", status=301),
            }
        )
        for step in range(8):
            server.routes[f"/chain{step}"] = redirect(f"/chain{step + 1}")
        yield server


def test_troublesome_pages_fail_with_clear_reasons(trouble_site) -> None:
    server = trouble_site
    started = time.monotonic()
    # The start page is only a list of links: indexed anyway here, so it shows as fetched next to the failures.
    events = crawl(server.url("/index.html"),
                   options(max_page_bytes=1_000_000, retries=2, index_navigation_pages=True))
    reasons = {url.rsplit("/", 1)[1]: (event.reason, event.status) for url, event in failed(events).items()}
    assert reasons == {
        "report": ("not HTML: application/pdf", 200),
        "huge": ("page larger than 1000000 bytes", 200),
        "huge-unannounced": ("page larger than 1000000 bytes", 200),
        "empty": ("no text content", 200),
        "blank": ("no text content", 200),
        "busy": ("HTTP 503 Service Unavailable", 503),
        "missing": ("HTTP 404 Not Found", 404),
        "to-gopher": (
            "refusing gopher://127.0.0.1:70/_evil: only http and https URLs can be crawled, not gopher:",
            None,
        ),
        "loop": ("redirects to itself", 302),
        "chain0": ("more than 5 redirects", None),
        "elsewhere": ("redirects outside the site to http://127.0.0.1:9/", 302),
    }
    assert set(fetched(events)) == {server.url("/index.html"), server.url("/flaky")}  # /moved: same page
    assert server.count("/flaky") == 3  # two 503s, then the page
    assert server.count("/busy") == 3  # 1 try + 2 retries
    assert server.count("/loop") == 1
    assert time.monotonic() - started < 20


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    with serve(None) as server:
        server.routes["/"] = flaky(
            1,
            respond(200, b"<html><body><p>Rate limited, then fine.</p></body></html>"),
            status=429,
            Retry_After="1",
        )
        started = time.monotonic()
        events = crawl(server.url("/"), options(use_sitemaps=False, use_llms_txt=False))
        assert len(fetched(events)) == 1
        assert time.monotonic() - started >= 0.9


def test_start_url_errors() -> None:
    with pytest.raises(UserError, match="not a valid URL"):
        crawl("docs.example.org/guide")
    with pytest.raises(BlockedURLError, match="loopback"):
        crawl("http://127.0.0.1:9/docs/", options(allow_private=False))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(
        CrawlError, match=rf"could not reach http://127.0.0.1:{closed_port}/docs/: connection refused"
    ):
        crawl(f"http://127.0.0.1:{closed_port}/docs/", options(retries=0))
    with serve("sphinx") as server:
        with pytest.raises(CrawlError, match="HTTP 404 Not Found"):
            crawl(server.url("/docs/nothing-here.html"))
        with pytest.raises(CrawlError, match="robots.txt .* does not allow"):
            crawl(server.url("/docs/internal/notes.html"))
        server.routes["/docs/start"] = redirect("file:///etc/passwd")
        with pytest.raises(BlockedURLError, match="only http and https"):
            crawl(server.url("/docs/start"))


def test_start_url_redirect_rebases_the_scope() -> None:
    with serve("sphinx") as server:
        server.routes["/latest/"] = redirect("/docs/index.html", status=301)
        pages = fetched(crawl(server.url("/latest/")))
        assert server.url("/docs/quickstart.html") in pages


# -- the URL guard in the fetch path ------------------------------------------------------------------


def test_redirect_into_a_private_address_is_refused_hop_by_hop() -> None:
    async def run(server) -> None:
        # Crawling a 127.0.0.1 fixture needs allow_private; this hop check trusts only the fixture's
        # origin and judges every other hop as a public crawl would (allow_private=False).
        def strict_except_fixture(url: str) -> str:
            return url if url.startswith(server.origin + "/") else check_url(url, allow_private=False)

        fetcher = HttpFetcher(options(), check_hop=strict_except_fixture)
        try:
            for target, reason in [
                (f"http://2130706433:{server.origin.rsplit(':', 1)[1]}/admin", "loopback address 127.0.0.1"),
                ("http://[::ffff:127.0.0.2]/", "loopback address 127.0.0.2 embedded in IPv6"),
                ("http://localhost/", "localhost is a loopback name"),
            ]:
                server.routes["/hop"] = redirect("/hop2")
                server.routes["/hop2"] = redirect(target)
                with pytest.raises(BlockedURLError, match=reason):
                    await fetcher.fetch(server.url("/hop"), max_bytes=10_000)
            assert server.count("/admin") == 0
        finally:
            await fetcher.aclose()

    with serve("plain") as server:
        asyncio.run(run(server))


def test_connection_time_check_defeats_dns_rebinding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL passed the name check; the address the name resolves to at connect time is loopback."""
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_getaddrinfo(host, port, *args, **kwargs):
        if host == "docs.rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)

    async def run(server) -> None:
        port = server.origin.rsplit(":", 1)[1]
        fetcher = HttpFetcher(options(allow_private=False), check_hop=lambda url: url)
        try:
            with pytest.raises(
                BlockedURLError, match="docs.rebind.test: it resolves to loopback address 127.0.0.1"
            ):
                await fetcher.fetch(f"http://docs.rebind.test:{port}/index.html", max_bytes=10_000)
        finally:
            await fetcher.aclose()
        assert server.count("/index.html") == 0

    with serve("plain") as server:
        asyncio.run(run(server))


def test_fetcher_refuses_oversized_and_unaccepted_bodies_without_reading_them() -> None:
    async def run(server) -> None:
        fetcher = HttpFetcher(options())
        try:
            with pytest.raises(FetchError, match="page larger than 65536 bytes"):
                await fetcher.fetch(server.url("/big"), max_bytes=65536)
            with pytest.raises(FetchError, match="not HTML: image/png"):
                await fetcher.fetch(
                    server.url("/image"),
                    max_bytes=65536,
                    accept=lambda result: (
                        None if result.content_type == "text/html" else f"not HTML: {result.content_type}"
                    ),
                )
        finally:
            await fetcher.aclose()

    with serve(None) as server:
        server.routes["/big"] = stream(50 * 1024 * 1024, declare_length=False)
        server.routes["/image"] = respond(200, b"\x89PNG....", "image/png")
        asyncio.run(run(server))


# -- concurrency, rate limits, cancellation --------------------------------------------------------


def test_token_bucket_limits_the_rate() -> None:
    async def run() -> float:
        bucket = TokenBucket(rate=20.0, burst=1.0)
        started = time.monotonic()
        for _ in range(6):
            await bucket.acquire()
        return time.monotonic() - started

    assert 0.2 <= asyncio.run(run()) < 1.0  # 1 immediate + 5 at 20/s


def test_per_host_rate_limit_applies_to_the_crawl() -> None:
    with serve("sphinx") as server:
        started = time.monotonic()
        crawl(server.url("/docs/index.html"), options(rate_per_host=10.0, concurrency=2))
        requests = len(server.requests)
        # concurrency=2 allows a burst of 2; the rest come at 10 per second.
        assert time.monotonic() - started >= (requests - 2) / 10.0 * 0.9


def test_cancelling_the_consumer_stops_in_flight_requests() -> None:
    async def run(server) -> None:
        seen: list = []

        async def consume() -> None:
            async for event in crawl_site(server.url("/index.html"), options(concurrency=4)):
                seen.append(event)

        task = asyncio.create_task(consume())
        for _ in range(200):
            await asyncio.sleep(0.02)
            if server.count("/slow-1") and server.count("/slow-2"):
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        assert not any(isinstance(event, CrawlFinished) for event in seen)

    def slow(handler) -> None:
        time.sleep(1.0)
        send(handler, 200, b"<html><body><p>slow page</p></body></html>", "text/html")

    with serve(None) as server:
        server.routes["/index.html"] = respond(
            200, b"<html><body><p>Start</p><a href='/slow-1'>1</a><a href='/slow-2'>2</a></body></html>"
        )
        server.routes["/slow-1"] = slow
        server.routes["/slow-2"] = slow
        started = time.monotonic()
        asyncio.run(run(server))
        assert time.monotonic() - started < 1.0  # did not wait for the slow pages


def test_closing_the_generator_early_is_clean() -> None:
    async def run(server) -> list:
        events = []
        async with contextlib.aclosing(crawl_site(server.url("/docs/index.html"), options())) as stream_:
            async for event in stream_:
                events.append(event)
                break
        return events

    with serve("sphinx") as server:
        events = asyncio.run(run(server))
        assert len(events) == 1 and isinstance(events[0], PageFetched)


def test_on_event_callback_sees_every_event() -> None:
    seen: list = []

    async def run(server) -> list:
        return [e async for e in crawl_site(server.url("/index.html"), options(), on_event=seen.append)]

    with serve("plain") as server:
        assert asyncio.run(run(server)) == seen


@pytest.mark.parametrize(("max_pages", "totals"), [(1000, [1, 7]), (3, [1, 3])])
def test_on_discovered_reports_a_growing_total_capped_at_max_pages(max_pages: int, totals: list[int]) -> None:
    reported: list[tuple[int, int]] = []  # (total, page events yielded before it)

    async def run(server) -> list:
        events: list = []
        stream_ = crawl_site(
            server.url("/docs/index.html"),
            options(max_pages=max_pages),
            on_discovered=lambda total: reported.append((total, len(events))),
        )
        async for event in stream_:
            events.append(event)
        return events

    with serve("sphinx") as server:
        events = asyncio.run(run(server))
    assert [total for total, _ in reported] == totals  # once per change, not once per link
    assert all(total >= yielded for total, yielded in reported)
    page_events = len(events) - 1  # all but CrawlFinished
    assert page_events == totals[-1]
    assert summary(events).discovered == 7  # the summary still counts every page found


# -- sitemaps ------------------------------------------------------------------------------------------


def test_sitemap_parsing_variants() -> None:
    import gzip

    urlset = b"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
      <url><loc> https://x.example/a </loc></url><url><loc>https://x.example/b</loc></url></urlset>"""
    assert parse_sitemap(urlset) == (["https://x.example/a", "https://x.example/b"], [])
    index = b"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
      <sitemap><loc>https://x.example/s1.xml</loc></sitemap></sitemapindex>"""
    assert parse_sitemap(index) == ([], ["https://x.example/s1.xml"])
    assert parse_sitemap(gzip.compress(urlset))[0] == ["https://x.example/a", "https://x.example/b"]
    assert parse_sitemap(b"https://x.example/t1\nhttps://x.example/t2\n") == (
        ["https://x.example/t1", "https://x.example/t2"],
        [],
    )
    entity_bomb = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>
      <urlset><url><loc>https://x.example/&b;</loc></url></urlset>"""
    assert all(len(url) < 100 for url in parse_sitemap(entity_bomb)[0])
    assert parse_sitemap(b"<not xml") == ([], [])


# -- browser mode --------------------------------------------------------------------------------------


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the Debian chromium package")
def test_browser_mode_renders_javascript_through_crawl4ai(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        """<html><head><title>App docs</title></head><body><main id="app"></main>
        <script>document.getElementById('app').innerHTML =
          '<h1>Rendered guide</h1><p>This text only exists after JavaScript ran in the browser.</p>';</script>
        </body></html>"""
    )
    state = tmp_path / "home" / "crawls"
    with serve(site) as server:
        plain = crawl(server.url("/index.html"), options(use_sitemaps=False, use_llms_txt=False))
        assert failed(plain)[server.url("/index.html")].reason == "no text content"
        rendered = crawl(
            server.url("/index.html"),
            options(browser=True, state_dir=state, use_sitemaps=False, use_llms_txt=False, timeout=30.0),
        )
    [page] = fetched(rendered).values()
    assert page.page.title == "Rendered guide"
    assert "only exists after JavaScript ran" in page.page.markdown
    assert (state / "crawl4ai" / ".crawl4ai" / "chromium.path").read_text() == str(CHROMIUM)
