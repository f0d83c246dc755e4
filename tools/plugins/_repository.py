"""Deployed tools live in a git repository: every deploy and rollback is a checkpoint commit.

Layout: ``tools/<name>/{tool.py, manifest.json, requirements.txt?, test_*.py}`` plus ``CHANGELOG.md``.
HEAD is always a consistent tool set: changes are written to the work tree and committed in one
step; a process killed in between leaves a dirty tree that ``recover`` resets to HEAD on next open.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from evorag.errors import NotFoundError, UserError
from tools.plugins._manifest import MANIFEST, ToolManifest

_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_COPY_PATTERNS = ("tool.py", "requirements.txt", "test_*.py")


def check_tool_name(name: str) -> str:
    if not _TOOL_NAME.match(name or ""):
        raise UserError(f"invalid tool name {name!r}", hint="use snake_case: a-z, 0-9 and _, up to 64 characters")
    return name


@dataclass(slots=True)
class Version:
    id: str
    message: str
    created_at: float
    tools: list[str]

    def to_dict(self) -> dict:
        return {"id": self.id, "message": self.message, "created_at": self.created_at, "tools": self.tools}


class PluginRepository:
    def __init__(self, root: Path) -> None:
        import git

        self.root = root
        self._lock = threading.RLock()
        root.mkdir(parents=True, exist_ok=True)
        if (root / ".git").exists():
            self.repo = git.Repo(root)
        else:
            self.repo = git.Repo.init(root, initial_branch="main")
            with self.repo.config_writer() as config:
                config.set_value("user", "name", "evorag")
                config.set_value("user", "email", "evorag@localhost")
            (root / "tools").mkdir(exist_ok=True)
            (root / "CHANGELOG.md").write_text("# Changelog of evolved tools\n")
            self.repo.index.add(["CHANGELOG.md"])
            self.repo.index.commit("Initial checkpoint: no tools")
        self.recover()

    @property
    def tools_dir(self) -> Path:
        return self.root / "tools"

    def recover(self) -> bool:
        """Reset an interrupted change back to the last checkpoint. Returns True if it had to."""
        with self._lock:
            if self.repo.is_dirty(untracked_files=True):
                self.repo.git.reset("--hard", "HEAD")
                self.repo.git.clean("-fdq")
                return True
            return False

    def manifests(self) -> list[ToolManifest]:
        if not self.tools_dir.exists():
            return []
        return [ToolManifest.load(path) for path in sorted(self.tools_dir.glob(f"*/{MANIFEST}"))]

    def tool_dir(self, name: str) -> Path:
        path = self.tools_dir / check_tool_name(name)
        if not (path / MANIFEST).exists():
            raise NotFoundError(f"no deployed tool named {name!r}", hint="see `evorag tools list`")
        return path

    def _checkpoint(self, message: str, changelog: str) -> Version:
        with (self.root / "CHANGELOG.md").open("a") as handle:
            handle.write(f"\n- {time.strftime('%Y-%m-%d %H:%M:%S')}: {changelog}\n")
        self.repo.git.add("-A")
        commit = self.repo.index.commit(message)
        return self._version(commit)

    def deploy(self, candidate_dir: Path, manifest: ToolManifest, *, message: str) -> Version:
        """Copy the candidate's files in as ``tools/<name>`` and commit a checkpoint."""
        name = check_tool_name(manifest.name)
        with self._lock:
            self.recover()
            target = self.tools_dir / name
            previous = ToolManifest.load(target / MANIFEST) if (target / MANIFEST).exists() else None
            manifest.version = previous.version + 1 if previous else 1
            manifest.deployed_at = time.time()
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for pattern in _COPY_PATTERNS:
                for file in sorted(candidate_dir.glob(pattern)):
                    shutil.copy2(file, target / file.name)
            manifest.save(target / MANIFEST)
            verb = "update" if previous else "add"
            return self._checkpoint(f"{verb} tool {name} v{manifest.version}: {message}",
                                    f"{verb} `{name}` v{manifest.version} ({manifest.risk}) — {message}")

    def remove(self, name: str, *, message: str = "") -> Version:
        with self._lock:
            shutil.rmtree(self.tool_dir(name))
            return self._checkpoint(f"remove tool {name}: {message}", f"remove `{name}` {message}".strip())

    def versions(self) -> list[Version]:
        """Checkpoints, oldest first."""
        return [self._version(commit) for commit in reversed(list(self.repo.iter_commits("HEAD")))]

    def current(self) -> Version:
        return self._version(self.repo.head.commit)

    def rollback(self, version_id: str) -> Version:
        """Make the tool set exactly what it was at ``version_id``, as a new checkpoint."""
        with self._lock:
            self.recover()
            commit = self._resolve(version_id)
            if self.tools_dir.exists():
                shutil.rmtree(self.tools_dir)
            tracked = [item.path for item in commit.tree.traverse() if item.path.startswith("tools/")]
            if tracked:
                self.repo.git.checkout(commit.hexsha, "--", "tools")
            self.tools_dir.mkdir(exist_ok=True)
            short = commit.hexsha[:12]
            return self._checkpoint(f"rollback to {short}", f"rollback to `{short}` ({commit.summary})")

    def _resolve(self, version_id: str):
        import git

        if not re.fullmatch(r"[0-9a-fA-F]{4,40}", version_id or ""):
            raise UserError(f"invalid version id {version_id!r}", hint="use an id from `evorag versions`")
        try:
            commit = self.repo.commit(version_id)
        except (git.BadName, ValueError):
            raise NotFoundError(f"no version {version_id}", hint="see `evorag versions`") from None
        if commit.hexsha not in {c.hexsha for c in self.repo.iter_commits("HEAD")}:
            raise NotFoundError(f"no version {version_id} on the history", hint="see `evorag versions`")
        return commit

    def _version(self, commit) -> Version:
        tools = sorted(
            {item.path.split("/")[1] for item in commit.tree.traverse() if item.path.startswith("tools/")
             and item.path.endswith("/" + MANIFEST)}
        )
        return Version(id=commit.hexsha[:12], message=commit.message.strip(), created_at=float(commit.committed_date),
                       tools=tools)

    def changelog(self) -> str:
        return (self.root / "CHANGELOG.md").read_text()
