"""The sandbox battery, run against every backend usable here (bubblewrap; Docker when a daemon answers).

Every escape attempt runs for real inside the sandbox: a TCP server on the host's loopback, files planted
outside the workdir, secrets in the host environment, fork/memory/CPU/output bombs under low limits so that
the 2-core CI machine stays fine. Each bomb's wall-clock is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from evorag.errors import ConfigError, UserError
from evorag.settings import load_settings
from tools.sandbox import (
    BubblewrapSandbox,
    DockerSandbox,
    Limits,
    Sandbox,
    SandboxResult,
    default_sandbox,
)

BACKENDS = {"bubblewrap": BubblewrapSandbox, "docker": DockerSandbox}
# CI sets this (e.g. "bubblewrap,docker") so that a backend it provides cannot be skipped silently. Read at
# import: the autouse fixture of conftest.py clears EVORAG_* variables for each test.
REQUIRED = {
    name.strip() for name in os.environ.get("EVORAG_REQUIRE_SANDBOXES", "").split(",") if name.strip()
}
_instances: dict[str, Sandbox] = {}


@pytest.fixture(params=sorted(BACKENDS))
def sandbox(request) -> Sandbox:
    name = request.param
    if name not in _instances:
        _instances[name] = BACKENDS[name]()
    problem = _instances[name].why_unavailable()
    if problem:
        if name in REQUIRED:
            pytest.fail(f"{name} sandbox required but unavailable: {problem}")
        pytest.skip(f"{name} sandbox unavailable: {problem}")
    return _instances[name]


@pytest.fixture
def workdir(tmp_path) -> Path:
    # A TemporaryDirectory-like 0700 directory, as the evolution pipeline makes them.
    path = tmp_path / "work"
    path.mkdir(mode=0o700)
    return path


def run_python(sandbox: Sandbox, workdir: Path, code: str, **kwargs) -> SandboxResult:
    return sandbox.run(workdir, ["python", "-c", textwrap.dedent(code)], **kwargs)


def json_result(result: SandboxResult) -> dict:
    assert result.exit_code == 0, result
    return json.loads(result.stdout.strip().splitlines()[-1])


# What ordinary generated code needs


def test_runs_a_tool_with_json_arguments(sandbox, workdir):
    (workdir / "tool.py").write_text("def add(a: int, b: int) -> dict:\n    return {'sum': a + b}\n")
    call = "import json, sys; from tool import add; print(json.dumps(add(**json.loads(sys.argv[1]))))"
    result = sandbox.run(workdir, ["python", "-c", call, '{"a": 2, "b": 40}'])
    assert result.ok and not result.timed_out and result.killed_reason is None
    assert json.loads(result.stdout) == {"sum": 42}
    assert result.stderr == ""
    assert 0 < result.duration_s < 10


def test_stdin_env_and_exit_code_reach_the_program(sandbox, workdir):
    result = run_python(
        sandbox,
        workdir,
        "import os, sys; print(sys.stdin.read().upper() + os.environ['GREETING']); sys.exit(3)",
        stdin=b"hello ",
        env={"GREETING": "world"},
    )
    assert result.exit_code == 3 and result.killed_reason is None and not result.ok
    assert result.stdout.strip() == "HELLO world"


def test_pytest_runs_inside_on_the_candidate_tests(sandbox, workdir):
    (workdir / "tool.py").write_text("def double(x):\n    return 2 * x\n")
    (workdir / "test_tool.py").write_text(
        "from tool import double\n\n"
        "def test_double():\n    assert double(2) == 4\n\n"
        "def test_wrong():\n    assert double(2) == 5\n\n"
        "def test_scratch(tmp_path):\n    (tmp_path / 'f').write_text('x')\n"
    )
    result = sandbox.run(workdir, ["python", "-m", "pytest", "-q"], limits=Limits(wall_seconds=60))
    assert result.exit_code == 1, result
    assert "1 failed, 2 passed" in result.stdout
    assert result.killed_reason is None


def test_scratch_is_writable_but_work_and_system_are_read_only(sandbox, workdir):
    (workdir / "data.txt").write_text("input")
    result = run_python(
        sandbox,
        workdir,
        """
        import json, os
        out = {"cwd": os.getcwd(), "read": open("/work/data.txt").read()}
        with open("/tmp/scratch.txt", "w") as f:
            f.write("ok")
        out["scratch"] = open("/tmp/scratch.txt").read()
        for target in ("/work/new.txt", "/work/data.txt", "/usr/evil.txt", "/usr/bin/python3",
                       "/etc/passwd", "/evil.txt"):
            try:
                with open(target, "a") as f:
                    f.write("x")
                out[target] = "written"
            except OSError as exc:
                out[target] = type(exc).__name__
        print(json.dumps(out))
    """,
    )
    out = json_result(result)
    assert out.pop("cwd") == "/work" and out.pop("read") == "input" and out.pop("scratch") == "ok"
    assert all(outcome != "written" for outcome in out.values()), out
    assert (workdir / "data.txt").read_text() == "input"
    assert not (workdir / "new.txt").exists()


# Network


@pytest.fixture
def host_server():
    """A TCP server on the host's loopback that counts the connections it receives."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    server.close()


