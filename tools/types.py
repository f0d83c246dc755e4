"""Plain data passed between the knowledge tools: crawl requests, pages, chunks, scored candidates, page
references and hits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, NamedTuple

ChunkKind = Literal["text", "code"]


@dataclass(slots=True)
class CrawlRequest:
    """What a caller asks to crawl. ``None`` means: the setting of the same name (``max_pages``, ``max_depth``,
    ``allow_private``), or for ``source`` a name made from the host, or for ``selector`` the source's own."""

    url: str
    source: str | None = None
    max_pages: int | None = None
    max_depth: int | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    allow_private: bool | None = None
    browser: bool = False
    selector: str | None = None
    version: str | None = None  # documentation version to index it as (evorag.tools.versions); None: unversioned


@dataclass(slots=True)
class Page:
    """One crawled page, reduced to its main content as Markdown."""

    url: str
    title: str
    markdown: str
    content_hash: str
    fetched_at: float
    etag: str | None = None
    last_modified: str | None = None
    links: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Chunk:
    """A searchable piece of a page. ``id`` is deterministic, so re-indexing never duplicates."""

    id: str
    url: str
    source: str
    title: str
    heading_path: list[str]
    text: str
    kind: ChunkKind
    position: int
    content_hash: str
    crawled_at: float
    language: str | None = None
    version: str | None = None  # the documentation version of its source; None: an unversioned source

    @property
    def section(self) -> str:
        return " > ".join(self.heading_path)

    def payload(self) -> dict:
        data = asdict(self)
        data.pop("id")
        data["section"] = self.section
        return data


class Scored(NamedTuple):
    """A candidate by id only: what a store's first stage returns before any payload is loaded."""

    id: str
    score: float


class PageRef(NamedTuple):
    """Where a chunk sits: its page and section, what page-aware ranking reads of each candidate."""

    url: str
    title: str
    section: str = ""


@dataclass(slots=True)
class Hit:
    """A search result with the score of the stage that produced it."""

    chunk: Chunk
    score: float

    def to_dict(self) -> dict:
        return {
            "id": self.chunk.id,
            "url": self.chunk.url,
            "title": self.chunk.title,
            "section": self.chunk.section,
            "content": self.chunk.text,
            "kind": self.chunk.kind,
            "language": self.chunk.language,
            "source": self.chunk.source,
            "version": self.chunk.version,
            "score": round(float(self.score), 6),
        }
