"""The dependency gate of self-evolution: what does a generated tool import, and what would it add?

A tool directory holds ``tool.py``, optional ``test_*.py`` files and an optional ``requirements.txt``.
Imports are read from the AST of ``tool.py`` and the test files (plus literal ``__import__("x")`` and
``importlib.import_module("x")``); nothing from the tool is imported or executed. Each imported module is
stdlib (``sys.stdlib_module_names``), local (a file of the tool directory), installed (mapped to its
distribution with ``importlib.metadata.packages_distributions``) or provided by a requirement; anything
else blocks the gate.

Each requirement line is parsed with ``packaging``. It blocks when it is malformed, a pip option or a
direct URL, when it looks like a typo of a popular, allowlisted or installed distribution (Damerau-
Levenshtein distance <= 2, <= 1 for names of four characters or fewer, or the same name once separators
and ``python``/``py`` affixes are dropped), or when its specifier excludes the installed version of an
installed distribution. A requirement the environment does not satisfy yet is a *new* dependency: it must
be on the allowlist, and it raises the risk to HIGH. With ``resolve=True`` new requirements are resolved
by ``pip install --dry-run --only-binary=:all: --report`` (``--only-binary`` so that no sdist's build
script runs on the host; pip runs in an empty directory so that no local path is taken for a package):
a package the index does not have, an unsatisfiable set, or a resolution that would replace an
installed distribution blocks the gate. The pinned resolution becomes ``docker_lines``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from evorag.tools.code_checks import Risk
from evorag.tools.dependency_proposals import (
    declared_specifier,
    installed_conflict,
    locked_conflict,
    nearest_release,
)
from evorag.tools.pip_runner import PipTimeout, last_error, run_pip
from evorag.tools.python_ast import parse_python
from evorag.tools.tool_envs import LockedDistribution, format_lock, locked_versions
from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Small, pure-Python, widely used distributions a generated tool may add without further review of the
# name (the risk is still HIGH: a human approves every new dependency).
DEFAULT_ALLOWLIST: frozenset[str] = frozenset(
    _names("""
    tabulate python-dateutil pytz tzdata pyyaml toml tomli tomli-w attrs more-itertools toolz simplejson
    markdown markdown-it-py mdurl mistune beautifulsoup4 soupsieve html5lib webencodings unidecode
    text-unidecode python-slugify humanize inflect num2words emoji wcwidth isodate iso8601 semver packaging
    pyparsing sqlparse cachetools tenacity six chardet charset-normalizer idna jinja2 markupsafe pygments
    docutils python-frontmatter jmespath parse natsort termcolor textdistance docopt ply
    """)
)

# Popular names that typo-squatters imitate, in rough order of popularity (ties go to the earlier name).
POPULAR_DISTRIBUTIONS: tuple[str, ...] = tuple(
    _names("""
    requests numpy pandas urllib3 setuptools boto3 botocore certifi idna charset-normalizer typing-extensions
    python-dateutil six pyyaml packaging pip s3transfer cryptography attrs jinja2 markupsafe pydantic pytest
    click wheel protobuf pyasn1 rsa jmespath cffi pycparser platformdirs filelock pillow scipy matplotlib
    tqdm colorama pyjwt aiohttp httpx httpcore h11 anyio sniffio openai tabulate beautifulsoup4 soupsieve
    lxml sqlalchemy flask django fastapi uvicorn starlette werkzeug psutil pytz tzdata regex scikit-learn
    torch tensorflow transformers tokenizers huggingface-hub sentence-transformers pyparsing docutils
    pygments rich typer toml tomli pyopenssl paramiko redis pymongo psycopg2 psycopg2-binary mysqlclient
    selenium playwright scrapy networkx sympy nltk spacy opencv-python keras xgboost lightgbm seaborn plotly
    bokeh dash streamlit gradio langchain tiktoken markdown emoji simplejson ujson orjson cachetools
    tenacity more-itertools toolz humanize colorlog loguru python-dotenv dnspython websockets grpcio
    google-auth
    """)
)

# Import names that differ from the distribution that provides them (for requirements not installed yet).
KNOWN_IMPORT_NAMES: dict[str, str] = dict(
    pair.split("=")
    for pair in _names("""
    yaml=pyyaml bs4=beautifulsoup4 dateutil=python-dateutil PIL=pillow sklearn=scikit-learn
    cv2=opencv-python attr=attrs slugify=python-slugify markdown_it=markdown-it-py dotenv=python-dotenv
    jwt=pyjwt frontmatter=python-frontmatter dns=dnspython docx=python-docx magic=python-magic
    tomli_w=tomli-w Levenshtein=levenshtein google=protobuf serial=pyserial usb=pyusb Crypto=pycryptodome
    OpenSSL=pyopenssl pkg_resources=setuptools
    """)
)

_SEPARATORS = re.compile(r"[-_.]+")


@dataclass(slots=True)
class DependencyReport:
    """Verdict of the dependency gate. ``reason`` is the first blocking problem, ``problems`` all of them.

    ``new_requirements`` are the requirement lines the tool adds to the environment; ``resolved`` is what
    pip would install for them (name, version, requested, sha256, url); ``lock`` pins that resolution with
    hashes (committed with the tool, installed into its environment); ``docker_lines`` record that addition
    for the Docker configuration (pinned to the resolution when there was one).
    """

    ok: bool
    reason: str | None
    imports: list[str]
    stdlib: list[str]
    installed: list[dict[str, str]]
    new_requirements: list[str]
    risk: Risk
    risk_reasons: list[str]
    docker_lines: list[str]
    resolved: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    gate: Literal["dependencies"] = "dependencies"
    # The lock of the new requirements (see ``evorag.tools.tool_envs``): "" when there are none or pip did
    # not run. ``proposal``: what would resolve a version conflict (also appended to ``reason``).
    lock: str = ""
    proposal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Environment:
    """The installed distributions: canonical name -> (display name, version), module -> distributions."""

    distributions: dict[str, tuple[str, str]]
    modules: dict[str, list[str]]


def check_dependencies(
    tool_dir: Path,
    *,
    allowlist: Iterable[str] | None = None,
    resolve: bool = True,
    index_timeout: float = 60,
    deployed: Path | None = None,
    replacing: str | None = None,
) -> DependencyReport:
    """Check a tool directory's imports and requirements against this environment.

    ``allowlist`` names the distributions a tool may add (default :data:`DEFAULT_ALLOWLIST`).
    ``resolve=False`` skips pip (no index access) but keeps every other check. ``deployed`` is the plugins
    repository's ``tools`` folder: the versions its tools lock bind this tool too (but the lock of
    ``replacing``, the tool this candidate would replace). Never raises for a bad tool directory: every
    problem ends up in the report, with a proposal when the problem is a version conflict.
    """
    tool_dir = Path(tool_dir)
    allowed = {canonicalize_name(name) for name in (DEFAULT_ALLOWLIST if allowlist is None else allowlist)}
    problems: list[str] = []
    proposals: list[str] = []
    env = installed_environment()
    locked = locked_versions(deployed, exclude=replacing) if deployed is not None else {}

    if not (tool_dir / "tool.py").is_file():
        return _report(False, [f"no tool.py in {tool_dir}"], imports=[], stdlib=[], installed=[])

    imports, import_problems = _read_imports(tool_dir)
    problems += import_problems
    requirements, requirement_problems = _read_requirements(tool_dir / "requirements.txt")
    problems += requirement_problems

    local = _local_modules(tool_dir)
    stdlib = sorted(m for m in imports if m in sys.stdlib_module_names)
    installed: dict[str, dict[str, str]] = {}
    for module in imports:
        if module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        if module in env.modules:
            for dist in env.modules[module]:
                key = canonicalize_name(dist)
                if key in env.distributions:
                    name, version = env.distributions[key]
                    installed[key] = {"name": name, "version": version}
            continue
        if not any(_provides(req, module) for req in requirements):
            problems.append(f"imports {module} which is not installed and not in requirements.txt")

    # Requirements: typos and conflicts block before anything reaches pip; new ones go to pip.
    new: list[Requirement] = []
    not_allowed: list[str] = []
    known = _known_names(allowed, env)
    for req in requirements:
        key = canonicalize_name(req.name)
        if key in env.distributions:
            name, version = env.distributions[key]
            if not _satisfied(req, version):
                problems.append(f"requirement {str(req)!r} conflicts with installed {name} {version}")
                proposals.append(_installed_proposal(req, name, version, resolve=resolve, timeout=index_timeout))
                continue
            installed[key] = {"name": name, "version": version}
            if req.extras:
                new.append(req)  # extras may pull in distributions that are not installed
            continue
        if key not in allowed:
            target = typo_target(req.name, known)
            if target is not None:
                problems.append(
                    f"requirement {req.name!r} looks like a typo of {target!r} (typo-squatting risk); "
                    f"did you mean {target}?"
                )
                continue
            not_allowed.append(req.name)
        elif key in locked and not _satisfied(req, locked[key][0]):
            version, tool = locked[key]
            problems.append(f"requirement {str(req)!r} conflicts with {req.name} {version} locked by tool {tool}")
            proposals.append(_locked_proposal(req, version, tool, deployed, locked, env,
                                              resolve=resolve, timeout=index_timeout))
            continue
        new.append(req)

    # Refused names are refused before pip runs: asking the index about a name already tells whoever
    # watches the index (or squats the name) that this machine wants it.
    problems += [
        f"new dependency {name!r} is not on the allowlist of new dependencies "
        "(add it to the allowlist setting if a human has reviewed it)"
        for name in not_allowed
    ]
    resolved: list[dict[str, Any]] = []
    lock = ""
    if resolve and new and not problems:
        constraints = [*environment_pins(env), *(f"{name}=={version}" for name, (version, _) in locked.items())]
        resolved, resolve_problems = resolve_requirements(
            [str(req) for req in new], env, timeout=index_timeout, constraints=constraints
        )
        problems += resolve_problems
        if resolve_problems and resolve_problems[0].startswith("the requirements cannot be installed together"):
            proposal = _resolution_proposal(new, constraints, env, timeout=index_timeout)
            if proposal:
                proposals.append(proposal)
        if not problems:
            lock, lock_problems = lock_from_resolution(resolved, timeout=index_timeout)
            problems += lock_problems

    report = _report(
        not problems,
        problems,
        imports=imports,
        stdlib=stdlib,
        installed=sorted(installed.values(), key=lambda d: d["name"].lower()),
    )
    proposals = [p for p in proposals if p]
    if proposals:
        report.proposal = " | ".join(proposals)
        report.reason = f"{report.reason}; proposal: {proposals[0]}"
    report.new_requirements = [str(req) for req in new]
    report.resolved = resolved
    report.lock = lock
    if new:
        report.risk = "HIGH"
        report.risk_reasons = [f"adds new dependency {req}" for req in new]
        requested = {canonicalize_name(req.name) for req in new}
        report.risk_reasons += [
            f"also installs {item['name']} {item['version']}"
            for item in resolved
            if canonicalize_name(item["name"]) not in requested
        ]
        if report.ok:
            pins = [f"{item['name']}=={item['version']}" for item in resolved] or report.new_requirements
            report.docker_lines = ["RUN pip install --no-cache-dir " + " ".join(shlex.quote(p) for p in pins)]
    return report


def _installed_proposal(req: Requirement, name: str, version: str, *, resolve: bool, timeout: float) -> str:
    declared = declared_specifier(declared_requirements(), name)
    versions = available_versions(name, timeout=timeout) if resolve else []
    return installed_conflict(req, name, version, declared=declared, versions=versions)


def _locked_proposal(req: Requirement, version: str, tool: str, deployed: Path | None,
                     locked: dict[str, tuple[str, str]], env: _Environment, *, resolve: bool, timeout: float) -> str:
    """Also resolves this requirement together with ``tool``'s own requirements (pip dry run, without
    ``tool``'s lock): the versions that satisfy both tools."""
    both = None
    if resolve and deployed is not None:
        theirs, _ = _read_requirements(deployed / tool / "requirements.txt")
        constraints = [*environment_pins(env),
                       *(f"{name}=={v}" for name, (v, holder) in locked.items() if holder != tool)]
        resolved, problems = resolve_requirements([str(r) for r in theirs] + [str(req)], env, timeout=timeout,
                                                  constraints=constraints)
        if not problems:
            key = canonicalize_name(req.name)
            both = [item for item in resolved if canonicalize_name(item["name"]) == key] or resolved
    return locked_conflict(req, version, tool, both=both)


