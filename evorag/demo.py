"""``evorag demo``: the whole main job offline, on a bundled documentation site served on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEMO_SITE = Path(__file__).parent / "demo_site"
DEMO_SOURCE = "evorag-demo"
DEMO_QUESTIONS = (
    "How do I crawl documentation on localhost?",
    "search the index from Python",
)


class _DemoHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("sitemap.xml"):
            base = f"http://{self.headers.get('Host')}/"
            body = (DEMO_SITE / "sitemap.xml").read_text().replace("{base}", base).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


DEFAULT_PORT = 8765


@contextmanager
def serve_demo_site(port: int = DEFAULT_PORT) -> Iterator[str]:
    """Serve the bundled site on 127.0.0.1; yields its base URL.

    A fixed port keeps the URLs stable, so a second demo run shows an incremental re-crawl; if the
    port is taken, any free port is used.
    """
    handler = functools.partial(_DemoHandler, directory=str(DEMO_SITE))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
