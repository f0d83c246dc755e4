"""``sync``: index the documentation of exactly the versions a project depends on.

The project's dependency files (``evorag.tools.project_deps``) give names and versions; the docs map and the
installed package metadata give each one's docs URL (``evorag.tools.docs_urls``); each resolved dependency is
crawled as source ``NAME`` version ``VERSION`` (search it as ``NAME@VERSION``) through the crawl use case, so
the URL guard, limits, incremental re-crawls and change reports are a crawl's. A version already indexed is
left as it is unless ``refresh``. What could not be resolved or crawled is reported, never guessed: a
dependency without a known version or docs URL is listed with the reason.

Like ``add-folder``, a path on this machine is read, so this is for local callers (CLI, Python).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evorag.errors import EvoragError, UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.service._inputs import require_text
from evorag.service._knowledge import KnowledgeService
from evorag.tools.docs_urls import PYPI_JSON, Resolved, load_docs_map, registry_lookup, resolve
from evorag.tools.project_deps import Dependency, project_dependencies
from evorag.tools.types import CrawlRequest

DOCS_MAP_FILE = "docs_map.toml"


@dataclass(slots=True)
class SyncEntry:
    """One dependency: ``status`` is ``indexed`` (crawled now), ``present`` (that version was indexed
    already), ``failed`` (resolved, but the crawl failed: ``reason``) or ``unresolved`` (``reason``)."""

    name: str
    ecosystem: str
    version: str | None
    status: str
    source: str | None = None
    url: str | None = None
    versioned_url: bool | None = None
    via: str | None = None
    reason: str | None = None
    pages: int = 0


@dataclass(slots=True)
class SyncReport:
    project: str
    entries: list[SyncEntry] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for entry in self.entries if entry.status == status)

    def to_dict(self) -> dict:
        return {"project": self.project,
                "totals": {status: self.count(status) for status in ("indexed", "present", "failed", "unresolved")},
                "entries": [asdict(entry) for entry in self.entries]}


class SyncService:
    def __init__(self, ctx: ServiceContext, knowledge: KnowledgeService) -> None:
        self._ctx = ctx
        self._knowledge = knowledge

    def sync(self, path: str | Path = ".", *, docs_map: Path | None = None, max_pages: int | None = None,
             allow_private: bool | None = None, refresh: bool = False, registry: str | None = PYPI_JSON,
             on_entry: Callable[[SyncEntry], None] | None = None, principal: Principal | None = None) -> SyncReport:
        """Index the docs of the dependencies of the project at ``path`` (operator role). ``docs_map``: a docs
        map file read after ``EVORAG_HOME/docs_map.toml``; ``registry``: a PyPI-style JSON API asked for the docs
        URL of a release found nowhere else (None: never asked). Raises UserError when ``path`` is not a project
        folder or a dependency file cannot be parsed; a dependency that fails is reported, the others go on."""
        with self._ctx.acting(principal, "crawl") as who:
            require_text(str(path), "project path")
            root = Path(path).expanduser().resolve()
            if not root.is_dir():
                raise UserError(f"not a project folder: {path}")
            dependencies = project_dependencies(root)
            mapping = load_docs_map(self._ctx.settings.home / DOCS_MAP_FILE, *([docs_map] if docs_map else []))
            private = self._ctx.settings.allow_private if allow_private is None else allow_private
            lookup = registry_lookup(registry, allow_private=private) if registry else None
            report = SyncReport(project=str(root))
            for dependency in dependencies:
                found = resolve(dependency, mapping, project=root, registry=lookup)
                entry = (self._index(dependency, found, max_pages=max_pages, allow_private=allow_private,
                                     refresh=refresh, principal=who)
                         if isinstance(found, Resolved) else
                         SyncEntry(dependency.name, dependency.ecosystem, dependency.version, "unresolved",
                                   reason=found))
                report.entries.append(entry)
                if on_entry:
                    on_entry(entry)
            return report

    def _index(self, dependency: Dependency, found: Resolved, *, max_pages: int | None, allow_private: bool | None,
               refresh: bool, principal: Principal) -> SyncEntry:
        source = _source_name(dependency.name)
        entry = SyncEntry(dependency.name, dependency.ecosystem, found.version, "indexed", source=source,
                          url=found.url, versioned_url=found.versioned, via=found.via)
        existing = self._ctx.parts.catalog.get_source(source)
        held = next((v for v in existing.versions if v.version == found.version), None) if existing else None
        if held is not None and held.pages and not refresh:
            entry.status, entry.pages = "present", held.pages
            return entry
        try:
            crawl = self._knowledge.crawl(CrawlRequest(found.url, source=source, version=found.version,
                                                       max_pages=max_pages, allow_private=allow_private),
                                          principal=principal)
        except EvoragError as exc:  # this dependency only: the report says why, the others go on
            entry.status, entry.reason = "failed", str(exc)
        else:
            entry.pages = crawl.pages_indexed + crawl.pages_unchanged
            if not entry.pages:
                entry.status, entry.reason = "failed", "the docs URL gave no pages" + (
                    f" ({crawl.failures[0]['reason']})" if crawl.failures else "")
        if entry.status == "failed" and held is None:
            self._forget_empty(source, found.version)
        return entry

    def _forget_empty(self, source: str, version: str) -> None:
        """A version this sync recorded but could not fill is not left listed, empty, in ``evorag sources``."""
        catalog = self._ctx.parts.catalog
        with self._ctx.writer:
            record = catalog.get_source(source)
            emptied = next((v for v in record.versions if v.version == version), None) if record else None
            if emptied is not None and not emptied.pages and not catalog.pages(source, version):
                catalog.delete_version(source, version)


def _source_name(name: str) -> str:
    """A package name as a source name (npm scopes: ``@scope/pkg`` -> ``scope-pkg``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name.lstrip("@"))[:64].strip(".-_") or "package"
