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
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from evorag.tools.sandbox import (
    BubblewrapSandbox,
    DockerSandbox,
    Limits,
    RunRequest,
    Sandbox,
    SandboxBase,
    SandboxError,
    SandboxResult,
    default_sandbox,
)
from evorag.tools.sandbox import _snapshot as snapshot_module

from evorag.errors import ConfigError, UserError
from evorag.settings import load_settings

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


# The base class: every backend gets the preconditions, none can skip them


class _Recording(SandboxBase):
    """A backend that records what reaches it (and what its snapshot looked like) instead of running."""

    name = "recording"
    install_hint = "nothing to install"

    def __init__(self, problem: str | None = None) -> None:
        self.problem = problem
        self.requests: list[RunRequest] = []
        self.seen: dict[str, tuple[int, str]] = {}

    def _why_unavailable(self) -> str | None:
        return self.problem

    def _run(self, request: RunRequest) -> SandboxResult:
        self.requests.append(request)
        for path in sorted(request.workdir.rglob("*")):
            mode = path.lstat().st_mode
            content = os.readlink(path) if path.is_symlink() else path.read_text() if path.is_file() else ""
            self.seen[str(path.relative_to(request.workdir))] = (stat.S_IMODE(mode), content)
        self.seen["."] = (stat.S_IMODE(request.workdir.stat().st_mode), "")
        return SandboxResult(0, "", "", False, None, 0.0)


def test_a_backend_cannot_replace_the_checked_run():
    with pytest.raises(TypeError, match="must not override run"):

        class Careless(_Recording):
            def run(self, workdir, argv, **kwargs):  # pragma: no cover - never created
                return super()._run(workdir)

    with pytest.raises(TypeError, match="must not override why_unavailable"):

        class Optimist(_Recording):
            def why_unavailable(self):  # pragma: no cover - never created
                return None

    for backend in (BubblewrapSandbox, DockerSandbox):
        assert issubclass(backend, SandboxBase) and isinstance(backend(), Sandbox)


def test_bad_requests_never_reach_the_backend(workdir):
    backend = _Recording()
    bad_calls = [
        lambda: backend.run(Path("/"), ["true"]),
        lambda: backend.run(Path.home(), ["true"]),
        lambda: backend.run(workdir / "missing", ["true"]),
        lambda: backend.run(workdir, []),
        lambda: backend.run(workdir, "python"),  # a string is not a command line
        lambda: backend.run(workdir, ["a\0b"]),
        lambda: backend.run(workdir, ["true"], env={"BAD NAME": "x"}),
        lambda: backend.run(workdir, ["true"], env={"OK": "nul\0"}),
        lambda: backend.run(workdir, ["true"], stdin="text, not bytes"),
        lambda: backend.run(workdir, ["true"], limits={"wall_seconds": 1}),
    ]
    for call in bad_calls:
        with pytest.raises(UserError):
            call()
    unavailable = _Recording(problem="no kernel support here")
    with pytest.raises(SandboxError, match="recording sandbox is unavailable: no kernel support here"):
        unavailable.run(workdir, ["true"])
    assert backend.requests == [] and unavailable.requests == []


