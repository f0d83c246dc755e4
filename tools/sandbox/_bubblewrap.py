"""The default sandbox on Linux: bubblewrap (Debian package ``bubblewrap``, binary ``bwrap``).

What the sandboxed program sees:
- a new user, pid, network, ipc, uts and cgroup namespace; no network at all (only its own loopback);
  it runs as uid/gid 65534 and cannot create further user namespaces;
- a read-only root: ``/usr`` (and the /bin, /lib* links or directories); a minimal ``/etc`` (passwd,
  group, hosts, ld.so.cache, alternatives, localtime); the host interpreter's prefix (and venv) at the same
  path; nothing else of the host: no home directory, no EVORAG_HOME, no host /tmp;
- the workdir read-only at ``/work``; a private tmpfs at ``/tmp`` (size = the memory limit);
- a fresh /proc (its own processes only) and a minimal /dev;
- an environment made from scratch (``--clearenv``): never the host's variables;
- its own session (no terminal injection), killed with its parent.
Limits: RLIMIT_AS/CPU/FSIZE/NPROC set by ``prlimit`` inside the namespaces; when running as root (which
RLIMIT_NPROC does not bind) a per-run cgroup caps the process count and the total memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tools.sandbox._cgroup import CgroupJail, CgroupUnavailable, cgroup_problem
from tools.sandbox._limits import (
    ETC_GROUP,
    ETC_PASSWD,
    SANDBOX_UID,
    SHARED_ETC,
    MiB,
    check_argv,
    check_workdir,
    decode_output,
    explain,
    interpreter_prefixes,
    rlimit_argv,
    sandbox_env,
)
from tools.sandbox._protocol import SCRATCH_DIR, WORKDIR_MOUNT, Limits, SandboxError, SandboxResult
from tools.sandbox._supervisor import Outcome, kill_process_group, supervise

# bwrap's own processes in the pid namespace (monitor, init) and the cgroup-joining shell.
_LAUNCHER_PROCESSES = 3
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_HOSTS = "127.0.0.1 localhost\n::1 localhost\n"
# The launcher's own environment: bwrap clears it for the sandbox anyway, but nothing of ours goes near it.
_LAUNCHER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Joins the run's cgroups (pid written into each cgroup.procs given) then becomes bwrap.
_JOIN_CGROUPS = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
)

_probe_cache: dict[str, str | None] = {}


class BubblewrapSandbox:
    """Sandbox backed by ``bwrap``. ``available()`` runs one tiny probe sandbox (cached per process)."""

    name = "bubblewrap"

    def __init__(self, bwrap: str | None = None) -> None:
        self.bwrap = bwrap or shutil.which("bwrap") or ""

    def __repr__(self) -> str:
        return f"BubblewrapSandbox({self.bwrap!r})"

    # Availability
    def available(self) -> bool:
        return self.why_unavailable() is None

    def why_unavailable(self) -> str | None:
        if not self.bwrap:
            return "bwrap is not installed (Debian package bubblewrap)"
        if not os.path.exists(rlimit_argv(Limits(), with_nproc=False)[0]):
            return "prlimit (util-linux) is missing"
        if self.bwrap not in _probe_cache:
            _probe_cache[self.bwrap] = self._probe()
        return _probe_cache[self.bwrap]

    def _probe(self) -> str | None:
        if os.geteuid() == 0:
            problem = cgroup_problem()
            if problem:
                return f"running as root, only a cgroup can stop a fork bomb, but {problem}"
        argv, fds = self._bwrap_argv(None, ["true"], Limits(), sandbox_env(None))
        try:
            done = subprocess.run(
                argv, env=_LAUNCHER_ENV, capture_output=True, timeout=30, pass_fds=fds, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap could not start: {exc}"
        finally:
            _close_all(fds)
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            return f"bwrap cannot create its sandbox here: {detail[-1] if detail else done.returncode}"
        return None

    # Running
    def run(
        self,
        workdir: Path,
        argv: list[str],
        *,
        limits: Limits | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> SandboxResult:
        limits = limits or Limits()
        workdir = check_workdir(workdir)
        check_argv(argv)
        environment = sandbox_env(env)
        problem = self.why_unavailable()
        if problem:
            raise SandboxError(
                f"the bubblewrap sandbox is unavailable: {problem}",
                hint="install bubblewrap (apt-get install bubblewrap)",
            )
        jail = self._jail(limits)
        inherited: list[int] = []
        unread: list[int] = []
        try:
            # bwrap reports on this pipe that the program started and how it exited (see _result).
            status_read, status_write = os.pipe()
            inherited, unread = [status_write], [status_read]
            bwrap_argv, data_fds = self._bwrap_argv(
                workdir, argv, limits, environment, status_fd=status_write
            )
            inherited += data_fds
            launcher = (
                ["/bin/sh", "-c", _JOIN_CGROUPS, "sh", str(len(jail.procs_files)), *jail.procs_files]
                if jail
                else []
            )

            def kill(proc: subprocess.Popen) -> None:
                if jail:
                    jail.kill_all(spare=proc.pid)  # bwrap then reaps its sandbox and exits
                else:
                    kill_process_group(proc)  # --die-with-parent and the pid namespace take the rest

            unread = []  # from here on supervise() owns status_read
            try:
                outcome = supervise(
                    launcher + bwrap_argv,
                    env=_LAUNCHER_ENV,
                    stdin=stdin,
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
        self,
        workdir: Path | None,
        argv: list[str],
        limits: Limits,
        environment: Mapping[str, str],
        *,
        status_fd: int | None = None,
    ) -> tuple[list[str], list[int]]:
        """The bwrap command line, and the pipe fds it reads /etc files from (to pass, then close)."""
        args = [
            self.bwrap,
            "--unshare-all",  # user, pid, net, ipc, uts, cgroup
            "--unshare-user",
            "--disable-userns",  # no nested user namespaces: they widen the kernel's attack surface
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
        for name, value in environment.items():
            args += ["--setenv", name, value]
        args += ["--ro-bind", "/usr", "/usr"]
        for name in _TOP_LEVEL_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                args += ["--ro-bind", str(host), str(host)]
        data_fds = []
        for dest, content in (("/etc/passwd", ETC_PASSWD), ("/etc/group", ETC_GROUP), ("/etc/hosts", _HOSTS)):
            read_end, write_end = os.pipe()
            os.write(write_end, content.encode())
            os.close(write_end)
            data_fds.append(read_end)
            args += ["--perms", "0644", "--ro-bind-data", str(read_end), dest]
        for shared in SHARED_ETC:
            args += ["--ro-bind-try", shared, shared]
        for prefix in interpreter_prefixes():
            if not (prefix == Path("/usr") or Path("/usr") in prefix.parents):
                args += ["--ro-bind", str(prefix), str(prefix)]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(limits.memory_mb * MiB), "--tmpfs", SCRATCH_DIR]
        if workdir is not None:
            args += ["--ro-bind", str(workdir), WORKDIR_MOUNT, "--chdir", WORKDIR_MOUNT]
        else:
            args += ["--chdir", SCRATCH_DIR]
        # bwrap builds the root on a tmpfs: read-only too once everything is mounted on it.
        args += ["--remount-ro", "/"]
        if status_fd is not None:
            args += ["--json-status-fd", str(status_fd)]
        # +2: bwrap's init and monitor run as the sandbox user too.
        limited = dataclasses.replace(limits, max_processes=limits.max_processes + 2)
        return args + ["--", *rlimit_argv(limited, with_nproc=True), *argv], data_fds


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
