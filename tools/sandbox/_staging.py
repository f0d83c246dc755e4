"""What runs before bwrap: the cgroup join, the staging mount namespace and (as root) the drop to uid 65534.

Why staging: as root, bwrap must not run as root (it would map the sandbox's uid to host uid 0, and the
program could then write /proc/sys: issue 10). Started as uid 65534 instead, bwrap can reach only what that
uid may read, so neither the interpreter under a root-only home (/root is 0700) nor a root-only workdir.
And bwrap cannot make its /tmp noexec. So the launcher first enters a private mount namespace as root
(``unshare --mount --propagation private``) and there mounts, on empty directories of a staging directory
(one ``mount -a`` over a generated fstab, a single process):

- ``tmp`` and ``shm``: the sandbox's /tmp and /dev/shm, tmpfs with nosuid, nodev and noexec;
- ``work``: the workdir snapshot, bound read-only, nosuid, nodev, noexec;
- ``p0``, ``p1`` ...: the interpreter prefixes of ``interpreter_mounts()``, bound read-only, nosuid, nodev;
- ``env``: the run's tool environment (``RunRequest.python_env``) when it has one, bound read-only, nosuid,
  nodev (not noexec: binary wheels hold shared libraries, like the interpreter's prefixes);

then it drops to uid/gid 65534 for good (``setpriv``: no groups, no capabilities, empty bounding set,
no_new_privs, killed when evorag dies) and execs bwrap, which takes its sources from the staging
directory. These mounts belong to a namespace owned by the host's root: in bwrap's user namespace their
flags are locked, and nothing inside can lift them. They exist only in that namespace, which ends with the
run; on the host the staging directory holds only empty directories, removed afterwards.

For an ordinary user ("userns" mode) the same staging runs as root of an own user namespace
(``unshare --map-root-user``, which maps to the invoking user only), without the drop.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from evorag.tools.sandbox._base import RunRequest
from evorag.tools.sandbox._cgroup import CgroupJail
from evorag.tools.sandbox._limits import SANDBOX_UID, MiB, interpreter_mounts
from evorag.tools.sandbox._protocol import SandboxError
from evorag.tools.sandbox._snapshot import owned_temp_dir

# The launcher's own environment: bwrap clears it for the sandbox anyway, but nothing of ours goes near it.
LAUNCHER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# util-linux programs the root mode needs.
ROOT_UTILS = ("unshare", "setpriv", "mount")
# /dev/shm (POSIX shared memory, semaphores): Docker's default size; /tmp gets the memory limit.
SHM_BYTES = 64 * MiB
# Joins the run's cgroups (pid written into each cgroup.procs given), then becomes the rest of the command.
_JOIN_CGROUPS = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
)
# Runs as root of the private mount namespace: every mount of the fstab given, then the rest of the command.
_MOUNT_ALL = 'mount --all --fstab "$1" || exit 125; shift; exec "$@"'
# Drops from root to the sandbox's uid for good before bwrap runs.
_DROP_ROOT = [
    "setpriv",
    f"--reuid={SANDBOX_UID}",
    f"--regid={SANDBOX_UID}",
    "--clear-groups",
    "--no-new-privs",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--pdeathsig=KILL",  # set after the uid change (which clears it): bwrap dies with evorag
    "--",
]
# Userns mode: the same tie to evorag's life (unshare's credential change cleared any earlier setting).
_DIE_WITH_EVORAG = ["setpriv", "--pdeathsig=KILL", "--"]
_STAGE_PREFIX = "evorag-sandbox-stage-"


def make_stage(request: RunRequest) -> Path:
    """The staging directory of one run: empty mount points, reachable by every uid (uid 65534 must get
    through its parents), and the fstab of what to mount on them, written to ``request.host_dir``."""
    stage = owned_temp_dir(_STAGE_PREFIX, _world_searchable_temp(), remove=_remove_empty_dirs)
    stage.chmod(0o755)
    size = request.limits.memory_mb * MiB
    entries = [
        ("evorag-tmp", "tmp", "tmpfs", f"mode=1777,size={size},nosuid,nodev,noexec"),
        ("evorag-shm", "shm", "tmpfs", f"mode=1777,size={SHM_BYTES},nosuid,nodev,noexec"),
        (str(request.workdir), "work", "none", "bind,ro,nosuid,nodev,noexec"),
    ]
    for index, (host, _) in enumerate(interpreter_mounts()):
        entries.append((str(host), f"p{index}", "none", "bind,ro,nosuid,nodev"))
    if request.python_env is not None:
        entries.append((str(request.python_env), "env", "none", "bind,ro,nosuid,nodev"))
    lines = []
    for source, name, fstype, options in entries:
        (stage / name).mkdir(mode=0o755)
        lines.append(f"{_fstab_field(source)} {_fstab_field(str(stage / name))} {fstype} {options} 0 0\n")
    _fstab(request).write_text("".join(lines))
    return stage


def launcher_argv(mode: str, request: RunRequest, jail: CgroupJail | None) -> list[str]:
    """The command line before bwrap's: join ``jail``, then (modes root and userns) mount the stage."""
    argv: list[str] = []
    if jail:
        argv += ["/bin/sh", "-c", _JOIN_CGROUPS, "sh", str(len(jail.procs_files)), *jail.procs_files]
    if mode == "direct":
        return argv
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if mode == "userns":
        unshare.insert(1, "--map-root-user")  # root of a namespace that maps to the invoking user only
    argv += [*unshare, "--", "/bin/sh", "-c", _MOUNT_ALL, "sh", str(_fstab(request))]
    return argv + (_DROP_ROOT if mode == "root" else _DIE_WITH_EVORAG)


def remove_stage(stage: Path) -> None:
    """Remove the staging directory: only empty directories, never anything mounted on the host."""
    _remove_empty_dirs(stage)


def _fstab(request: RunRequest) -> Path:
    return request.host_dir / "stage.fstab"


def _fstab_field(value: str) -> str:
    """A path as fstab(5) spells it: whitespace and backslashes octal-escaped."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in value)


def _world_searchable_temp() -> str:
    # /dev/shm first: the staging directory holds only empty directories, and a tmpfs creates and removes
    # them a hundred times faster than a busy disk.
    for parent in ("/dev/shm", tempfile.gettempdir(), "/tmp", "/var/tmp"):
        path = Path(parent).resolve()
        try:
            if all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents]):
                return str(path)
        except OSError:
            continue
    raise SandboxError(
        "no world-searchable temporary directory for the sandbox's staging mounts", hint="make /tmp mode 1777"
    )


def _remove_empty_dirs(stage: Path) -> None:
    # rmdir only: were something still mounted on a mount point here, rmdir fails where a recursive
    # removal would delete the mounted files.
    try:
        for child in stage.iterdir():
            child.rmdir()
        stage.rmdir()
    except OSError:
        pass