def _resolution_proposal(new: list[Requirement], constraints: list[str], env: _Environment, *,
                         timeout: float) -> str | None:
    def resolve(lines: list[str], extra: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        return resolve_requirements(lines, env, timeout=timeout, constraints=[*constraints, *extra])

    return nearest_release(new, [str(req) for req in new], resolve,
                           lambda name: available_versions(name, timeout=timeout))


def _report(
    ok: bool, problems: list[str], *, imports: list[str], stdlib: list[str], installed: list[dict[str, str]]
) -> DependencyReport:
    return DependencyReport(
        ok=ok,
        reason=problems[0] if problems else None,
        imports=imports,
        stdlib=stdlib,
        installed=installed,
        new_requirements=[],
        risk="LOW",
        risk_reasons=[],
        docker_lines=[],
        problems=list(problems),
    )


# ----------------------------------------------------------------------------------------------------------
# Reading the tool directory


def _tool_sources(tool_dir: Path) -> list[Path]:
    return [tool_dir / "tool.py", *sorted(tool_dir.glob("test_*.py"))]


def _read_imports(tool_dir: Path) -> tuple[list[str], list[str]]:
    modules: set[str] = set()
    problems: list[str] = []
    for path in _tool_sources(tool_dir):
        try:
            tree = parse_python(path.read_text(encoding="utf-8"), filename=path.name)
        except SyntaxError as exc:
            problems.append(f"cannot read the imports of {path.name}: syntax error at line {exc.lineno}")
            continue
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            problems.append(f"cannot read the imports of {path.name}: {exc}")
            continue
        modules |= imported_modules(tree)
    modules.discard("__future__")
    return sorted(modules), problems


def imported_modules(tree: ast.AST) -> set[str]:
    """Top-level module names a module imports, statically or through literal dynamic imports."""
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            first = node.args[0]
            if (
                name in ("__import__", "import_module")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value
                and not first.value.startswith(".")
            ):
                modules.add(first.value.split(".")[0])
    return modules


def _local_modules(tool_dir: Path) -> set[str]:
    return {path.stem for path in tool_dir.glob("*.py")} | {
        path.parent.name for path in tool_dir.glob("*/__init__.py")
    }


def _read_requirements(path: Path) -> tuple[list[Requirement], list[str]]:
    """Requirements that apply to this environment, and the problems of the lines that could not be read."""
    if not path.is_file():
        return [], []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"cannot read requirements.txt: {exc}"]
    requirements: list[Requirement] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()  # pip's comment rule: '#' at the start or after a space
        if not line:
            continue
        where = f"requirements.txt line {number}"
        if line.startswith("-") or line.endswith("\\"):
            problems.append(f"{where}: pip options and line continuations are not allowed ({line!r})")
            continue
        try:
            req = Requirement(line)
        except (InvalidRequirement, InvalidSpecifier) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else "invalid"
            problems.append(f"{where} is not a valid requirement ({line!r}): {first_line}")
            continue
        if req.url:
            problems.append(f"{where}: direct URL requirements are not allowed ({line!r}); name a package")
            continue
        try:
            if req.marker is not None and not req.marker.evaluate():
                continue  # for another platform or Python
        except UndefinedEnvironmentName as exc:
            problems.append(f"{where} has an invalid environment marker ({line!r}): {exc}")
            continue
        requirements.append(req)
    return requirements, problems


