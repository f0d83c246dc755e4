"""Browser rendering: the system Chromium driven through Crawl4AI's managed-browser mode.

Browser mode fetches each page with the guarded fetcher first (guard, redirects, conditional request,
size and type checks all apply), then renders the final URL here. Every request the browser makes is
checked by the URL guard in a route handler; Chromium resolves names itself, so the connection-time
check of the fetcher does not cover it (a DNS answer that changes between the check and Chromium's
lookup is not caught).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from evorag.tools.crawling._fetch import FetchError
from evorag.tools.crawling._options import CrawlOptions
from evorag.tools.url_guard import check_url

from evorag.errors import CrawlError, UserError


class BrowserRenderer:
    """Renders pages in the system Chromium through Crawl4AI's managed-browser mode.

    Every request the page makes (subresources, frames, navigations) is checked by the URL guard
    and aborted when refused. Crawl4AI writes only under ``state_dir`` (CRAWL4_AI_BASE_DIRECTORY).
    """

    def __init__(self, options: CrawlOptions) -> None:
        self.options = options
        self._crawler: Any = None
        self._run_config: Any = None

    async def start(self) -> None:
        chromium = self.options.chromium_path
        if not os.path.exists(chromium):
            raise CrawlError(
                f"browser mode needs Chromium at {chromium}, which does not exist",
                hint="install it (apt-get install chromium) or crawl without --browser",
            )
        base = Path(self.options.state_dir) / "crawl4ai" if self.options.state_dir else _process_temp_dir()
        home = base / ".crawl4ai"
        home.mkdir(parents=True, exist_ok=True)
        # Crawl4AI looks for "<browser>.path" before asking Playwright, which would download a browser.
        (home / "chromium.path").write_text(chromium)
        # Crawl4AI reads this variable at import time, so it must be set before the first import.
        os.environ["CRAWL4_AI_BASE_DIRECTORY"] = str(base)
        os.environ.setdefault("CRAWL4AI_NO_CLOUD_NOTICE", "1")
        from crawl4ai import AsyncWebCrawler, BrowserConfig, CacheMode, CrawlerRunConfig

        browser_config = BrowserConfig(
            browser_type="chromium",
            headless=True,
            use_managed_browser=True,
            user_agent=self.options.user_agent,
            user_data_dir=str(base / "profile"),
            extra_args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            verbose=False,
        )
        self._run_config = CrawlerRunConfig(
            cache_mode=CacheMode.BYPASS,
            page_timeout=int(self.options.timeout * 1000),
            wait_until="load",
            verbose=False,
        )
        self._crawler = AsyncWebCrawler(config=browser_config, base_directory=str(base))
        self._crawler.crawler_strategy.set_hook("on_page_context_created", self._guard_page)
        try:
            await self._crawler.start()
        except Exception as exc:  # noqa: BLE001 - Playwright and Crawl4AI raise many unrelated types
            raise CrawlError(f"could not start Chromium through Crawl4AI: {exc}") from None

    async def _guard_page(self, page: Any, context: Any = None, **_: Any) -> Any:
        allow_private = self.options.allow_private

        async def route(route: Any) -> None:
            url = route.request.url
            if url.startswith(("data:", "blob:", "about:")):
                await route.continue_()
                return
            try:
                await asyncio.to_thread(check_url, url, allow_private=allow_private, resolve=True)
            except UserError:
                await route.abort("blockedbyclient")
                return
            await route.continue_()

        await (context or page.context).route("**/*", route)
        return page

    async def render(self, url: str) -> str:
        result = await self._crawler.arun(url, config=self._run_config)
        if not result.success:
            raise FetchError(f"browser could not render the page: {result.error_message}", result.status_code)
        final = result.redirected_url or url
        check_url(final, allow_private=self.options.allow_private, resolve=False)
        return result.html or ""

    async def aclose(self) -> None:
        if self._crawler is not None:
            await self._crawler.close()


_TEMP_DIR: tempfile.TemporaryDirectory | None = None


def _process_temp_dir() -> Path:
    """One temporary Crawl4AI home per process: Crawl4AI fixes some paths at import time."""
    global _TEMP_DIR
    if _TEMP_DIR is None:
        _TEMP_DIR = tempfile.TemporaryDirectory(prefix="evorag-crawl4ai-")
    return Path(_TEMP_DIR.name)
