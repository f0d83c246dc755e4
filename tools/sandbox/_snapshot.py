"""The copy of the caller's workdir that a sandbox mounts: never the workdir itself.

Why a copy: the sandboxed program runs as an unprivileged host uid (65534 as root, the invoking user
otherwise), which cannot read a root-only directory such as a ``TemporaryDirectory`` (0700); making the
original readable would mean changing permissions of a directory that is not ours. The copy is taken once,
before the program starts, so a caller changing its workdir meanwhile changes nothing inside.

What is copied: directories (0755) and regular files (0644: nothing in ``/work`` is executable), symlinks
as links (they resolve inside the sandbox, where the host's files are not). Anything else (a fifo, a
device, a socket) is refused, and so is a workdir beyond ``MAX_ENTRIES`` entries or ``MAX_BYTES``.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from evorag.errors import UserError

MAX_ENTRIES = 20_000
MAX_BYTES = 256 * 1024 * 1024
_CHUNK = 1 << 20
# A run's host directories are named after the evorag process that made them; those of a process that
# died without cleaning up (killed mid-run) are removed by the next process, once they are this old, so
# that a live evorag in another pid namespace sharing /tmp never loses its own.
LEFTOVER_AGE_S = 600
_swept: set[tuple[str, str]] = set()


@contextmanager
def run_directory(workdir: Path) -> Iterator[tuple[Path, Path]]:
    """A private host directory for one run (0700, removed afterwards) and the snapshot inside it.

    Yields ``(host_dir, snapshot)``; ``snapshot`` is ``host_dir / "work"``, readable by every uid.
    Raises UserError when the workdir holds something that cannot be copied.
    """
    host_dir = owned_temp_dir("evorag-sandbox-run-")
    try:
        snapshot = host_dir / "work"
        copy_readable(workdir, snapshot)
        yield host_dir, snapshot
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


def owned_temp_dir(
    prefix: str, parent: str | None = None, *, remove: Callable[[Path], None] | None = None
) -> Path:
    """A new private directory ``<prefix><pid>-<random>`` in ``parent`` (default: the temp directory),
    after removing (with ``remove``, default a recursive removal), once per process, the leftovers of dead
    processes with the same prefix."""
    parent = parent or tempfile.gettempdir()
    if (prefix, parent) not in _swept:
        _swept.add((prefix, parent))
        _remove_leftovers(prefix, Path(parent), remove or _remove_tree)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _remove_leftovers(prefix: str, parent: Path, remove: Callable[[Path], None]) -> None:
    now = time.time()
    for entry in parent.glob(prefix + "*"):
        try:
            owner = int(entry.name[len(prefix) :].split("-")[0])
            if now - entry.lstat().st_mtime < LEFTOVER_AGE_S:
                continue
            os.kill(owner, 0)
        except ProcessLookupError:
            remove(entry)
        except (ValueError, OSError):
            pass


def copy_readable(source: Path, target: Path) -> None:
    """Copy the tree at ``source`` to the new directory ``target`` with world-readable permissions."""
    budget = _Budget(source)
    _make_dir(target)
    pending = [(source, target)]
    while pending:
        src_dir, dst_dir = pending.pop()
        try:
            entries = sorted(os.scandir(src_dir), key=lambda e: e.name)
        except OSError as exc:
            raise _unreadable(source, src_dir, exc) from None
        for entry in entries:
            budget.add_entry()
            src, dst = Path(entry.path), dst_dir / entry.name
            if entry.is_symlink():
                os.symlink(os.readlink(src), dst)
            elif entry.is_dir(follow_symlinks=False):
                _make_dir(dst)
                pending.append((src, dst))
            elif entry.is_file(follow_symlinks=False):
                _copy_file(source, src, dst, budget)
            else:
                raise UserError(
                    f"sandbox workdir {source} holds a special file: {src.relative_to(source)}",
                    hint="put only regular files, directories and symlinks in it",
                )


class _Budget:
    """Counts entries and bytes copied; raises UserError past the caps."""

    def __init__(self, root: Path) -> None:
        self.root, self.entries, self.bytes = root, 0, 0

    def add_entry(self) -> None:
        self.entries += 1
        self._check()

    def add_bytes(self, size: int) -> None:
        self.bytes += size
        self._check()

    def _check(self) -> None:
        if self.entries > MAX_ENTRIES or self.bytes > MAX_BYTES:
            raise UserError(
                f"sandbox workdir {self.root} is too large (more than {MAX_ENTRIES} entries or "
                f"{MAX_BYTES // (1024 * 1024)} MiB)",
                hint="give the sandbox a directory holding only the files to run",
            )


def _make_dir(path: Path) -> None:
    path.mkdir()
    path.chmod(0o755)


def _copy_file(root: Path, src: Path, dst: Path, budget: _Budget) -> None:
    # O_NOFOLLOW and O_NONBLOCK: an entry swapped for a link or a fifo since scandir is not followed or
    # waited on; fstat then checks that what was opened is still a regular file.
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _unreadable(root, src, exc) from None
    with os.fdopen(fd, "rb") as reader:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"sandbox workdir {root} changed while it was copied: {src.relative_to(root)}")
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(out, "wb") as writer:
            os.fchmod(out, 0o644)
            while chunk := reader.read(_CHUNK):
                budget.add_bytes(len(chunk))
                writer.write(chunk)


def _unreadable(root: Path, path: Path | str, exc: OSError) -> UserError:
    return UserError(
        f"cannot copy sandbox workdir {root}: {exc.strerror or exc} ({path})",
        hint="make the workdir readable by the user running evorag",
    )
