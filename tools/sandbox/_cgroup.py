"""A throwaway cgroup per sandbox run: caps the number of processes and the memory of everything inside
together, tells which of the two was hit, and kills the lot.

Why: RLIMIT_NPROC is counted per uid, and as root every sandbox runs as the same uid 65534 (with bwrap's
own processes besides), so a pids cgroup is what caps one run's processes and says that this was the
limit hit; and RLIMIT_AS is per process, so only a memory cgroup bounds the sum of many processes (and
the run's tmpfs pages, charged to it too). Works with cgroup v1 (a hierarchy per controller) and v2 (one hierarchy), each
run's group created under the caller's own cgroup so that its accounting stays with the caller.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_NAME_PREFIX = "evorag-sandbox-"
_CONTROLLERS = ("pids", "memory")
_counter = itertools.count()
_swept = False


class CgroupUnavailable(Exception):
    """No writable pids+memory cgroup here; the message says why."""


@dataclass(slots=True)
class _Group:
    version: int  # 1 or 2
    path: Path
    controllers: tuple[str, ...]


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount root, mount point, super options) of every cgroup mount."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((tail[0], fields[3], fields[4].replace("\\040", " "), set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """Our cgroup path per v1 controller, and under key '' the v2 path."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _under(mount_root: str, mount_point: str, path: str) -> Path | None:
    if mount_root == "/":
        return Path(mount_point) / path.lstrip("/")
    if path == mount_root or path.startswith(mount_root.rstrip("/") + "/"):
        return Path(mount_point) / path[len(mount_root) :].lstrip("/")
    return None


def _parents() -> list[_Group]:
    """Where to create the run's groups: for each controller, our own cgroup in the hierarchy holding it."""
    mounts, own = _mounts(), _own_paths()
    groups: dict[Path, _Group] = {}
    missing = []
    for controller in _CONTROLLERS:
        v1 = [m for m in mounts if m[0] == "cgroup" and controller in m[3]]
        if v1 and controller in own:
            parent = _under(v1[0][1], v1[0][2], own[controller])
            if parent is not None:
                groups.setdefault(parent, _Group(1, parent, ()))
                groups[parent].controllers += (controller,)
                continue
        v2 = [m for m in mounts if m[0] == "cgroup2"]
        if v2 and "" in own:
            parent = _under(v2[0][1], v2[0][2], own[""])
            enabled = (parent / "cgroup.subtree_control").read_text().split() if parent else []
            if parent is not None and controller in enabled:
                groups.setdefault(parent, _Group(2, parent, ()))
                groups[parent].controllers += (controller,)
                continue
        missing.append(controller)
    if missing:
        raise CgroupUnavailable(
            f"no writable cgroup with the {'+'.join(missing)} controller for this process "
            "(cgroup v2 needs it enabled in the parent's cgroup.subtree_control)"
        )
    for group in groups.values():
        if not os.access(group.path, os.W_OK):
            raise CgroupUnavailable(f"cgroup {group.path} is not writable")
    return list(groups.values())


def _sweep(parents: list[_Group]) -> None:
    """Kill and remove the groups of runs whose evorag process died before cleaning up (killed during a
    run, say): whatever is left in them is an orphaned sandbox (bwrap's child can be left waiting forever
    for a monitor that died while setting it up)."""
    global _swept
    if _swept:
        return
    _swept = True
    for parent in parents:
        for child in parent.path.glob(_NAME_PREFIX + "*"):
            try:
                owner = int(child.name[len(_NAME_PREFIX) :].split("-")[0])
                os.kill(owner, 0)
            except ProcessLookupError:
                CgroupJail([_Group(parent.version, child, parent.controllers)]).close()
            except (ValueError, PermissionError):
                pass


