"""The default sandbox on Linux: bubblewrap (Debian package ``bubblewrap``, binary ``bwrap``).

What the sandboxed program sees:
- a new user, pid, network, ipc, uts and cgroup namespace; no network at all (only its own loopback);
  it runs as uid/gid 65534, with no capabilities (bounding set empty), no_new_privs, and cannot create
  further user namespaces;
- the seccomp filter of ``_seccomp`` (mount, namespaces, ptrace, keys, eBPF, perf, io_uring, modules,
  kexec, clocks ... refused; foreign syscall ABIs kill the process);
- a read-only root: ``/usr`` (and the /bin, /lib* links or directories); a minimal ``/etc`` (passwd,
  group, hosts, ld.so.cache, alternatives, localtime); the host interpreter's prefix (and venv) at the same
  path (or under /opt/evorag-python* when /work or /tmp would hide it); nothing else of the host: no home
  directory, no EVORAG_HOME, no host /tmp (/proc/self/mountinfo does show the host paths of these mounts);
- a snapshot of the workdir at ``/work``: read-only, and noexec except in the "direct" mode below;
- the run's tool environment, when it has one, read-only at ``/opt/evorag-env`` (first on PYTHONPATH);
- private tmpfs at ``/tmp`` (size = the memory limit) and ``/dev/shm`` (64 MiB): writable, nosuid, nodev,
  and noexec except in the "direct" mode; nothing else is writable (the rest of /dev is read-only);
- a fresh /proc (its own processes only; /proc/sys and /proc/sysrq-trigger read-only) and a minimal /dev;
- an environment made from scratch (``--clearenv``): never the host's variables;
- its own session (no terminal injection), killed with its parent.

Who the program is on the host (``mode``), never uid 0:
- root: evorag runs as root. A launcher stages /tmp, /dev/shm, the snapshot and the interpreter in a
  private mount namespace, joins the run's cgroup and drops to uid/gid 65534 before bwrap starts
  (``_staging``): bwrap maps the sandbox's uid to host uid 65534 and can do nothing root could.
- userns: evorag runs as an ordinary user. The same staging, as root of an own user namespace that maps
  to the invoking user only: the program is that user on the host.
- direct: the same user, when the host does not let ``unshare`` mount in a user namespace (e.g. an
  AppArmor policy that allows user namespaces to bwrap only): plain bwrap with its own /tmp and /dev/shm,
  which are then *not* noexec, and the workdir and prefixes bound directly. Everything else above holds.
  ``BubblewrapSandbox(modes=["userns"])`` refuses this fallback.

Limits: RLIMIT_AS/CPU/FSIZE (and NPROC without a cgroup) set by ``prlimit`` inside the namespaces; as root
a per-run cgroup caps the process count and the total memory (and reports which was hit).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from evorag.tools.sandbox._base import RunRequest, SandboxBase
from evorag.tools.sandbox._cgroup import CgroupJail, CgroupUnavailable, cgroup_problem
from evorag.tools.sandbox._limits import (
    ETC_GROUP,
    ETC_PASSWD,
    SANDBOX_UID,
    SHARED_ETC,
    MiB,
    decode_output,
    explain,
    interpreter_mounts,
    rlimit_argv,
    sandbox_env,
)
from evorag.tools.sandbox._protocol import (
    SCRATCH_DIR,
    TOOL_ENV_MOUNT,
    WORKDIR_MOUNT,
    Limits,
    SandboxError,
    SandboxResult,
)
from evorag.tools.sandbox._seccomp import bpf_program
from evorag.tools.sandbox._snapshot import run_directory
from evorag.tools.sandbox._staging import (
    LAUNCHER_ENV,
    ROOT_UTILS,
    SHM_BYTES,
    launcher_argv,
    make_stage,
    remove_stage,
)
from evorag.tools.sandbox._supervisor import Outcome, kill_process_group, supervise

from evorag.errors import ConfigError

# bwrap's own processes in the run's cgroup: its monitor (the launcher, exec'd into bwrap) and the
# namespace's init, besides the program's processes.
_LAUNCHER_PROCESSES = 3
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_HOSTS = "127.0.0.1 localhost\n::1 localhost\n"
_MODES = ("root", "userns", "direct")

_probe_cache: dict[tuple[str, int, tuple[str, ...] | None], tuple[str | None, str | None]] = {}


class BubblewrapSandbox(SandboxBase):
    """Sandbox backed by ``bwrap``. The first availability check runs a tiny probe sandbox (cached per
    process) that also picks the ``mode``."""

    name = "bubblewrap"
    install_hint = "install bubblewrap and util-linux (apt-get install bubblewrap util-linux)"

    def __init__(self, bwrap: str | None = None, *, modes: Sequence[str] | None = None) -> None:
        """``modes``: the modes to try, in order (default: root as root, else userns then direct); e.g.
        ``modes=["userns"]`` refuses the direct fallback and its executable /tmp."""
        self.bwrap = bwrap or shutil.which("bwrap") or ""
        unknown = set(modes or ()) - set(_MODES)
        if unknown:
            raise ConfigError(
                f"unknown bubblewrap mode(s): {', '.join(sorted(unknown))}", hint="use root, userns or direct"
            )
        self.modes = tuple(modes) if modes else None

    def __repr__(self) -> str:
        return f"BubblewrapSandbox({self.bwrap!r})"

    @property
    def mode(self) -> str | None:
        """How the program is started (root, userns or direct: see the module docstring); None when
        bubblewrap is unusable here."""
        return None if self.why_unavailable() else self._probe_result()[0]

    # Availability
    def _why_unavailable(self) -> str | None:
        if not self.bwrap:
            return "bwrap is not installed (Debian package bubblewrap)"
        if not os.path.exists(rlimit_argv(Limits(), with_nproc=False)[0]):
            return "prlimit (util-linux) is missing"
        return self._probe_result()[1]

    def _probe_result(self) -> tuple[str | None, str | None]:
        key = (self.bwrap, os.geteuid(), self.modes)
        if key not in _probe_cache:
            _probe_cache[key] = self._probe()
        return _probe_cache[key]

    def _probe(self) -> tuple[str | None, str | None]:
        """(mode, None) for the first mode whose probe run works, else (None, why)."""
        as_root = os.geteuid() == 0
        candidates = list(self.modes or (["root"] if as_root else ["userns", "direct"]))
        if as_root:
            if candidates != ["root"]:
                # In a user namespace made by root, the sandbox's uid would map to host root again.
                return None, "as root only the root mode is safe (modes asked: " + ", ".join(candidates) + ")"
            missing = [u for u in ROOT_UTILS if not shutil.which(u, path=LAUNCHER_ENV["PATH"])]
            if missing:
                return None, f"running as root needs util-linux's {', '.join(missing)}, missing here"
            problem = cgroup_problem()
            if problem:
                return None, f"running as root, only a cgroup can stop a fork bomb, but {problem}"
        elif "root" in candidates:
            candidates.remove("root")
            if not candidates:
                return None, "the root mode needs root"
        problems = []
        with tempfile.TemporaryDirectory(prefix="evorag-sandbox-probe-") as empty:
            for mode in candidates:
                try:
                    with run_directory(Path(empty)) as (host_dir, snapshot):
                        request = RunRequest(snapshot, host_dir, ("true",), Limits(), sandbox_env(None), None)
                        result = self._launch(request, mode)
                except (SandboxError, OSError) as exc:
                    problems.append(f"{mode}: {exc}")
                    continue
                if result.exit_code == 0:
                    return mode, None
                problems.append(f"{mode}: the probe exited with {result.exit_code}: {result.stderr.strip()}")
        return None, f"bwrap cannot create its sandbox here ({'; '.join(problems)})"

    # Running
    def _run(self, request: RunRequest) -> SandboxResult:
        mode = self.mode
        if mode is None:  # the base class checked availability: only a changed host gets here
            raise SandboxError("the bubblewrap sandbox is unavailable", hint=self.install_hint)
        return self._launch(request, mode)

    def _launch(self, request: RunRequest, mode: str) -> SandboxResult:
        if (mode == "root") != (os.geteuid() == 0):  # never a user-namespace mode as root: it maps to root
            raise SandboxError(f"bubblewrap mode {mode} does not match the effective uid {os.geteuid()}")
        limits = request.limits
        jail = self._jail(limits)
        stage: Path | None = None
        inherited: list[int] = []
        unread: list[int] = []
        try:
            stage = make_stage(request) if mode != "direct" else None
            # bwrap reports on this pipe that the program started and how it exited (see _result).
            status_read, status_write = os.pipe()
            inherited, unread = [status_write], [status_read]
            bwrap_argv, data_fds = self._bwrap_argv(
                request, mode, stage, status_write, with_nproc=jail is None
            )
            inherited += data_fds
            argv = launcher_argv(mode, request, jail) + bwrap_argv

            def kill(proc: subprocess.Popen) -> None:
                if jail:
                    jail.kill_all(spare=proc.pid)  # bwrap then reaps its sandbox and exits
                else:
                    kill_process_group(proc)  # --die-with-parent and the pid namespace take the rest

            unread = []  # from here on supervise() owns status_read
            try:
                outcome = supervise(
                    argv,
                    env=LAUNCHER_ENV,
                    cwd="/",  # bwrap, once unprivileged, may not be able to reach ours
                    stdin=request.stdin,
                    wall_seconds=limits.wall_seconds,
                    max_output_bytes=limits.max_output_bytes,
                    kill=kill,
                    breach=jail.breach if jail else None,
                    pass_fds=inherited,
                    read_fds=[status_read],
                    after_start=lambda: _close_all(inherited),
                )
            except OSError as exc:
                raise SandboxError(f"could not start bwrap: {exc}") from None
            oom = jail.oom_killed() if jail else False
        finally:
            _close_all(inherited)
            _close_all(unread)
            if jail:
                jail.close()
            if stage is not None:
                remove_stage(stage)
        return _result(outcome, outcome.extra.get(status_read, b""), limits, oom)

    def _jail(self, limits: Limits) -> CgroupJail | None:
        """A cgroup for the run: required as root, used when possible otherwise."""
        try:
            return CgroupJail.create(
                max_pids=limits.max_processes + _LAUNCHER_PROCESSES, memory_bytes=limits.memory_mb * MiB
            )
        except CgroupUnavailable as exc:
            if os.geteuid() == 0:
                raise SandboxError(f"cannot limit the sandbox's processes: {exc}") from None
            return None

    def _bwrap_argv(
        self, request: RunRequest, mode: str, stage: Path | None, status_fd: int, *, with_nproc: bool
    ) -> tuple[list[str], list[int]]:
        """The bwrap command line, and the pipe fds it reads /etc files and the seccomp filter from (to
        pass, then close)."""
        args = [
            self.bwrap,
            "--unshare-all",  # user, pid, net, ipc, uts, cgroup
            "--unshare-user",
            "--disable-userns",  # no nested user namespaces: they widen the kernel's attack surface
            "--cap-drop",
            "ALL",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",  # no TIOCSTI into a terminal of ours
            "--clearenv",
        ]
        for name, value in request.env.items():
            args += ["--setenv", name, value]
        args += ["--ro-bind", "/usr", "/usr"]
        for name in _TOP_LEVEL_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                args += ["--ro-bind", str(host), str(host)]
        data_fds = []
        files = (
            ("/etc/passwd", ETC_PASSWD.encode()),
            ("/etc/group", ETC_GROUP.encode()),
            ("/etc/hosts", _HOSTS.encode()),
        )
        for dest, content in files:
            data_fds.append(_pipe_with(content))
            args += ["--perms", "0644", "--ro-bind-data", str(data_fds[-1]), dest]
        for shared in SHARED_ETC:
            args += ["--ro-bind-try", shared, shared]
        size = str(request.limits.memory_mb * MiB)
        # bwrap covers /proc/sys only when it finds it writable; its files can still be: those of the
        # sandbox's own ipc and net namespaces belong to the sandbox's uid. Read-only as a whole (a
        # sysctl file shows the values of the namespaces of whoever reads it, so binding the host's
        # /proc/sys shows the sandbox its own).
        args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"]
        args += ["--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger", "--dev", "/dev"]
        if stage is not None:
            args += ["--bind", str(stage / "tmp"), SCRATCH_DIR]
            args += ["--bind", str(stage / "shm"), "/dev/shm"]
            args += ["--ro-bind", str(stage / "work"), WORKDIR_MOUNT]
        else:
            args += ["--size", size, "--tmpfs", SCRATCH_DIR]
            args += ["--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
            args += ["--ro-bind", str(request.workdir), WORKDIR_MOUNT]
        # bwrap's /dev is a tmpfs the sandbox's uid owns: read-only, or it would be a writable, executable
        # place (its device nodes, /dev/pts and /dev/shm are mounts of their own and stay usable).
        args += ["--remount-ro", "/dev"]
        # After /work and /tmp: a prefix that is also a parent of theirs must not hide them.
        for index, (prefix, inside) in enumerate(interpreter_mounts()):
            source = stage / f"p{index}" if stage is not None else prefix
            args += ["--ro-bind", str(source), str(inside)]
        if request.python_env is not None:  # the tool's dependencies, read-only (see _staging)
            source = stage / "env" if stage is not None else request.python_env
            args += ["--ro-bind", str(source), TOOL_ENV_MOUNT]
        args += ["--chdir", WORKDIR_MOUNT]
        # bwrap builds the root on a tmpfs: read-only too once everything is mounted on it.
        args += ["--remount-ro", "/"]
        args += ["--json-status-fd", str(status_fd)]
        data_fds.append(_pipe_with(bpf_program()))
        args += ["--seccomp", str(data_fds[-1])]
        # +2: bwrap's init and monitor count as the sandbox user's processes too.
        limited = dataclasses.replace(request.limits, max_processes=request.limits.max_processes + 2)
        return args + ["--", *rlimit_argv(limited, with_nproc=with_nproc), *request.argv], data_fds


def _pipe_with(content: bytes) -> int:
    """The read end of a pipe holding ``content`` (small: it must fit the pipe buffer)."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, content)
    finally:
        os.close(write_end)
    return read_end


