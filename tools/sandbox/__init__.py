"""The sandbox: the only place where generated code (AI-written tools and their tests) ever runs.

``default_sandbox(settings)`` picks the backend (``sandbox_backend``: auto = bubblewrap, else Docker) and
never falls back to running unsandboxed: with no usable backend it raises ConfigError.

Inside every backend: the workdir is ``/work``, read-only and the current directory; ``/tmp`` is the only
writable place (private, emptied after the run, also ``$HOME`` and ``$TMPDIR``); ``python`` is the host's
interpreter with its packages (pytest included), read-only; no network; none of the host's files beyond
/usr and the interpreter; none of its environment variables. ``Limits`` bound wall-clock and CPU time,
memory (per process and in total), processes, output and file size; ``SandboxResult.killed_reason`` names
the one that stopped a run.

    sandbox = default_sandbox(settings)
    result = sandbox.run(workdir, ["python", "-m", "pytest", "-q"], limits=Limits(wall_seconds=60))
"""

from tools.sandbox._bubblewrap import BubblewrapSandbox
from tools.sandbox._docker import DockerSandbox
from tools.sandbox._docker_image import DEFAULT_IMAGE, build_image
from tools.sandbox._protocol import (
    SCRATCH_DIR,
    WORKDIR_MOUNT,
    KilledReason,
    Limits,
    Sandbox,
    SandboxError,
    SandboxResult,
)
from tools.sandbox._select import default_sandbox

__all__ = [
    "DEFAULT_IMAGE",
    "SCRATCH_DIR",
    "WORKDIR_MOUNT",
    "BubblewrapSandbox",
    "DockerSandbox",
    "KilledReason",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxResult",
    "build_image",
    "default_sandbox",
]
