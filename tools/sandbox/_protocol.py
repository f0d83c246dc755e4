"""What every sandbox backend promises: the limits it enforces, the result it returns, the calls it takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from evorag.errors import ConfigError, ExternalError

# Why a run was stopped or died:
#   timeout    the wall-clock limit passed (``timed_out`` is True too)
#   cpu        the CPU-time limit passed (SIGXCPU, or SIGKILL at the hard limit)
#   memory     the memory limit was hit (the kernel's OOM killer, or the program's own MemoryError)
#   processes  it tried to run more than ``max_processes`` processes (a fork bomb)
#   output     it printed more than ``max_output_bytes`` on stdout or stderr
#   file       it wrote a file larger than ``max_file_mb`` and did not handle the error
KilledReason = Literal["timeout", "cpu", "memory", "processes", "output", "file"]

# Where the workdir appears inside every sandbox, read-only. The only writable place is /tmp (a private
# scratch directory, also $HOME and $TMPDIR, noexec), which disappears with the run.
WORKDIR_MOUNT = "/work"
SCRATCH_DIR = "/tmp"
# Where a tool's dependency environment (``run(python_env=...)``, a folder of EVORAG_HOME/envs) appears,
# read-only, and goes first on PYTHONPATH.
TOOL_ENV_MOUNT = "/opt/evorag-env"


class SandboxError(ExternalError):
    """The sandbox itself failed (could not start, daemon went away): not the sandboxed program's fault."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one run. Raises ConfigError on a value that could not be enforced sensibly."""

    wall_seconds: float = 30.0
    cpu_seconds: int = 20
    memory_mb: int = 512
    max_processes: int = 64
    max_output_bytes: int = 1_000_000
    max_file_mb: int = 50

    def __post_init__(self) -> None:
        minimum = {
            "wall_seconds": 0.1,
            "cpu_seconds": 1,
            "memory_mb": 64,
            "max_processes": 2,
            "max_output_bytes": 1024,
            "max_file_mb": 1,
        }
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum[field.name]:
                raise ConfigError(
                    f"invalid sandbox limit {field.name}={value!r}",
                    hint=f"use a number >= {minimum[field.name]}",
                )


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What a run produced.

    ``exit_code`` follows the shell: a program killed by signal N reports 128+N. ``stdout``/``stderr`` are
    decoded as UTF-8 (invalid bytes replaced) and hold at most ``max_output_bytes`` each, plus a marker line
    when cut. ``killed_reason`` says which limit stopped the program (see ``KilledReason``), else None.
    """

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_reason is None


@runtime_checkable
class Sandbox(Protocol):
    """Runs a command over a read-only copy of ``workdir`` as an unprivileged host uid, with no network, no
    host secrets, a seccomp filter and hard limits (implementations derive from ``SandboxBase``).

    Inside, the workdir is ``/work`` (read-only, also the current directory), ``/tmp`` is a private writable
    scratch directory (also ``$HOME`` and ``$TMPDIR``; noexec unless the backend documents otherwise), and
    ``python`` on PATH is the host's interpreter with its installed packages (pytest included), read-only.
    """

    name: str

    def available(self) -> bool:
        """Whether this backend can run here (binary present, namespaces/daemon usable)."""
        ...

    def why_unavailable(self) -> str | None:
        """A one-line reason when ``available()`` is False, else None."""
        ...

    def run(
        self,
        workdir: Path,
        argv: list[str],
        *,
        limits: Limits | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        python_env: Path | None = None,
    ) -> SandboxResult:
        """Run ``argv`` inside the sandbox and return what happened. ``python_env``: a tool environment
        (a ``site`` folder under the sandbox's ``environments_root``) mounted read-only at ``TOOL_ENV_MOUNT``
        and put first on PYTHONPATH.

        A program that fails, crashes or breaks a limit is a normal result, never an exception. Raises
        UserError for a bad workdir, argv or env, and SandboxError when the sandbox itself cannot run.
        """
        ...
