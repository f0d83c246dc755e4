"""Choosing the sandbox backend from the settings. There is deliberately no "none" backend."""

from __future__ import annotations

from pathlib import Path

from evorag.tools.sandbox._bubblewrap import BubblewrapSandbox
from evorag.tools.sandbox._docker import DockerSandbox
from evorag.tools.sandbox._docker_image import DEFAULT_IMAGE
from evorag.tools.sandbox._protocol import Sandbox

from evorag.errors import ConfigError

_HINTS = {
    "auto": "install bubblewrap (apt-get install bubblewrap)",
    "bubblewrap": "install bubblewrap (apt-get install bubblewrap)",
    "docker": "start the Docker daemon (dockerd > /tmp/dockerd.log 2>&1 &) so that `docker info` works",
}


def default_sandbox(settings: object | None = None) -> Sandbox:
    """The sandbox named by ``settings.sandbox_backend`` (auto | bubblewrap | docker).

    auto: bubblewrap when usable, else Docker when a daemon is reachable. Raises ConfigError naming every
    backend's problem when none is usable: generated code is never run outside a sandbox.
    """
    backend = getattr(settings, "sandbox_backend", None) or "auto"
    image = getattr(settings, "sandbox_docker_image", None) or DEFAULT_IMAGE
    if backend not in _HINTS:
        raise ConfigError(
            f"unknown sandbox backend {backend!r}",
            hint="set EVORAG_SANDBOX_BACKEND to auto, bubblewrap or docker",
        )
    candidates: list[Sandbox] = []
    if backend in ("auto", "bubblewrap"):
        candidates.append(BubblewrapSandbox())
    if backend in ("auto", "docker"):
        candidates.append(DockerSandbox(image))
    problems = []
    home = getattr(settings, "home", None)
    for sandbox in candidates:
        problem = sandbox.why_unavailable()
        if problem is None:
            if home is not None:  # tool environments may be mounted from EVORAG_HOME/envs, nowhere else
                sandbox.environments_root = Path(home) / "envs"
            return sandbox
        problems.append(f"{sandbox.name}: {problem}")
    raise ConfigError(
        f"no usable sandbox for generated code ({'; '.join(problems)}); it is never run unsandboxed",
        hint=_HINTS[backend],
    )