def read_counter(path: Path, key: str) -> int:
    """The number after ``key`` in a cgroup events file (0 when absent or unreadable)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


class CgroupJail:
    """One run's cgroup(s). Create with ``CgroupJail.create``; always ``close()`` (kills and removes)."""

    def __init__(self, groups: list[_Group]) -> None:
        self.groups = groups

    @classmethod
    def create(cls, *, max_pids: int, memory_bytes: int) -> CgroupJail:
        """Raises CgroupUnavailable when the groups cannot be created or limited."""
        try:
            parents = _parents()
        except OSError as exc:
            raise CgroupUnavailable(f"cannot read cgroups: {exc}") from None
        _sweep(parents)
        name = f"{_NAME_PREFIX}{os.getpid()}-{next(_counter)}-{secrets.token_hex(3)}"
        jail = cls([])
        try:
            for parent in parents:
                path = parent.path / name
                path.mkdir()
                jail.groups.append(_Group(parent.version, path, parent.controllers))
                jail._limit(jail.groups[-1], max_pids, memory_bytes)
        except OSError as exc:
            jail.close()
            raise CgroupUnavailable(f"cannot create a limited cgroup under {parent.path}: {exc}") from None
        return jail

    @staticmethod
    def _limit(group: _Group, max_pids: int, memory_bytes: int) -> None:
        def write(name: str, value: object, *, optional: bool = False) -> None:
            target = group.path / name
            if optional and not target.exists():
                return
            target.write_text(f"{value}\n")

        if "pids" in group.controllers:
            write("pids.max", max_pids)
        if "memory" in group.controllers:
            if group.version == 1:
                write("memory.limit_in_bytes", memory_bytes)
                # No swapping around the limit (the file exists only with swap accounting).
                write("memory.memsw.limit_in_bytes", memory_bytes, optional=True)
            else:
                write("memory.max", memory_bytes)
                write("memory.swap.max", 0, optional=True)

    @property
    def procs_files(self) -> list[str]:
        """Files a process writes its pid into to enter the jail (all of them)."""
        return [str(group.path / "cgroup.procs") for group in self.groups]

    def breach(self) -> str | None:
        """'processes' once a fork was refused, 'memory' once the OOM killer struck, else None."""
        for group in self.groups:
            if "pids" in group.controllers and read_counter(group.path / "pids.events", "max"):
                return "processes"
            if "memory" in group.controllers and self._oom_kills(group):
                return "memory"
        return None

    def oom_killed(self) -> bool:
        return any("memory" in g.controllers and self._oom_kills(g) for g in self.groups)

    @staticmethod
    def _oom_kills(group: _Group) -> int:
        events = "memory.oom_control" if group.version == 1 else "memory.events"
        return read_counter(group.path / events, "oom_kill")

    def kill_all(self, *, spare: int | None = None) -> None:
        """SIGKILL every process in the jail but ``spare``, repeating while forks race the kills.

        Sparing the launcher (bwrap's monitor) lets it reap its sandbox itself: killed first, it would leave
        orphans whose exit only the host's init reaps, keeping the cgroup busy."""
        for group in self.groups:
            kill_file = group.path / "cgroup.kill"
            if group.version == 2 and kill_file.exists():
                try:
                    kill_file.write_text("1\n")
                except OSError:
                    pass
        for _ in range(100):
            pids = self._pids() - {spare}
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)

    def _pids(self) -> set[int]:
        pids: set[int] = set()
        for group in self.groups:
            try:
                pids.update(int(p) for p in (group.path / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return pids

    def close(self) -> None:
        """Kill what is left and remove the groups (waiting briefly for dying processes to leave)."""
        self.kill_all()
        deadline = time.monotonic() + 2.0
        for group in self.groups:
            while True:
                try:
                    group.path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        break  # left for the sweep of a later process
                    self.kill_all()
                    time.sleep(0.01)
        self.groups = []


def cgroup_problem() -> str | None:
    """Why a jail cannot be made here, or None when it can (creates and removes a test group)."""
    try:
        CgroupJail.create(max_pids=16, memory_bytes=64 * 1024 * 1024).close()
    except CgroupUnavailable as exc:
        return str(exc)
    return None
