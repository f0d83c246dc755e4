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

# The service imports the tools, and the tools import evorag.errors and evorag.settings: both are complete
# by now, and nothing below the service imports from this package's namespace, so the order is enough.
from evorag.service import CrawlRequest, Evorag
from evorag.settings import Settings, load_settings

__version__ = "0.1.0"

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
