"""Restoring the plugins repository from a backup's git bundle, trusting only what the manifest chain vouches for.

1. The bundle must verify (``git bundle verify``) and clone with object checks (``transfer.fsckObjects``);
   its HEAD tree is inspected before anything is checked out: only ``CHANGELOG.md``, the chain and
   ``tools/<name>/<file>`` regular files within size and count limits (no links, no submodules).
2. Each tool in the tree is compared with the chain's latest entry for it, with the key chosen by the
   caller (the home's, or the one inside the backup when the person restoring says so). A tool that
   matches stays deployed. Any other tool (no key, a chain that does not verify, files or manifest that
   differ, a tool the chain never saw) is taken out of the tool set and its code copied to
   ``quarantine/<name>/`` as a candidate, to go back through the gates (see ``evorag.tools.backup``).
3. The chain is re-keyed for the new home when it could not be verified, so that it vouches for nothing
   it did not check; the quarantine is committed as a checkpoint.

Everything happens in a staging directory: a refusal raises UserError and the caller deletes it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from evorag.tools.plugins._chain import (
    CHAIN_FILE,
    MAX_TOOL_FILE_BYTES,
    MAX_TOOL_FILES,
    ManifestChain,
    UntrustedToolError,
    state_of_directory,
)
from evorag.tools.tool_envs import DOCKER_FRAGMENT, UNION_LOCK, write_union_files

from evorag.errors import UserError

_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_CANDIDATE_FILE = re.compile(r"^(tool\.py|requirements\.txt|test_[A-Za-z0-9_]{1,100}\.py)$")
MAX_TREE_ENTRIES = 10_000
MAX_TREE_BYTES = 256 * 1024 * 1024
MAX_ROOT_FILE_BYTES = 64 * 1024 * 1024  # CHANGELOG.md and the chain grow with every deploy
GIT_TIMEOUT_S = 300


@dataclass(slots=True)
class PluginsRestore:
    verified: list[str] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)  # {"tool", "reason", "path"}
    key: str = "none"  # which key checked the chain: "home", "backup" or "none"
    chain: str = "verified"  # or why it could not be

    def to_dict(self) -> dict:
        return {"verified": self.verified, "quarantined": self.quarantined, "key": self.key, "chain": self.chain}


def restore_plugins(bundle: Path, repo_dir: Path, quarantine_dir: Path, *, key: bytes | None, key_source: str,
                    new_key: bytes, label: str) -> PluginsRestore:
    """Clone ``bundle`` into ``repo_dir``; keep verified tools, move the others to ``quarantine_dir``.

    ``key`` (from ``key_source``) checks the chain; ``new_key`` is the key of the home being restored,
    which the chain must verify with afterwards.
    """
    _verify_bundle(bundle, repo_dir.parent, label)
    _git(["-c", "transfer.fsckObjects=true", "clone", "-q", "--no-checkout", str(bundle), str(repo_dir)],
         label, "cannot be cloned")
    _git(["-C", str(repo_dir), "rev-parse", "--verify", "-q", "HEAD^{commit}"], label, "has no HEAD commit")
    _check_tree(repo_dir, label)
    _git(["-C", str(repo_dir), "-c", "core.symlinks=false", "reset", "-q", "--hard", "HEAD"], label,
         "cannot be checked out")
    for name, value in (("user.name", "evorag"), ("user.email", "evorag@localhost")):
        _git(["-C", str(repo_dir), "config", name, value], label, "cannot be configured")

    report = PluginsRestore(key=key_source if key else "none")
    chain_path = repo_dir / CHAIN_FILE
    if key is None:
        verdict_ok, report.chain, latest = False, "no key to check the manifest chain with", {}
    else:
        verdict = ManifestChain(chain_path, key).verify()
        verdict_ok, latest = verdict.ok, verdict.latest
        report.chain = "verified" if verdict.ok else str(verdict.reason)
        if verdict.ok and not chain_path.exists():
            verdict_ok, report.chain = False, "the backup has no manifest chain (made before evorag wrote one)"

    tools_dir = repo_dir / "tools"
    for tool_dir in sorted(tools_dir.iterdir()) if tools_dir.is_dir() else []:
        reason = _mismatch(tool_dir, latest.get(tool_dir.name)) if verdict_ok else report.chain
        if reason is None:
            report.verified.append(tool_dir.name)
            continue
        target = quarantine_dir / tool_dir.name
        _copy_candidate(tool_dir, target)
        shutil.rmtree(tool_dir)
        report.quarantined.append({"tool": tool_dir.name, "reason": reason, "path": str(target)})

    rekey = not (verdict_ok and key == new_key)
    if not rekey and not report.quarantined:
        return report  # everything verified under the home's key: the history stays exactly as backed up
    if rekey:
        # Nothing in the old chain can be vouched for under the new home's key: start a new one.
        chain_path.write_text("")
    chain = ManifestChain(chain_path, new_key)
    if rekey:
        chain.append("restart", "", None, reason=f"restored from a backup: {report.chain}")
    for item in report.quarantined:
        chain.append("quarantine", item["tool"], None, reason=item["reason"])
    tools_dir.mkdir(exist_ok=True)
    _git(["-C", str(repo_dir), "add", "-A"], label, "cannot be committed")
    summary = (f"restore: {len(report.verified)} tools verified, {len(report.quarantined)} quarantined"
               + (f" ({', '.join(i['tool'] for i in report.quarantined)})" if report.quarantined else ""))
    with (repo_dir / "CHANGELOG.md").open("a", encoding="utf-8") as handle:
        handle.write(f"\n- {summary}\n")
    write_union_files(repo_dir, tools_dir)  # without the quarantined tools' locks
    _git(["-C", str(repo_dir), "add", "-A"], label, "cannot be committed")
    _git(["-C", str(repo_dir), "commit", "-q", "-m", summary], label, "cannot be committed")
    return report


def _mismatch(tool_dir: Path, entry: dict | None) -> str | None:
    """Why ``tool_dir`` does not match the chain's latest ``entry`` for it, or None when it does."""
    try:
        state = state_of_directory(tool_dir)
    except UntrustedToolError as exc:
        return f"not a well-formed tool: {exc}"
    if entry is None or entry.get("state") is None:
        return "the manifest chain has no deployment of this tool"
    if entry["state"] == state.digest:
        return None
    differences = []
    if entry.get("risk") != state.risk:
        differences.append(f"risk {entry.get('risk')} in the chain, {state.risk} in the manifest")
    if entry.get("description") != state.description:
        differences.append("the description differs from the deployed one")
    if entry.get("parameters_schema") != state.parameters_schema:
        differences.append("the parameters schema differs from the deployed one")
    recorded = entry.get("files") if isinstance(entry.get("files"), dict) else {}
    changed = sorted(n for n in set(recorded) | set(state.files) if recorded.get(n) != state.files.get(n))
    if changed and not differences:
        differences.append(f"{', '.join(changed)[:200]} differ from what was deployed")
    elif changed:
        differences.append(f"changed files: {', '.join(changed)[:200]}")
    return "; ".join(differences) or "its files differ from what was deployed"