def test_no_network_host_loopback_external_or_dns(sandbox, workdir, host_server):
    port, accepted = host_server
    # Control: the server does accept connections from the host.
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    deadline = time.monotonic() + 2
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(accepted) == 1
    result = run_python(
        sandbox,
        workdir,
        f"""
        import json, socket
        out = {{"interfaces": sorted(name for _, name in socket.if_nameindex())}}
        out["routes"] = open("/proc/net/route").read().splitlines()[1:]
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
            out["loopback"] = "connected"
        except OSError as exc:
            out["loopback"] = type(exc).__name__
        # Reaching out is only attempted when there is provably no route: then nothing leaves the sandbox.
        if out["interfaces"] == ["lo"] and not out["routes"]:
            try:
                socket.create_connection(("192.0.2.1", 80), timeout=2).close()
                out["external"] = "connected"
            except OSError as exc:
                out["external"] = type(exc).__name__ + ":" + str(exc.errno)
            try:
                socket.getaddrinfo("example.com", 80)
                out["dns"] = "resolved"
            except OSError as exc:
                out["dns"] = type(exc).__name__
        print(json.dumps(out))
    """,
    )
    out = json_result(result)
    assert out["interfaces"] == ["lo"] and out["routes"] == []
    assert out["loopback"] == "ConnectionRefusedError"  # the sandbox's own, empty loopback
    assert out["external"] == f"OSError:{__import__('errno').ENETUNREACH}"
    assert out["dns"] == "gaierror"
    assert len(accepted) == 1  # nothing from the sandbox reached the host's server


# Files of the host


def test_host_files_and_evorag_home_are_invisible(sandbox, workdir, tmp_path, evorag_home):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("host secret")
    evorag_home.mkdir(parents=True, exist_ok=True)
    (evorag_home / "catalog.sqlite3").write_text("state")
    home_file = Path.home() / ".bashrc"
    (workdir / "link_abs").symlink_to(secret)
    (workdir / "link_rel").symlink_to(Path(os.path.relpath(secret, workdir)))
    (workdir / "link_home").symlink_to(home_file)
    probes = [
        str(secret),
        str(evorag_home / "catalog.sqlite3"),
        str(home_file),
        f"/proc/1/root{secret}",
        "/work/link_abs",
        "/work/link_rel",
        "/work/link_home",
        "/etc/shadow",
        "/var/run/docker.sock",
    ]
    result = run_python(
        sandbox,
        workdir,
        f"""
        import json, os, sys
        out = {{}}
        for path in {probes!r}:
            try:
                out[path] = "READ:" + open(path).read()[:20]
            except OSError as exc:
                out[path] = type(exc).__name__
        prefix = sys.base_prefix
        home = {str(Path.home())!r}
        out["home_listing"] = sorted(os.listdir(home)) if os.path.isdir(home) else []
        out["env_home"] = os.environ.get("EVORAG_HOME")
        print(json.dumps(out))
    """,
    )
    out = json_result(result)
    assert out.pop("env_home") is None
    listing = out.pop("home_listing")
    # The home directory exists inside only as the path to the interpreter (pyenv), nothing else of it.
    expected = (
        {Path(sys.base_prefix).relative_to(Path.home()).parts[0]}
        if Path.home() in Path(sys.base_prefix).parents
        else set()
    )
    assert set(listing) <= expected, listing
    for path, outcome in out.items():
        assert not outcome.startswith("READ:"), (path, outcome)


