"""Vector stores: chunks with dense + BM25 sparse vectors in Qdrant, embedded or on a server.

``store_from_settings`` picks the backend: ``EdgeStore`` (Qdrant Edge, in-process, under
``settings.qdrant_path``) unless ``EVORAG_QDRANT_URL`` names a Qdrant server, then
``QdrantServerStore``. Both keep the ``VectorStore`` contract; tests run the same cases on both.
What they share (filters, candidate selection, hybrid fusion, aliases, metadata, the BM25 signature
check) lives once in ``QdrantStoreBase`` (_base.py); each backend implements only the primitives that
talk to its client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evorag.tools.stores._common import collection_name
from evorag.tools.stores._edge import EdgeStore
from evorag.tools.stores._protocol import SearchFilter, VectorStore

if TYPE_CHECKING:
    from evorag.tools.stores._qdrant_client import QdrantServerStore

    from evorag.settings import Settings

__all__ = [
    "EdgeStore",
    "QdrantServerStore",
    "SearchFilter",
    "VectorStore",
    "collection_name",
    "store_from_settings",
]


def __getattr__(name: str):
    # qdrant-client takes about a second to import and only a server store needs it: not every command.
    if name == "QdrantServerStore":
        from evorag.tools.stores._qdrant_client import QdrantServerStore

        return QdrantServerStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def store_from_settings(settings: Settings, *, alias: str = "evorag") -> VectorStore:
    """The configured store, not yet opened: call ``open(model_name, dim)`` or ``open_current()``.

    Raises ``StoreError`` if a configured server cannot be set up (unreachable servers are only
    detected on first use, by ``open``).
    """
    if settings.qdrant_url:
        from evorag.tools.stores._qdrant_client import QdrantServerStore

        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantServerStore(url=settings.qdrant_url, api_key=api_key, alias=alias,
                                 replication_factor=settings.qdrant_replication_factor)
    return EdgeStore(settings.qdrant_path, alias=alias)
