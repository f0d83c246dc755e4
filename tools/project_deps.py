"""The dependencies a project declares, and the versions it pins or locks.

Read: ``pyproject.toml`` (``[project] dependencies``, ``[tool.poetry.dependencies]``), ``requirements*.txt``,
``uv.lock`` and ``poetry.lock`` (their versions win: they are what is installed), ``package.json`` with
``package-lock.json``. A version is known when a lock file gives it or the declaration pins it exactly
(``==1.2.3``); otherwise it stays None and the caller decides (the installed version, or unresolved).
Files are parsed as data (TOML, JSON, requirement lines), never run.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from evorag.errors import UserError

MAX_FILE_BYTES = 5 * 1024 * 1024
_EXACT_NPM = re.compile(r"^=?v?(\d+\.\d+\.\d+(?:[-+][\w.]+)?)$")


@dataclass(slots=True)
class Dependency:
    name: str  # canonical (PEP 503 for Python; as written for npm)
    ecosystem: str  # "python" | "npm"
    version: str | None  # exact: locked or pinned
    declared: str  # where it was found, e.g. "pyproject.toml"


def project_dependencies(root: Path) -> list[Dependency]:
    """The dependencies of the project in folder ``root``, sorted by ecosystem and name. Raises UserError when
    the folder holds no file this reads, or one of them cannot be parsed."""
    found: dict[tuple[str, str], Dependency] = {}
    read_any = False

    def declare(name: str, ecosystem: str, version: str | None, declared: str) -> None:
        key = (ecosystem, name)
        if key not in found:
            found[key] = Dependency(name, ecosystem, version, declared)
        elif version and not found[key].version:
            found[key].version = version

    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        read_any = True
        data = _toml(pyproject)
        for line in (data.get("project") or {}).get("dependencies") or []:
            name, version = _requirement(str(line), pyproject.name)
            if name:
                declare(name, "python", version, pyproject.name)
        poetry = ((data.get("tool") or {}).get("poetry") or {}).get("dependencies") or {}
        for name, spec in poetry.items():
            if name.lower() != "python":
                declare(canonicalize_name(name), "python", _poetry_exact(spec), pyproject.name)
    for requirements in sorted(root.glob("requirements*.txt")):
        read_any = True
        for line in _text(requirements).splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "-", "git+", "http:", "https:", "file:")):
                continue  # comments, options (-r, -e, --hash...) and direct references: no package index name
            name, version = _requirement(line, requirements.name)
            if name:
                declare(name, "python", version, requirements.name)
    for lock in ("uv.lock", "poetry.lock"):
        path = root / lock
        if path.is_file():
            read_any = True
            locked = {canonicalize_name(str(p.get("name"))): str(p.get("version"))
                      for p in _toml(path).get("package") or [] if p.get("name") and p.get("version")}
            for (ecosystem, name), dependency in found.items():
                if ecosystem == "python" and name in locked:
                    dependency.version = locked[name]
    package_json = root / "package.json"
    if package_json.is_file():
        read_any = True
        data = _json(package_json)
        lock = _json(root / "package-lock.json") if (root / "package-lock.json").is_file() else {}
        installed = lock.get("packages") if isinstance(lock.get("packages"), dict) else {}
        for name, spec in (data.get("dependencies") or {}).items():
            locked = (installed.get(f"node_modules/{name}") or {}).get("version")
            pinned = _EXACT_NPM.match(str(spec))
            declare(str(name), "npm", locked or (pinned.group(1) if pinned else None), package_json.name)
    if not read_any:
        raise UserError(f"no dependency files in {root}",
                        hint="sync reads pyproject.toml, requirements*.txt, uv.lock, poetry.lock and package.json")
    return sorted(found.values(), key=lambda d: (d.ecosystem, d.name))


def _poetry_exact(spec: object) -> str | None:
    """The version a Poetry constraint pins exactly (``"1.2.3"`` or ``"==1.2.3"``; ``^``, ``~`` and ranges: None)."""
    text = spec.get("version") if isinstance(spec, dict) else spec
    if not isinstance(text, str):
        return None
    text = text.strip().removeprefix("==")
    return text if re.fullmatch(r"\d[\w.!+-]*", text) else None


def _requirement(line: str, where: str) -> tuple[str | None, str | None]:
    """(canonical name, exact pinned version) of a PEP 508 line; (None, None) when its marker excludes this
    interpreter. Raises UserError for a line that is not a requirement."""
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        raise UserError(f"{where}: not a requirement: {line[:80]!r}", hint=str(exc)[:200]) from None
    if requirement.marker is not None and not requirement.marker.evaluate():
        return None, None
    pins = [spec.version for spec in requirement.specifier if spec.operator in ("==", "===")
            and "*" not in spec.version]
    return canonicalize_name(requirement.name), pins[0] if len(pins) == 1 else None


def _text(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(f"{path.name} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path.name} is not UTF-8 text") from None


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path.name} is not valid TOML: {exc}") from None


def _json(path: Path) -> dict:
    try:
        data = json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path.name} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path.name} does not hold a JSON object")
    return data
