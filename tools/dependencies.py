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
import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from evorag.tools.code_checks import Risk
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
    pip would install for them (name, version, requested); ``docker_lines`` record that addition for the
    Docker configuration (pinned to the resolution when there was one).
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
) -> DependencyReport:
    """Check a tool directory's imports and requirements against this environment.

    ``allowlist`` names the distributions a tool may add (default :data:`DEFAULT_ALLOWLIST`).
    ``resolve=False`` skips pip (no index access) but keeps every other check. Never raises for a bad
    tool directory: every problem ends up in the report.
    """
    tool_dir = Path(tool_dir)
    allowed = {canonicalize_name(name) for name in (DEFAULT_ALLOWLIST if allowlist is None else allowlist)}
    problems: list[str] = []
    env = installed_environment()

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
        new.append(req)

    # Refused names are refused before pip runs: asking the index about a name already tells whoever
    # watches the index (or squats the name) that this machine wants it.
    problems += [
        f"new dependency {name!r} is not on the allowlist of new dependencies "
        "(add it to the allowlist setting if a human has reviewed it)"
        for name in not_allowed
    ]
    resolved: list[dict[str, Any]] = []
    if resolve and new and not problems:
        resolved, resolve_problems = resolve_requirements(
            [str(req) for req in new], env, timeout=index_timeout
        )
        problems += resolve_problems

    report = _report(
        not problems,
        problems,
        imports=imports,
        stdlib=stdlib,
        installed=sorted(installed.values(), key=lambda d: d["name"].lower()),
    )
    report.new_requirements = [str(req) for req in new]
    report.resolved = resolved
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
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=path.name)
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
    requirements: list[str], env: _Environment | None = None, *, timeout: float = 60
) -> tuple[list[dict[str, Any]], list[str]]:
    """What ``pip install`` would add for ``requirements``: (distributions, problems). Installs nothing."""
    env = env or installed_environment()
    with tempfile.TemporaryDirectory(prefix="evorag-pip-") as scratch:
        report_path = Path(scratch) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--report",
            str(report_path),
            *requirements,
        ]
        child_env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        child_env.pop("PIP_REQUIRE_VIRTUALENV", None)
        try:
            done = subprocess.run(
                command,
                check=False,
                cwd=scratch,
                env=child_env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return [], [
                f"dependency resolution timed out after {timeout:g} s (is the package index reachable?)"
            ]
        if done.returncode != 0:
            return [], [_pip_failure(done.stderr)]
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return [], [f"dependency resolution produced no readable report: {exc}"]

    resolved: list[dict[str, Any]] = []
    problems: list[str] = []
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        name, version = metadata.get("name", "?"), metadata.get("version", "?")
        resolved.append({"name": name, "version": version, "requested": bool(item.get("requested"))})
        current = env.distributions.get(canonicalize_name(name))
        if current is not None and current[1] != version:
            problems.append(
                f"installing the requirements would replace installed {current[0]} {current[1]} with {version}"
            )
    resolved.sort(key=lambda item: item["name"].lower())
    return resolved, problems


_NO_VERSIONS = re.compile(
    r"Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)"
)


def _pip_failure(stderr: str) -> str:
    match = _NO_VERSIONS.search(stderr)
    if match:
        requirement, versions = match.group(1), match.group(2).strip()
        if versions == "none":
            return (
                f"unknown package {requirement}: the package index has no release of it "
                "(or none with a wheel for this platform)"
            )
        shown = versions if len(versions) <= 80 else "..., " + versions[-70:]
        return f"no release of {requirement} satisfies the requirement (available: {shown})"
    if "ResolutionImpossible" in stderr or "conflict is caused by" in stderr:
        causes = [
            line.strip() for line in stderr.splitlines() if " depends on " in line or "requested " in line
        ]
        detail = "; ".join(causes[:4]) or "conflicting dependencies"
        return f"the requirements cannot be installed together: {detail}"
    errors = [
        line.removeprefix("ERROR:").strip() for line in stderr.splitlines() if line.startswith("ERROR:")
    ]
    last = errors[-1] if errors else (stderr.strip().splitlines() or ["pip failed"])[-1]
    return f"dependency resolution failed: {last}"