def test_only_the_interpreter_prefix_of_the_home_directory_is_mounted(sandbox, workdir):
    base = Path(sys.base_prefix)
    if Path.home() not in base.parents:
        pytest.skip("the interpreter is not under the home directory here")
    parents = [str(p) for p in reversed(base.parents) if Path.home() == p or Path.home() in p.parents]
    result = run_python(
        sandbox,
        workdir,
        f"""
        import json, os
        print(json.dumps({{p: sorted(os.listdir(p)) for p in {parents!r}}}))
    """,
    )
    listings = json_result(result)
    for parent in parents:
        child = base.relative_to(parent).parts[0]
        assert listings[parent] == [child], (parent, listings[parent])


def test_host_secrets_are_not_in_the_environment(sandbox, workdir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-host-secret")
    monkeypatch.setenv("EVORAG_MCP_TOKEN", "mcp-test-host-secret")
    result = run_python(
        sandbox,
        workdir,
        """
        import json, os
        environ = {}
        for pid in ("self", "1"):
            try:
                environ[pid] = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
            except OSError as exc:
                environ[pid] = type(exc).__name__
        print(json.dumps({"env": dict(os.environ), "proc": environ}))
    """,
        env={"ALLOWED": "yes"},
    )
    out = json_result(result)
    assert out["env"]["ALLOWED"] == "yes"
    assert "OPENAI_API_KEY" not in out["env"] and "EVORAG_MCP_TOKEN" not in out["env"]
    assert not any(name.startswith("EVORAG_") for name in out["env"])
    assert out["env"]["HOME"] == "/tmp"
    assert "host-secret" not in result.stdout


# Bombs: each must be stopped quickly and leave the host as it was


def _host_processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_fork_bomb_is_contained_and_killed(sandbox, workdir):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    started = time.monotonic()
    result = run_python(
        sandbox,
        workdir,
        f"""
        import os
        # {marker}
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
        limits=Limits(max_processes=16, wall_seconds=5),
    )
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.killed_reason in ("processes", "timeout"), result
    assert elapsed < 5 + 5
    deadline = time.monotonic() + 5
    while _host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_processes_with(marker) == []
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still start processes
    if sandbox.name == "bubblewrap" and os.geteuid() == 0:
        assert result.killed_reason == "processes" and elapsed < 3  # the pids cgroup reports it at once
        leftovers = [p for p in Path("/sys/fs/cgroup").rglob(f"evorag-sandbox-{os.getpid()}-*")]
        assert leftovers == []


def test_memory_bomb_is_killed(sandbox, workdir):
    started = time.monotonic()
    result = run_python(
        sandbox,
        workdir,
        """
        hoard = []
        while True:
            hoard.append(b"x" * (8 << 20))
    """,
        limits=Limits(memory_mb=128, wall_seconds=15),
    )
    assert result.killed_reason == "memory", result
    assert time.monotonic() - started < 10


def test_memory_of_all_processes_together_is_limited(sandbox, workdir):
    # Four processes of 60 MB each stay under the per-process limit of 128 MB but not under the total.
    started = time.monotonic()
    result = run_python(
        sandbox,
        workdir,
        """
        import os, time
        for _ in range(4):
            if os.fork() == 0:
                hoard = b"x" * (60 << 20)
                time.sleep(20)
                os._exit(0)
        for _ in range(4):
            os.wait()
    """,
        limits=Limits(memory_mb=128, wall_seconds=15),
    )
    assert result.killed_reason == "memory", result
    assert time.monotonic() - started < 10


def test_cpu_bound_loop_is_killed_at_the_cpu_limit(sandbox, workdir):
    started = time.monotonic()
    result = run_python(sandbox, workdir, "while True: pass", limits=Limits(cpu_seconds=1, wall_seconds=15))
    assert result.killed_reason == "cpu" and not result.timed_out, result
    assert time.monotonic() - started < 8


def test_sleeping_program_is_killed_at_the_wall_clock(sandbox, workdir):
    started = time.monotonic()
    result = run_python(sandbox, workdir, "import time; time.sleep(60)", limits=Limits(wall_seconds=1))
    assert result.timed_out and result.killed_reason == "timeout"
    assert result.exit_code != 0
    assert time.monotonic() - started < 6


def test_output_flood_is_capped(sandbox, workdir):
    started = time.monotonic()
    result = run_python(
        sandbox,
        workdir,
        """
        import sys
        while True:
            sys.stdout.write("x" * 4096)
    """,
        limits=Limits(max_output_bytes=10_000, wall_seconds=15),
    )
    assert result.killed_reason == "output", result
    assert result.stdout.startswith("x" * 10_000)
    assert len(result.stdout) < 10_000 + 100 and "output cut at 10000 bytes" in result.stdout
    assert time.monotonic() - started < 6


def test_big_files_are_refused(sandbox, workdir):
    result = run_python(
        sandbox,
        workdir,
        """
        import errno
        try:
            with open("/tmp/big", "wb") as f:
                f.write(b"x" * (3 << 20))
            print("written")
        except OSError as exc:
            print(errno.errorcode[exc.errno])
    """,
        limits=Limits(max_file_mb=1),
    )
    assert result.stdout.strip() == "EFBIG"


# Choosing a backend, refusing bad input


def test_default_sandbox_picks_a_usable_backend():
    try:
        chosen = default_sandbox(load_settings())
    except ConfigError as exc:
        pytest.skip(f"no sandbox here: {exc}")
    assert isinstance(chosen, Sandbox) and chosen.available()
    if BubblewrapSandbox().available():
        assert chosen.name == "bubblewrap"


def test_explicit_docker_backend_is_used_when_reachable():
    if not DockerSandbox().available():
        with pytest.raises(ConfigError, match="docker"):
            default_sandbox(load_settings(sandbox_backend="docker"))
    else:
        assert default_sandbox(load_settings(sandbox_backend="docker")).name == "docker"


def test_no_backend_is_a_config_error_never_an_unsandboxed_run(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # neither bwrap nor docker can be found
    with pytest.raises(ConfigError) as caught:
        default_sandbox(load_settings())
    assert "bubblewrap" in str(caught.value) and "docker" in str(caught.value)
    assert caught.value.hint == "install bubblewrap (apt-get install bubblewrap)"
    with pytest.raises(ConfigError):
        load_settings(sandbox_backend="none")


def test_limits_and_arguments_are_validated(sandbox, workdir):
    with pytest.raises(ConfigError):
        Limits(memory_mb=0)
    with pytest.raises(ConfigError):
        Limits(wall_seconds=-1)
    with pytest.raises(UserError):
        sandbox.run(Path("/"), ["true"])
    with pytest.raises(UserError):
        sandbox.run(Path.home(), ["true"])
    with pytest.raises(UserError):
        sandbox.run(workdir / "missing", ["true"])
    with pytest.raises(UserError):
        sandbox.run(workdir, [])
    with pytest.raises(UserError):
        sandbox.run(workdir, ["true"], env={"BAD NAME": "x"})


def test_concurrent_runs_are_independent(sandbox, workdir):
    results: list[SandboxResult] = []

    def one(n: int) -> None:
        results.append(run_python(sandbox, workdir, f"print({n} * 2)"))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r.stdout.strip() for r in results) == ["0", "2", "4"]


def test_docker_leaves_no_container_behind(workdir):
    docker = DockerSandbox()
    if not docker.available():
        if "docker" in REQUIRED:
            pytest.fail(f"docker sandbox required but unavailable: {docker.why_unavailable()}")
        pytest.skip(f"docker sandbox unavailable: {docker.why_unavailable()}")
    run_python(docker, workdir, "import time; time.sleep(30)", limits=Limits(wall_seconds=1))
    left = subprocess.run(
        [shutil.which("docker"), "ps", "-aq", "--filter", f"label=evorag.sandbox.pid={os.getpid()}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert left.stdout.strip() == ""
