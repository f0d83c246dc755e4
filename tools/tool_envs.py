"""Tool environments: the locked new dependencies of a deployed tool, installed where the sandbox mounts them.

The lock (``requirements.lock``, written by the dependency gate, approved by a person with the rest of the
candidate, committed with the tool in the plugins repository) pins every distribution the tool adds to
evorag's environment, its dependencies included, each to one version and the SHA-256 of one binary wheel:

    # evorag lock: python cp311 linux-x86_64; binary wheels only, each pinned by its SHA-256
    tinywords==0.5 \\
        --hash=sha256:00da645a...

What the lock leaves out is already installed in evorag's environment, which the sandbox shares read-only.

Layout under ``EVORAG_HOME/envs`` (content-addressed: tools with the same lock share one environment):

    envs/<sha256 of the lock>/requirements.lock   the lock itself (its SHA-256 is the folder's name)
    envs/<sha256 of the lock>/site/               ``pip install --target``: mounted read-only in the sandbox
                                                  at /opt/evorag-env, first on PYTHONPATH
    envs/<sha256 of the lock>/env.json            what was installed: distributions, every file's SHA-256
    envs/.build-<random>/                         an install under way, renamed into place when complete

Installing runs ``pip install --no-deps --require-hashes --only-binary=:all: --target``: the lock is the whole
closure, every file must match its hash, and only wheels are unpacked (no ``setup.py`` runs; ``.pth`` files
in the folder do nothing, since a PYTHONPATH entry is not a site directory). The finished folder is made
read-only and world-readable: the sandbox runs as uid 65534.

The union of every deployed tool's lock, checked for conflicts, is written next to the tools as
``plugins/requirements.lock``, with ``plugins/Dockerfile.tools`` holding the lines that install it into an
image (``deploy/Dockerfile`` does the same from a build context).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evorag.tools.pip_runner import last_error, run_pip
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from evorag.errors import ExternalError, UserError

LOCK_FILE = "requirements.lock"
ENV_RECORD = "env.json"
SITE = "site"
UNION_LOCK = "requirements.lock"
DOCKER_FRAGMENT = "Dockerfile.tools"
# Where the image keeps the union lock (deploy/Dockerfile and Dockerfile.tools agree on it).
IMAGE_LOCK_PATH = "/opt/evorag/tools-requirements.lock"
MAX_LOCK_BYTES = 200_000
_KEY = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")
_INSTALL_OPTIONS = ["--no-deps", "--require-hashes", "--only-binary=:all:", "--no-input", "--quiet",
                    "--disable-pip-version-check", "--no-warn-script-location"]


def lock_header() -> str:
    """The lock's first line: the interpreter and platform its wheels were chosen for."""
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return f"# evorag lock: python {python} {sysconfig.get_platform()}; binary wheels only, each pinned by its SHA-256\n"


@dataclass(frozen=True, slots=True)
class LockedDistribution:
    name: str
    version: str
    sha256: tuple[str, ...]

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    def pin(self) -> str:
        return f"{self.name}=={self.version}"


def format_lock(items: list[LockedDistribution]) -> str:
    """The lock text for ``items`` (sorted by name, so that the same set always gives the same text)."""
    lines = [lock_header()]
    for item in sorted(items, key=lambda i: i.key):
        hashes = " \\\n".join(f"    --hash=sha256:{digest}" for digest in item.sha256)
        lines.append(f"{item.pin()} \\\n{hashes}\n")
    return "".join(lines)


def parse_lock(text: str) -> list[LockedDistribution]:
    """The distributions of a lock; UserError for anything that is not ``name==version --hash=sha256:...``."""
    if len(text) > MAX_LOCK_BYTES:
        raise UserError(f"the lock is larger than {MAX_LOCK_BYTES} bytes")
    logical = re.sub(r"\\\n", " ", text)
    items: dict[str, LockedDistribution] = {}
    for number, raw in enumerate(logical.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pin, *options = line.split()
        name, sep, version = pin.partition("==")
        if not sep or not _NAME.match(name):
            raise UserError(f"lock line {number} is not name==version: {pin[:80]!r}")
        try:
            Version(version)
        except InvalidVersion:
            raise UserError(f"lock line {number}: invalid version {version[:40]!r}") from None
        hashes = []
        for option in options:
            match = _HASH.match(option.removeprefix("--hash="))
            if not option.startswith("--hash=") or not match:
                raise UserError(f"lock line {number}: only --hash=sha256:<hex> may follow the pin, not {option[:80]!r}")
            hashes.append(match.group(1))
        if not hashes:
            raise UserError(f"lock line {number}: {pin} has no --hash=sha256:... (every file must be pinned)")
        item = LockedDistribution(name, version, tuple(hashes))
        if item.key in items:
            raise UserError(f"lock line {number}: {name} is locked twice")
        items[item.key] = item
    return list(items.values())


def lock_key(text: str) -> str:
    """The content address of a lock: the SHA-256 of its text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class EnvironmentStatus:
    """One tool environment as ``evorag doctor`` reports it."""

    key: str
    path: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    distributions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class ToolEnvironments:
    """The tool environments under ``root`` (EVORAG_HOME/envs)."""

    def __init__(self, root: Path, *, timeout: float = 300.0) -> None:
        self.root = Path(root).absolute()  # pip runs in a scratch directory of its own
        self.timeout = timeout

    def site(self, lock_text: str) -> Path:
        """Where the environment of ``lock_text`` is (or would be) installed."""
        return self.root / lock_key(lock_text) / SITE

    def installed(self, lock_text: str) -> bool:
        return (self.root / lock_key(lock_text) / ENV_RECORD).is_file()

    def for_lock(self, lock_text: str) -> Path | None:
        """The ``site`` folder to mount for ``lock_text`` (installed first if needed), or None when evorag's own
        environment already holds every locked version (an image built from the union lock: no index needed)."""
        items = parse_lock(lock_text)
        if items and all(_installed_version(item.name) == item.version for item in items):
            return None
        return self.ensure(lock_text)

    def ensure(self, lock_text: str) -> Path:
        """The environment of ``lock_text``, installed first when it is not there yet; returns its ``site``
        folder (what the sandbox mounts). Raises UserError for a malformed lock, ExternalError when pip fails."""
        items = parse_lock(lock_text)
        if not items:
            raise UserError("the lock pins no distribution: there is nothing to install")
        key = lock_key(lock_text)
        final = self.root / key
        if (final / ENV_RECORD).is_file():
            return final / SITE
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the sandbox's uid reaches the environments through here (Docker, direct mode)
        build = self.root / f".build-{secrets.token_hex(8)}"
        build.mkdir(mode=0o755)
        try:
            started = time.monotonic()
            (build / LOCK_FILE).write_text(lock_text, encoding="utf-8")
            done = run_pip(["install", *_INSTALL_OPTIONS, "--target", str(build / SITE), "-r", str(build / LOCK_FILE)],
                           timeout=self.timeout)
            if done.returncode != 0:
                raise ExternalError(f"installing the locked dependencies failed: {last_error(done.stderr)}",
                                    hint="check the package index; the lock's hashes must match the files it serves")
            installed = _distributions(build / SITE)
            missing = [item.pin() for item in items if installed.get(item.key) != item.version]
            if missing:
                raise ExternalError(f"pip did not install {', '.join(missing)} from the lock")
            record = {"lock_sha256": key, "python": sys.version.split()[0], "created_at": round(time.time(), 3),
                      "seconds": round(time.monotonic() - started, 3),
                      "distributions": sorted(f"{name}=={version}" for name, version in installed.items()),
                      "files": _file_hashes(build / SITE)}
            (build / ENV_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            _make_read_only(build)
            try:
                build.rename(final)
            except OSError:
                if not (final / ENV_RECORD).is_file():  # not a concurrent install of the same lock: a real failure
                    raise
        finally:
            if build.exists():
                remove_tree(build)
        return final / SITE

    def installed_keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _KEY.match(p.name))

    def check(self, key: str, *, sandbox_uid: int | None = None) -> EnvironmentStatus:
        """Whether environment ``key`` is intact: its lock hashes to its name, the locked distributions are
        the installed ones, every file matches the SHA-256 recorded at install time, and the sandbox's uid
        (``sandbox_uid``, when given) can read all of it while no one but the owner can change it."""
        path = self.root / key
        status = EnvironmentStatus(key=key, path=str(path), ok=False)
        problems = status.problems
        try:
            lock_text = (path / LOCK_FILE).read_text(encoding="utf-8")
            record = json.loads((path / ENV_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"incomplete environment: {exc}")
            return status
        if lock_key(lock_text) != key:
            problems.append("its requirements.lock does not hash to the folder's name (edited after the install)")
        try:
            items = parse_lock(lock_text)
        except UserError as exc:
            problems.append(f"unreadable lock: {exc}")
            items = []
        installed = _distributions(path / SITE)
        status.distributions = sorted(f"{name}=={version}" for name, version in installed.items())
        for item in items:
            if installed.get(item.key) != item.version:
                problems.append(f"{item.pin()} is locked but {installed.get(item.key) or 'not installed'}")
        recorded = record.get("files") if isinstance(record, dict) else None
        actual = _file_hashes(path / SITE)
        if not isinstance(recorded, dict):
            problems.append("env.json records no file hashes")
        else:
            changed = sorted(name for name in set(recorded) | set(actual) if recorded.get(name) != actual.get(name))
            if changed:
                problems.append(f"{len(changed)} file(s) differ from the install: {', '.join(changed[:3])}")
        problems += _permission_problems(path, sandbox_uid)
        status.ok = not problems
        return status

    def remove(self, key: str) -> None:
        if not _KEY.match(key):
            raise UserError(f"invalid environment id {key!r}")
        remove_tree(self.root / key)


# --- the union of the deployed tools' locks --------------------------------------------------------------


@dataclass(slots=True)
class UnionLock:
    """Every deployed tool's locked distributions, once each, with the tools that need them."""

    items: list[LockedDistribution]
    users: dict[str, list[str]]  # canonical name -> tools

    def text(self) -> str:
        lines = [lock_header(),
                 ("# The union of the deployed tools' locks (tools/*/requirements.lock), written by evorag at every\n"
                  "# deploy, rollback and removal: do not edit. Install with\n"
                  "#   pip install --no-deps --require-hashes --only-binary=:all: -r requirements.lock\n")]
        for item in sorted(self.items, key=lambda i: i.key):
            lines.append(f"# used by: {', '.join(self.users[item.key])}\n")
            hashes = " \\\n".join(f"    --hash=sha256:{digest}" for digest in item.sha256)
            lines.append(f"{item.pin()} \\\n{hashes}\n")
        return "".join(lines)

    def dockerfile(self) -> str:
        pins = ", ".join(item.pin() for item in sorted(self.items, key=lambda i: i.key)) or "none"
        return (
            "# Generated by evorag at every deploy, rollback and removal of a tool: do not edit.\n"
            f"# The evolved tools' dependencies ({pins}), from requirements.lock next to this file.\n"
            "# Paste into a Dockerfile whose build context holds this plugins folder as plugins/ (deploy/Dockerfile\n"
            "# does the same through its `plugins` build context).\n"
            f"COPY plugins/{UNION_LOCK} {IMAGE_LOCK_PATH}\n"
            "RUN pip install --no-cache-dir --no-deps --require-hashes --only-binary=:all: "
            f"-r {IMAGE_LOCK_PATH}\n"
        )


def union_of(locks: dict[str, str]) -> UnionLock:
    """The union of tool name -> lock text; UserError when two tools lock one distribution differently."""
    chosen: dict[str, LockedDistribution] = {}
    users: dict[str, list[str]] = {}
    for tool, text in sorted(locks.items()):
        try:
            items = parse_lock(text)
        except UserError as exc:
            raise UserError(f"the lock of tool {tool} is unreadable: {exc}") from None
        for item in items:
            earlier = chosen.get(item.key)
            if earlier is not None and (earlier.version, earlier.sha256) != (item.version, item.sha256):
                raise UserError(
                    f"the tools' locks conflict: {users[item.key][0]} locks {earlier.pin()}, {tool} locks "
                    f"{item.pin()}", hint="redeploy one of them so that both lock the same version")
            chosen.setdefault(item.key, item)
            users.setdefault(item.key, []).append(tool)
    return UnionLock(list(chosen.values()), users)


def tool_locks(tools_dir: Path) -> dict[str, str]:
    """Tool name -> lock text of every tool directory under ``tools_dir`` that has a lock."""
    if not tools_dir.is_dir():
        return {}
    return {path.parent.name: path.read_text(encoding="utf-8") for path in sorted(tools_dir.glob(f"*/{LOCK_FILE}"))}


def write_union_files(plugins_root: Path, tools_dir: Path) -> UnionLock:
    """Write ``requirements.lock`` and ``Dockerfile.tools`` into ``plugins_root`` from the tools' locks."""
    union = union_of(tool_locks(tools_dir))
    (plugins_root / UNION_LOCK).write_text(union.text(), encoding="utf-8")
    (plugins_root / DOCKER_FRAGMENT).write_text(union.dockerfile(), encoding="utf-8")
    return union


def locked_versions(tools_dir: Path, *, exclude: str | None = None) -> dict[str, tuple[str, str]]:
    """Canonical name -> (version, tool) of what the deployed tools lock (but ``exclude``'s own lock)."""
    pinned: dict[str, tuple[str, str]] = {}
    for tool, text in tool_locks(tools_dir).items():
        if tool == exclude:
            continue
        try:
            items = parse_lock(text)
        except UserError:
            continue  # reported by `evorag doctor` and refused at the next checkpoint
        for item in items:
            pinned.setdefault(item.key, (item.version, tool))
    return pinned


# --- helpers ---------------------------------------------------------------------------------------------


def _distributions(site: Path) -> dict[str, str]:
    """Canonical name -> version of the distributions installed in ``site`` (read from their dist-info)."""
    import importlib.metadata  # the stdlib's, reading only this folder

    found: dict[str, str] = {}
    if site.is_dir():
        for dist in importlib.metadata.distributions(path=[str(site)]):
            name = dist.metadata["Name"]
            if name:
                found[canonicalize_name(name)] = dist.version
    return found


def _installed_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _file_hashes(site: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    if not site.is_dir():
        return hashes
    for directory, _dirs, files in os.walk(site):
        for name in files:
            path = Path(directory) / name
            if path.is_symlink() or "__pycache__" in path.parts:
                continue  # bytecode is a cache pip writes; links are not followed
            hashes[str(path.relative_to(site))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def _make_read_only(root: Path) -> None:
    """Directories 0555, files 0444 (0555 when executable): readable by every uid, writable by none."""
    for directory, dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                path.chmod(0o555 if path.stat().st_mode & 0o111 else 0o444)
        for name in dirs:
            path = Path(directory) / name
            if not path.is_symlink():
                path.chmod(0o555)
    root.chmod(0o555)


def _permission_problems(root: Path, sandbox_uid: int | None) -> list[str]:
    problems: list[str] = []
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files, None]:
            path = Path(directory) / name if name else Path(directory)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o022:
                problems.append(f"{path.relative_to(root.parent)} is writable by others (mode {mode:o})")
            elif sandbox_uid is not None and info.st_uid != sandbox_uid:
                needed = 0o005 if stat.S_ISDIR(info.st_mode) else 0o004
                if mode & needed != needed:
                    problems.append(f"{path.relative_to(root.parent)} is not readable by the sandbox's uid "
                                    f"{sandbox_uid} (mode {mode:o})")
            if len(problems) >= 5:
                return problems
    return problems


def remove_tree(path: Path) -> None:
    """Remove a (read-only) environment folder."""
    def writable(function, name, _exc) -> None:
        os.chmod(os.path.dirname(name), 0o755)
        try:
            os.chmod(name, 0o755)
        except OSError:
            pass
        function(name)

    if path.exists():
        shutil.rmtree(path, onexc=writable) if sys.version_info >= (3, 12) else shutil.rmtree(path, onerror=writable)
