"""evorag: a self-improving documentation RAG system.

Python API::

    from evorag import Evorag, CrawlRequest
    with Evorag() as rag:
        rag.crawl(CrawlRequest("https://docs.example.org/"))
        for hit in rag.search("how do I set a timeout?"):
            print(hit.chunk.url, hit.chunk.section)
"""

from evorag.errors import (
    BlockedURLError,
    ConfigError,
    EvoragError,
    ExternalError,
    InternalError,
    NotFoundError,
    UserError,
)
from evorag.settings import Settings, load_settings

__version__ = "0.1.0"

_SERVICE_NAMES = {"CrawlRequest", "Evorag"}


def __getattr__(name: str):
    # The service imports the tools, and the tools import evorag.errors: loading it on first use keeps
    # ``import tools.search`` (or any tool) from running into a half-initialised package.
    if name in _SERVICE_NAMES:
        from evorag import service

        return getattr(service, name)
    raise AttributeError(f"module 'evorag' has no attribute {name!r}")

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
