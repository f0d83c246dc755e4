"""Writes page versions into the vector store, crash-safely, and removes old ones.

Protocol per batch of pages (see ``evorag.tools.catalog``):
1. the catalog records each new version as pending (committed to SQLite first);
2. chunks are embedded and upserted (ids derive from url + content hash, so a retry never duplicates);
3. chunks of any other version of those pages are deleted;
4. the catalog records the versions as indexed.
A kill between 1 and 4 leaves pending rows; ``recover`` deletes the chunks they may have left, so the
index only ever holds whole pages of a committed version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evorag.tools import sparse
from evorag.tools.catalog import Catalog, PageRecord
from evorag.tools.chunking import chunk_page, embedding_text
from evorag.tools.embedding import Embedder
from evorag.tools.types import Chunk, Page


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
            self.store.delete_where(url=record.url, content_hash_not=record.indexed_hash)
            self.catalog.clear_pending(record.url)
        return len(pending)

    def chunk(self, source: str, page: Page) -> list[Chunk]:
        return chunk_page(
            url=page.url,
            title=page.title,
            markdown=page.markdown,
            source=source,
            content_hash=page.content_hash,
            crawled_at=page.fetched_at,
            max_chars=self.max_chars,
            min_chars=self.min_chars,
        )

    def index_pages(
        self,
        source: str,
        pages: Sequence[Page],
        *,
        on_embedded: Callable[[int], None] | None = None,
    ) -> IndexedBatch:
        """Index (or re-index) whole pages. Pages with no chunks are recorded with zero chunks.

        Raises ``ConfigError`` before anything is written if the index was built by another BM25 encoder.
        """
        if not pages:
            return IndexedBatch(0, 0)
        self.store.check_sparse()  # before the catalog marks pages pending that the store then refuses
        per_page = [(page, self.chunk(source, page)) for page in pages]
        self.catalog.begin_pages(source, [(page.url, page.content_hash) for page in pages])
        chunks = [chunk for _, page_chunks in per_page for chunk in page_chunks]
        if chunks:
            dense = self.embedder.embed_documents([embedding_text(chunk) for chunk in chunks])
            if on_embedded:
                on_embedded(len(chunks))
            sparse_vectors = [sparse.encode_document(embedding_text(chunk)) for chunk in chunks]
            self.store.upsert(chunks, dense, sparse_vectors)
        for page in pages:
            self.store.delete_where(url=page.url, content_hash_not=page.content_hash)
        self.catalog.commit_pages(
            PageRecord(
                url=page.url,
                source=source,
                title=page.title,
                indexed_hash=page.content_hash,
                pending_hash=None,
                etag=page.etag,
                last_modified=page.last_modified,
                fetched_at=page.fetched_at,
                chunk_count=len(page_chunks),
            )
            for page, page_chunks in per_page
        )
        return IndexedBatch(len(pages), len(chunks))

    def remove_pages(self, source: str, urls: Sequence[str]) -> int:
        if not urls:
            return 0
        self.catalog.begin_pages(source, [(url, None) for url in urls])
        for url in urls:
            self.store.delete_where(url=url)
        self.catalog.commit_removals(urls)
        return len(urls)

    def remove_source(self, source: str) -> None:
        self.store.delete_where(source=source)
        self.catalog.delete_source(source)