def _provides(req: Requirement, module: str) -> bool:
    """Whether a (not yet installed) requirement plausibly provides ``module``."""
    dist = canonicalize_name(req.name)
    if KNOWN_IMPORT_NAMES.get(module) == dist:
        return True
    name = canonicalize_name(module)
    return dist in (name, f"python-{name}", f"py{name}", f"{name}-python", f"{name}-py")


def _satisfied(req: Requirement, version: str) -> bool:
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True  # a local, non-PEP 440 version: nothing to compare


# ----------------------------------------------------------------------------------------------------------
# The installed environment


def installed_environment() -> _Environment:
    """The installed distributions, cached until a ``sys.path`` directory changes (an install or removal)."""
    stamps = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return _environment(tuple(stamps))


@lru_cache(maxsize=2)
def _environment(_stamps: tuple[tuple[str, int], ...]) -> _Environment:
    distributions: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            distributions.setdefault(canonicalize_name(name), (name, dist.version))
    modules = {module: list(dists) for module, dists in importlib.metadata.packages_distributions().items()}
    return _Environment(distributions=distributions, modules=modules)


# ----------------------------------------------------------------------------------------------------------
# Typo-squatting


def _known_names(allowed: set[str], env: _Environment) -> dict[str, str]:
    """Canonical name -> display name of the names a typo could imitate, most popular first."""
    known: dict[str, str] = {canonicalize_name(name): name for name in POPULAR_DISTRIBUTIONS}
    for name in sorted(allowed):
        known.setdefault(name, name)
    for key, (name, _version) in sorted(env.distributions.items()):
        known.setdefault(key, name)
    return known


