"""evorag: a self-improving documentation RAG system.

Python API::

    from evorag import Evorag, CrawlRequest
    with Evorag() as rag:
        rag.crawl(CrawlRequest("https://docs.example.org/"))
        for hit in rag.search("how do I set a timeout?"):
            print(hit.chunk.url, hit.chunk.section)
"""

from typing import TYPE_CHECKING

from evorag.errors import (
    BlockedURLError,
    ConfigError,
    EvoragError,
    ExternalError,
    InternalError,
    NotFoundError,
    UserError,
)

if TYPE_CHECKING:
    from evorag.service import CrawlRequest, Evorag
    from evorag.settings import Settings, load_settings

__version__ = "0.1.0"

# Importing the service loads most of evorag (~170 modules); a process that needs only evorag.errors, the
# settings or one tool (every subpackage import runs this file first) should not pay for it, so the
# re-exports below are imported when first asked for.
_LAZY = {"CrawlRequest": "evorag.service", "Evorag": "evorag.service",
         "Settings": "evorag.settings", "load_settings": "evorag.settings"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'evorag' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value

__all__ = [
    "BlockedURLError",
    "ConfigError",
    "CrawlRequest",
    "Evorag",
    "EvoragError",
    "ExternalError",
    "InternalError",
    "NotFoundError",
    "Settings",
    "UserError",
    "load_settings",
]
