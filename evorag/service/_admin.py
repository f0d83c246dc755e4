"""Administration: backup and restore of EVORAG_HOME, the users (principals) and the effective settings.
Everything here needs the admin role."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evorag.errors import NotFoundError, UserError
from evorag.principals import Principal, Role, UserRecord, validate_name
from evorag.service._context import ServiceContext
from evorag.service._knowledge import KnowledgeService
from evorag.service._toolset import model_test_writer
from evorag.settings import config_file_candidates
from evorag.tools.archive_guard import ArchiveLimits
from evorag.tools.backup import backup, requeue_quarantined, restore


@dataclass(slots=True)
class BackupResult:
    path: Path
    bytes: int
    parts: list[str]
    secret_included: bool
    created_at: float

    def to_dict(self) -> dict:
        return {"path": str(self.path), "bytes": self.bytes, "parts": self.parts,
                "secret_included": self.secret_included, "created_at": self.created_at, "format": 1}


@dataclass(slots=True)
class RestoreResult:
    """What a restore brought back. ``plugins`` says which tools the manifest chain verified, which were
    quarantined and, after the gates, what became of each (``requeued``)."""

    home: Path
    parts: list[str]
    plugins: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.manifest, "home": str(self.home), "parts": self.parts, "plugins": self.plugins}


@dataclass(slots=True)
class NewCredentials:
    """A user's new bearer token (shown once, stored hashed), and whether they can log in to the UI."""

    name: str
    role: Role
    token: str
    ui_login: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "role": str(self.role), "ui_login": self.ui_login, "token": self.token}


class AdminService:
    def __init__(self, ctx: ServiceContext, knowledge: KnowledgeService) -> None:
        self._ctx = ctx
        self._knowledge = knowledge

    # The home as a whole
    def backup(self, dest: Path, *, include_secret: bool = False, principal: Principal | None = None) -> BackupResult:
        """Back up the home into ``dest`` (.tar.gz). Holds the writer slot, so the index, the catalog and the
        tool set are copied as one consistent state."""
        with self._ctx.acting(principal, "backup"):
            settings, parts = self._ctx.settings, self._ctx.parts
            embedded = settings.qdrant_url is None and (settings.qdrant_path / "aliases.json").exists()
            with self._ctx.writer:
                manifest = backup(settings.home, Path(dest), store=parts.store if embedded else None,
                                  include_secret=include_secret)
            return BackupResult(Path(manifest["path"]), manifest["bytes"], manifest["parts"],
                                manifest["secret_included"], manifest["created_at"])

    def restore(self, archive: Path, *, force: bool = False, use_backup_secret: bool = False, gates: bool = True,
                principal: Principal | None = None) -> RestoreResult:
        """Restore the home from a backup, re-verifying every deployed tool against the manifest chain (with
        this home's key, or the backup's with ``use_backup_secret``). Tools the chain does not vouch for are
        quarantined and, with ``gates``, sent through the gates into the approval queue: a restore never
        deploys them. Holds the writer slot, and closes every open part first: the home is swapped."""
        with self._ctx.acting(principal, "restore"):
            settings = self._ctx.settings
            limits = ArchiveLimits(max_bytes=settings.restore_max_bytes,
                                   max_member_bytes=settings.restore_max_member_bytes,
                                   max_members=settings.restore_max_members)
            with self._ctx.writer:
                self._ctx.parts.close()
                self._knowledge.jobs.close()
                report = restore(Path(archive), settings.home, force=force, limits=limits,
                                 use_backup_secret=use_backup_secret)
            plugins = report["plugins"]
            if plugins["quarantined"] and gates:
                plugins["requeued"] = requeue_quarantined(self._ctx.parts.pipeline, report,
                                                          test_writer=self._restore_test_writer(plugins),
                                                          test_rounds=settings.evolution_attempts)
            manifest = {key: value for key, value in report.items() if key not in ("home", "parts", "plugins")}
            return RestoreResult(Path(report["home"]), report["parts"], plugins, manifest)

    def _restore_test_writer(self, plugins: dict):
        """The model writing tests for quarantined tools that have none (homes from before every deploy needed
        them); None when they all have tests, or when no model is configured: the tests gate then rejects those
        tools, saying to add tests or configure a model."""
        # Only looked at: the gates read (and refuse, one by one) what a quarantined folder holds.
        if all(any(Path(item["path"]).glob("test_*")) for item in plugins["quarantined"]):
            return None
        try:
            return model_test_writer(self._ctx, "writing tests for a restored tool")
        except UserError:
            return None

    def config(self, *, principal: Principal | None = None) -> dict[str, Any]:
        """The effective settings (secrets masked) and the config files they were read from."""
        self._ctx.check(principal, "settings")
        data = json.loads(self._ctx.settings.model_dump_json())
        data["config_files"] = [str(p) for p in config_file_candidates() if p.is_file()]
        return data

    # Users
    def users(self, *, principal: Principal | None = None) -> list[UserRecord]:
        self._ctx.check(principal, "users")
        return self._ctx.parts.principals.users()

    def add_user(self, name: str, role: Role | str, *, password: Callable[[], str] | None = None,
                 principal: Principal | None = None) -> NewCredentials:
        """Add a user with a new token; ``password()``, when given, is asked for a UI login password once the
        name and role are known to be valid."""
        self._ctx.check(principal, "users")
        validate_name(name)
        parsed = Role.parse(role) if isinstance(role, str) else role
        secret = password() if password is not None else None
        token = self._ctx.parts.principals.add(name, parsed, password=secret)
        return NewCredentials(name, parsed, token, secret is not None)

    def remove_user(self, name: str, *, principal: Principal | None = None) -> None:
        """Remove a user: their token and UI login stop working at once, also in running servers."""
        self._ctx.check(principal, "users")
        self._ctx.parts.principals.remove(name)

    def rotate_token(self, name: str, *, principal: Principal | None = None) -> NewCredentials:
        """A new token for ``name``; the old one stops working at once."""
        self._ctx.check(principal, "users")
        record = self._require_user(name)
        token = self._ctx.parts.principals.rotate_token(name)
        return NewCredentials(name, record.role, token, record.has_password)

    def set_user_password(self, name: str, password: Callable[[], str], *,
                          principal: Principal | None = None) -> None:
        """Set or change a user's UI password; ``password()`` is asked only once the user is known to exist."""
        self._ctx.check(principal, "users")
        self._require_user(name)
        self._ctx.parts.principals.set_password(name, password())

    def _require_user(self, name: str) -> UserRecord:
        record = self._ctx.parts.principals.get(name)
        if record is None:
            raise NotFoundError(f"no user named {name!r}", hint="see `evorag users list`")
        return record
