"""The one base class of every sandbox backend: the security preconditions live here, once.

``SandboxBase.run()`` validates the request (limits, workdir, argv, environment, stdin), checks that the
backend is usable (its own check plus a seccomp policy for this architecture), makes the world-readable
snapshot of the workdir, and only then calls the backend's ``_run(RunRequest)``. A backend cannot
override ``run()`` (``__init_subclass__`` refuses it), so a new backend gets every precondition by
construction and implements only how to start the program: ``_why_unavailable()`` and ``_run()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, final

from evorag.tools.sandbox._limits import check_argv, check_python_env, check_workdir, sandbox_env
from evorag.tools.sandbox._protocol import TOOL_ENV_MOUNT, Limits, SandboxError, SandboxResult
from evorag.tools.sandbox._seccomp import SeccompUnsupported, native_arch
from evorag.tools.sandbox._snapshot import run_directory

from evorag.errors import UserError


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One validated run, as a backend receives it.

    ``workdir`` is the snapshot to mount read-only at /work (world-readable, never the caller's
    directory); ``host_dir`` is a private host directory (0700) for the backend's own files, removed with
    the snapshot after the run; ``env`` is the complete environment of the program (never the host's);
    ``python_env`` a checked tool environment to mount read-only at ``TOOL_ENV_MOUNT`` (already first on
    ``env``'s PYTHONPATH), or None.
    """

    workdir: Path
    host_dir: Path
    argv: tuple[str, ...]
    limits: Limits
    env: Mapping[str, str]
    stdin: bytes | None
    python_env: Path | None = None


class SandboxBase(ABC):
    """Implements the ``Sandbox`` protocol on top of a backend's ``_why_unavailable`` and ``_run``."""

    name: ClassVar[str]
    # What to tell the operator when the backend cannot run.
    install_hint: ClassVar[str]
    # The only folder whose environments ``run(python_env=...)`` may mount (EVORAG_HOME/envs; set by
    # ``default_sandbox``). None: no environment may be mounted.
    environments_root: Path | None = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for method in ("run", "why_unavailable"):
            if method in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} must not override {method}(): it enforces the sandbox's preconditions; "
                    f"implement _{method}() instead"
                )

    @final
    def available(self) -> bool:
        return self.why_unavailable() is None

    @final
    def why_unavailable(self) -> str | None:
        """A one-line reason when the backend cannot run here, else None."""
        try:
            native_arch()
        except SeccompUnsupported as exc:
            return str(exc)
        return self._why_unavailable()

    @final
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
        """Run ``argv`` over a read-only snapshot of ``workdir`` (see the ``Sandbox`` protocol), with the tool
        environment ``python_env`` (``<environments_root>/<sha256>/site``) mounted read-only when given.

        Raises UserError for a bad workdir, argv, env, stdin or python_env, and SandboxError when the sandbox
        itself cannot run. A program that fails, crashes or breaks a limit is a normal result.
        """
        limits = Limits() if limits is None else limits
        if not isinstance(limits, Limits):
            raise UserError("sandbox limits must be a Limits", hint="e.g. Limits(wall_seconds=60)")
        checked_workdir = check_workdir(workdir)
        check_argv(argv)
        environment = sandbox_env(env)
        checked_env = None
        if python_env is not None:
            checked_env = check_python_env(python_env, self.environments_root)
            paths = [TOOL_ENV_MOUNT, *filter(None, environment.get("PYTHONPATH", "").split(":"))]
            environment["PYTHONPATH"] = ":".join(paths)
        if stdin is not None and not isinstance(stdin, bytes):
            raise UserError(
                "sandbox stdin must be bytes or None", hint="encode text first, e.g. text.encode()"
            )
        problem = self.why_unavailable()
        if problem:
            raise SandboxError(f"the {self.name} sandbox is unavailable: {problem}", hint=self.install_hint)
        with run_directory(checked_workdir) as (host_dir, snapshot):
            request = RunRequest(snapshot, host_dir, tuple(argv), limits, environment, stdin, checked_env)
            return self._run(request)

    @abstractmethod
    def _why_unavailable(self) -> str | None:
        """The backend's own availability check (binary present, namespaces or daemon usable)."""

    @abstractmethod
    def _run(self, request: RunRequest) -> SandboxResult:
        """Start ``request.argv`` in the sandbox and return what happened; raise SandboxError when the
        sandbox itself fails."""
