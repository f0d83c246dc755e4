"""Reading a candidate directory: files are files.

A candidate is a flat directory holding ``tool.py``, an optional ``requirements.txt`` and optional
``test_*.py`` files. What its files say ends up in gate messages, the audit log, the memory, approval diffs
and the plugins repository, so nothing is read unless it is exactly that. Refused, with a one-line error
naming the file and the fix, before any file is read:
- a directory that is itself a symbolic link, or that holds a symbolic link, a subdirectory, a FIFO, socket
  or device, or a file with more than one hard link (root can hard-link any host file into it);
- more than ``MAX_ENTRIES`` entries, or a file to read larger than ``MAX_FILE_BYTES``;
- a file to read that is not UTF-8.
Other regular files (notes, a README) are never read. Every check is made on the entry itself
(``lstat``), and each file is opened relative to the directory's descriptor with ``O_NOFOLLOW``: the opened
descriptor must be the very inode that was checked, so swapping a file for a link between the check and the
read (a race) is refused too.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from evorag.errors import NotFoundError, UserError

MAX_FILE_BYTES = 512_000
MAX_ENTRIES = 32
_READ = re.compile(r"^(?:tool\.py|requirements\.txt|test_[A-Za-z0-9_]+\.py)$")
_LAYOUT = "a candidate is a flat directory of tool.py, an optional requirements.txt and test_*.py files"
_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device"}


def read_candidate(path: Path) -> dict[str, str]:
    """The candidate's files to read (tool.py, requirements.txt, test_*.py) by name, as text."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise NotFoundError(f"no candidate directory at {path}", hint="pass a directory holding tool.py") from None
    except OSError as exc:
        raise UserError(f"cannot read the candidate directory {path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UserError(f"{path} is a symbolic link; pass the candidate directory itself (links are never followed)")
    if not stat.S_ISDIR(info.st_mode):
        raise NotFoundError(f"{path} is not a directory", hint="pass a directory holding tool.py")
    try:
        directory = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise UserError(f"cannot open the candidate directory {path}: {exc.strerror}") from None
    try:
        if _identity(os.fstat(directory)) != _identity(info):
            raise UserError(f"{path} changed while it was being read; try again")
        names = sorted(os.listdir(directory))
        if len(names) > MAX_ENTRIES:
            raise UserError(f"{path} holds {len(names)} entries, more than {MAX_ENTRIES}: {_LAYOUT}")
        wanted: dict[str, os.stat_result] = {}
        for name in names:
            entry = os.stat(name, dir_fd=directory, follow_symlinks=False)
            _check_entry(path / name, entry)
            if _READ.match(name):
                wanted[name] = entry
        if "tool.py" not in wanted:
            raise UserError(f"{path} has no tool.py", hint=_LAYOUT)
        return {name: _read(directory, path / name, entry) for name, entry in wanted.items()}
    finally:
        os.close(directory)


def _check_entry(file: Path, entry: os.stat_result) -> None:
    mode = entry.st_mode
    if stat.S_ISLNK(mode):
        raise UserError(f"{file} is a symbolic link: candidate files are never followed; copy the real file in its place")
    if stat.S_ISDIR(mode):
        raise UserError(f"{file} is a directory: {_LAYOUT}; remove it")
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "special file")
        raise UserError(f"{file} is a {kind}, not a regular file: remove it from the candidate")
    if entry.st_nlink > 1:
        raise UserError(f"{file} has {entry.st_nlink} hard links: a candidate file must be its own copy; "
                        "copy it (cp) instead of linking it")
    if _READ.match(file.name) and entry.st_size > MAX_FILE_BYTES:
        raise UserError(f"{file} is {entry.st_size} bytes, more than {MAX_FILE_BYTES}: a tool is one small module")


def _read(directory: int, file: Path, checked: os.stat_result) -> str:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO swapped in cannot hang us
    try:
        fd = os.open(file.name, flags, dir_fd=directory)
    except OSError as exc:
        raise UserError(f"{file} could not be opened as a regular file ({exc.strerror}): it changed while it was "
                        "being read or is a link; remove it and copy the real file in its place") from None
    try:
        opened = os.fstat(fd)
        if _identity(opened) != _identity(checked) or not stat.S_ISREG(opened.st_mode) or opened.st_nlink > 1:
            raise UserError(f"{file} changed while it was being read; try again with a directory nobody else writes")
        data = b""
        while len(data) <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"{file} is more than {MAX_FILE_BYTES} bytes: a tool is one small module")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise UserError(f"{file} is not UTF-8 text (invalid byte at offset {exc.start}): save it as UTF-8") from None


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino
