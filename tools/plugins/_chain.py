"""The manifest chain: an authenticated record of every tool state the gates let through.

Every deploy, rollback and removal appends one JSON line to ``MANIFEST_CHAIN.jsonl`` in the plugins
repository (committed with the checkpoint it describes): the tool's name and version, the SHA-256 of
each of its files (manifest.json included, so risk, description, schema and requirements are covered),
the manifest's risk, description and schema in clear for reports, and the MAC of the previous line. Each
line is authenticated with HMAC-SHA256 under a key kept in ``EVORAG_HOME/manifest-chain.key`` (0600,
created on first use), which backups leave out unless asked.

Whoever edits a deployed tool's files, or a backup, without the key cannot produce a matching line, so
``restore`` can tell what this home (or the home whose key it is given) deployed from what was written
afterwards. What the chain does not stop: cutting lines off its end brings back an earlier state that
was itself deployed through the gates (an old backup does the same).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from evorag.bounded_json import JSONLimitError, loads_bounded
from evorag.errors import ConfigError

CHAIN_FILE = "MANIFEST_CHAIN.jsonl"
KEY_FILE = "manifest-chain.key"
MANIFEST_NAME = "manifest.json"
# A deployed tool is a few small files (tool.py, manifest.json, requirements.txt, test_*.py).
MAX_TOOL_FILE_BYTES = 1_000_000
MAX_TOOL_FILES = 64
MAX_CHAIN_LINE_BYTES = 2_000_000
MAX_JSON_DEPTH = 64
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_KEY_TEXT = re.compile(r"^[0-9a-f]{64}$")
GENESIS = "0" * 64


class UntrustedToolError(ValueError):
    """A tool directory that cannot be described as a state (a link, a subdirectory, a huge file, ...)."""


# --- the key ---------------------------------------------------------------------------------------------


def parse_key(text: str) -> bytes | None:
    """The key in a key file's text (64 hex digits), or None when it is not one."""
    value = text.strip()
    return bytes.fromhex(value) if _KEY_TEXT.match(value) else None


def read_key(path: Path) -> bytes | None:
    """The key stored at ``path``, or None when there is none. Never creates it."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the manifest chain key {path}: {exc.strerror}",
                          hint="it must be a regular file (not a link) readable by evorag") from None
    with os.fdopen(descriptor, "r", encoding="ascii", errors="replace") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ConfigError(f"the manifest chain key {path} is not a regular file")
        key = parse_key(handle.read(200))
    if key is None:
        raise ConfigError(f"the manifest chain key {path} is corrupt",
                          hint="restore it from where you keep secrets; without it deployed tools cannot be "
                          "verified after a restore")
    return key


def write_key(path: Path, key: bytes) -> None:
    """Store ``key`` at ``path`` with mode 0600 (refuses to replace an existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_or_create_key(path: Path) -> bytes:
    key = read_key(path)
    if key is None:
        try:
            write_key(path, secrets.token_bytes(32))
        except FileExistsError:  # another process created it first
            pass
        key = read_key(path)
    assert key is not None
    return key


# --- tool states -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class ToolState:
    """A deployed tool as bytes: its files' hashes, plus what its manifest claims (for reports)."""

    name: str
    files: dict[str, str]  # file name -> sha256
    version: int | None = None
    risk: str | None = None
    description: str | None = None
    parameters_schema: object = None

    @property
    def digest(self) -> str:
        return _sha256(_canonical({"name": self.name, "files": self.files}))


def state_from_files(name: str, contents: dict[str, bytes]) -> ToolState:
    """The state of tool ``name`` whose files are ``contents`` (file name -> bytes)."""
    if len(contents) > MAX_TOOL_FILES:
        raise UntrustedToolError(f"{len(contents)} files, more than {MAX_TOOL_FILES}")
    for file_name, data in contents.items():
        if not _FILE_NAME.match(file_name):
            raise UntrustedToolError(f"file name {file_name[:80]!r} is not allowed")
        if len(data) > MAX_TOOL_FILE_BYTES:
            raise UntrustedToolError(f"{file_name} is {len(data)} bytes, more than {MAX_TOOL_FILE_BYTES}")
    state = ToolState(name=name, files={n: _sha256(d) for n, d in sorted(contents.items())})
    manifest = contents.get(MANIFEST_NAME)
    if manifest is None:
        raise UntrustedToolError("it has no manifest.json")
    try:
        data = loads_bounded(manifest, max_bytes=MAX_TOOL_FILE_BYTES, max_depth=MAX_JSON_DEPTH, what="manifest.json")
    except JSONLimitError as exc:
        raise UntrustedToolError(str(exc)) from None
    if not isinstance(data, dict):
        raise UntrustedToolError("manifest.json is not a JSON object")
    version = data.get("version")
    state.version = version if isinstance(version, int) and not isinstance(version, bool) else None
    state.risk = data.get("risk") if isinstance(data.get("risk"), str) else None
    state.description = data.get("description") if isinstance(data.get("description"), str) else None
    state.parameters_schema = data.get("parameters_schema")
    return state


def state_of_directory(tool_dir: Path) -> ToolState:
    """The state of a tool directory in a work tree. Only regular files directly inside it are allowed."""
    contents: dict[str, bytes] = {}
    entries = sorted(os.scandir(tool_dir), key=lambda entry: entry.name)
    if len(entries) > MAX_TOOL_FILES:
        raise UntrustedToolError(f"{len(entries)} files, more than {MAX_TOOL_FILES}")
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            kind = "a link" if entry.is_symlink() else "a directory" if entry.is_dir() else "a special file"
            raise UntrustedToolError(f"{entry.name[:80]!r} is {kind}, not a regular file")
        if entry.stat(follow_symlinks=False).st_size > MAX_TOOL_FILE_BYTES:
            raise UntrustedToolError(f"{entry.name[:80]} is larger than {MAX_TOOL_FILE_BYTES} bytes")
        descriptor = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, "rb") as handle:
            contents[entry.name] = handle.read(MAX_TOOL_FILE_BYTES + 1)
    return state_from_files(tool_dir.name, contents)