def _copy_candidate(tool_dir: Path, target: Path) -> None:
    """Copy the files that make a candidate (tool.py, requirements.txt, test_*.py), regular files only.
    The manifest is left behind on purpose: the gates derive a new one from the code."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(os.scandir(tool_dir), key=lambda e: e.name):
        if _CANDIDATE_FILE.match(entry.name) and entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, target / entry.name, follow_symlinks=False)


def _verify_bundle(bundle: Path, scratch_parent: Path, label: str) -> None:
    """``git bundle verify`` needs a repository to run in: an empty one, so that a bundle needing
    commits from elsewhere (an incremental bundle) fails too."""
    scratch = scratch_parent / "bundle-check"
    _git(["init", "-q", str(scratch)], label, "cannot be checked (git init failed)")
    try:
        _git(["-C", str(scratch), "bundle", "verify", "-q", str(bundle)], label, "is not a valid git bundle")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_tree(repo_dir: Path, label: str) -> None:
    listing = _git(["-C", str(repo_dir), "ls-tree", "-r", "-l", "-z", "--full-tree", "HEAD"], label,
                   "cannot be listed")
    entries = [raw for raw in listing.split("\0") if raw]
    if len(entries) > MAX_TREE_ENTRIES:
        raise _refuse(label, f"the plugins repository has more than {MAX_TREE_ENTRIES} files")
    total = 0
    per_tool: dict[str, int] = {}
    for raw in entries:
        meta, _, path = raw.partition("\t")
        fields = meta.split()
        if len(fields) != 4:
            raise _refuse(label, "the plugins repository listing is malformed")
        mode, kind, _sha, size = fields
        shown = path[:200]
        if kind != "blob" or mode not in ("100644", "100755"):
            raise _refuse(label, f"the plugins repository holds {shown!r}, which is not a regular file")
        parts = path.split("/")
        if parts in (["CHANGELOG.md"], [CHAIN_FILE], [UNION_LOCK], [DOCKER_FRAGMENT]):
            limit = MAX_ROOT_FILE_BYTES
        elif len(parts) == 3 and parts[0] == "tools" and _TOOL_NAME.match(parts[1]) and _FILE_NAME.match(parts[2]):
            limit = MAX_TOOL_FILE_BYTES
            per_tool[parts[1]] = per_tool.get(parts[1], 0) + 1
            if per_tool[parts[1]] > MAX_TOOL_FILES:
                raise _refuse(label, f"tool {parts[1]} in the plugins repository has more than {MAX_TOOL_FILES} files")
        else:
            raise _refuse(label, f"the plugins repository holds an unexpected file {shown!r}")
        if int(size) > limit:
            raise _refuse(label, f"{shown} in the plugins repository is {size} bytes, more than {limit}")
        total += int(size)
        if total > MAX_TREE_BYTES:
            raise _refuse(label, f"the plugins repository's files add up to more than {MAX_TREE_BYTES} bytes")


def _git(args: list[str], label: str, failure: str) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, errors="replace", env=env,
                              timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise _refuse(label, f"the plugins bundle {failure}: git took longer than {GIT_TIMEOUT_S} s") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["git failed"])[-1][:200]
        raise _refuse(label, f"the plugins bundle {failure}: {detail}")
    return done.stdout


def _refuse(label: str, reason: str) -> UserError:
    return UserError(f"refusing {label}: {reason}", hint="nothing was restored; the home is unchanged")
