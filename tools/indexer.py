"""Writes page versions into the vector store, crash-safely, and removes old ones.

Protocol per batch of pages (see ``evorag.tools.catalog``):
1. the catalog records each new version as pending (committed to SQLite first);
2. chunks are embedded and upserted (ids derive from url + content hash, so a retry never duplicates);
3. chunks of any other version of those pages are deleted;
4. the catalog records the versions as indexed.
A kill between 1 and 4 leaves pending rows; ``recover`` deletes the chunks they may have left, so the
index only ever holds whole pages of a committed version.

Pages belong to a source and, for a versioned source, a documentation version (``evorag.tools.versions``):
every write and delete is scoped to both. What a batch adds, changes or removes is captured before the old
chunks go (``evorag.tools.changes``) and committed with the pages into the version's change report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from evorag.tools import changes, sparse
from evorag.tools.catalog import Catalog, PageRecord
from evorag.tools.chunking import chunk_page, embedding_text
from evorag.tools.embedding import Embedder
from evorag.tools.types import Chunk, Page
from evorag.tools.versions import scoped_chunk_id


@dataclass(slots=True)
class IndexedBatch:
    pages: int
    chunks: int


class Indexer:
    def __init__(
        self,
        store,
        embedder: Embedder,
        catalog: Catalog,
        *,
        max_chars: int = 1600,
        min_chars: int = 200,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.catalog = catalog
        self.max_chars = max_chars
        self.min_chars = min_chars

    def recover(self) -> int:
        """Undo half-written page versions left by a killed process. Returns how many pages it fixed."""
        pending = self.catalog.pending_pages()
        for record in pending:
            self.store.delete_where(url=record.url, source=record.source, version=record.version,
                                    content_hash_not=record.indexed_hash)
            self.catalog.clear_pending(record.url, source=record.source, version=record.version)
        return len(pending)

    def chunk(self, source: str, page: Page, version: str | None = None) -> list[Chunk]:
        chunks = chunk_page(
            url=page.url,
            title=page.title,
            markdown=page.markdown,
            source=source,
            content_hash=page.content_hash,
            crawled_at=page.fetched_at,
            max_chars=self.max_chars,
            min_chars=self.min_chars,
        )
        return [replace(chunk, id=scoped_chunk_id(chunk.id, source, version), version=version) for chunk in chunks]

    def index_pages(
        self,
        source: str,
        pages: Sequence[Page],
        *,
        version: str | None = None,
        on_embedded: Callable[[int], None] | None = None,
    ) -> IndexedBatch:
        """Index (or re-index) whole pages of ``source`` (documentation ``version``). Pages with no chunks are
        recorded with zero chunks.

        Raises ``ConfigError`` before anything is written if the index was built by another BM25 encoder.
        """
        if not pages:
            return IndexedBatch(0, 0)
        self.store.check_sparse()  # before the catalog marks pages pending that the store then refuses
        per_page = [(page, self.chunk(source, page, version)) for page in pages]
        before = {page.url: self.catalog.page(page.url, source=source, version=version) for page in pages}
        self.catalog.begin_pages(source, [(page.url, page.content_hash) for page in pages], version=version)
        chunks = [chunk for _, page_chunks in per_page for chunk in page_chunks]
        if chunks:
            dense = self.embedder.embed_documents([embedding_text(chunk) for chunk in chunks])
            if on_embedded:
                on_embedded(len(chunks))
            sparse_vectors = [sparse.encode_document(embedding_text(chunk)) for chunk in chunks]
            self.store.upsert(chunks, dense, sparse_vectors)
        # The previous text of a changed page is read from its old chunks, so before they are deleted.
        found = [changes.page_change(self.store, source=source, version=version, url=page.url, title=page.title,
                                     old=before[page.url], new_hash=page.content_hash, new_chunks=page_chunks)
                 for page, page_chunks in per_page]
        for page in pages:
            self.store.delete_where(url=page.url, source=source, version=version, content_hash_not=page.content_hash)
        self.catalog.commit_pages(
            [PageRecord(
                url=page.url,
                source=source,
                title=page.title,
                indexed_hash=page.content_hash,
                pending_hash=None,
                etag=page.etag,
                last_modified=page.last_modified,
                fetched_at=page.fetched_at,
                chunk_count=len(page_chunks),
                version=version,
            )
            for page, page_chunks in per_page],
            changes=[entry for entry in found if entry is not None],
        )
        return IndexedBatch(len(pages), len(chunks))

    def remove_pages(self, source: str, urls: Sequence[str], *, version: str | None = None) -> int:
        if not urls:
            return 0
        before = {url: self.catalog.page(url, source=source, version=version) for url in urls}
        self.catalog.begin_pages(source, [(url, None) for url in urls], version=version)
        for url in urls:
            self.store.delete_where(url=url, source=source, version=version)
        self.catalog.commit_removals(urls, source=source, version=version, changes=[
            changes.removed_page(source=source, version=version, url=url, old=before[url])
            for url in urls if before[url] is not None and before[url].indexed_hash])
        return len(urls)

    def remove_source(self, source: str) -> None:
        self.store.delete_where(source=source)
        self.catalog.delete_source(source)

    def remove_version(self, source: str, version: str | None) -> None:
        """Remove one documentation version of a source (the whole source when it was the last one)."""
        self.store.delete_where(source=source, version=version)
        self.catalog.delete_version(source, version)
