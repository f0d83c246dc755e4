"""Retries with backoff and circuit breakers around remote dependencies, tested against real local servers."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest
from evorag.tools.embedding._remote import OpenAIEmbedder
from evorag.tools.resilience import CircuitBreaker, CircuitOpenError, retry_call

from evorag.errors import ModelError, StoreError


def test_retry_call_backs_off_then_succeeds_and_the_breaker_opens_after_repeated_failure():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError("blip")
        return "ok"

    assert retry_call(flaky, retry_on=(ConnectionError,), attempts=3, base_delay=0.01) == "ok"
    assert len(calls) == 3 and calls[1] - calls[0] >= 0.01 and calls[2] - calls[1] >= 0.02  # backed off
    breaker = CircuitBreaker("dep", failure_threshold=2, reset_after=60)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            retry_call(lambda: (_ for _ in ()).throw(ConnectionError("down")), retry_on=(ConnectionError,),
                       attempts=2, base_delay=0.01, breaker=breaker)
    with pytest.raises(CircuitOpenError):
        retry_call(lambda: "never called", retry_on=(ConnectionError,), breaker=breaker)


class _FlakyEmbeddings(http.server.BaseHTTPRequestHandler):
    failures_left = 2

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        if cls.failures_left > 0:
            cls.failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        body = json.dumps({"data": [{"index": 0, "embedding": [3.0, 4.0]}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_remote_embedder_retries_server_errors():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyEmbeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        embedder = OpenAIEmbedder(model="m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                  api_key="k")
        vector = embedder.embed_query("hello")
        assert vector.tolist() == pytest.approx([0.6, 0.8])
    finally:
        server.shutdown()


def test_a_down_embedder_is_a_clear_error_and_then_fails_fast():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    embedder = OpenAIEmbedder(model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
    for _ in range(3):
        with pytest.raises(ModelError, match="unreachable"):
            embedder.embed_query("x")
    started = time.monotonic()
    with pytest.raises(ModelError):
        embedder.embed_query("x")  # the breaker is open: no more waiting on backoff
    assert time.monotonic() - started < 0.1


def test_a_down_qdrant_server_is_a_clear_store_error():
    from evorag.tools.stores import QdrantServerStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = QdrantServerStore(url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(StoreError, match="EVORAG_QDRANT_URL"):
        store.open("model", 4)
