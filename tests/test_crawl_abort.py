"""A crawl where most pages fail stops early with a clear error and keeps what it indexed."""

from __future__ import annotations

import http.server
import threading

import pytest

from evorag.cli import main
from evorag.errors import CrawlError
from evorag.service import CrawlRequest, Evorag


class _MostlyBroken(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            links = "".join(f'<a href="/p{i}.html">p{i}</a>' for i in range(60))
            body = f"<html><body><main><h1>Index</h1><p>{'Docs text. ' * 40}</p>{links}</main></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body.encode())
        elif self.path.startswith(("/robots.txt", "/sitemap", "/llms.txt")):
            self.send_response(404)  # (a 5xx robots.txt would rightly mean "crawl nothing")
            self.end_headers()
        else:
            self.send_response(500)
            self.end_headers()


@pytest.fixture
def broken_site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MostlyBroken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


def test_a_mostly_failing_crawl_aborts_cleanly(broken_site, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EVORAG_CRAWL_RETRIES", "0")
    with Evorag(home=tmp_path / "h", allow_private=True, crawl_retries=0) as rag:
        with pytest.raises(CrawlError, match="aborted: .* pages failed"):
            rag.crawl(CrawlRequest(url=broken_site, source="broken", max_pages=60))
        assert rag.catalog.pending_pages() == []
        pages = rag.catalog.pages("broken")
        assert [url.rsplit("/", 1)[-1] for url, p in pages.items() if p.indexed_hash] == ["index.html"]
    code = main(["crawl", broken_site, "--allow-private", "--source", "broken2", "--max-pages", "60"])
    assert code == 3
    assert "aborted" in capsys.readouterr().err
