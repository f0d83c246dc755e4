"""Deployed tools live in a git repository: every deploy and rollback is a checkpoint commit.

Layout: ``tools/<name>/{tool.py, manifest.json, requirements.txt?, requirements.lock?, test_*.py}`` plus
``CHANGELOG.md``, ``MANIFEST_CHAIN.jsonl`` (the authenticated record of every deployed state, see ``_chain``),
and, derived from the tools' locks at every checkpoint, ``requirements.lock`` and ``Dockerfile.tools`` (see
``evorag.tools.tool_envs``).
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
from evorag.tools.tool_envs import write_union_files

from evorag.errors import NotFoundError, UserError

_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# requirements.lock: written into the staged candidate by the dependency gate, never taken from a candidate.
TOOL_CHANGELOG = "CHANGELOG.md"  # in each tool's folder: its versions, newest first
MIGRATION_FILE = "MIGRATION.md"  # in a tool's folder after a breaking redeploy: how to call the new version
_COPY_PATTERNS = ("tool.py", "requirements.txt", "requirements.lock", "test_*.py")


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
        try:
            # The union of the tools' locks and its Dockerfile lines: committed with the tool set they describe,
            # so a rollback brings back its own. Tools whose locks conflict are no tool set: nothing is committed.
            write_union_files(self.root, self.tools_dir)
        except UserError:
            self.recover()
            raise
        with (self.root / "CHANGELOG.md").open("a") as handle:
            handle.write(f"\n- {time.strftime('%Y-%m-%d %H:%M:%S')}: {changelog}\n")
        self.repo.git.add("-A")
        commit = self.repo.index.commit(message)
        return self._version(commit)

    def deploy(self, candidate_dir: Path, manifest: ToolManifest, *, message: str, pin_previous: str | None = None,
               migration: str = "") -> Version:
        """Copy the candidate's files in as ``tools/<name>`` and commit a checkpoint.

        ``manifest.semver`` is the version the compatibility check chose. ``pin_previous`` (a breaking redeploy)
        names the folder the deployed version moves to, ``NAME_vMAJOR``, still callable until it is retired;
        ``migration`` (Markdown) is written as the tool's MIGRATION.md. Every deploy adds its entry to the tool's
        own CHANGELOG.md (newest first), with the migration guide when there is one.
        """
        name = check_tool_name(manifest.name)
        with self._lock:
            self.recover()
            target = self.tools_dir / name
            previous = ToolManifest.load(target / MANIFEST) if (target / MANIFEST).exists() else None
            manifest.version = previous.version + 1 if previous else 1
            manifest.deployed_at = time.time()
            history = _tool_changelog_entries(target / TOOL_CHANGELOG)
            if pin_previous and previous is not None:
                self._pin(target, previous, check_tool_name(pin_previous))
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for pattern in _COPY_PATTERNS:
                for file in sorted(candidate_dir.glob(pattern)):
                    shutil.copy2(file, target / file.name)
            manifest.save(target / MANIFEST)
            entry = f"## {manifest.semver} ({time.strftime('%Y-%m-%d')}, revision {manifest.version})\n\n{message}\n"
            if migration:
                (target / MIGRATION_FILE).write_text(migration.rstrip() + "\n", encoding="utf-8")
                entry += "\n" + migration.replace("## Migrating", "### Migrating", 1).rstrip() + "\n"
            (target / TOOL_CHANGELOG).write_text(f"# Changelog of `{name}`\n\n{entry}{history}", encoding="utf-8")
            try:
                state = state_of_directory(target)
            except UntrustedToolError as exc:
                self.recover()
                raise UserError(f"cannot deploy {name}: {exc}") from None
            self.chain.append("deploy", name, state)
            verb = "update" if previous else "add"
            breaking = f"BREAKING, {previous.semantic_version()} kept as `{pin_previous}`, " if (
                pin_previous and previous) else ""
            return self._checkpoint(f"{verb} tool {name} {manifest.semver} (v{manifest.version}): {message}",
                                    f"{verb} `{name}` {manifest.semver} ({breaking}{manifest.risk}) — {message}")

    def _pin(self, target: Path, previous: ToolManifest, pinned: str) -> None:
        """Copy the deployed ``target`` to ``tools/<pinned>`` as the previous major version (its manifest renamed,
        ``pinned_of`` naming the function its tool.py defines) and record it in the chain."""
        folder = self.tools_dir / pinned
        if (folder / MANIFEST).exists():
            raise UserError(f"cannot keep {previous.name} {previous.semantic_version()} as {pinned}: a tool of that "
                            "name is deployed", hint=f"retire or remove {pinned} first")
        shutil.copytree(target, folder)
        pinned_manifest = ToolManifest.load(folder / MANIFEST)
        pinned_manifest.name, pinned_manifest.pinned_of = pinned, previous.name
        pinned_manifest.save(folder / MANIFEST)
        (folder / MIGRATION_FILE).unlink(missing_ok=True)
        try:
            state = state_of_directory(folder)
        except UntrustedToolError as exc:
            self.recover()
            raise UserError(f"cannot keep {previous.name} as {pinned}: {exc}") from None
        self.chain.append("pin", pinned, state)

    def retire(self, pinned: str, *, message: str = "") -> Version:
        """Remove a previous major version kept callable by a breaking redeploy (``NAME_vMAJOR``)."""
        with self._lock:
            folder = self.tool_dir(pinned)
            manifest = ToolManifest.load(folder / MANIFEST)
            if not manifest.pinned_of:
                raise UserError(f"{pinned} is not a previous major version of a tool",
                                hint="retire takes NAME@MAJOR of a tool redeployed with breaking changes")
            shutil.rmtree(folder)
            self.chain.append("retire", pinned, None)
            return self._checkpoint(f"retire {pinned} ({manifest.pinned_of} {manifest.semantic_version()}): {message}",
                                    f"retire `{pinned}`, {manifest.pinned_of} {manifest.semantic_version()} "
                                    f"{message}".strip())

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


def _tool_changelog_entries(path: Path) -> str:
    """The entries of a tool's CHANGELOG.md (everything after its title), to keep below a new entry."""
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[text.index("\n## "):].lstrip("\n") if "\n## " in text else ""


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
