"""How to crawl one source: ``CrawlOptions``, built from the settings by ``CrawlOptions.from_settings``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evorag.errors import InternalError, UserError

if TYPE_CHECKING:
    from evorag.settings import Settings

# Options whose value comes from a setting, and the setting's name. The rest are per crawl (source,
# include/exclude, selector, browser) or fixed by evorag (robots, sitemaps, llms.txt, backoff, Chromium).
_FROM_SETTINGS = {
    "max_pages": "max_pages",
    "max_depth": "max_depth",
    "allow_private": "allow_private",
    "concurrency": "crawl_concurrency",
    "rate_per_host": "crawl_rate_per_host",
    "retries": "crawl_retries",
    "timeout": "crawl_timeout",
    "max_page_bytes": "max_page_bytes",
    "user_agent": "user_agent",
    "state_dir": "crawl_state_dir",
    "index_navigation_pages": "index_navigation_pages",
}


@dataclass(slots=True)
class CrawlOptions:
    """How to crawl one source. Build it with ``from_settings``; the defaults here serve tests and tools."""

    source: str = ""
    max_pages: int = 1000
    max_depth: int = 8
    include: list[str] = field(default_factory=list)
    """Globs a page must match (any of them) to be crawled; on the path, or the full URL if the glob has ``://``."""
    exclude: list[str] = field(default_factory=list)
    allow_private: bool = False
    browser: bool = False
    """Render pages with Chromium through Crawl4AI (for sites that build their content with JavaScript)."""
    selector: str | None = None
    concurrency: int = 8
    rate_per_host: float = 50.0
    retries: int = 2
    timeout: float = 20.0
    max_page_bytes: int = 5_000_000
    user_agent: str = "evorag/0.1 (+documentation indexer)"
    respect_robots: bool = True
    state_dir: Path | None = None
    """Where Crawl4AI may write (browser mode); a temporary directory, removed afterwards, when None."""
    use_sitemaps: bool = True
    use_llms_txt: bool = True
    backoff_base: float = 0.5
    """First retry delay in seconds; doubled on each retry, with jitter."""
    chromium_path: str = "/usr/bin/chromium"
    index_navigation_pages: bool = False
    """Index pages that are only lists of links too (by default they are followed, not indexed)."""

    def __post_init__(self) -> None:
        for name in ("max_pages", "concurrency", "max_page_bytes"):
            if getattr(self, name) < 1:
                raise UserError(f"invalid crawl option {name}={getattr(self, name)!r}: it must be at least 1")
        for name in ("max_depth", "retries"):
            if getattr(self, name) < 0:
                raise UserError(
                    f"invalid crawl option {name}={getattr(self, name)!r}: it must not be negative"
                )
        for name in ("rate_per_host", "timeout"):
            if not getattr(self, name) > 0:
                raise UserError(f"invalid crawl option {name}={getattr(self, name)!r}: it must be positive")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CrawlOptions:
        """The options of one crawl: every crawl setting, then ``overrides`` (any option by name) on top.

        Settings give max_pages, max_depth, allow_private, concurrency, rate_per_host, retries,
        timeout, max_page_bytes, user_agent, state_dir and index_navigation_pages; a crawl request adds
        source, include, exclude, selector and browser. An override is taken as given (None included): leave out what
        the request did not set. Raises ``UserError`` for an invalid value, ``InternalError`` for a
        name that is not an option.
        """
        unknown = sorted(set(overrides) - {option.name for option in dataclasses.fields(cls)})
        if unknown:
            raise InternalError(f"unknown crawl option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {option: getattr(settings, name) for option, name in _FROM_SETTINGS.items()}
        values.update(overrides)
        return cls(**values)