def typo_target(name: str, known: dict[str, str] | Iterable[str]) -> str | None:
    """The known distribution ``name`` seems to imitate, or None. An exact (normalized) match is no typo."""
    if not isinstance(known, dict):
        known = {canonicalize_name(k): k for k in known}
    wanted = canonicalize_name(name)
    if wanted in known:
        return None
    squashed = _squash(wanted)
    best: tuple[int, int, str] | None = None
    for rank, (key, display) in enumerate(known.items()):
        if squashed and len(squashed) >= 3 and _squash(key) == squashed:
            return display
        limit = 1 if len(key) <= 4 else 2
        if abs(len(key) - len(wanted)) > limit:
            continue
        distance = damerau_levenshtein(wanted, key, limit)
        if distance <= limit and (best is None or (distance, rank) < best[:2]):
            best = (distance, rank, display)
    return best[2] if best else None


def _squash(name: str) -> str:
    """``python-dateutil`` -> ``dateutil``; ``py-yaml`` and ``pyyaml`` -> ``yaml``."""
    squashed = _SEPARATORS.sub("", name.lower())
    for prefix in ("python", "py"):
        if squashed.startswith(prefix) and len(squashed) > len(prefix):
            squashed = squashed[len(prefix) :]
            break
    for suffix in ("python", "py"):
        if squashed.endswith(suffix) and len(squashed) > len(suffix):
            squashed = squashed[: -len(suffix)]
            break
    return squashed


