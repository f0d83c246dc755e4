"""Who is acting, and what they may do: principals with ordered roles, and their store under EVORAG_HOME.

Roles are ordered; each one may do everything the ones below it may:

    reader < operator < approver < admin

``OPERATIONS`` is the one table of what each operation needs; every interface (the service, the MCP
server, the UI, the CLI) checks it with ``require``. Approving is further bound by risk (tools/approvals.py):
LOW may be approved by policy, MEDIUM needs an approver, HIGH an approver *and* proof of a person (the
human approval token, or an approver logged in to the UI).

Secrets at rest: a principal's bearer token is 32 random bytes (``secrets.token_urlsafe``) shown once at
creation and stored only as its SHA-256. A slow KDF adds nothing there: it exists to make guessing
low-entropy, human-chosen secrets expensive, and guessing a 256-bit random value is already out of reach
at any hashing speed. UI passwords are chosen by people, so they are stored with scrypt (a memory-hard KDF)
and a random salt each.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import getpass
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from evorag.errors import NotFoundError, PermissionDeniedError, UserError


class Role(IntEnum):
    READER = 1
    OPERATOR = 2
    APPROVER = 3
    ADMIN = 4

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[str(text).strip().upper()]
        except KeyError:
            raise UserError(f"unknown role {text!r}",
                            hint="roles, weakest first: " + ", ".join(str(r) for r in cls)) from None


# Operation -> the weakest role allowed to do it. Removing a tool is a rollback to a checkpoint without it.
OPERATIONS: dict[str, Role] = {
    # reader: look, never change anything
    "search": Role.READER,
    "ask": Role.READER,
    "list_sources": Role.READER,
    "list_tools": Role.READER,
    "list_versions": Role.READER,
    "metrics": Role.READER,
    "list_approvals": Role.READER,
    "job_status": Role.READER,
    "feedback": Role.READER,  # thumbs up/down on one's own answers (evorag.service._feedback)
    # operator: start work; whatever it would deploy still goes through the gates and approval
    "crawl": Role.OPERATOR,
    "eval": Role.OPERATOR,
    "evolve": Role.OPERATOR,
    "converse": Role.OPERATOR,  # talk to the agent team; a tool it proposes goes through the gates and approval
    "add_tool": Role.OPERATOR,
    "heal": Role.OPERATOR,
    "doctor": Role.OPERATOR,  # evorag's environment and the tools' environments, checked (reads only)
    "gaps": Role.OPERATOR,
    "call_tool": Role.OPERATOR,
    "cancel_job": Role.OPERATOR,
    "costs": Role.OPERATOR,  # model usage and cost, per principal and operation
    # a source's versions and its share file: exporting dumps a whole index in bulk to a file (readers only
    # query it), importing writes one; replacing a source on import also needs "remove_source"
    "mark_latest": Role.OPERATOR,
    "export_source": Role.OPERATOR,
    "import_source": Role.OPERATOR,
    # approver: decide what is deployed, and undo it
    "approve": Role.APPROVER,
    "reject": Role.APPROVER,
    "rollback": Role.APPROVER,
    "remove_source": Role.APPROVER,
    # admin: who may do what, the settings, and the home as a whole
    "users": Role.ADMIN,
    "settings": Role.ADMIN,
    "backup": Role.ADMIN,
    "restore": Role.ADMIN,
    "webhooks": Role.ADMIN,  # where events are sent (and their signing secrets)
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone acting: ``via`` names the interface; ``human`` is proof that a person is present, set only
    for a session a person logged in to with a password (the UI). A terminal is not such proof: a coding
    assistant drives terminals too."""

    name: str
    role: Role
    via: str = "python"
    human: bool = False

    def can(self, operation: str) -> bool:
        return self.role >= OPERATIONS[operation]

    def to_dict(self) -> dict:
        return {"name": self.name, "role": str(self.role), "via": self.via, "human": self.human}


# Who decides when no principal does: a --yes policy may approve LOW risk only; expiry is the system's.
POLICY = Principal("policy", Role.READER, via="policy")
SYSTEM = Principal("system", Role.READER, via="system")
RESERVED_NAMES = frozenset({"policy", "system"})


def require(principal: Principal, operation: str) -> Principal:
    """Raise PermissionDeniedError unless ``principal`` may do ``operation``; return the principal."""
    needed = OPERATIONS[operation]
    if principal.role < needed:
        raise PermissionDeniedError(
            f"{operation} needs the {needed} role; {principal.name} has the {principal.role} role",
            hint="an admin grants roles with `evorag users add NAME --role ROLE`",
        )
    return principal


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers): the uid still names the user
        return f"uid{os.getuid()}"


def local_principal(via: str = "python", role: Role = Role.ADMIN) -> Principal:
    """The person calling the Python API: they own EVORAG_HOME, so they are its admin."""
    return Principal(os_user(), role, via=via)


def home_owner_principal(home: Path, via: str = "cli") -> Principal:
    """The local CLI user: admin when they own EVORAG_HOME (or are root, who can do anything to it
    anyway), a reader otherwise: reading a home someone else owns is all its permissions should let them."""
    try:
        owner = home.stat().st_uid
    except FileNotFoundError:
        owner = os.geteuid()  # it will be created, and owned, by this user
    euid = os.geteuid()
    return Principal(os_user(), Role.ADMIN if euid in (0, owner) else Role.READER, via=via)


# The principal on whose behalf the current task runs, for the audit log only. Authorization never reads
# it: every check takes its principal as an argument. A ContextVar is per asyncio task (and copied into
# the worker threads of asyncio.to_thread / anyio), so concurrent MCP calls of different principals are
# each recorded under their own name.
_acting: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("evorag_acting_principal", default=None)


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    token = _acting.set(principal)
    try:
        yield principal
    finally:
        _acting.reset(token)


