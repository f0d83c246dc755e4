"""Deployed tools live in a git repository: every deploy and rollback is a checkpoint commit.

Layout: ``tools/<name>/{tool.py, manifest.json, requirements.txt?, test_*.py}`` plus ``CHANGELOG.md`` and
``MANIFEST_CHAIN.jsonl`` (the authenticated record of every deployed state, see ``_chain``).
HEAD is always a consistent tool set: changes are written to the work tree and committed in one
step (the chain line with them); a process killed in between leaves a dirty tree that ``recover`` resets
to HEAD on next open. A rollback brings back only states the chain recorded: history that came from
elsewhere (a restored backup) cannot put an unverified tool back into service.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from evorag.tools.plugins._chain import (
    CHAIN_FILE,
    KEY_FILE,
    MAX_TOOL_FILE_BYTES,
    ManifestChain,
    ToolState,
    UntrustedToolError,
    load_or_create_key,
    state_from_files,
    state_of_directory,
)
from evorag.tools.plugins._manifest import MANIFEST, ToolManifest

from evorag.errors import NotFoundError, UserError

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
    def __init__(self, root: Path, *, key_path: Path | None = None) -> None:
        """Open (or create) the repository at ``root``. ``key_path`` holds the manifest chain's key
        (default: ``manifest-chain.key`` next to ``root``, i.e. in EVORAG_HOME), created on first use."""
        import git  # GitPython: ~60 ms to import, only for commands that open the tool repository

        self.root = root
        self.key_path = key_path or root.parent / KEY_FILE
        self._chain: ManifestChain | None = None
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
            (root / CHAIN_FILE).touch()
            self.repo.index.add(["CHANGELOG.md", CHAIN_FILE])
            self.repo.index.commit("Initial checkpoint: no tools")
        self.recover()
        if not (root / CHAIN_FILE).exists():
            self._adopt_history()

    @property
    def chain(self) -> ManifestChain:
        """The manifest chain; its key is read (or created, 0600) on first use."""
        if self._chain is None:
            self._chain = ManifestChain(self.root / CHAIN_FILE, load_or_create_key(self.key_path))
        return self._chain

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
            try:
                state = state_of_directory(target)
            except UntrustedToolError as exc:
                self.recover()
                raise UserError(f"cannot deploy {name}: {exc}") from None
            self.chain.append("deploy", name, state)
            verb = "update" if previous else "add"
            return self._checkpoint(f"{verb} tool {name} v{manifest.version}: {message}",
                                    f"{verb} `{name}` v{manifest.version} ({manifest.risk}) — {message}")

    def remove(self, name: str, *, message: str = "") -> Version:
        with self._lock:
            shutil.rmtree(self.tool_dir(name))
            self.chain.append("remove", name, None)
            return self._checkpoint(f"remove tool {name}: {message}", f"remove `{name}` {message}".strip())

    def versions(self) -> list[Version]:
        """Checkpoints, oldest first."""
        return [self._version(commit) for commit in reversed(list(self.repo.iter_commits("HEAD")))]

    def current(self) -> Version:
        return self._version(self.repo.head.commit)

    def head_id(self) -> str:
        """The current checkpoint's commit id, read from the ref files: cheap enough to poll, and safe while
        another thread uses the GitPython ``Repo`` (every deploy and rollback commits a new checkpoint)."""
        git = Path(self.root) / ".git"
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head.removeprefix("ref: ")
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        packed = git / "packed-refs"
        for line in packed.read_text().splitlines() if packed.is_file() else []:
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
        return ""

    def rollback(self, version_id: str) -> Version:
        """Make the tool set exactly what it was at ``version_id``, as a new checkpoint."""
        with self._lock:
            self.recover()
            commit = self._resolve(version_id)
            target = self._verified_states(commit)
            before = self._head_states()
            if self.tools_dir.exists():
                shutil.rmtree(self.tools_dir)
            tracked = [item.path for item in commit.tree.traverse() if item.path.startswith("tools/")]
            if tracked:
                self.repo.git.checkout(commit.hexsha, "--", "tools")
            self.tools_dir.mkdir(exist_ok=True)
            for name, state in sorted(target.items()):
                if before.get(name) != state.digest:
                    self.chain.append("rollback", name, state)
            for name in sorted(set(before) - set(target)):
                self.chain.append("remove", name, None)
            short = commit.hexsha[:12]
            return self._checkpoint(f"rollback to {short}", f"rollback to `{short}` ({commit.summary})")

    def _verified_states(self, commit) -> dict[str, ToolState]:
        """The tool states of ``commit``, each of which the chain must have recorded (else UserError)."""
        states = tree_states(commit)
        verdict = self.chain.verify()
        unknown = []
        for name, state in sorted(states.items()):
            if isinstance(state, str):
                unknown.append(f"{name} ({state})")
            elif not verdict.ok or state.digest not in verdict.known:
                unknown.append(f"{name} (never deployed through the gates on this home)")
        if unknown:
            reason = "" if verdict.ok else f"; {verdict.reason}"
            raise UserError(
                f"version {commit.hexsha[:12]} holds tools the manifest chain does not vouch for: "
                f"{', '.join(unknown)[:500]}{reason}",
                hint="add them again through the gates with `evorag tools add`",
            )
        return states  # type: ignore[return-value]

    def _head_states(self) -> dict[str, str]:
        """Tool name -> state digest of the chain's latest entries (what the chain says is deployed)."""
        verdict = self.chain.verify()
        return {name: entry["state"] for name, entry in verdict.latest.items() if entry.get("state")}

    def _adopt_history(self) -> None:
        """Start the chain of a repository made before there was one: its own history is taken as deployed
        (a restore never gets here: it always writes a chain)."""
        with self._lock:
            current: dict[str, str] = {}
            for commit in reversed(list(self.repo.iter_commits("HEAD"))):
                states = tree_states(commit)
                for name, state in sorted(states.items()):
                    if isinstance(state, ToolState) and current.get(name) != state.digest:
                        self.chain.append("adopt", name, state, commit=commit.hexsha)
                        current[name] = state.digest
                for name in sorted(set(current) - set(states)):
                    self.chain.append("remove", name, None, commit=commit.hexsha)
                    del current[name]
            (self.root / CHAIN_FILE).touch()
            self.repo.git.add("--", CHAIN_FILE)
            self.repo.index.commit("Start the manifest chain: adopt the deployed history")

    def _resolve(self, version_id: str):
        import git  # see __init__

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


def tree_states(commit) -> dict[str, ToolState | str]:
    """Tool name -> state of each ``tools/<name>`` in a commit (or why it has none), read from git objects.

    Sizes and modes are checked before any blob is read: history is not trusted to hold small, regular files.
    """
    try:
        tools_tree = commit.tree / "tools"
    except KeyError:
        return {}
    states: dict[str, ToolState | str] = {}
    for tool_tree in tools_tree:
        if tool_tree.type != "tree":
            continue
        contents: dict[str, bytes] = {}
        problem = None
        for item in tool_tree:
            if item.type != "blob" or item.mode not in (0o100644, 0o100755):
                problem = f"{item.name[:80]!r} is not a regular file"
                break
            if item.size > MAX_TOOL_FILE_BYTES:
                problem = f"{item.name[:80]} is {item.size} bytes"
                break
            contents[item.name] = item.data_stream.read()
        if problem is None:
            try:
                states[tool_tree.name] = state_from_files(tool_tree.name, contents)
                continue
            except UntrustedToolError as exc:
                problem = str(exc)
        states[tool_tree.name] = problem
    return states
