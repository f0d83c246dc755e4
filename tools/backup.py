"""Backup and restore of EVORAG_HOME: one .tar.gz holding consistent copies of every store.

Consistency: SQLite databases are copied with SQLite's online backup API (a transactionally
consistent snapshot even while another process writes), the Qdrant Edge collection is flushed and
copied with writes paused, the plugins repository is copied as a git bundle of its committed history
(an interrupted deploy never gets in), and the audit log is copied as is (append-only JSON lines).
The manifest chain's key (``manifest-chain.key``) is left out unless ``include_secret`` is set: whoever
holds it can make a backup's tools look deployed by this home.

Restore treats the archive as untrusted input. It unpacks into a staging directory next to the home,
under size, member-count and path rules (``evorag.tools.archive_guard``), checks the manifest, every database
and the git bundle, and re-verifies every tool against the manifest chain (``evorag.tools.plugins._restore``):
tools the chain does not vouch for are quarantined as candidates, never deployed. Only when all of
that succeeded is the staging directory swapped in for the home; any refusal is one UserError and
leaves the home exactly as it was. Pending approvals in the backup are expired: the candidates they
were for are not part of a backup.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from evorag.tools.approvals import Decision
from evorag.tools.archive_guard import ArchiveLimits, extract_tar_gz
from evorag.tools.plugins import (
    CHAIN_FILE,
    KEY_FILE,
    PluginRepository,
    load_or_create_key,
    parse_key,
    read_key,
    restore_plugins,
    write_key,
)

from evorag.bounded_json import JSONLimitError, loads_bounded, nesting_depth
from evorag.errors import EvoragError, NotFoundError, UserError

FORMAT = 1
ROOT = "evorag-backup"
# History a home cannot rebuild: its index catalog, answer metrics, approvals, rate-limit use, model costs (the
# daily budget counts them), its request queue (for the schedules; unfinished requests are settled on restore)
# and its proposals (their approvals are in approvals.sqlite3), and the usage log (what was asked, for the analysis).
_DATABASES = ("catalog.sqlite3", "metrics.sqlite3", "approvals.sqlite3", "rate_limit.sqlite3", "costs.sqlite3",
              "queue.sqlite3", "proposals.sqlite3", "usage.sqlite3")
_PLAIN_FILES = ("audit.jsonl",)
# Who may act on this machine, and where its events go (with their signing secrets), belong to the home, not to
# the backup: a forced restore keeps the replaced home's, so it neither revives a removed user's token nor drops
# the users who are there now. Backups never carry them.
_KEPT_FROM_HOME = ("principals.sqlite3", "webhooks.sqlite3")
_PARTS = frozenset({*_DATABASES, *_PLAIN_FILES, "qdrant", "plugins", KEY_FILE})
_TOP_FILES = frozenset({"manifest.json", *_DATABASES, *_PLAIN_FILES, "plugins.bundle", KEY_FILE})
MAX_MANIFEST_BYTES = 64 * 1024
MAX_MANIFEST_DEPTH = 8
DEFAULT_LIMITS = ArchiveLimits(max_bytes=16 * 1024**3, max_member_bytes=4 * 1024**3, max_members=100_000)


def _copy_sqlite(source: Path, target: Path) -> None:
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def backup(home: Path, dest: Path, *, store=None, include_secret: bool = False) -> dict:
    """Write a backup of ``home`` to ``dest`` (a .tar.gz). Returns what it holds.

    ``store`` is the open embedded vector store of the home (Qdrant Edge), snapshotted with writes paused;
    None when the index lives on a Qdrant server (it is backed up there, not here) or does not exist yet.
    ``include_secret`` adds the manifest chain key: needed to restore the deployed tools as verified on
    another home, and as sensitive as the ability to deploy tools there.
    """
    dest = Path(dest)
    if dest.exists():
        raise UserError(f"{dest} already exists", hint="choose a new file name for the backup")
    manifest = {"format": FORMAT, "created_at": time.time(), "parts": [], "secret_included": False}
    with tempfile.TemporaryDirectory(prefix="evorag-backup-") as tmp:
        stage = Path(tmp) / ROOT
        stage.mkdir()
        for name in _DATABASES:
            if (home / name).exists():
                _copy_sqlite(home / name, stage / name)
                manifest["parts"].append(name)
        if store is not None:
            store.snapshot(stage / "qdrant")
            manifest["parts"].append("qdrant")
        plugins = home / "plugins"
        if (plugins / ".git").exists():
            if not (plugins / CHAIN_FILE).exists():
                PluginRepository(plugins)  # a home from before the chain: start it, so the backup carries one
            subprocess.run(["git", "-C", str(plugins), "bundle", "create", str(stage / "plugins.bundle"), "--all"],
                           check=True, capture_output=True)
            manifest["parts"].append("plugins")
        for name in _PLAIN_FILES:
            if (home / name).exists():
                shutil.copy2(home / name, stage / name)
                manifest["parts"].append(name)
        if include_secret:
            key = load_or_create_key(home / KEY_FILE)
            write_key(stage / KEY_FILE, key)
            manifest["parts"].append(KEY_FILE)
            manifest["secret_included"] = True
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2))
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(stage, arcname=ROOT)
        if include_secret:
            os.chmod(partial, 0o600)
        partial.replace(dest)
    manifest["path"] = str(dest)
    manifest["bytes"] = dest.stat().st_size
    return manifest


def restore(archive_path: Path, home: Path, *, force: bool = False, limits: ArchiveLimits | None = None,
            use_backup_secret: bool = False) -> dict:
    """Restore a backup into ``home``. A non-empty home needs ``force=True`` (it is replaced).

    Deployed tools are kept only when the manifest chain verifies them with the home's key, or with the
    key inside the backup when ``use_backup_secret``; the others are quarantined (see the report's
    ``plugins``). Raises UserError for anything wrong with the archive; the home is then untouched.
    """
    archive_path = Path(archive_path)
    label = f"backup {archive_path}"
    if not archive_path.is_file():
        raise NotFoundError(f"no backup at {archive_path}")
    if home.exists() and not home.is_dir():
        raise UserError(f"{home} is not a directory", hint="point EVORAG_HOME at a directory")
    if home.exists() and any(home.iterdir()) and not force:
        raise UserError(f"{home} is not empty", hint="pass --force to replace it, or restore into a new EVORAG_HOME")
    if archive_path.resolve().is_relative_to(home.resolve()):
        raise UserError(f"{archive_path} is inside {home}, which the restore replaces",
                        hint="move the backup out of EVORAG_HOME first")
    home_key = read_key(home / KEY_FILE) if home.is_dir() else None
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{home.name}.restore-", dir=home.parent))
    except OSError as exc:
        raise UserError(f"cannot restore into {home}: {exc.strerror or exc}",
                        hint="the directory that holds EVORAG_HOME must be writable") from None
    try:
        unpacked = staging / "archive"
        unpacked.mkdir()
        extract_tar_gz(archive_path, unpacked, limits or DEFAULT_LIMITS, _backup_layout, label=label)
        stage = unpacked / ROOT
        manifest = _read_manifest(stage / "manifest.json", label)
        backup_key = _backup_key(stage, label)
        if use_backup_secret and backup_key is None:
            raise UserError(f"{label} holds no manifest chain key",
                            hint="it was made without `evorag backup --include-secret`; restore without "
                            "--use-backup-secret (its tools are then quarantined for the gates)")
        key, key_source = (backup_key, "backup") if use_backup_secret else (home_key, "home")
        new_key = key or home_key or os.urandom(32)

        # Everything is moved (renamed) from the unpacked archive: the staging directory is on the home's
        # file system, so nothing is copied twice.
        new_home = staging / "home"
        new_home.mkdir(mode=0o700)
        for name in _DATABASES:
            if (stage / name).is_file():
                os.rename(stage / name, new_home / name)
                _check_sqlite(new_home / name, label)
        if (new_home / "approvals.sqlite3").is_file():
            _expire_pending_approvals(new_home / "approvals.sqlite3", label)
        settled = _settle_unfinished_requests(new_home / "queue.sqlite3", label) if (
            new_home / "queue.sqlite3").is_file() else 0
        if (stage / "audit.jsonl").is_file():
            _check_audit_log(stage / "audit.jsonl", label)
        for name in _PLAIN_FILES:
            if (stage / name).is_file():
                os.rename(stage / name, new_home / name)
        if (stage / "qdrant").is_dir():
            os.rename(stage / "qdrant", new_home / "qdrant")
        for name in _KEPT_FROM_HOME:
            if (home / name).is_file():
                _copy_sqlite(home / name, new_home / name)
                (new_home / name).chmod(0o600)
        write_key(new_home / KEY_FILE, new_key)
        plugins = None
        if (stage / "plugins.bundle").is_file():
            plugins = restore_plugins(stage / "plugins.bundle", new_home / "plugins", new_home / "quarantine",
                                      key=key, key_source=key_source, new_key=new_key, label=label)
        shutil.rmtree(unpacked)
        _swap(new_home, home, staging)
    except OSError as exc:  # the disk, not the archive: still one line, and the home is as it was
        raise UserError(f"cannot restore {label}: {exc.strerror or exc}",
                        hint="check the free space and permissions next to the home") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest["home"] = str(home)
    manifest["requests_cancelled"] = settled
    manifest["plugins"] = plugins.to_dict() if plugins else {"verified": [], "quarantined": [], "key": "none",
                                                             "chain": "no plugins in the backup"}
    if plugins:
        for item in manifest["plugins"]["quarantined"]:  # paths in the home, not in the deleted staging dir
            item["path"] = str(home / "quarantine" / item["tool"])
    return manifest


def requeue_quarantined(pipeline, report: dict, *, test_writer=None, test_rounds: int = 3) -> list[dict]:
    """Send each quarantined tool of a restore ``report`` through the gates; none is deployed by this.

    A candidate that passes the gates waits in the pending approval queue for a person; one that fails
    a gate is rejected with its reason; one that cannot be checked here (no sandbox, say) stays in the
    quarantine directory with the error. A tool without tests (deployed before every deploy needed them) gets
    them from ``test_writer`` (a model; see ``EvolutionPipeline.write_tests``), else the tests gate rejects it
    with the fix: add tests or configure a model. What the writer writes goes into the gates' snapshot, not
    into the quarantine directory.
    """
    async def leave_pending(request) -> Decision:
        return Decision(None, "restore", "restored from a backup without a verified manifest: a person decides")

    async def requeue_all() -> list[dict]:  # one event loop for all: a model client keeps to the loop it met
        results = []
        for item in report.get("plugins", {}).get("quarantined", []):
            path = Path(item["path"])
            try:
                outcome = await pipeline.run(
                    path, request=f"restore of tool {item['tool']} (quarantined: {item['reason']})"[:500],
                    approver=leave_pending, test_writer=test_writer, test_rounds=test_rounds)
            except EvoragError as exc:
                results.append({"tool": item["tool"], "status": "quarantined", "reason": exc.message,
                                "path": str(path)})
                continue
            results.append({"tool": item["tool"], "status": outcome.status, "approval_id": outcome.approval_id,
                            "gate": outcome.gate, "reason": outcome.reason, "risk": outcome.risk,
                            "path": str(path)})
        return results

    return asyncio.run(requeue_all())


# --- checks of the unpacked archive ---------------------------------------------------------------------


def _backup_layout(parts: tuple[str, ...], is_dir: bool) -> bool:
    """The members a backup may hold: its root folder, the known files, and the Qdrant tree."""
    if parts[0] != ROOT:
        return False
    if len(parts) == 1:
        return is_dir
    if parts[1] == "qdrant":
        return True
    return len(parts) == 2 and not is_dir and parts[1] in _TOP_FILES


def _read_manifest(path: Path, label: str) -> dict:
    if not path.is_file():
        raise UserError(f"{label} is not an evorag backup (no manifest)")
    try:
        manifest = loads_bounded(path.read_bytes(), max_bytes=MAX_MANIFEST_BYTES, max_depth=MAX_MANIFEST_DEPTH,
                                 what="its manifest.json")
    except JSONLimitError as exc:
        raise UserError(f"refusing {label}: {exc}") from None
    if not isinstance(manifest, dict):
        raise UserError(f"refusing {label}: its manifest.json is not a JSON object")
    if manifest.get("format") != FORMAT:
        shown = str(manifest.get("format"))[:40]
        raise UserError(f"refusing {label}: unsupported backup format {shown}", hint=f"this evorag reads format {FORMAT}")
    parts = manifest.get("parts")
    if not isinstance(parts, list) or not all(isinstance(p, str) and p in _PARTS for p in parts):
        raise UserError(f"refusing {label}: its manifest.json lists unknown parts")
    return {"format": FORMAT, "created_at": manifest.get("created_at"), "parts": parts,
            "secret_included": manifest.get("secret_included") is True}


def _backup_key(stage: Path, label: str) -> bytes | None:
    path = stage / KEY_FILE
    if not path.is_file():
        return None
    key = parse_key(path.read_text(encoding="ascii", errors="replace")[:200])
    if key is None:
        raise UserError(f"refusing {label}: its {KEY_FILE} is not a key")
    return key


def _check_sqlite(path: Path, label: str) -> None:
    try:
        db = sqlite3.connect(path)
        try:
            result = db.execute("PRAGMA quick_check").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UserError(f"refusing {label}: {path.name} is not a usable SQLite database ({exc})") from None
    if not result or result[0] != "ok":
        raise UserError(f"refusing {label}: {path.name} is damaged ({str(result[0] if result else '')[:100]})")


def _check_audit_log(path: Path, label: str) -> None:
    """Every line must be UTF-8 and nested at most 64 deep (readers would fail on it); a line that is not
    JSON at all is let through, as a write torn by a kill is (readers skip those)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"refusing {label}: audit.jsonl line {number} is not valid UTF-8") from None
            if nesting_depth(text, 64) > 64:
                raise UserError(f"refusing {label}: audit.jsonl line {number} is nested deeper than 64 levels")