def damerau_levenshtein(a: str, b: str, limit: int | None = None) -> int:
    """Optimal-string-alignment distance (adjacent transpositions count 1); stops early past ``limit``."""
    if a == b:
        return 0
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if limit is not None and min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


# ----------------------------------------------------------------------------------------------------------
# Resolution with pip


def resolve_requirements(
    requirements: list[str],
    env: _Environment | None = None,
    *,
    timeout: float = 60,
    constraints: Iterable[str] = (),
) -> tuple[list[dict[str, Any]], list[str]]:
    """What ``pip install`` would add for ``requirements``: (distributions, problems). Installs nothing.

    Each distribution is ``{"name", "version", "requested", "sha256", "url"}`` (the SHA-256 of the wheel pip
    chose, as the index or pip reported it). ``constraints`` (``name==version`` lines) bind the resolution: the
    pins of evorag's environment and of the deployed tools' locks, so that pip backtracks to versions that
    fit them instead of proposing to replace them.
    """
    env = env or installed_environment()
    with tempfile.TemporaryDirectory(prefix="evorag-resolve-") as scratch:
        report_path = Path(scratch) / "report.json"
        # Not --quiet: on a conflict pip explains its cause ("X 0.6 depends on Y<20") at the info level.
        options = ["--dry-run", "--no-input", "--only-binary=:all:", "--report", str(report_path)]
        constraint_lines = list(constraints)
        if constraint_lines:
            constraints_path = Path(scratch) / "constraints.txt"
            constraints_path.write_text("\n".join(constraint_lines) + "\n", encoding="utf-8")
            options += ["--constraint", str(constraints_path)]
        try:
            done = run_pip(["install", *options, *requirements], timeout=timeout)
        except PipTimeout:
            return [], [f"dependency resolution timed out after {timeout:g} s (is the package index reachable?)"]
        if done.returncode != 0:  # pip explains a conflict on stdout, errors on stderr
            return [], [_pip_failure(f"{done.stdout}\n{done.stderr}", timeout=timeout)]
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return [], [f"dependency resolution produced no readable report: {exc}"]

    resolved: list[dict[str, Any]] = []
    problems: list[str] = []
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        name, version = metadata.get("name", "?"), metadata.get("version", "?")
        download = item.get("download_info") or {}
        hashes = (download.get("archive_info") or {}).get("hashes") or {}
        resolved.append({"name": name, "version": version, "requested": bool(item.get("requested")),
                         "sha256": hashes.get("sha256"), "url": download.get("url", "")})
        current = env.distributions.get(canonicalize_name(name))
        if current is not None and current[1] != version:
            problems.append(
                f"installing the requirements would replace installed {current[0]} {current[1]} with {version}"
            )
    resolved.sort(key=lambda item: item["name"].lower())
    return resolved, problems