def acting_principal() -> Principal | None:
    return _acting.get()


# Secrets
TOKEN_PREFIX = "evr_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MB and ~50 ms per check: costly to guess, cheap to log in
MIN_PASSWORD = 8


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def matches_any(secret: str | None, digests: Iterable[str]) -> bool:
    """Constant-time: every digest is compared, whichever matches."""
    if not secret:
        return False
    given = sha256_hex(secret).encode()
    found = False
    for digest in digests:
        found |= hmac.compare_digest(given, digest.encode())
    return found


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=salt, dklen=32, **_SCRYPT)
    encode = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${encode(salt).decode()}${encode(key).decode()}"


def password_matches(password: str, stored: str | None) -> bool:
    """Check ``password`` against a ``hash_password`` string. Always runs scrypt once (on a dummy when
    there is nothing stored), so the time taken does not tell whether the account exists."""
    try:
        scheme, n, r, p, salt, key = (stored or "").split("$")
        params = {"n": int(n), "r": int(r), "p": int(p)}
        salt_bytes, expected = base64.b64decode(salt), base64.b64decode(key)
        usable = scheme == "scrypt"
    except ValueError:
        params, salt_bytes, expected, usable = dict(_SCRYPT), b"\0" * 16, b"\0" * 32, False
    actual = hashlib.scrypt((password or "").encode("utf-8", "surrogateescape"), salt=salt_bytes,
                            dklen=len(expected), maxmem=64 * 1024 * 1024, **params)
    return hmac.compare_digest(actual, expected) and usable


def validate_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UserError(f"invalid user name {name!r}",
                        hint="use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise UserError(f"the user name {name!r} is reserved", hint="choose another name")
    return name


def validate_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"the password is shorter than {MIN_PASSWORD} characters", hint="use a long passphrase")
    return password


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    role: Role
    has_password: bool
    created_at: float
    token_rotated_at: float

    def to_dict(self) -> dict:
        return {"name": self.name, "role": str(self.role), "ui_login": self.has_password,
                "created_at": self.created_at, "token_rotated_at": self.token_rotated_at}


class PrincipalStore:
    """Users, their role, the SHA-256 of their bearer token and the scrypt hash of their UI password, in
    SQLite (mode 0600). Reads see other processes' changes at once: a removed user or a rotated token
    stops working in a running server without a restart."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS principals (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
            "token_sha256 TEXT NOT NULL, password TEXT, created_at REAL NOT NULL, token_rotated_at REAL NOT NULL)"
        )
        if fresh:
            os.chmod(path, 0o600)  # SQLite gives its -wal and -shm files the same mode
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, name: str, role: Role | str, *, password: str | None = None) -> str:
        """Create a user; returns their bearer token (shown once: only its hash is kept)."""
        name = validate_name(name)
        role = role if isinstance(role, Role) else Role.parse(role)
        stored_password = hash_password(validate_password(password)) if password is not None else None
        token, now = new_token(), time.time()
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO principals(name, role, token_sha256, password, created_at, token_rotated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (name, str(role), sha256_hex(token), stored_password, now, now))
            except sqlite3.IntegrityError:
                raise UserError(f"user {name!r} already exists",
                                hint="rotate their token with `evorag users token NAME`, or remove them first") from None
        return token

    def remove(self, name: str) -> None:
        with self._lock:
            if self._db.execute("DELETE FROM principals WHERE name=?", (name,)).rowcount == 0:
                raise self._missing(name)

    def rotate_token(self, name: str) -> str:
        """A new bearer token for ``name``; the old one stops working at once."""
        token = new_token()
        with self._lock:
            changed = self._db.execute("UPDATE principals SET token_sha256=?, token_rotated_at=? WHERE name=?",
                                       (sha256_hex(token), time.time(), name)).rowcount
        if not changed:
            raise self._missing(name)
        return token

    def set_password(self, name: str, password: str) -> None:
        stored = hash_password(validate_password(password))
        with self._lock:
            if self._db.execute("UPDATE principals SET password=? WHERE name=?", (stored, name)).rowcount == 0:
                raise self._missing(name)

    def users(self) -> list[UserRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM principals ORDER BY name").fetchall()
        return [self._record(row) for row in rows]

    def get(self, name: str) -> UserRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM principals WHERE name=?", (name,)).fetchone()
        return self._record(row) if row else None

    def has_users(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM principals LIMIT 1").fetchone() is not None

    def authenticate_token(self, token: str, *, via: str) -> Principal | None:
        """The principal whose token this is, or None. Every stored hash is compared in constant time."""
        if not token:
            return None
        given = sha256_hex(token).encode()
        with self._lock:
            rows = self._db.execute("SELECT name, role, token_sha256 FROM principals").fetchall()
        found = None
        for row in rows:
            if hmac.compare_digest(given, row["token_sha256"].encode()):
                found = row
        return Principal(found["name"], Role.parse(found["role"]), via=via) if found else None

    def authenticate_password(self, name: str, password: str, *, via: str = "ui") -> Principal | None:
        """The principal for a UI login, or None; ``human`` is set: a person typed a password to get here."""
        with self._lock:
            row = self._db.execute("SELECT role, password FROM principals WHERE name=?", (name or "",)).fetchone()
        stored = row["password"] if row else None
        if not password_matches(password, stored) or row is None:
            return None
        return Principal(name, Role.parse(row["role"]), via=via, human=True)

    @staticmethod
    def _record(row) -> UserRecord:
        return UserRecord(row["name"], Role.parse(row["role"]), row["password"] is not None, row["created_at"],
                          row["token_rotated_at"])

    @staticmethod
    def _missing(name: str) -> NotFoundError:
        return NotFoundError(f"no user named {name!r}", hint="see `evorag users list`")
