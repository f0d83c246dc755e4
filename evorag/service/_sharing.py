"""Sharing an index: a source (or some of its versions) exported to one file and imported into another home
(format and checks: ``evorag.tools.source_archive``).

Roles: exporting needs the operator role: a reader may query the docs, but an export dumps the whole index in
bulk into a file; importing writes the index (operator), and replacing what a source already holds deletes what
a crawl built (``remove_source``: approver).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from evorag.errors import UserError
from evorag.principals import Principal, require
from evorag.service._context import ServiceContext
from evorag.service._knowledge import KnowledgeService
from evorag.tools.archive_guard import ArchiveLimits
from evorag.tools.source_archive import (
    export_source,
    refuse_foreign_ids,
    remove_staging,
    staging_directory,
    unpack_and_verify,
    write_verified,
)
from evorag.tools.versions import describe_versions, display, parse_selector

# An export holds the manifest, three members and their directory.
MAX_MEMBERS = 8


@dataclass(slots=True)
class ExportResult:
    path: str
    source: str
    versions: list[str | None]
    pages: int
    chunks: int
    bytes: int
    manifest: dict

    def to_dict(self) -> dict:
        return {"path": self.path, "source": self.source, "versions": self.versions, "pages": self.pages,
                "chunks": self.chunks, "bytes": self.bytes, "manifest": self.manifest}


@dataclass(slots=True)
class ImportResult:
    source: str
    versions: list[str | None]
    pages: int
    chunks: int
    replaced: list[str | None]
    model: str

    def to_dict(self) -> dict:
        return {"source": self.source, "versions": self.versions, "pages": self.pages, "chunks": self.chunks,
                "replaced": self.replaced, "model": self.model}


def _evorag_version() -> str:
    try:
        return metadata.version("evorag")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


class SharingService:
    def __init__(self, ctx: ServiceContext, knowledge: KnowledgeService) -> None:
        self._ctx = ctx
        self._knowledge = knowledge

    def export_source(self, selector: str, dest: Path, *, principal: Principal | None = None) -> ExportResult:
        """Write ``NAME`` (every version) or ``NAME@SPEC`` (the version it resolves to) to a new file ``dest``.
        Holds the writer slot, so the export is one consistent state of the source."""
        with self._ctx.acting(principal, "export_source"):
            parsed = parse_selector(selector)
            if parsed.spec is None:
                record = self._knowledge.require_source(parsed.name)
                versions = record.version_labels
            else:
                name, version = self._knowledge.resolve_source(selector)
                record, versions = self._knowledge.require_source(name), [version]
            if not any(v.pages for v in record.versions if v.version in versions):
                raise UserError(f"{selector} has no indexed pages to export", hint="crawl it first")
            store = self._ctx.parts.store  # opens the index (the local embedder needs no model for this)
            with self._ctx.writer:
                manifest = export_source(Path(dest), store=store, catalog=self._ctx.parts.catalog, source=record,
                                         versions=versions, evorag_version=_evorag_version())
        counts = manifest["counts"]
        return ExportResult(path=manifest["path"], source=record.name, versions=list(versions),
                            pages=counts["pages"], chunks=counts["chunks"], bytes=manifest["bytes"],
                            manifest={key: value for key, value in manifest.items() if key not in ("path", "bytes")})

    def import_source(self, archive: Path, *, replace: bool = False,
                      principal: Principal | None = None) -> ImportResult:
        """Add the source in ``archive`` (written by ``export_source``) to the index, after checking all of it;
        a bad archive is one UserError and changes nothing. Versions the source already holds (or a source
        versioned differently) are replaced only with ``replace`` (which also needs the approver role)."""
        with self._ctx.acting(principal, "import_source") as who:
            if replace:
                require(who, "remove_source")
            settings = self._ctx.settings
            limits = ArchiveLimits(max_bytes=settings.source_import_max_bytes,
                                   max_member_bytes=settings.source_import_max_bytes, max_members=MAX_MEMBERS)
            store = self._ctx.parts.store
            info = store.info()
            staging = staging_directory(settings.home)
            try:
                verified = unpack_and_verify(Path(archive), staging, limits, model=info["model"],
                                             dim=int(info["dim"]), bm25=store.sparse_signature)
                with self._ctx.writer:
                    refuse_foreign_ids(verified, store=store)
                    replaced = self._make_room(verified.source, verified.versions, verified.catalog["source"],
                                               replace=replace)
                    written = write_verified(verified, store=store, catalog=self._ctx.parts.catalog)
            finally:
                remove_staging(staging)
        return ImportResult(source=written["source"], versions=written["versions"], pages=written["pages"],
                            chunks=written["chunks"], replaced=replaced, model=info["model"])

    def _make_room(self, name: str, versions: list[str | None], source: dict, *, replace: bool) -> list[str | None]:
        """Refuse (without ``replace``) or remove what the import would overwrite; returns the versions removed.
        Keeps the existing latest marker unless the archive brings one."""
        catalog = self._ctx.parts.catalog
        indexer = self._ctx.parts.indexer()
        indexer.recover()  # what a killed crawl or import left half-written, as every crawl does first
        existing = catalog.get_source(name)
        if existing is None:
            return []
        held = existing.version_labels
        whole = existing.versioned != (versions != [None]) or held == [None]
        clashing = held if whole else [v for v in versions if v in held]
        if not clashing:
            if source.get("latest") is None:
                source["latest"] = existing.latest
            return []
        if not replace:
            raise UserError(
                f"source {name!r} already holds " + (
                    f"versions {describe_versions(held, existing.latest)}" if existing.versioned else "pages")
                + f"; the archive holds {', '.join(display(v) for v in versions)}",
                hint="pass --replace to replace " + ("the source" if whole else "those versions")
                + ", or remove it first with `evorag sources remove`")
        if whole:
            indexer.remove_source(name)
        else:
            for version in clashing:
                indexer.remove_version(name, version)
            if source.get("latest") is None and existing.latest not in clashing:
                source["latest"] = existing.latest
        return clashing
