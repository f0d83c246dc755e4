"""Reading a folder of documents from disk, within limits, without leaving the folder.

What is read: files whose suffix ``evorag.tools.file_formats`` knows (an allowlist), outside hidden folders and
the usual build and dependency folders. Symbolic links are not followed out of the folder: a link whose target
is outside is skipped (and reported), one whose target is inside is read under its own path; linked
folders are not entered (their target, when inside, is walked anyway). Files are opened with O_NOFOLLOW, so a
link swapped in after the walk is not followed either.

Limits: files per folder, bytes per file, bytes in all. A walk that stops at a limit is incomplete, and an
incomplete walk never removes anything from the index (what it did not reach may still exist). A single file
over the size limit is skipped and reported (what was indexed of it goes, as for a deleted file).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evorag.tools.file_formats import is_supported

# Folders that hold tooling, builds or dependencies rather than documentation; and the copies a Sphinx build
# puts next to its HTML (page sources as .txt, highlighted module code), which would repeat every page.
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "site-packages", "venv", "_build", "build", "dist",
                             "_sources", "_modules", "_static", "_images", "_templates"})


@dataclass(frozen=True, slots=True)
class FolderLimits:
    max_files: int = 10_000
    max_file_bytes: int = 20 * 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024
    max_pdf_pages: int = 2_000


@dataclass(slots=True)
class FolderWalk:
    """What a walk found: files to read (relative POSIX paths), files it skipped with why, and whether it saw the
    whole folder (False when a limit stopped it)."""

    root: Path
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = True


def walk_folder(root: Path, limits: FolderLimits, *, wanted: Callable[[str], bool] = is_supported) -> FolderWalk:
    """The files under ``root`` (already resolved) whose relative POSIX path ``wanted`` accepts, in a stable
    order."""
    walk = FolderWalk(root)
    total = 0
    for relative, path in _candidates(root, wanted, walk):
        try:
            info = _target_stat(root, path)
        except _Skip as skip:
            walk.skipped.append((relative, str(skip)))
            continue
        if info.st_size > limits.max_file_bytes:
            walk.skipped.append((relative, f"larger than {limits.max_file_bytes} bytes"))
            continue
        if len(walk.files) >= limits.max_files or total + info.st_size > limits.max_total_bytes:
            walk.complete = False
            walk.skipped.append((relative, "past the folder's file or size limit"))
            break
        total += info.st_size
        walk.files.append(relative)
    return walk


def read_file(root: Path, relative: str, limits: FolderLimits) -> bytes:
    """The bytes of ``root/relative``, opened without following a link at its last step; raises OSError (or
    ValueError past the size limit) when it changed since the walk."""
    path = root / relative
    if path.is_symlink():
        path = _inside_target(root, path)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError("not a regular file")
        # O_NOFOLLOW guards the last step only: a folder on the way swapped for a link since the walk is caught
        # by where the opened file really is (Linux names it under /proc/self/fd).
        opened = Path(f"/proc/self/fd/{handle.fileno()}")
        if opened.exists() and not Path(os.readlink(opened)).is_relative_to(root):
            raise ValueError("moved outside the folder since it was listed")
        data = handle.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise ValueError(f"larger than {limits.max_file_bytes} bytes")
    return data


class _Skip(ValueError):
    """Why a file is not read (a ValueError: ``read_file``'s callers catch it as one)."""


def _candidates(root: Path, wanted: Callable[[str], bool], walk: FolderWalk) -> Iterator[tuple[str, Path]]:
    for directory, folders, files in os.walk(root, followlinks=False):
        here = Path(directory)
        # Pruned in place: os.walk does not enter what is removed. Sorted for a stable order across runs.
        folders[:] = sorted(name for name in folders
                            if not name.startswith(".") and name not in SKIPPED_FOLDERS
                            and not (here / name).is_symlink())
        for name in sorted(files):
            path = here / name
            relative = path.relative_to(root).as_posix()
            if not name.startswith(".") and wanted(relative):
                yield relative, path


def _target_stat(root: Path, path: Path) -> os.stat_result:
    if path.is_symlink():
        path = _inside_target(root, path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise _Skip("not a regular file")
    return info


def _inside_target(root: Path, link: Path) -> Path:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        raise _Skip("a broken or looping symbolic link") from None
    if not target.is_relative_to(root):
        raise _Skip("a symbolic link to outside the folder (not followed)")
    return target
