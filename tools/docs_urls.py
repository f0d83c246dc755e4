"""Where the documentation of one version of a dependency lives.

Looked up, in order: the docs map (``[packages]``: a package's URL, ``{version}`` filled in), then the
package's installed metadata (``Project-URL: Documentation, ...``; the project's own virtualenv first, then the
environment evorag runs in), then the package registry's project URLs for that version when it is reachable
(PyPI's JSON API; ``registry_lookup``). A URL found in metadata names the docs of whatever version the maintainers point
at; host rules (``[[hosts]]``, Read the Docs built in) turn a moving path such as ``/en/latest/`` into the
version's own (``/en/1.2.3/``). A URL no rule made version-specific is still used, and said to be unversioned.

The docs map is TOML, editable by the user (``EVORAG_HOME/docs_map.toml``, or a file passed to ``sync``)::

    [packages]
    widgetlib = "https://widgetlib.example.org/{version}/"

    [[hosts]]
    host = ".example.org"        # a host name, or a suffix starting with "."
    replace = "/latest/"
    with = "/{version}/"
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from importlib import metadata

    from evorag.tools.project_deps import Dependency

from evorag.errors import EvoragError, UserError

_DOCS_LABELS = frozenset({"documentation", "docs", "doc", "documentationurl", "apidocs", "apireference"})
_VERSION_TEXT = re.compile(r"^[\w.!+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class HostRule:
    host: str
    replace: str
    with_: str

    def matches(self, hostname: str) -> bool:
        return hostname == self.host or (self.host.startswith(".") and hostname.endswith(self.host))


_RTD = tuple(HostRule(host, moving, "/en/{version}/") for host in (".readthedocs.io", ".readthedocs.org", ".rtfd.io")
             for moving in ("/en/latest/", "/en/stable/"))


@dataclass(slots=True)
class DocsMap:
    packages: dict[str, str] = field(default_factory=dict)  # canonical name -> URL template
    rules: list[HostRule] = field(default_factory=lambda: list(_RTD))


def load_docs_map(*paths: Path) -> DocsMap:
    """The built-in rules plus those of each existing file in ``paths`` (later files win for a package)."""
    docs_map = DocsMap()
    for path in paths:
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"the docs map {path} is not valid TOML: {exc}") from None
        packages = data.get("packages") or {}
        if not isinstance(packages, dict) or not all(isinstance(v, str) for v in packages.values()):
            raise UserError(f"the docs map {path}: [packages] maps names to URL strings")
        docs_map.packages.update({_key(name): url for name, url in packages.items()})
        for rule in data.get("hosts") or []:
            if not (isinstance(rule, dict) and all(isinstance(rule.get(k), str) for k in ("host", "replace", "with"))):
                raise UserError(f"the docs map {path}: each [[hosts]] entry needs host, replace and with strings")
            docs_map.rules.insert(0, HostRule(rule["host"].lower(), rule["replace"], rule["with"]))
    return docs_map


@dataclass(slots=True)
class Resolved:
    version: str
    url: str
    versioned: bool  # the URL names this version's docs (False: the only docs URL known, of some version)
    via: str  # "docs map" | "package metadata"


RegistryLookup = Callable[[str, str], "str | None"]


def resolve(dependency: Dependency, docs_map: DocsMap, *, project: Path | None = None,
            registry: RegistryLookup | None = None) -> Resolved | str:
    """Where the docs of ``dependency`` at its version are, or why that is unknown (a one-line reason).
    ``registry(name, version)``: the docs URL the package registry lists, or None."""
    version = dependency.version
    installed = _distribution(dependency.name, project) if dependency.ecosystem == "python" else None
    if version is None and installed is not None:
        version = installed.version
    if not version:
        return "no exact version (pin it with ==, lock it, or install it)"
    if not _VERSION_TEXT.match(version):
        return f"unusable version {version[:40]!r}"
    template = docs_map.packages.get(_key(dependency.name))
    if template is not None:
        return Resolved(version, template.replace("{version}", version), "{version}" in template, "docs map")
    url = _documentation_url(installed) if installed is not None else None
    via = "package metadata"
    if url is None and registry is not None and dependency.ecosystem == "python":
        url, via = registry(dependency.name, version), "package registry"
    if url is None:
        where = "installed metadata" if installed is not None else "an installed copy"
        asked = ", the registry" if registry is not None and dependency.ecosystem == "python" else ""
        return f"no documentation URL (none in {where}{asked}; add it to the docs map's [packages])"
    return _versioned(url, version, docs_map.rules, via)


def _key(name: str) -> str:
    return canonicalize_name(name) if re.fullmatch(r"[A-Za-z0-9._-]+", name) else name.lower()


def _distribution(name: str, project: Path | None) -> metadata.Distribution | None:
    from importlib import metadata  # only when a dependency is looked up: a slow import for every command

    paths = []
    if project is not None:
        for venv in (".venv", "venv"):
            paths += [str(p) for p in sorted((project / venv).glob("lib/python3*/site-packages"))]
    for search in ([paths] if paths else []) + [None]:
        found = next(iter(metadata.distributions(name=name, path=search) if search is not None
                          else metadata.distributions(name=name)), None)
        if found is not None:
            return found
    return None


def _documentation_url(distribution: metadata.Distribution) -> str | None:
    return _pick_docs((label, url) for label, _, url in
                      (str(entry).partition(",") for entry in distribution.metadata.get_all("Project-URL") or []))


def installed_documentation(distributions: Iterable[metadata.Distribution] | None = None) -> list[tuple[str, str]]:
    """(package name, documentation URL) of the installed distributions (default: the environment evorag runs
    in) whose metadata names one: ``Project-URL: Documentation`` first, else the ``Home-page``. Sorted by name."""
    from importlib import metadata as importlib_metadata

    found: dict[str, str] = {}
    for distribution in importlib_metadata.distributions() if distributions is None else distributions:
        name = distribution.metadata.get("Name")
        if not name or _key(name) in found:
            continue
        home = str(distribution.metadata.get("Home-page") or "").strip()
        url = _documentation_url(distribution) or (home if home.startswith(("https://", "http://")) else None)
        if url:
            found[_key(name)] = url
    return sorted(found.items())


def _pick_docs(labelled) -> str | None:
    for label, url in labelled:
        url = str(url).strip()
        if re.sub(r"[^a-z]", "", str(label).lower()) in _DOCS_LABELS and url.startswith(("https://", "http://")):
            return url
    return None


PYPI_JSON = "https://pypi.org/pypi"
REGISTRY_TIMEOUT_S = 5.0
REGISTRY_MAX_BYTES = 4 * 1024 * 1024


def registry_lookup(base: str = PYPI_JSON, *, allow_private: bool = False,
                    timeout: float = REGISTRY_TIMEOUT_S) -> RegistryLookup:
    """A lookup of the docs URL a PyPI-style JSON API (``BASE/NAME/VERSION/json``) lists for a release. An
    unreachable registry, a missing release or an odd answer is None (the dependency is then unresolved); the
    registry's address passes the URL guard; no redirects; answers over the size limit are not read whole."""
    import httpx  # only when the registry is asked
    from evorag.tools.url_guard import check_url

    def lookup(name: str, version: str) -> str | None:
        url = f"{base.rstrip('/')}/{quote(name, safe='')}/{quote(version, safe='')}/json"
        try:
            url = check_url(url, allow_private=allow_private)
            with httpx.stream("GET", url, timeout=timeout, follow_redirects=False,
                              headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    return None
                body = b""
                for piece in response.iter_bytes():
                    body += piece
                    if len(body) > REGISTRY_MAX_BYTES:
                        return None
            urls = (json.loads(body).get("info") or {}).get("project_urls") or {}
        except (EvoragError, httpx.HTTPError, ValueError, AttributeError, OSError):
            return None
        return _pick_docs(urls.items()) if isinstance(urls, dict) else None

    return lookup


def _versioned(url: str, version: str, rules: list[HostRule], via: str) -> Resolved:
    parts = urlsplit(url)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    for rule in rules:
        if rule.matches((parts.hostname or "").lower()) and rule.replace in path:
            path = path.replace(rule.replace, rule.with_.replace("{version}", version), 1)
            return Resolved(version, urlunsplit(parts._replace(path=path)), True, via)
    return Resolved(version, url, False, via)