def environment_pins(env: _Environment | None = None) -> list[str]:
    """``name==version`` of every installed distribution with a PEP 440 version: constraints that keep a
    resolution from replacing anything evorag runs on."""
    env = env or installed_environment()
    pins = []
    for name, version in sorted(env.distributions.values()):
        try:
            Version(version)
        except InvalidVersion:
            continue
        pins.append(f"{name}=={version}")
    return pins


def declared_requirements(distribution: str = "evorag") -> list[Requirement]:
    """The requirements ``distribution`` declares (its metadata), without optional extras, for this platform."""
    try:
        lines = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    declared = []
    for line in lines:
        try:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
        except (InvalidRequirement, InvalidSpecifier, UndefinedEnvironmentName):
            continue
        declared.append(req)
    return declared


def available_versions(name: str, *, binary_only: bool = True, timeout: float = 60) -> list[str]:
    """The versions the package index offers for ``name``, newest first (``pip index versions``, which reads
    the index's file list and builds nothing); [] when it has none or cannot be asked."""
    options = ["--only-binary=:all:"] if binary_only else []
    try:
        done = run_pip(["index", "versions", "--json", "--no-input", *options, name], timeout=timeout)
    except PipTimeout:
        return []
    if done.returncode != 0:
        return []
    try:
        versions = json.loads(done.stdout).get("versions", [])
    except (ValueError, AttributeError):
        return []
    return [str(v) for v in versions if isinstance(v, str)]


def lock_from_resolution(resolved: list[dict[str, Any]], *, timeout: float = 60) -> tuple[str, list[str]]:
    """The lock text for a resolution (see ``evorag.tools.tool_envs``), and the problems that prevent one.

    A distribution whose hash the index did not report is downloaded (wheel only, no dependencies) and
    hashed here, so that every line of the lock carries one."""
    items: list[LockedDistribution] = []
    problems: list[str] = []
    for entry in resolved:
        digest = entry.get("sha256")
        if not digest:
            digest, problem = _hash_by_download(entry["name"], entry["version"], timeout=timeout)
            if problem:
                problems.append(problem)
                continue
        items.append(LockedDistribution(entry["name"], entry["version"], (digest,)))
    return (format_lock(items) if items and not problems else ""), problems


def _hash_by_download(name: str, version: str, *, timeout: float) -> tuple[str | None, str | None]:
    with tempfile.TemporaryDirectory(prefix="evorag-hash-") as scratch:
        try:
            done = run_pip(["download", "--no-deps", "--only-binary=:all:", "--no-input", "--quiet", "--dest",
                            scratch, f"{name}=={version}"], timeout=timeout)
        except PipTimeout:
            return None, f"downloading {name} {version} to hash it timed out"
        wheels = sorted(Path(scratch).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            return None, f"cannot hash {name} {version}: {last_error(done.stderr)}"
        return hashlib.sha256(wheels[0].read_bytes()).hexdigest(), None


_NO_VERSIONS = re.compile(
    r"Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)"
)


def _pip_failure(stderr: str, *, timeout: float = 60) -> str:
    match = _NO_VERSIONS.search(stderr)
    if match:
        requirement, versions = match.group(1), match.group(2).strip()
        if versions == "none":
            name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
            # Listing the index's files builds nothing: safe to ask whether sdists are all there is.
            sources = available_versions(name, binary_only=False, timeout=timeout) if name else []
            if sources:
                return (
                    f"{requirement} has no binary wheel for this platform, only source distributions "
                    f"({', '.join(sources[:5])}): refused, since building one runs its setup.py on the host; "
                    "pick a package that publishes wheels"
                )
            return (
                f"unknown package {requirement}: the package index has no release of it "
                "(or none with a wheel for this platform)"
            )
        shown = versions if len(versions) <= 80 else "..., " + versions[-70:]
        return f"no release of {requirement} satisfies the requirement (available: {shown})"
    if "ResolutionImpossible" in stderr or "conflict is caused by" in stderr:
        causes = [
            line.strip().replace("The user requested (constraint) ", "fixed by evorag's environment or a tool's "
                                 "lock: ")
            for line in stderr.splitlines() if " depends on " in line or "requested " in line
        ]
        detail = "; ".join(causes[:4]) or "conflicting dependencies"
        return f"the requirements cannot be installed together: {detail}"
    return f"dependency resolution failed: {last_error(stderr)}"
