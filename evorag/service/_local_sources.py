"""Sources read from disk: a local folder of documents, and a git repository (a local path or a URL).

These are indexed in the calling process, holding the writer slot, rather than queued as crawl jobs: a queued
job may run in a server's worker on behalf of a remote caller, and a path names a file on whichever machine
reads it. So paths are taken from local callers only (the CLI and Python); no MCP tool or UI action reads one.
Git URLs go through the URL guard like a crawl's; local repositories are cloned from their path.

Both keep a crawl's semantics (``evorag.tools.local_index``): versions (``--version``), incremental re-runs by
content hash, removal of deleted files, a change report per run, crash safety. A source holds one kind of
thing: a site, a folder or a repository (``KnowledgeService.check_source_holds``).
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from evorag.errors import UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.service._inputs import require_text, validate_source_name
from evorag.service._knowledge import KnowledgeService
from evorag.tools import git_source
from evorag.tools.crawl_job import CrawlReport, ProgressCallback
from evorag.tools.file_formats import SUFFIXES, Section, UnreadableFile
from evorag.tools.indexer import Indexer
from evorag.tools.local_files import FolderLimits, FolderWalk, read_file, walk_folder
from evorag.tools.local_index import FileDocument, file_url, index_documents, read_documents
from evorag.tools.python_docs import module_markdown, module_name
from evorag.tools.url_guard import check_url
from evorag.tools.versions import validate_version_label


class LocalSourcesService:
    def __init__(self, ctx: ServiceContext, knowledge: KnowledgeService) -> None:
        self._ctx = ctx
        self._knowledge = knowledge

    def add_folder(self, path: str | Path, *, source: str | None = None, version: str | None = None,
                   limits: FolderLimits | None = None, on_progress: ProgressCallback | None = None,
                   principal: Principal | None = None) -> CrawlReport:
        """Index the documents of folder ``path`` (Markdown, reStructuredText, HTML, notebooks, text, PDF) into
        ``source`` (default: the folder's name), as ``version``; re-running indexes what changed. Operator role.

        Raises UserError for a path that is not a folder, a bad name or version, a source holding something
        else, or a folder without any document it can read.
        """
        with self._ctx.acting(principal, "crawl"):
            root = _folder(path, "folder")
            limits = limits or FolderLimits()
            source = validate_source_name(source or _default_name(root.name))
            version = validate_version_label(version) if version is not None else None
            start_url = root.as_uri()
            self._knowledge.check_source_holds(source, start_url, version, kind="folder")
            walk = walk_folder(root, limits)
            with self._ctx.writer:
                indexer = self._prepare(source, start_url, version, {"kind": "folder"}, walk, str(root),
                                        "indexed: " + ", ".join(sorted(SUFFIXES)) + " (hidden folders are skipped)")
                return index_documents(read_documents(walk, limits, functools.partial(file_url, root)),
                                       source=source, start_url=start_url, version=version, walk=walk,
                                       catalog=self._ctx.parts.catalog, indexer=indexer, on_progress=on_progress)

    def add_git(self, repo: str, *, ref: str | None = None, source: str | None = None, version: str | None = None,
                allow_private: bool | None = None, limits: FolderLimits | None = None,
                on_progress: ProgressCallback | None = None, principal: Principal | None = None) -> CrawlReport:
        """Index a git repository (an http(s) URL or a local path) at ``ref`` (a branch or tag; default: its
        default branch): its README, its docs/ (or doc/) folder and the docstrings of its Python modules (read
        with ``ast``, never imported). Operator role.

        Raises BlockedURLError for a URL the guard refuses, UserError for a bad path, ref, name or version,
        ExternalError when git cannot clone it.
        """
        with self._ctx.acting(principal, "crawl"):
            require_text(repo, "repository")
            ref = git_source.validate_ref(ref) if ref else None
            private = self._ctx.settings.allow_private if allow_private is None else allow_private
            url = _repository_url(repo, allow_private=private)
            limits = limits or FolderLimits()
            source = validate_source_name(source or _default_name(_repository_name(url)))
            version = validate_version_label(version) if version is not None else None
            self._knowledge.check_source_holds(source, url, version, kind="git")
            with tempfile.TemporaryDirectory(prefix="evorag-git-") as scratch:
                checkout = Path(scratch).resolve() / "checkout"
                checked_out = git_source.clone(url, checkout, ref=ref)  # before the writer slot: network time
                walk = walk_folder(checkout, limits, wanted=git_source.wanted)
                cite = functools.partial(git_source.citation, url, checked_out)
                with self._ctx.writer:
                    indexer = self._prepare(source, url, version, {"kind": "git", "ref": checked_out}, walk,
                                            f"{url} at {checked_out}", "indexed: README*, docs/ (or doc/) and the "
                                            "docstrings of Python modules")
                    return index_documents(_repository_documents(walk, limits, cite), source=source,
                                           start_url=url, version=version, walk=walk,
                                           catalog=self._ctx.parts.catalog, indexer=indexer,
                                           on_progress=on_progress)

    def _prepare(self, source: str, start_url: str, version: str | None, options: dict, walk: FolderWalk,
                 where: str, what: str) -> Indexer:
        """Checks again under the writer slot (another writer may have claimed the name), then records the
        source; refuses a first run that would index nothing."""
        self._knowledge.check_source_holds(source, start_url, version, kind=options["kind"])
        catalog = self._ctx.parts.catalog
        if not walk.files and not catalog.pages(source, version):
            raise UserError(f"no documents to index in {where}", hint=what)
        indexer = self._ctx.parts.indexer()  # opens the store: loads the embedding model
        indexer.store.check_sparse()
        catalog.upsert_source(source, start_url, options, version=version)
        return indexer


def _folder(path: str | Path, what: str) -> Path:
    require_text(str(path), f"{what} path")
    given = Path(path).expanduser()
    if not given.exists():
        raise UserError(f"no such {what}: {given}")
    root = given.resolve()
    if not root.is_dir():
        raise UserError(f"not a folder: {given}", hint="pass the folder that holds the documents")
    return root


def _default_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip(".-_")[:64]
    return cleaned or "local"


def _repository_url(repo: str, *, allow_private: bool) -> str:
    """The URL git clones: an http(s) URL the guard lets through (no credentials), or a local repository's path
    as a ``file://`` URL."""
    if "://" in repo:
        parts = urlsplit(repo)
        if parts.username is not None or parts.password is not None:
            raise UserError("credentials in a repository URL are not accepted",
                            hint="index a local clone instead: evorag add-git PATH")
        if parts.scheme.lower() == "file":
            return _folder(parts.path, "repository").as_uri()
        return check_url(repo, allow_private=allow_private)
    if re.match(r"^[\w.-]+@[\w.-]+:", repo):
        raise UserError("ssh repository addresses are not supported",
                        hint="pass its https URL, or the path of a local clone")
    return _folder(repo, "repository").as_uri()


def _repository_name(url: str) -> str:
    return Path(urlsplit(url).path.rstrip("/")).name.removesuffix(".git") or "repository"


def _repository_documents(walk: FolderWalk, limits: FolderLimits, cite) -> Iterator[FileDocument]:
    """Documents as in a folder; a Python module becomes the page of its docstrings (none: left out)."""
    for relative in walk.files:
        if not relative.endswith(".py"):
            yield from read_documents(FolderWalk(walk.root, [relative]), limits, cite)
            continue
        try:
            markdown = module_markdown(relative, read_file(walk.root, relative, limits))
        except (OSError, ValueError, UnreadableFile) as exc:
            yield FileDocument(relative, cite(relative), error=str(exc) or type(exc).__name__)
            continue
        if markdown:
            yield FileDocument(relative, cite(relative), [Section(module_name(relative), markdown)])
