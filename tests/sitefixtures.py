"""A real HTTP server on 127.0.0.1 serving the fixture documentation sites in tests/sites/.

``serve("sphinx")`` (or ``serve(path)``) starts a threaded ``http.server`` on a random port. It serves
files with ETag and Last-Modified and answers conditional requests with 304, substitutes
``{{origin}}`` in .txt/.xml files (robots.txt and sitemaps need absolute URLs), records every request,
and lets a test install custom responders per path (redirects, errors, streams, ...).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import mimetypes
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

SITES = Path(__file__).parent / "sites"

Responder = Callable[[BaseHTTPRequestHandler], None]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients closing keep-alive connections are normal here


class SiteServer:
    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.routes: dict[str, Responder] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.etags = True
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="site-server", daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def count(self, path: str) -> int:
        """How many requests asked for ``path``."""
        return sum(1 for requested, _ in self.requests if requested == path)

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [headers for requested, headers in self.requests if requested == path]

    def start(self) -> SiteServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SiteServer:  # noqa: PYI034 - a concrete class, not meant to be subclassed
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                server.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
                responder = server.routes.get(path)
                try:
                    if responder is not None:
                        responder(self)
                    else:
                        server._serve_file(self, path)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading, as it should for oversized pages

        return Handler

    def _serve_file(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        if self.root is None:
            send(handler, 404, b"not found", "text/plain")
            return
        target = (self.root / path.lstrip("/")).resolve()
        if not str(target).startswith(str(self.root.resolve())):
            send(handler, 403, b"forbidden", "text/plain")
            return
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            send(handler, 404, b"<html><body><h1>Not found</h1></body></html>", "text/html")
            return
        body = target.read_bytes()
        if target.suffix in (".txt", ".xml"):
            body = body.replace(b"{{origin}}", self.origin.encode())
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        last_modified = email.utils.formatdate(int(target.stat().st_mtime), usegmt=True)
        headers = {"Last-Modified": last_modified}
        if self.etags:
            headers["ETag"] = etag
        if self.etags and handler.headers.get("If-None-Match") == etag:
            send(handler, 304, b"", None, headers)
            return
        since = handler.headers.get("If-Modified-Since")
        if since and not handler.headers.get("If-None-Match"):
            with contextlib.suppress(TypeError, ValueError):
                if email.utils.parsedate_to_datetime(since).timestamp() >= int(target.stat().st_mtime):
                    send(handler, 304, b"", None, headers)
                    return
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("xml"):
            content_type += "; charset=utf-8"
        send(handler, 200, body, content_type, headers)


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str | None,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if body:
        handler.wfile.write(body)


def redirect(location: str, status: int = 302) -> Responder:
    return lambda handler: send(handler, status, b"", None, {"Location": location})


def respond(status: int, body: bytes = b"", content_type: str = "text/html", **headers: str) -> Responder:
    fixed = {name.replace("_", "-"): value for name, value in headers.items()}
    return lambda handler: send(handler, status, body, content_type, fixed)


def stream(total_bytes: int, content_type: str = "text/html", *, declare_length: bool = True) -> Responder:
    """A body of ``total_bytes`` written in 64 KiB chunks from one buffer, never built whole in memory."""
    chunk = (b"<p>" + b"lorem ipsum dolor sit amet " * 2400 + b"</p>\n")[: 64 * 1024]

    def responder(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        if declare_length:
            handler.send_header("Content-Length", str(total_bytes))
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        sent = 0
        while sent < total_bytes:
            piece = chunk[: total_bytes - sent]
            handler.wfile.write(piece)
            sent += len(piece)
        handler.close_connection = True

    return responder


def flaky(failures: int, then: Responder, status: int = 503, **headers: str) -> Responder:
    """Answer ``status`` to the first ``failures`` requests, then behave like ``then``."""
    remaining = [failures]
    lock = threading.Lock()

    def responder(handler: BaseHTTPRequestHandler) -> None:
        with lock:
            fail = remaining[0] > 0
            remaining[0] -= 1
        if fail:
            respond(status, b"try again", "text/plain", **headers)(handler)
        else:
            then(handler)

    return responder


@contextlib.contextmanager
def serve(site: str | Path | None) -> Iterator[SiteServer]:
    """Serve ``tests/sites/<site>`` (or a directory path, or nothing) until the block ends."""
    root = SITES / site if isinstance(site, str) else site
    server = SiteServer(root)
    with server:
        yield server
