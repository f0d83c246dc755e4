"""Queries keep being answered while a re-crawl replaces every page, and only ever see whole page versions."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from sitefixtures import SiteServer

from evorag.demo import DEMO_SITE
from evorag.service import CrawlRequest, Evorag

QUERIES = ["where does evorag keep its state?", "how do I set the embedder?", "crawl a site", "search"]


def _hashes_by_url(rag: Evorag) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for chunk in rag.store.iter_chunks():
        found.setdefault(chunk.url, set()).add(chunk.content_hash)
    return found


def test_searches_during_a_recrawl_never_fail_and_see_only_crawled_versions(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(DEMO_SITE, site)
    with SiteServer(site) as server, Evorag(home=tmp_path / "home") as rag:
        request = CrawlRequest(url=server.url("/index.html"), source="demo", allow_private=True)
        assert rag.crawl(request).pages_indexed >= 5
        before = _hashes_by_url(rag)

        # A new release of the docs: every page changes, so the re-crawl replaces every page's chunks.
        for page in site.glob("*.html"):
            page.write_text(page.read_text().replace("<p>", "<p>Revised for release 2. ", 1))

        errors: list[BaseException] = []
        reports = []

        def recrawl() -> None:
            try:
                reports.append(rag.crawl(request))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        crawler = threading.Thread(target=recrawl)
        crawler.start()
        seen: list[tuple[str, str]] = []
        searches_during_crawl = 0
        while crawler.is_alive():
            for query in QUERIES:
                hits = rag.search(query, limit=5)
                assert hits, f"no result for {query!r} while the pages were being replaced"
                seen += [(hit.chunk.url, hit.chunk.content_hash) for hit in hits]
                searches_during_crawl += 1
        crawler.join()

        assert not errors, errors
        assert reports[0].pages_indexed >= 5 and searches_during_crawl > 0
        after = _hashes_by_url(rag)
        # Every hit came from the old or the new version of its page, never from anything else...
        for url, content_hash in seen:
            assert content_hash in before.get(url, set()) | after.get(url, set()), (url, content_hash)
        # ...and once the crawl is done, each page exists in exactly one version: the new one.
        assert after.keys() == before.keys()
        for url, hashes in after.items():
            assert len(hashes) == 1 and hashes.isdisjoint(before[url]), url
