"""Pieces both backends share: the in-sandbox rlimit wrapper, the scrubbed environment, and naming the
limit that stopped a run."""

from __future__ import annotations

import os
import re
import signal
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from evorag.tools.sandbox._protocol import SCRATCH_DIR, WORKDIR_MOUNT, Limits

from evorag.errors import UserError

MiB = 1024 * 1024

# The sandboxed program is started through util-linux ``prlimit`` *inside* the sandbox, so the limits are
# set after the namespaces exist: RLIMIT_NPROC then counts only the sandbox's own processes (per user
# namespace) instead of every process of the host user. Where a per-run limit exists (bubblewrap's cgroup,
# always there as root; Docker's --pids-limit) that limit is used instead: it also tells that it was hit.
PRLIMIT = "/usr/bin/prlimit"

# The sandboxed program's uid and gid ("nobody" on Debian), and the only users its /etc/passwd knows.
SANDBOX_UID = 65534
ETC_PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{SCRATCH_DIR}:/usr/sbin/nologin\n"
)
ETC_GROUP = f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\n"

# Host files of /etc that hold no secrets and that programs expect, shared read-only with the sandbox:
# the library cache, the targets of /usr/bin/* -> /etc/alternatives/* links, the time zone.
SHARED_ETC = ("/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime")


def rlimit_argv(limits: Limits, *, with_nproc: bool) -> list[str]:
    """``prlimit`` options for one run, ending with ``--`` (the command follows)."""
    memory = limits.memory_mb * MiB
    argv = [
        PRLIMIT,
        f"--as={memory}:{memory}",
        # Soft limit -> SIGXCPU (named "cpu"); a second later the hard limit: SIGKILL, which cannot be caught.
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        f"--fsize={limits.max_file_mb * MiB}:{limits.max_file_mb * MiB}",
        "--core=0:0",
    ]
    if with_nproc:
        argv.append(f"--nproc={limits.max_processes}:{limits.max_processes}")
    return argv + ["--"]


def interpreter_prefixes() -> list[Path]:
    """The host interpreter's installation(s): base prefix, plus the venv when there is one."""
    seen: list[Path] = []
    for raw in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        # As Python sees itself (not resolved): that is the path it looks for its files under.
        path = Path(os.path.normpath(raw))
        if not any(path == p or p in path.parents for p in seen):
            seen = [p for p in seen if path not in p.parents] + [path]
    return seen


# Where a prefix goes inside when its own path would be hidden by /work or /tmp (a venv at /work/venv,
# say): Python finds a venv's files relative to where it is started from, so it works at another path.
RELOCATED_PREFIX = "/opt/evorag-python"


def interpreter_mounts() -> list[tuple[Path, Path]]:
    """(host path, path inside) of each interpreter prefix to mount read-only besides /usr (bound whole).

    Same path inside, except for prefixes at or under /work or /tmp, which those mounts would hide. Never
    ``/`` itself (a Python installed there has its files in /usr and /lib*, bound anyway).
    """
    hidden_under = (Path(WORKDIR_MOUNT), Path(SCRATCH_DIR))
    mounts = []
    for index, prefix in enumerate(interpreter_prefixes()):
        if prefix in (Path("/"), Path("/usr")) or Path("/usr") in prefix.parents:
            continue
        clash = any(prefix == top or top in prefix.parents or prefix in top.parents for top in hidden_under)
        mounts.append((prefix, Path(f"{RELOCATED_PREFIX}{index}") if clash else prefix))
    return mounts


def _inside(path: Path) -> Path:
    """Where a host path of the interpreter appears inside the sandbox."""
    for host, inside in interpreter_mounts():
        if path == host or host in path.parents:
            return inside / path.relative_to(host)
    return path


def interpreter_bin_dirs() -> list[str]:
    """Directories to put first on PATH so that ``python`` inside is this interpreter (venv first)."""
    dirs = [Path(os.path.normpath(sys.executable)).parent, Path(os.path.normpath(sys.base_prefix)) / "bin"]
    return list(dict.fromkeys(str(_inside(d)) for d in dirs))


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sandbox_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The complete environment inside: a fixed base plus what the caller passes, never the host's."""
    env = {
        "PATH": ":".join(interpreter_bin_dirs() + ["/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": SCRATCH_DIR,
        "TMPDIR": SCRATCH_DIR,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        # /work is read-only: pytest's cache would only produce warnings.
        "PYTEST_ADDOPTS": "-p no:cacheprovider",
    }
    for name, value in (extra or {}).items():
        if not _ENV_NAME.match(name) or not isinstance(value, str) or "\0" in value:
            raise UserError(
                f"invalid sandbox environment variable {name!r}", hint="use NAME=text without NUL bytes"
            )
        env[name] = value
    return env


def check_argv(argv: list[str]) -> None:
    if (
        not isinstance(argv, (list, tuple))
        or not argv
        or not all(isinstance(a, str) and "\0" not in a for a in argv)
    ):
        raise UserError(
            "the sandbox needs a non-empty command of strings", hint='e.g. ["python", "-m", "pytest", "-q"]'
        )


def check_workdir(workdir: Path) -> Path:
    """Resolve the workdir and refuse the ones that would expose the host (``/``, a home directory)."""
    path = Path(workdir).resolve()
    if not path.is_dir():
        raise UserError(
            f"sandbox workdir {workdir} is not a directory", hint="create it and put the files to run in it"
        )
    for exposed in (Path("/"), Path.home().resolve()):
        if path == exposed or path in exposed.parents:
            raise UserError(
                f"refusing to mount {path} in the sandbox: it contains {exposed}",
                hint="use a dedicated directory holding only the files to run",
            )
    return path


_ENV_KEY = re.compile(r"^[0-9a-f]{64}$")


def check_python_env(path: Path, root: Path | None) -> Path:
    """The tool environment to mount, checked: exactly ``<root>/<sha256>/site`` (the layout of
    ``evorag.tools.tool_envs``), reached through no symbolic link, a directory that every uid may read and
    no one but its owner may change. Anything else would hand the sandbox a host directory it must not see.
    """
    if root is None:
        raise UserError(
            "this sandbox has no tool environments root: it cannot mount a python_env",
            hint="use default_sandbox(settings), which allows EVORAG_HOME/envs",
        )
    if not isinstance(path, (str, Path)):
        raise UserError("sandbox python_env must be a path", hint="a folder of EVORAG_HOME/envs")
    given = Path(os.path.abspath(path))
    real = Path(os.path.realpath(given))
    allowed = Path(os.path.realpath(root))
    if real != given or real.parent.parent != allowed or not _ENV_KEY.match(real.parent.name) or real.name != "site":
        raise UserError(
            f"refusing to mount {path} in the sandbox: only {allowed}/<sha256>/site may be mounted as a python_env"
        )
    try:
        info = os.stat(real, follow_symlinks=False)
    except OSError as exc:
        raise UserError(f"the tool environment {real} is missing: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"the tool environment {real} is not a directory")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022 or mode & 0o005 != 0o005:
        raise UserError(
            f"the tool environment {real} has mode {mode:o}: it must be readable by every uid and writable by none "
            "but its owner",
            hint="run `evorag doctor` (it checks the tool environments)",
        )
    return real


def explain(
    exit_code: int,
    *,
    stopped_for: str | None,
    oom_killed: bool,
    cpu_used: float | None,
    limits: Limits,
    stderr: bytes,
) -> str | None:
    """Name the limit behind an exit, from what the supervisor did and what the kernel reported."""
    if stopped_for:
        return stopped_for
    if oom_killed:
        return "memory"
    if exit_code == 0:
        return None
    signum = exit_code - 128 if exit_code > 128 else None
    if signum == signal.SIGXCPU:
        return "cpu"
    if signum == signal.SIGXFSZ:
        return "file"
    if signum == signal.SIGKILL and cpu_used is not None and cpu_used >= limits.cpu_seconds:
        return "cpu"
    # Under RLIMIT_AS Python raises MemoryError rather than being killed. The program could print this line
    # itself, but that only mislabels its own failure.
    last_line = stderr.rstrip().rsplit(b"\n", 1)[-1].strip()
    if last_line.startswith(b"MemoryError"):
        return "memory"
    return None


def decode_output(data: bytes, cut: bool, limits: Limits) -> str:
    """Captured bytes as text, with a marker line when the stream was cut at the output limit."""
    text = data.decode("utf-8", errors="replace")
    return text + f"\n[output cut at {limits.max_output_bytes} bytes]\n" if cut else text