def test_the_backend_gets_a_readable_snapshot_and_a_scrubbed_environment(workdir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    (workdir / "tool.py").write_text("print(1)")
    (workdir / "tool.py").chmod(0o700)  # owner-only and executable
    (workdir / "pkg").mkdir(mode=0o700)
    (workdir / "pkg" / "data.txt").write_text("data")
    (workdir / "link").symlink_to("/etc/shadow")
    backend = _Recording()
    backend.run(workdir, ["python", "tool.py"], env={"GREETING": "hi"}, stdin=b"in")
    (request,) = backend.requests
    assert request.workdir != workdir and not request.workdir.exists()  # a copy, gone after the run
    assert not request.host_dir.exists()
    assert backend.seen == {
        ".": (0o755, ""),
        "tool.py": (0o644, "print(1)"),  # readable by every uid, executable by none
        "pkg": (0o755, ""),
        "pkg/data.txt": (0o644, "data"),
        "link": (0o777, "/etc/shadow"),  # kept as a link: it resolves inside the sandbox
    }
    assert request.argv == ("python", "tool.py") and request.stdin == b"in"
    assert request.env["GREETING"] == "hi" and request.env["HOME"] == "/tmp"
    assert "OPENAI_API_KEY" not in request.env and not any(k.startswith("EVORAG_") for k in request.env)
    assert stat.S_IMODE((workdir / "tool.py").stat().st_mode) == 0o700  # the caller's files are untouched


def test_special_files_and_huge_workdirs_are_refused(workdir, monkeypatch):
    fifo = workdir / "pipe"
    os.mkfifo(fifo)
    backend = _Recording()
    started = time.monotonic()
    with pytest.raises(UserError, match="special file: pipe"):
        backend.run(workdir, ["true"])
    assert time.monotonic() - started < 5  # the fifo was not opened (that would block)
    fifo.unlink()
    for n in range(5):
        (workdir / f"f{n}").write_text("x")
    monkeypatch.setattr(snapshot_module, "MAX_ENTRIES", 3)
    with pytest.raises(UserError, match="too large"):
        backend.run(workdir, ["true"])
    assert backend.requests == []


def test_interpreter_prefixes_that_work_or_tmp_would_hide_are_mounted_elsewhere(monkeypatch):
    from evorag.tools.sandbox import _limits

    for name, value in (
        ("base_prefix", "/opt/python"),
        ("base_exec_prefix", "/opt/python"),
        ("prefix", "/work/venv"),
        ("exec_prefix", "/work/venv"),
        ("executable", "/work/venv/bin/python"),
    ):
        monkeypatch.setattr(sys, name, value)
    assert _limits.interpreter_mounts() == [
        (Path("/opt/python"), Path("/opt/python")),
        (Path("/work/venv"), Path("/opt/evorag-python1")),
    ]
    assert _limits.sandbox_env(None)["PATH"].startswith("/opt/evorag-python1/bin:/opt/python/bin:")
    monkeypatch.setattr(sys, "prefix", "/tmp/venv")
    monkeypatch.setattr(sys, "exec_prefix", "/tmp/venv")
    assert [inside for _, inside in _limits.interpreter_mounts()] == [
        Path("/opt/python"),
        Path("/opt/evorag-python1"),
    ]


KILLED_RUN = """
import sys, tempfile
from pathlib import Path
from evorag.tools.sandbox import BubblewrapSandbox, Limits
from evorag.tools.sandbox import _snapshot
_snapshot.LEFTOVER_AGE_S = 0  # this test cannot wait ten minutes for the leftovers to age
with tempfile.TemporaryDirectory() as work:
    print("started", flush=True)
    BubblewrapSandbox().run(Path(work), sys.argv[1:], limits=Limits(wall_seconds=60))
"""


def test_a_killed_evorag_leaves_nothing_behind_after_the_next_run(tmp_path):
    # bwrap's sandbox does not always die with its monitor when evorag is killed mid-run: the next
    # process that uses the sandbox kills what is left in the dead process's cgroup and removes its
    # host directories.
    sandbox = BubblewrapSandbox()
    if not sandbox.available() or os.geteuid() != 0:
        pytest.skip("needs the bubblewrap sandbox as root (its per-run cgroup)")
    marker = f"killed-run-{uuid.uuid4().hex}"
    victim = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, "python", "-c", f"import time; time.sleep(60)  # {marker}"],
        stdout=subprocess.PIPE,
    )
    assert victim.stdout.readline() == b"started\n"
    deadline = time.monotonic() + 20
    while not _host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_processes_with(marker), "the sandboxed program never started"
    victim.kill()
    victim.wait()
    next_run = subprocess.run([sys.executable, "-c", KILLED_RUN, "true"], capture_output=True, timeout=60, check=False)
    assert next_run.returncode == 0, next_run.stderr
    deadline = time.monotonic() + 5
    while _host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_processes_with(marker) == []
    assert list(Path("/sys/fs/cgroup").rglob(f"evorag-sandbox-{victim.pid}-*")) == []
    for temp in {Path(tempfile.gettempdir()), Path("/dev/shm")}:  # run directories, staging directories
        assert [p.name for p in temp.glob(f"evorag-sandbox-*-{victim.pid}-*")] == []
