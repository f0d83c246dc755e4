"""Backup and restore of EVORAG_HOME: one .tar.gz holding consistent copies of every store.

Consistency: SQLite databases are copied with SQLite's online backup API (a transactionally
consistent snapshot even while another process writes), the Qdrant Edge collection is flushed and
copied with writes paused, the plugins repository is copied as a git bundle of its committed history
(an interrupted deploy never gets in), and the audit log is copied as is (append-only JSON lines).
Restore refuses to overwrite a non-empty home unless asked, and writes to a temporary directory
first, so a failed restore never leaves half a home.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from evorag.errors import NotFoundError, UserError

FORMAT = 1
_DATABASES = ("catalog.sqlite3", "metrics.sqlite3", "approvals.sqlite3", "rate_limit.sqlite3")


def _copy_sqlite(source: Path, target: Path) -> None:
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def backup(service, dest: Path) -> dict:
    """Write a backup of the service's home to ``dest`` (a .tar.gz). Returns what it holds."""
    home = service.settings.home
    dest = Path(dest)
    if dest.exists():
        raise UserError(f"{dest} already exists", hint="choose a new file name for the backup")
    manifest = {"format": FORMAT, "created_at": time.time(), "parts": []}
    with tempfile.TemporaryDirectory(prefix="evorag-backup-") as tmp:
        stage = Path(tmp) / "evorag-backup"
        stage.mkdir()
        for name in _DATABASES:
            if (home / name).exists():
                _copy_sqlite(home / name, stage / name)
                manifest["parts"].append(name)
        if service.settings.qdrant_url is None and (service.settings.qdrant_path / "aliases.json").exists():
            service.store.snapshot(stage / "qdrant")
            manifest["parts"].append("qdrant")
        plugins = home / "plugins"
        if (plugins / ".git").exists():
            subprocess.run(["git", "-C", str(plugins), "bundle", "create", str(stage / "plugins.bundle"), "--all"],
                           check=True, capture_output=True)
            manifest["parts"].append("plugins")
        for name in ("audit.jsonl",):
            if (home / name).exists():
                shutil.copy2(home / name, stage / name)
                manifest["parts"].append(name)
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2))
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(stage, arcname="evorag-backup")
        partial.replace(dest)
    manifest["path"] = str(dest)
    manifest["bytes"] = dest.stat().st_size
    return manifest


def restore(archive_path: Path, home: Path, *, force: bool = False) -> dict:
    """Restore a backup into ``home``. A non-empty home needs ``force=True`` (it is replaced)."""
    archive_path = Path(archive_path)
    if not archive_path.is_file():
        raise NotFoundError(f"no backup at {archive_path}")
    if home.exists() and any(home.iterdir()) and not force:
        raise UserError(f"{home} is not empty", hint="pass --force to replace it, or restore into a new EVORAG_HOME")
    with tempfile.TemporaryDirectory(prefix="evorag-restore-", dir=home.parent if home.parent.exists() else None) as tmp:
        tmp_path = Path(tmp)
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                archive.extractall(tmp_path, filter="data")  # refuses absolute paths and traversal
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UserError(f"{archive_path} is not a readable evorag backup: {exc}") from None
        stage = tmp_path / "evorag-backup"
        manifest_path = stage / "manifest.json"
        if not manifest_path.is_file():
            raise UserError(f"{archive_path} is not an evorag backup (no manifest)")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise UserError(f"unsupported backup format {manifest.get('format')}")
        new_home = tmp_path / "home"
        new_home.mkdir()
        for name in _DATABASES + ("audit.jsonl",):
            if (stage / name).exists():
                shutil.copy2(stage / name, new_home / name)
        if (stage / "qdrant").exists():
            shutil.copytree(stage / "qdrant", new_home / "qdrant")
        if (stage / "plugins.bundle").exists():
            subprocess.run(["git", "clone", "-q", str(stage / "plugins.bundle"), str(new_home / "plugins")],
                           check=True, capture_output=True)
            subprocess.run(["git", "-C", str(new_home / "plugins"), "config", "user.name", "evorag"], check=True)
            subprocess.run(["git", "-C", str(new_home / "plugins"), "config", "user.email", "evorag@localhost"],
                           check=True)
        if home.exists():
            shutil.rmtree(home)
        shutil.move(str(new_home), str(home))
    return manifest
