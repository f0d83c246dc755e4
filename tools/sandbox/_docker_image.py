"""Builds the Docker sandbox's image locally, without pulling anything (no registry is reachable).

The image is a skeleton root filesystem (empty mount points, the /bin and /lib links of a merged-/usr
system, a minimal /etc) made with ``docker import``. At run time the host's ``/usr`` and the Python
interpreter's prefix are mounted into it read-only, exactly as the bubblewrap sandbox does, so both backends
run the same interpreter with the same packages. A few kilobytes: building takes well under a second.

Run ``python -m evorag.tools.sandbox._docker_image [TAG]`` (what CI does) or call ``build_image(tag)``.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile

from evorag.tools.sandbox._limits import ETC_GROUP, ETC_PASSWD, SANDBOX_UID
from evorag.tools.sandbox._protocol import SandboxError

DEFAULT_IMAGE = "evorag-sandbox:1"
_LABEL = "evorag.sandbox.layout"
# /sbin stays a real directory: Docker mounts its init (docker-init) at /sbin/docker-init, which it could not
# do through a link into the read-only /usr.
_LINKS = ("bin", "lib", "lib32", "lib64", "libx32")
_DIRS = {
    "usr": 0o755,
    "sbin": 0o755,
    "tmp": 0o1777,
    "work": 0o755,
    "proc": 0o555,
    "dev": 0o755,
    "sys": 0o555,
    "etc": 0o755,
    "root": 0o755,
}
_FILES = {"etc/passwd": ETC_PASSWD, "etc/group": ETC_GROUP}


def host_links() -> dict[str, str]:
    """Top-level links of the host (merged /usr: /bin -> usr/bin ...), reproduced in the image."""
    return {name: os.readlink(f"/{name}") for name in _LINKS if os.path.islink(f"/{name}")}


def host_lib_dirs() -> list[str]:
    """Top-level library/binary directories that are real directories on the host: bound at run time."""
    return [f"/{name}" for name in _LINKS if os.path.isdir(f"/{name}") and not os.path.islink(f"/{name}")]


def _layout() -> tuple[bytes, str]:
    """The root filesystem tarball and a hash of what went into it (the image's version)."""
    buffer = io.BytesIO()
    links = host_links()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode in sorted(_DIRS.items()):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for name in host_lib_dirs():
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, target in sorted(links.items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for name, text in sorted(_FILES.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()[:16]


def build_image(tag: str = DEFAULT_IMAGE, *, docker: str = "docker") -> str:
    """Create the image ``tag`` unless an identical one exists; return the tag.

    Idempotent: the image carries a label with the hash of its layout, and is rebuilt only when that
    changes. Raises SandboxError when the Docker daemon is unreachable or the import fails.
    """
    data, digest = _layout()
    try:
        current = subprocess.run(
            [docker, "image", "inspect", "--format", f'{{{{index .Config.Labels "{_LABEL}"}}}}', tag],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if current.returncode == 0 and current.stdout.strip() == digest:
            return tag
        built = subprocess.run(
            [
                docker,
                "import",
                "--change",
                f"LABEL {_LABEL}={digest}",
                "--change",
                "WORKDIR /work",
                "--change",
                f"USER {SANDBOX_UID}:{SANDBOX_UID}",
                "-",
                tag,
            ],
            input=data,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(
            f"could not build the sandbox image {tag}: {exc}", hint="is the docker CLI installed?"
        ) from None
    if built.returncode != 0:
        detail = built.stderr.decode(errors="replace").strip()
        raise SandboxError(
            f"could not build the sandbox image {tag}: {detail}", hint="is dockerd running? (docker info)"
        )
    return tag


if __name__ == "__main__":
    print(build_image(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_IMAGE))
