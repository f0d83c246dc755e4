"""Unpacking an archive nobody vouches for: limits first, then only what an allowlist names.

A .tar.gz is read as a stream, one member at a time, and each member is judged by its header before a
byte of it is written: at most ``max_members`` members; each at most ``max_member_bytes`` and all of them
at most ``max_bytes`` together (and never more than the free disk space, less a reserve); only
directories and regular files (no links, devices, FIFOs or sparse files); relative paths of plain
components (no ``..``, no absolute paths, no backslashes or other odd characters), not too long or deep; no
member twice; and only paths the caller's ``allowed`` accepts. Files are created fresh (``O_EXCL``,
``O_NOFOLLOW``) with mode 0600, never with the archive's owner or mode. A refusal is one ``UserError``
naming the member and the limit; what was written so far is the caller's staging directory to delete.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evorag.errors import UserError

# A path component: letters, digits, '_', '.', '-' ("." and ".." are refused on their own).
_COMPONENT = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}$")
_CHUNK = 1024 * 1024
_UNCHANGED = "nothing was restored; the home is unchanged"
# Keep this much disk free whatever the archive says (the home and the system need room too).
DISK_RESERVE_BYTES = 256 * 1024 * 1024


# Extended headers (pax, GNU long names) are read whole into memory by tarfile before the member they
# describe: a 1 GiB "header" would be a memory bomb that no member check sees. Real ones are tiny.
MAX_EXTENDED_HEADER_BYTES = 1024 * 1024
_EXTENDED_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                     tarfile.GNUTYPE_LONGLINK)


class _BoundedTarInfo(tarfile.TarInfo):
    """TarInfo refusing oversized extended headers (``_proc_member`` is tarfile's hook for subclasses)."""

    def _proc_member(self, tarfile_):
        if self.type in _EXTENDED_HEADERS and self.size > MAX_EXTENDED_HEADER_BYTES:
            raise tarfile.HeaderError(f"an extended header of {self.size} bytes (more than "
                                      f"{MAX_EXTENDED_HEADER_BYTES})")
        return super()._proc_member(tarfile_)


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_bytes: int
    max_member_bytes: int
    max_members: int
    max_path_chars: int = 1024
    max_path_depth: int = 24


@dataclass(slots=True)
class Extracted:
    members: int = 0
    bytes: int = 0


def extract_tar_gz(archive: Path, dest: Path, limits: ArchiveLimits,
                   allowed: Callable[[tuple[str, ...], bool], bool], *, label: str | None = None,
                   kind: str = "evorag backup", made_by: str = "`evorag backup`",
                   unchanged: str = _UNCHANGED) -> Extracted:
    """Unpack the gzip-compressed tar ``archive`` into the existing, empty directory ``dest``.

    ``allowed(parts, is_dir)`` says whether a member path (split into components) belongs in such an
    archive. Raises UserError on the first member that breaks a rule, or when the archive is unreadable;
    ``kind`` (what the archive should be), ``made_by`` (the command that writes one) and ``unchanged`` (what a
    refusal leaves as it was) word those errors.
    """
    try:
        return _extract(archive, dest, limits, allowed, label or str(archive), kind, made_by)
    except UserError as exc:
        if unchanged == _UNCHANGED or exc.hint != _UNCHANGED:
            raise
        raise UserError(exc.message, hint=unchanged) from None


def _extract(archive: Path, dest: Path, limits: ArchiveLimits, allowed: Callable[[tuple[str, ...], bool], bool],
             label: str, kind: str, made_by: str) -> Extracted:
    done = Extracted()
    seen: set[tuple[str, ...]] = set()
    room = shutil.disk_usage(dest).free - DISK_RESERVE_BYTES
    try:
        with tarfile.open(archive, mode="r|gz", tarinfo=_BoundedTarInfo) as stream:
            for member in stream:
                done.members += 1
                if done.members > limits.max_members:
                    raise _refuse(label, f"it has more than {limits.max_members} members")
                parts = _safe_parts(member.name, limits, label)
                if parts in seen:
                    raise _refuse(label, f"member {member.name[:200]!r} appears twice")
                seen.add(parts)
                if member.isdir():
                    if not allowed(parts, True):
                        raise _refuse(label, f"unexpected directory {member.name[:200]!r}")
                    dest.joinpath(*parts).mkdir(mode=0o700, parents=True, exist_ok=True)
                    continue
                if not member.isreg() or member.issparse():
                    raise _refuse(label, f"member {member.name[:200]!r} is {_kind(member)}; "
                                  "only regular files and directories are accepted")
                if member.size > limits.max_member_bytes:
                    raise _refuse(label, f"member {member.name[:200]!r} would expand to {member.size} bytes, more "
                                  f"than the limit of {limits.max_member_bytes} per file")
                done.bytes += member.size
                if done.bytes > limits.max_bytes:
                    raise _refuse(label, f"it would expand to more than {limits.max_bytes} bytes")
                if done.bytes > room:
                    raise _refuse(label, f"it would expand to more than the {max(room, 0)} bytes of free disk space "
                                  f"next to the home (keeping {DISK_RESERVE_BYTES} free)")
                if not allowed(parts, False):
                    raise _refuse(label, f"unexpected member {member.name[:200]!r}")
                _write_member(stream, member, dest.joinpath(*parts), label)
    except UserError:
        raise
    except RecursionError:  # tarfile follows a chain of extended headers by recursion
        raise _refuse(label, "it has a chain of thousands of extended headers") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"{label} is not a readable {kind}: {detail}",
                        hint=f"pass a .tar.gz written by {made_by}") from None
    return done


def _safe_parts(name: str, limits: ArchiveLimits, label: str) -> tuple[str, ...]:
    if len(name) > limits.max_path_chars:
        raise _refuse(label, f"a member path is longer than {limits.max_path_chars} characters")
    if name.startswith("/") or "\\" in name or "\x00" in name:
        raise _refuse(label, f"member {name[:200]!r} has an absolute or ambiguous path")
    parts = tuple(part for part in name.rstrip("/").split("/"))
    if len(parts) > limits.max_path_depth:
        raise _refuse(label, f"member {name[:200]!r} is nested deeper than {limits.max_path_depth} directories")
    for part in parts:
        if part in ("", ".", "..") or not _COMPONENT.match(part):
            raise _refuse(label, f"member {name[:200]!r} has a path component that is not allowed ({part[:80]!r})")
    return parts


def _write_member(stream: tarfile.TarFile, member: tarfile.TarInfo, target: Path, label: str) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    source = stream.extractfile(member)
    if source is None:
        raise _refuse(label, f"member {member.name[:200]!r} has no data")
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    remaining = member.size
    with os.fdopen(descriptor, "wb") as handle:
        while remaining > 0:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                raise _refuse(label, f"member {member.name[:200]!r} is truncated")
            handle.write(chunk)
            remaining -= len(chunk)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.isdev():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    if member.issparse():
        return "a sparse file"
    return "not a regular file"


def _refuse(label: str, reason: str) -> UserError:
    return UserError(f"refusing {label}: {reason}", hint=_UNCHANGED)
