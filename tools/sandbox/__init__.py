"""The sandbox: the only place where generated code (AI-written tools and their tests) ever runs.

It is the security boundary: it must hold even when the code got past every static check, and when
evorag runs as root. ``default_sandbox(settings)`` picks the backend (``sandbox_backend``: auto =
bubblewrap, else Docker) and never falls back to running unsandboxed: with no usable backend it raises
ConfigError.

What the program sees, with either backend (details in ``_bubblewrap`` and ``_docker``):
- identity: host uid/gid 65534 when evorag runs as root (the invoking user otherwise), never host root;
  no capabilities, no_new_privs, and the seccomp filter of ``_seccomp`` (mount, namespaces, ptrace,
  kernel keys, eBPF, perf, io_uring, modules, kexec, clocks ... refused; a foreign syscall ABI kills it);
- files: a read-only root holding ``/usr``, a minimal ``/etc`` and the host's interpreter with its packages
  (``python`` on PATH; a prefix that /work or /tmp would hide, such as a venv at /work/venv, appears under
  /opt/evorag-python*); a read-only snapshot of the workdir at ``/work`` (also the current directory; its
  files are not executable); ``/tmp`` the only writable place (private, emptied after the run, also
  ``$HOME`` and ``$TMPDIR``), noexec like ``/dev/shm`` and ``/work`` (except in bubblewrap's "direct"
  fallback for non-root hosts that forbid it); /proc/sys and /proc/sysrq-trigger read-only;
  nothing else of the host (no home directory, no EVORAG_HOME, no host /tmp);
- no network (its own loopback only); none of the host's environment variables; its own session.
``Limits`` bound wall-clock and CPU time, memory (per process and in total), processes, output and file
size; ``SandboxResult.killed_reason`` names the one that stopped a run.

Every backend derives from ``SandboxBase``, whose ``run()`` validates the request, checks availability
and makes the workdir snapshot before the backend's ``_run()`` starts anything.

    sandbox = default_sandbox(settings)
    result = sandbox.run(workdir, ["python", "-m", "pytest", "-q"], limits=Limits(wall_seconds=60))
"""

from evorag.tools.sandbox._base import RunRequest, SandboxBase
from evorag.tools.sandbox._bubblewrap import BubblewrapSandbox
from evorag.tools.sandbox._docker import DockerSandbox
from evorag.tools.sandbox._docker_image import DEFAULT_IMAGE, build_image
from evorag.tools.sandbox._protocol import (
    SCRATCH_DIR,
    TOOL_ENV_MOUNT,
    WORKDIR_MOUNT,
    KilledReason,
    Limits,
    Sandbox,
    SandboxError,
    SandboxResult,
)
from evorag.tools.sandbox._select import default_sandbox

__all__ = [
    "DEFAULT_IMAGE",
    "SCRATCH_DIR",
    "TOOL_ENV_MOUNT",
    "WORKDIR_MOUNT",
    "BubblewrapSandbox",
    "DockerSandbox",
    "KilledReason",
    "Limits",
    "RunRequest",
    "Sandbox",
    "SandboxBase",
    "SandboxError",
    "SandboxResult",
    "build_image",
    "default_sandbox",
]
