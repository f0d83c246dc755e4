"""SIGKILL at random points during indexing never leaves partial or duplicate pages, and a re-run converges.

Each round starts a real `evorag crawl` process and kills it (-9) at a different moment; after every kill
the index is checked (after the recovery any next run performs), and the final crawl must produce exactly
the state of a crawl that was never interrupted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from evorag.service import CrawlRequest, Evorag

KILL_POINTS = 20
PAGES = 24


def _write_site(root: Path) -> None:
    links = "".join(f'<li><a href="page{i}.html">Page {i}</a></li>' for i in range(PAGES))
    for i in range(PAGES):
        sections = "".join(
            f"<h2>Topic {i}.{j}</h2><p>{f'Detailed explanation of topic {i}.{j} with words. ' * 12}</p>"
            f"<pre><code class=\"language-python\">def f_{i}_{j}(x):\n    return x + {j}</code></pre>"
            for j in range(6)
        )
        (root / f"page{i}.html").write_text(
            f"<html><head><title>Page {i}</title></head><body><nav><ul>{links}</ul></nav>"
            f"<main><h1>Page {i}</h1>{sections}</main></body></html>")
    # The index has a paragraph of its own: a bare list of links is a navigation page, followed but not indexed.
    intro = "<p>" + "This site documents the widget toolkit, one topic per page, with examples. " * 4 + "</p>"
    (root / "index.html").write_text(f"<html><body><main><h1>Index</h1>{intro}<ul>{links}</ul></main></body></html>")


def _snapshot(home: Path) -> dict[str, tuple[str, int]]:
    """{url: (content hash, chunk count)} from the store, after checking the catalog agrees with it."""
    with Evorag(home=home, embedder="onnx") as rag:
        rag.knowledge.repair_index()  # what every next run does first
        by_url: dict[str, set[str]] = defaultdict(set)
        positions: dict[str, list[int]] = defaultdict(list)
        for chunk in rag.store.iter_chunks():
            by_url[chunk.url].add(chunk.content_hash)
            positions[chunk.url].append(chunk.position)
        catalog = rag.catalog.pages("site")
    state = {}
    for url, hashes in by_url.items():
        assert len(hashes) == 1, f"{url} holds chunks of {len(hashes)} versions"
        assert len(positions[url]) == len(set(positions[url])), f"{url} has duplicate chunks"
        record = catalog.get(url)
        assert record is not None and record.indexed_hash in hashes, f"{url} is in the index but not committed"
        assert record.chunk_count == len(positions[url]), f"{url} is only partly indexed"
        state[url] = (record.indexed_hash, record.chunk_count)
    for url, record in catalog.items():
        if record.indexed_hash and record.chunk_count:
            assert url in state, f"{url} is committed but has no chunks"
    return state


@pytest.mark.slow
def test_sigkill_during_indexing_never_leaves_partial_pages(tmp_path):
    import functools
    import http.server
    import threading

    site = tmp_path / "site"
    site.mkdir()
    _write_site(site)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    env = {**os.environ, "EVORAG_HOME": str(tmp_path / "home"), "EVORAG_EMBEDDER": "onnx",
           "EVORAG_ALLOW_PRIVATE": "true"}
    command = [sys.executable, "-m", "evorag.cli", "crawl", url, "--source", "site", "--json"]
    rng = random.Random(7)
    try:
        kills = 0
        for round_number in range(KILL_POINTS):
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.8, 3.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
            _snapshot(tmp_path / "home")
            # Change a page now and then so kills also hit re-indexing of a new version.
            if round_number % 5 == 4:
                page = site / f"page{round_number % PAGES}.html"
                page.write_text(page.read_text().replace("<h1>", f"<h1>v{round_number} "))
        assert kills >= KILL_POINTS // 2, "the crawl finished too fast to be interrupted"
        assert subprocess.run(command, env=env, capture_output=True, check=False).returncode == 0
        interrupted = _snapshot(tmp_path / "home")

        clean_home = tmp_path / "clean"
        with Evorag(home=clean_home, embedder="onnx", allow_private=True) as rag:
            rag.crawl(CrawlRequest(url=url, source="site"))
        assert interrupted == _snapshot(clean_home)
        assert len(interrupted) == PAGES + 1
    finally:
        server.shutdown()
