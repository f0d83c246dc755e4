"""Crawl progress carries a total: real crawls of the fixture sites through the service and the store."""

from __future__ import annotations

import dataclasses

from evorag.tools.crawl_job import CrawlProgress
from sitefixtures import serve

from evorag.service import CrawlRequest, Evorag


def crawl_with_progress(rag: Evorag, url: str, **request) -> tuple[object, list[CrawlProgress]]:
    # The callback gets one object, updated in place: keep a copy of every state it showed.
    states: list[CrawlProgress] = []
    report = rag.crawl(
        CrawlRequest(url=url, allow_private=True, **request),
        on_progress=lambda progress: states.append(dataclasses.replace(progress)),
    )
    return report, states


def pages_seen(report) -> int:
    return report.pages_indexed + report.pages_unchanged + report.pages_failed + report.pages_removed


def test_the_total_grows_as_links_are_found_and_ends_at_the_pages_seen(tmp_path) -> None:
    with serve("sphinx") as server, Evorag(home=tmp_path / "home") as rag:
        report, states = crawl_with_progress(rag, server.url("/docs/index.html"), source="docs")

    totals = [state.discovered for state in states]
    assert all(state.discovered >= state.done for state in states), totals
    # Only the start page is known at first; the sitemaps, llms.txt and its links add the rest.
    assert totals[0] == 1
    assert totals == sorted(totals) and totals[-1] > totals[0]
    assert (states[-1].done, states[-1].discovered) == (pages_seen(report), pages_seen(report))
    assert pages_seen(report) == 7  # 6 pages and a 404 (see test_crawler)


def test_a_capped_crawl_never_shows_more_than_max_pages(tmp_path) -> None:
    with serve("sphinx") as server, Evorag(home=tmp_path / "home") as rag:
        report, states = crawl_with_progress(rag, server.url("/docs/index.html"), source="docs", max_pages=3)

    assert report.complete is False  # more pages were found than the crawl was allowed to visit
    assert max(state.discovered for state in states) == 3
    assert all(state.done <= state.discovered <= 3 for state in states)
    assert (states[-1].done, states[-1].discovered) == (3, 3) == (pages_seen(report), 3)


def test_a_recrawl_counts_unchanged_pages_towards_the_same_total(tmp_path) -> None:
    with serve("sphinx") as server, Evorag(home=tmp_path / "home") as rag:
        crawl_with_progress(rag, server.url("/docs/index.html"), source="docs")
        report, states = crawl_with_progress(rag, server.url("/docs/index.html"), source="docs")

    assert report.pages_unchanged == 6 and report.pages_indexed == 0
    assert all(state.discovered >= state.done for state in states)
    # 304s carry no links, so the 404 page linked only from page bodies is not found again: 6, not 7.
    assert (states[-1].done, states[-1].discovered) == (6, 6) == (pages_seen(report), 6)


def test_a_one_page_crawl_is_one_of_one(tmp_path) -> None:
    with serve("plain") as server, Evorag(home=tmp_path / "home") as rag:
        report, states = crawl_with_progress(rag, server.url("/index.html"), source="plain", max_pages=1)

    # The page, then the finish; a crawl job may show the same state again (its watcher polls the queue), but
    # never another one: no moment shows 0 of 1 done or a second page.
    shown = [(state.done, state.discovered) for state in states]
    assert len(shown) >= 2 and set(shown) == {(1, 1)}, shown
    assert report.pages_indexed == 1
