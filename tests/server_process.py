"""Real server processes for the tests: a free port on 127.0.0.1, and a server command (by default
`evorag mcp --http`) run as a subprocess, waited for until a health URL answers 200, and stopped at the end.

The server's stderr goes to a file (a pipe nobody reads while it runs would fill and block it); a server that
exits before it is healthy fails the test with the end of that log."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mcp_http_command(port: int) -> list[str]:
    return [sys.executable, "-m", "evorag.cli", "mcp", "--http", "--port", str(port)]


def wait_healthy(url: str, process: subprocess.Popen, log: Path, *, timeout: float = 90.0) -> None:
    """Until ``url`` answers 200; fails if the process exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the server exited: {log.read_text(errors='replace')[-2000:]}"
        assert time.monotonic() < deadline, f"the server did not become healthy at {url}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=timeout)


@contextlib.contextmanager
def serving(env: Mapping[str, str], log: Path, *, port: int | None = None, command: Sequence[str] | None = None,
            ready: str = "/healthz", timeout: float = 90.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``command`` (default: `evorag mcp --http` on ``port``, a free one if None) with ``env`` until
    ``http://127.0.0.1:PORT{ready}`` answers 200; yields the base URL and the process; stops it on exit."""
    port = free_port() if port is None else port
    with log.open("wb") as stderr:
        process = subprocess.Popen(list(command or mcp_http_command(port)), cwd=REPO, env=dict(env),
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url + ready, process, log, timeout=timeout)
        yield url, process
    finally:
        stop(process)
