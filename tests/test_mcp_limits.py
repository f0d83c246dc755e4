"""MCP over HTTP under hostile clients: bad bodies get 400/413 with a JSON error (no traceback in the server
log), and open sessions per client are capped and expire when idle. Real `evorag mcp --http` processes, raw
HTTP requests and real session ids."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_process import free_port, mcp_http_command, stop, wait_healthy

REPO = Path(__file__).resolve().parents[1]
TOKEN = "limits-test-token-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream",
           "Content-Type": "application/json"}
tokens: dict[str, str] = {}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_") or k == "EVORAG_LLM_PROVIDER"}
    env.update(EVORAG_HOME=str(home), EVORAG_CONFIG=str(home / "none.toml"), EVORAG_MCP_TOKEN=TOKEN,
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO), **extra)
    return env


def _add_user(home: Path, name: str) -> str:
    """A principal of the home's user store (`evorag users add`); returns its bearer token."""
    result = subprocess.run([sys.executable, "-m", "evorag.cli", "users", "add", name, "--role", "reader", "--json"],
                            cwd=REPO, env=_env(home), capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)["token"]


@contextlib.contextmanager
def _servers(tmp_path: Path, *configs: dict[str, str], users: tuple[str, ...] = ()):
    """Start one `evorag mcp --http` per config (in parallel: each takes seconds to import), yield their URLs
    and log files, stop them at the end. The last server's home gets the principals ``users`` first (their
    tokens are in ``tokens``)."""
    started = []
    try:
        for number, extra in enumerate(configs):
            home = tmp_path / f"home{number}"
            home.mkdir()
            if number == len(configs) - 1:
                tokens.update({name: _add_user(home, name) for name in users})
            port = free_port()
            log = home / "server.log"
            with log.open("wb") as stderr:
                process = subprocess.Popen(mcp_http_command(port), cwd=REPO, env=_env(home, **extra),
                                           stdout=subprocess.DEVNULL, stderr=stderr)
            started.append((process, f"http://127.0.0.1:{port}", log))
        for process, url, log in started:
            wait_healthy(url + "/healthz", process, log)
        yield [(url, log) for _, url, log in started]
    finally:
        for process, _, _ in started:
            stop(process, timeout=10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("mcp-limits")
    with _servers(tmp_path, {"EVORAG_MCP_MAX_SESSIONS": "3", "EVORAG_MCP_MAX_BODY_BYTES": str(64 * 1024)},
                  {"EVORAG_MCP_MAX_SESSIONS": "2", "EVORAG_MCP_SESSION_IDLE_SECONDS": "2"},
                  {"EVORAG_MCP_MAX_SESSIONS": "1"}, users=("alice", "bob")) as started:
        yield started


def _open_session(url: str, token: str = TOKEN) -> httpx.Response:
    return httpx.post(url + "/mcp", json=INITIALIZE, headers=HEADERS | {"Authorization": f"Bearer {token}"},
                      timeout=30)


BAD_BODIES = {
    "invalid UTF-8": (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\xff\xfe"}}', 400, "not valid UTF-8"),
    "100k-deep array": (b"[" * 100_000 + b"]" * 100_000, 413, "larger than"),  # 200 kB: over this server's 64 kB
    "deep array under the size limit": (b"[" * 20_000 + b"]" * 20_000, 400, "nested deeper than 64"),
    "deep params": (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
                    400, "nested deeper than 64"),
    "not JSON": (b'{"jsonrpc": "2.0", "id": 1, "method": ', 400, "not valid JSON"),
    "too large": (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * 70_000 + b'"}}', 413,
                  "larger than 65536"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_bodies_get_a_json_error_and_no_traceback(servers, case):
    (url, log), _, _ = servers
    body, status, message = BAD_BODIES[case]
    response = httpx.post(url + "/mcp", content=body, headers=HEADERS, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"]
    # The server is fine afterwards, and its log has a warning line, not a traceback.
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    logged = log.read_text(errors="replace")
    assert "Traceback" not in logged and "Error handling POST request" not in logged
    assert message in logged


def test_an_oversized_declared_body_is_refused_before_it_is_read(servers):
    (url, _), _, _ = servers
    with socket.create_connection((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])), timeout=10) as raw:
        raw.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100000000\r\n\r\n{")
        reply = raw.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


def test_sessions_are_capped_per_client_and_a_closed_one_frees_its_place(servers):
    (url, log), _, _ = servers
    opened = [_open_session(url) for _ in range(3)]
    assert [r.status_code for r in opened] == [200, 200, 200]
    ids = [r.headers["mcp-session-id"] for r in opened]
    assert len(set(ids)) == 3
    refused = _open_session(url)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many open sessions" in refused.json()["error"]["message"]
    # Existing sessions keep working at the cap.
    ping = httpx.post(url + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                      headers=HEADERS | {"mcp-session-id": ids[1]}, timeout=30)
    assert ping.status_code == 200
    # Closing one (DELETE with its id) makes room for exactly one more.
    assert httpx.delete(url + "/mcp", headers=HEADERS | {"mcp-session-id": ids[0]}, timeout=30).status_code == 200
    assert _open_session(url).status_code == 200
    assert _open_session(url).status_code == 429
    assert "Traceback" not in log.read_text(errors="replace")


def test_idle_sessions_expire_and_free_their_place(servers):
    _, (url, log), _ = servers
    ids = [_open_session(url).headers["mcp-session-id"] for _ in range(2)]
    assert _open_session(url).status_code == 429
    time.sleep(4)  # the idle timeout is 2 s
    expired = httpx.post(url + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                         headers=HEADERS | {"mcp-session-id": ids[0]}, timeout=30)
    assert expired.status_code == 404  # the SDK closed it: the client must open a new one
    assert [_open_session(url).status_code for _ in range(2)] == [200, 200]
    assert "Traceback" not in log.read_text(errors="replace")


def test_the_cap_is_per_principal(servers):
    """alice at her cap does not stop bob: each principal (each user of `evorag users`) has its own."""
    _, _, (url, log) = servers
    assert _open_session(url, tokens["alice"]).status_code == 200
    assert _open_session(url, tokens["alice"]).status_code == 429
    assert _open_session(url, tokens["bob"]).status_code == 200
    assert _open_session(url, tokens["bob"]).status_code == 429
    assert "Traceback" not in log.read_text(errors="replace")
