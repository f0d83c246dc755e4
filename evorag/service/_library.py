"""A source's versions and what changed in them: the latest marker and the change reports of its crawls."""

from __future__ import annotations

import time
from dataclasses import dataclass

from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.service._knowledge import KnowledgeService
from evorag.tools.catalog import ChangeReport, SourceRecord
from evorag.tools.changes import parse_since
from evorag.tools.versions import parse_selector

MAX_REPORTS = 100


@dataclass(slots=True)
class SourceChanges:
    """The change reports of a source (or of one of its versions), newest first."""

    source: str
    versions: list[str | None]
    since: float | None
    reports: list[ChangeReport]

    def totals(self) -> dict[str, int]:
        return {change: sum(report.count(change) for report in self.reports)
                for change in ("added", "changed", "removed")}

    def to_dict(self) -> dict:
        return {"source": self.source, "versions": self.versions, "since": self.since, "totals": self.totals(),
                "reports": [report.to_dict() for report in self.reports]}


class LibraryService:
    def __init__(self, ctx: ServiceContext, knowledge: KnowledgeService) -> None:
        self._ctx = ctx
        self._knowledge = knowledge

    def source_changes(self, selector: str, *, since: str | float | None = None, limit: int = 20,
                       principal: Principal | None = None) -> SourceChanges:
        """What the crawls of a source changed: ``NAME`` for every version, ``NAME@SPEC`` for the one version
        it resolves to; only reports that ended at or after ``since`` (a date, a time or a span such as
        ``7d``; see ``evorag.tools.changes.parse_since``), or are still open. Reader role."""
        self._ctx.check(principal, "list_sources")
        moment = parse_since(since, now=time.time()) if isinstance(since, str) else since
        limit = max(1, min(int(limit), MAX_REPORTS))
        if parse_selector(selector).spec is None:
            record = self._knowledge.require_source(parse_selector(selector).name)
            name, versions = record.name, record.version_labels
        else:
            name, version = self._knowledge.resolve_source(selector)
            versions = [version]
        reports = self._ctx.parts.catalog.change_reports(name, versions=versions, since=moment, limit=limit)
        return SourceChanges(source=name, versions=versions, since=moment, reports=reports)

    def mark_latest(self, selector: str, *, principal: Principal | None = None) -> SourceRecord:
        """Make ``NAME@X`` the version ``NAME`` and ``NAME@latest`` mean; ``NAME`` alone clears the marker (the
        highest version is latest again). Operator role."""
        with self._ctx.acting(principal, "mark_latest"):
            record, version, whole = self._knowledge.resolve_exact(selector)
            self._ctx.parts.catalog.set_latest(record.name, None if whole else version)
            return self._knowledge.require_source(record.name)