def _expire_pending_approvals(path: Path, label: str) -> None:
    """Expire every pending approval of a restored queue: the candidate it would deploy is not in the backup."""
    try:
        db = sqlite3.connect(path)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "approvals" not in tables:
                return
            rows = db.execute("SELECT id, body, status FROM approvals").fetchall()
            for approval_id, body, status in rows:
                try:
                    data = loads_bounded(str(body), max_bytes=10_000_000, max_depth=64, what="an approval")
                except JSONLimitError as exc:
                    raise UserError(f"refusing {label}: approval {str(approval_id)[:40]!r}: {exc}") from None
                if not isinstance(data, dict):
                    raise UserError(f"refusing {label}: approval {str(approval_id)[:40]!r} is not a JSON object")
                if status == "pending" or data.get("status") == "pending":
                    data.update(status="expired", decided_by="restore",
                                reason="restored from a backup: the staged candidate is not part of backups")
                    db.execute("UPDATE approvals SET body=?, status='expired' WHERE id=?",
                               (json.dumps(data), approval_id))
            db.commit()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UserError(f"refusing {label}: approvals.sqlite3 cannot be read ({exc})") from None


def _settle_unfinished_requests(path: Path, label: str) -> int:
    """Cancel the requests a restored queue still had waiting or running; keep the schedules and the history.

    A backup is restored later, often elsewhere: a crawl, evolution or heal it had queued was asked of the home as
    it was then, by principals who may be gone, against staged files the backup does not hold. Running it
    unasked could change the restored home; a schedule's next occurrence submits a fresh request anyway."""
    try:
        db = sqlite3.connect(path)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "requests" not in tables:
                return 0
            with db:
                cursor = db.execute(
                    "UPDATE requests SET status='cancelled', finished_at=?, owner=NULL, lease_until=NULL, "
                    "error=?, error_type='Restored' WHERE status IN ('queued', 'running')",
                    (time.time(), "cancelled by the restore: the backup was taken while it waited or ran"))
            return cursor.rowcount
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UserError(f"refusing {label}: queue.sqlite3 cannot be read ({exc})") from None


def _swap(new_home: Path, home: Path, staging: Path) -> None:
    """Put ``new_home`` in place of ``home`` with renames (same file system: both live next to each other)."""
    previous = staging / "previous-home"
    if home.exists():
        try:
            os.rename(home, previous)
        except OSError:  # a mount point cannot be renamed: move its contents instead
            _move_contents(new_home, home, previous)
            return
    try:
        os.rename(new_home, home)
    except OSError:
        if previous.exists():
            os.rename(previous, home)
        raise


def _move_contents(new_home: Path, home: Path, previous: Path) -> None:
    previous.mkdir()
    for entry in list(home.iterdir()):
        os.rename(entry, previous / entry.name)
    for entry in list(new_home.iterdir()):
        os.rename(entry, home / entry.name)