# --- the chain -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ChainVerdict:
    """The result of checking a chain: ``ok`` with the latest entry per tool, or the reason it failed."""

    ok: bool
    reason: str | None = None
    latest: dict[str, dict] = field(default_factory=dict)  # tool -> its last entry (op "remove": gone)
    known: set[str] = field(default_factory=set)  # every state digest the chain ever recorded
    entries: int = 0


class ManifestChain:
    """The chain file at ``path``, authenticated with ``key``."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self.key = key

    def append(self, op: str, name: str, state: ToolState | None, **extra) -> dict:
        """Record ``op`` ("deploy", "rollback", "adopt", "remove", "quarantine", ...) for tool ``name``."""
        entries = read_entries(self.path)
        entry = {
            "seq": len(entries),
            "op": op,
            "tool": name,
            "state": state.digest if state else None,
            "version": state.version if state else None,
            "files": state.files if state else {},
            "risk": state.risk if state else None,
            "description": state.description if state else None,
            "parameters_schema": state.parameters_schema if state else None,
            "ts": round(time.time(), 3),
            "prev": entries[-1].get("mac", "") if entries else GENESIS,
            **extra,
        }
        entry["mac"] = entry_mac(self.key, entry)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True, ensure_ascii=True) + "\n")
        return entry

    def verify(self) -> ChainVerdict:
        try:
            entries = read_entries(self.path)
        except UntrustedToolError as exc:
            return ChainVerdict(False, f"the manifest chain is unreadable: {exc}")
        verdict = ChainVerdict(True, entries=len(entries))
        previous = GENESIS
        for number, entry in enumerate(entries):
            if not hmac.compare_digest(str(entry.get("mac", "")), entry_mac(self.key, entry)):
                return ChainVerdict(False, f"manifest chain entry {number} does not carry this key's MAC "
                                    "(written with another key, or edited)", entries=len(entries))
            if entry.get("prev") != previous or entry.get("seq") != number:
                return ChainVerdict(False, f"manifest chain entry {number} is out of order", entries=len(entries))
            previous = entry["mac"]
            name = entry.get("tool")
            if isinstance(name, str) and name:
                verdict.latest[name] = entry
            if isinstance(entry.get("state"), str):
                verdict.known.add(entry["state"])
        return verdict


def read_entries(path: Path) -> list[dict]:
    """The chain's entries, parsed with limits (a missing file is an empty chain)."""
    if not path.exists():
        return []
    if path.is_symlink() or not path.is_file():
        raise UntrustedToolError(f"{path.name} is not a regular file")
    entries = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                entry = loads_bounded(line, max_bytes=MAX_CHAIN_LINE_BYTES, max_depth=MAX_JSON_DEPTH,
                                      what=f"manifest chain line {number + 1}")
            except JSONLimitError as exc:
                raise UntrustedToolError(str(exc)) from None
            if not isinstance(entry, dict):
                raise UntrustedToolError(f"manifest chain line {number + 1} is not a JSON object")
            entries.append(entry)
    return entries


def entry_mac(key: bytes, entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "mac"}
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
