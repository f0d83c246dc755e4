"""The Docker sandbox against a daemon that drops connections: retries with backoff, then a circuit breaker.

A real docker CLI talks to the real daemon through a TCP relay on 127.0.0.1 that forwards every request
but cuts the connection of chosen ``containers/create`` requests, as a restarting or overloaded daemon does.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from evorag.tools.sandbox import DockerSandbox, SandboxError
from evorag.tools.sandbox import _docker as docker_backend
from evorag.tools.sandbox._select import default_sandbox

from evorag.errors import ConfigError
from evorag.settings import load_settings

DOCKER_SOCKET = "/var/run/docker.sock"
REQUIRED = "docker" in os.environ.get("EVORAG_REQUIRE_SANDBOXES", "")  # read at import, as test_sandbox does


class FlakyDaemonRelay:
    """TCP on 127.0.0.1 -> the daemon's unix socket; ``drop_creates`` create requests get their connection cut."""

    def __init__(self, drop_creates: int) -> None:
        self.drop_creates = drop_creates
        self.creates_seen = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            daemon = socket.socket(socket.AF_UNIX)
            daemon.connect(DOCKER_SOCKET)
            threading.Thread(target=self._relay, args=(client, daemon), daemon=True).start()

    def _relay(self, client: socket.socket, daemon: socket.socket) -> None:
        answers = threading.Thread(target=self._pump, args=(daemon, client, False), daemon=True)
        answers.start()
        self._pump(client, daemon, True)
        answers.join()
        client.close()
        daemon.close()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        """Copy one direction; an end of stream is passed on as a half-close (``docker start --attach``
        keeps reading the output after it has sent its input)."""
        try:
            while data := source.recv(65536):
                if from_client and b"/containers/create" in data:
                    with self._lock:
                        self.creates_seen += 1
                        drop = self.creates_seen <= self.drop_creates
                    if drop:  # the request never reaches the daemon; the CLI sees its connection die
                        for end in (source, target):
                            end.shutdown(socket.SHUT_RDWR)
                        return
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@pytest.fixture
def real_daemon() -> None:
    problem = DockerSandbox().why_unavailable() if Path(DOCKER_SOCKET).exists() else "no docker socket"
    if problem:
        if REQUIRED:
            pytest.fail(f"docker sandbox required but unavailable: {problem}")
        pytest.skip(f"docker sandbox unavailable: {problem}")


@pytest.fixture
def relay(request, real_daemon, monkeypatch):
    relay = FlakyDaemonRelay(drop_creates=request.param)
    monkeypatch.setenv("DOCKER_HOST", relay.url)
    url = relay.url
    yield relay
    relay.close()
    docker_backend._breakers.pop((os.path.realpath(DockerSandbox().docker), url), None)  # the key of _daemon()


@pytest.fixture
def workdir(tmp_path) -> Path:
    path = tmp_path / "work"
    path.mkdir(mode=0o700)
    return path


@pytest.mark.parametrize("relay", [2], indirect=True)
def test_dropped_creates_are_retried_with_backoff_and_the_run_succeeds(relay, workdir) -> None:
    started = time.monotonic()
    result = DockerSandbox().run(workdir, ["python", "-c", "print(6 * 7)"])
    assert result.exit_code == 0 and result.stdout.strip() == "42", result
    assert relay.creates_seen == 3  # two cut, the third reached the daemon
    assert time.monotonic() - started >= 0.5  # it waited between attempts (0.5 s base, exponential)


@pytest.mark.parametrize("relay", [10_000], indirect=True)
def test_a_daemon_that_stays_down_opens_the_breaker_and_auto_falls_back(relay, workdir, monkeypatch) -> None:
    sandbox = DockerSandbox()
    for run in range(3):
        with pytest.raises(SandboxError, match=r"could not be reached \(3 attempts\)") as failure:
            sandbox.run(workdir, ["python", "-c", "print(1)"])
        assert "docker info" in (failure.value.hint or "")
    assert relay.creates_seen == 9  # 3 runs x 3 attempts, no container created

    started = time.monotonic()
    with pytest.raises(SandboxError, match="unavailable"):
        sandbox.run(workdir, ["python", "-c", "print(1)"])
    assert time.monotonic() - started < 1.0 and relay.creates_seen == 9  # fails fast, the daemon is spared
    assert "could not be reached by the last runs" in (sandbox.why_unavailable() or "")

    # Explicit docker: a clear error, never an unsandboxed run.
    with pytest.raises(ConfigError, match="no usable sandbox.*could not be reached by the last runs"):
        default_sandbox(load_settings(sandbox_backend="docker"))
    # Auto on a host without bubblewrap: Docker is not chosen while its breaker is open, and nothing
    # unsandboxed takes its place.
    only_docker = workdir.parent / "bin"
    only_docker.mkdir()
    (only_docker / "docker").symlink_to(sandbox.docker)
    monkeypatch.setenv("PATH", str(only_docker))
    with pytest.raises(ConfigError, match="bubblewrap: .*docker: the Docker daemon could not be reached"):
        default_sandbox(load_settings(sandbox_backend="auto"))