def _result(outcome: Outcome, status: bytes, limits: Limits, oom: bool) -> SandboxResult:
    exit_code = outcome.exit_code
    exited = [report["exit-code"] for report in _json_lines(status) if "exit-code" in report]
    if exited:
        exit_code = int(exited[-1])
    elif outcome.stopped_for is None:
        # bwrap reports the program's exit status unless it failed before starting the program.
        detail = outcome.stderr.decode(errors="replace").strip().splitlines()
        raise SandboxError(f"bwrap failed to set up the sandbox: {detail[-1] if detail else exit_code}")
    reason = explain(
        exit_code,
        stopped_for=outcome.stopped_for,
        oom_killed=oom,
        cpu_used=outcome.cpu_seconds,
        limits=limits,
        stderr=outcome.stderr,
    )
    return SandboxResult(
        exit_code=exit_code,
        stdout=decode_output(outcome.stdout, outcome.stdout_cut, limits),
        stderr=decode_output(outcome.stderr, outcome.stderr_cut, limits),
        timed_out=outcome.stopped_for == "timeout",
        killed_reason=reason,
        duration_s=round(outcome.duration_s, 3),
    )


def _close_all(fds: list[int]) -> None:
    """Close and forget: emptying the list makes a second call harmless (a number closed twice could by then
    belong to another open file)."""
    while fds:
        try:
            os.close(fds.pop())
        except OSError:
            pass


def _json_lines(data: bytes) -> list[dict]:
    """bwrap's --json-status-fd writes one JSON object per line."""
    reports = []
    for line in data.decode(errors="replace").splitlines():
        try:
            reports.append(json.loads(line))
        except ValueError:
            pass
    return reports
