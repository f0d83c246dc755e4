"""The Docker sandbox, for hosts where bubblewrap cannot run but a Docker daemon is reachable.

Each run is ``docker create`` + ``docker start --attach`` of a throwaway container. What the program sees,
the same as with bubblewrap:
- host uid/gid 65534 (``--user``), never root; no capabilities (``--cap-drop ALL``), no_new_privs
  (``--security-opt no-new-privileges``), and the seccomp policy of ``_seccomp`` as a profile (allow by
  default, the same refused syscalls, only the native architecture);
- no network (``--network none``: its own loopback only); a private ipc namespace; hostname ``sandbox``;
- a read-only root filesystem (a skeleton image built locally, never pulled) with the host's ``/usr``
  and the interpreter's prefixes mounted read-only at the same paths (or under /opt/evorag-python* when
  /work or /tmp would hide them);
- the world-readable snapshot of the workdir at ``/work``, read-only (its files have no execute bit; a
  Docker bind mount cannot be made noexec, unlike bubblewrap's);
- the run's tool environment, when it has one, read-only at ``/opt/evorag-env`` (first on PYTHONPATH);
- a private tmpfs at ``/tmp``: nosuid, nodev, noexec, size = the memory limit; Docker's ``/dev/shm``
  (64 MiB, noexec); nothing else writable;
- Docker's /proc: /proc/sys, /proc/sysrq-trigger, /proc/irq and /proc/bus read-only, /proc/kcore and
  similar files masked; Docker's read-only /sys (unlike bubblewrap, which mounts none) and its own
  /etc/hosts, /etc/hostname and /etc/resolv.conf;
- an environment made from the scrubbed base only (``--env``), never the host's; output only to us
  (``--log-driver none``).
Limits: a memory cap with no swap, one CPU, ``--pids-limit``, and RLIMIT_AS/CPU/FSIZE via ``prlimit``.

The daemon must be local, since host paths are mounted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from evorag.tools.resilience import CircuitBreaker, CircuitOpenError, retry_call
from evorag.tools.sandbox._base import RunRequest, SandboxBase
from evorag.tools.sandbox._cgroup import read_counter
from evorag.tools.sandbox._docker_image import DEFAULT_IMAGE, build_image, host_lib_dirs
from evorag.tools.sandbox._limits import (
    SANDBOX_UID,
    SHARED_ETC,
    decode_output,
    explain,
    interpreter_mounts,
    rlimit_argv,
)
from evorag.tools.sandbox._protocol import (
    SCRATCH_DIR,
    TOOL_ENV_MOUNT,
    WORKDIR_MOUNT,
    SandboxError,
    SandboxResult,
)
from evorag.tools.sandbox._seccomp import docker_profile
from evorag.tools.sandbox._supervisor import Outcome, kill_process_group, supervise

_DAEMON_OK_FOR_S = 60.0
_daemon_checked: dict[tuple[str, str], float] = {}
# One breaker per daemon: after 3 runs in a row that could not reach it, runs fail at once (and "auto"
# picks another backend) for 30 s instead of each waiting out its own retries.
_breakers: dict[tuple[str, str], CircuitBreaker] = {}
_CREATE_ATTEMPTS = 3
# What the docker CLI prints when the daemon, not the request, is the problem: worth another try.
_DAEMON_DOWN = (
    "cannot connect to the docker daemon",
    "error during connect",
    "connection refused",
    "connection reset",
    "i/o timeout",
    "context deadline exceeded",
    "tls handshake timeout",
    "is the docker daemon running",
    "unexpected eof",
)
_images_built: set[tuple[str, str, str]] = set()
_START_HINT = "start the Docker daemon (dockerd > /tmp/dockerd.log 2>&1 &) and check that `docker info` works"
# Docker's init (tini) runs in the container's pid cgroup besides the program.
_INIT_PROCESSES = 1
# Which process created a container: lets a later process remove what a crashed one left behind.
_OWNER_LABEL = "evorag.sandbox.pid"


class _DaemonUnreachable(Exception):
    """The docker CLI could not talk to the daemon (as opposed to the daemon refusing the request)."""


def _daemon_down(stderr: str) -> bool:
    text = stderr.lower()
    return any(signature in text for signature in _DAEMON_DOWN)


class DockerSandbox(SandboxBase):
    """Sandbox backed by a local Docker daemon; builds its image on first use when missing."""

    name = "docker"
    install_hint = _START_HINT

    def __init__(self, image: str = DEFAULT_IMAGE, docker: str | None = None) -> None:
        self.image = image
        self.docker = docker or shutil.which("docker") or ""

    def __repr__(self) -> str:
        return f"DockerSandbox(image={self.image!r})"

    # Availability
    def _why_unavailable(self) -> str | None:
        if not self.docker:
            return "the docker CLI is not installed (Debian package docker.io)"
        key = self._daemon()
        breaker = self._breaker()
        if not breaker.allow():
            return f"the Docker daemon could not be reached by the last runs ({breaker.last_error}); retrying later"
        if time.monotonic() - _daemon_checked.get(key, -_DAEMON_OK_FOR_S) < _DAEMON_OK_FOR_S:
            return None
        try:
            info = subprocess.run(
                [self.docker, "info", "--format", "{{.ServerVersion}} {{json .SecurityOptions}}"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`docker info` failed: {exc}"
        if info.returncode != 0 or not info.stdout.strip():
            detail = (info.stderr.strip().splitlines() or ["no answer"])[-1]
            return f"no Docker daemon is reachable: {detail}"
        if "name=seccomp" not in info.stdout:
            return (
                "the Docker daemon has no seccomp support (docker info lists no name=seccomp security option)"
            )
        _daemon_checked[key] = time.monotonic()
        return None

    # Running
    def _run(self, request: RunRequest) -> SandboxResult:
        limits = request.limits
        self._ensure_image()
        outcome, state = self._run_container(request)
        started = state is not None and not state.get("StartedAt", "").startswith("0001-")
        if not started and outcome.stopped_for is None:
            detail = (state or {}).get("Error") or _last_line(outcome.stderr.decode(errors="replace"))
            raise SandboxError(f"docker could not start the sandbox container: {detail}", hint=_START_HINT)
        exit_code = int(state["ExitCode"]) if state and not state.get("Running") else outcome.exit_code
        reason = explain(
            exit_code,
            stopped_for=outcome.stopped_for,
            oom_killed=bool(state and state.get("OOMKilled")),
            cpu_used=None,
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

    def _run_container(self, request: RunRequest) -> tuple[Outcome, dict | None]:
        """Create, run (attached) and remove one container; return what ran and its final state."""
        name, created = self._create(request)
        limits, stdin = request.limits, request.stdin

        def kill(proc: subprocess.Popen) -> None:
            # The CLI first (a daemon blocked writing to it would not act on the kill), then the container
            # itself, which would otherwise run on without its CLI.
            kill_process_group(proc)
            self._docker(["kill", name], check=False)

        attach = ["start", "--attach", *(["--interactive"] if stdin is not None else []), name]
        try:
            outcome = supervise(
                [self.docker, *attach],
                env=os.environ,  # the CLI's own settings (DOCKER_HOST ...): none of them enters the container
                stdin=stdin,
                wall_seconds=limits.wall_seconds,
                max_output_bytes=limits.max_output_bytes,
                kill=kill,
                breach=_ContainerCgroups(created.stdout.strip()).breach,
            )
            return outcome, self._state(name)
        except OSError as exc:
            raise SandboxError(f"could not start the docker CLI: {exc}") from None
        finally:
            self._docker(["rm", "--force", name], check=False)

    def _create(self, request: RunRequest) -> tuple[str, subprocess.CompletedProcess]:
        """``docker create``, retried with backoff while the daemon is unreachable; returns (name, result).

        Each attempt uses a fresh name: an attempt whose answer was lost may still have created its
        container, which is removed before the next try.
        """
        names: list[str] = []
        # The docker CLI reads the profile from a file and sends its content with the request.
        profile = request.host_dir / "seccomp.json"
        profile.write_text(docker_profile())

        def attempt() -> subprocess.CompletedProcess:
            if names:
                self._docker(["rm", "--force", names[-1]], check=False)
            names.append(f"evorag-sandbox-{uuid.uuid4().hex[:16]}")
            try:
                done = self._docker(self._create_argv(names[-1], request, profile))
            except SandboxError as exc:  # the CLI timed out or could not be run
                raise _DaemonUnreachable(str(exc)) from None
            if done.returncode != 0 and _daemon_down(done.stderr):
                raise _DaemonUnreachable(_last_line(done.stderr))
            return done

        try:
            created = retry_call(
                attempt,
                retry_on=(_DaemonUnreachable,),
                attempts=_CREATE_ATTEMPTS,
                base_delay=0.5,
                max_delay=4.0,
                breaker=self._breaker(),
            )
        except CircuitOpenError as exc:
            raise SandboxError(f"the Docker sandbox is unavailable: {exc}", hint=_START_HINT) from None
        except _DaemonUnreachable as exc:
            raise SandboxError(
                f"the Docker daemon could not be reached ({_CREATE_ATTEMPTS} attempts): {exc}",
                hint=_START_HINT,
            ) from None
        if created.returncode != 0:
            raise SandboxError(
                f"docker could not create the sandbox container: {_last_line(created.stderr)}",
                hint=_START_HINT,
            )
        return names[-1], created

    def _daemon(self) -> tuple[str, str]:
        """Which daemon this sandbox talks to: the CLI (found under any path) and its DOCKER_HOST."""
        return os.path.realpath(self.docker), os.environ.get("DOCKER_HOST", "")

    def _breaker(self) -> CircuitBreaker:
        key = self._daemon()
        if key not in _breakers:
            _breakers[key] = CircuitBreaker(
                f"Docker daemon {key[1] or 'local'}", failure_threshold=3, reset_after=30.0
            )
        return _breakers[key]

    def _ensure_image(self) -> None:
        """Build the image on first use, and remove containers left by processes that died mid-run."""
        key = (*self._daemon(), self.image)
        if key not in _images_built:
            build_image(self.image, docker=self.docker)
            self._remove_orphans()
            _images_built.add(key)

    def _remove_orphans(self) -> None:
        listing = self._docker(
            [
                "ps",
                "--all",
                "--filter",
                "label=evorag.sandbox=1",
                "--format",
                f'{{{{.ID}}}} {{{{.Label "{_OWNER_LABEL}"}}}}',
            ],
            check=False,
        )
        for line in listing.stdout.splitlines():
            container, _, owner = line.partition(" ")
            if owner.isdigit() and not _alive(int(owner)):
                self._docker(["rm", "--force", container], check=False)

    def _create_argv(self, name: str, request: RunRequest, seccomp_profile: Path) -> list[str]:
        limits = request.limits
        memory = f"{limits.memory_mb}m"
        args = [
            "create",
            "--name",
            name,
            "--label",
            "evorag.sandbox=1",
            "--label",
            f"{_OWNER_LABEL}={os.getpid()}",
            "--network",
            "none",
            "--memory",
            memory,
            "--memory-swap",
            memory,
            "--cpus",
            "1",
            "--pids-limit",
            str(limits.max_processes + _INIT_PROCESSES),
            "--read-only",
            "--tmpfs",
            f"{SCRATCH_DIR}:rw,nosuid,nodev,noexec,size={memory},mode=1777",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            f"seccomp={seccomp_profile}",
            "--user",
            f"{SANDBOX_UID}:{SANDBOX_UID}",
            "--init",
            "--ipc",
            "private",
            "--hostname",
            "sandbox",
            "--log-driver",
            "none",  # output goes to us only, never into the daemon's log files
            "--workdir",
            WORKDIR_MOUNT,
        ]
        mounts = [(str(request.workdir), WORKDIR_MOUNT), ("/usr", "/usr")]
        mounts += [(d, d) for d in host_lib_dirs()]
        mounts += [(f, f) for f in SHARED_ETC if os.path.exists(f)]
        mounts += [(str(host), str(inside)) for host, inside in interpreter_mounts()]
        if request.python_env is not None:  # the tool's dependencies (first on PYTHONPATH), read-only
            mounts.append((str(request.python_env), TOOL_ENV_MOUNT))
        for source, target in mounts:
            if "," in source or "," in target:
                raise SandboxError(f"cannot mount {source} in Docker: the path contains a comma")
            args += ["--mount", f"type=bind,source={source},target={target},readonly"]
        for key, value in request.env.items():
            args += ["--env", f"{key}={value}"]
        if request.stdin is not None:
            args.append("--interactive")
        # RLIMIT_NPROC would count every host process of uid 65534, other containers included:
        # --pids-limit does that job here.
        return args + [self.image, *rlimit_argv(limits, with_nproc=False), *request.argv]

    def _docker(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
        """Run a docker CLI command; with ``check=False`` a failure is returned rather than raised."""
        try:
            return subprocess.run(
                [self.docker, *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            if not check:
                return subprocess.CompletedProcess(args, 1, "", str(exc))
            raise SandboxError(f"docker {args[0]} failed: {exc}", hint=_START_HINT) from None

    def _state(self, name: str) -> dict | None:
        done = self._docker(["inspect", "--format", "{{json .State}}", name])
        if done.returncode != 0:
            return None
        try:
            return json.loads(done.stdout)
        except ValueError:
            return None


class _ContainerCgroups:
    """Reads the container's cgroup counters when the daemon is local, so that a fork bomb or an OOM kill
    stops the run at once as with bubblewrap (otherwise the wall clock does). Best effort: where these
    files are not found, nothing is reported."""

    def __init__(self, container_id: str) -> None:
        roots = [
            "/sys/fs/cgroup/{c}/docker/{id}",
            "/sys/fs/cgroup/{c}/system.slice/docker-{id}.scope",
            "/sys/fs/cgroup/docker/{id}",
            "/sys/fs/cgroup/system.slice/docker-{id}.scope",
        ]
        self.pids_events = [Path(r.format(c="pids", id=container_id)) / "pids.events" for r in roots]
        self.oom_events = [
            Path(r.format(c="memory", id=container_id)) / "memory.oom_control" for r in roots[:2]
        ]
        self.oom_events += [Path(r.format(id=container_id)) / "memory.events" for r in roots[2:]]

    def breach(self) -> str | None:
        if any(read_counter(path, "max") for path in self.pids_events):
            return "processes"
        if any(read_counter(path, "oom_kill") for path in self.oom_events):
            return "memory"
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"
