"""robots.txt: one parser per origin, fetched once, and the Crawl-delay applied to the fetcher's rate limit.

Unavailable (4xx, or no answer) allows everything and an unreachable one (5xx) disallows everything,
as RFC 9309 says; only the start host's robots.txt failing to connect at all stops the crawl.
"""

from __future__ import annotations

import urllib.robotparser

from evorag.tools.crawling._fetch import FetchError, HttpFetcher
from evorag.tools.crawling._urls import origin_of

from evorag.errors import CrawlError, UserError

_ROBOTS_MAX_BYTES = 512 * 1024


class RobotsRules:
    """The robots.txt rules of the origins a crawl visits, for the agent named in ``user_agent``.

    With ``respect`` False nothing is fetched and everything is allowed.
    """

    def __init__(self, fetcher: HttpFetcher, user_agent: str, *, respect: bool) -> None:
        self.fetcher = fetcher
        self.respect = respect
        self.agent = user_agent.split("/", 1)[0].split()[0] if user_agent.strip() else "*"
        self._parsers: dict[str, urllib.robotparser.RobotFileParser] = {}

    async def load(self, url: str, *, is_start: bool = False) -> None:
        """Fetch the robots.txt of ``url``'s origin unless already known.

        Raises ``CrawlError`` when ``is_start`` and the host cannot be reached at all.
        """
        origin = origin_of(url)
        if not self.respect or origin in self._parsers:
            return
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            result = await self.fetcher.fetch(origin + "/robots.txt", max_bytes=_ROBOTS_MAX_BYTES)
        except FetchError as exc:
            if is_start and exc.status is None and not exc.reason.startswith("page larger"):
                raise CrawlError(
                    f"could not reach {url}: {exc.reason}", hint="check the URL and your network"
                ) from None
            result = None
        except UserError:
            result = None  # a robots.txt redirecting somewhere refused counts as no robots.txt
        if result is None or 400 <= result.status < 500:
            parser.allow_all = True  # RFC 9309: an unavailable robots.txt allows everything
        elif result.status >= 500:
            parser.disallow_all = True  # RFC 9309: an unreachable robots.txt disallows everything
        elif result.status == 200 and result.body is not None:
            parser.parse(result.body.decode("utf-8", errors="replace").splitlines())
        else:
            parser.allow_all = True
        parser.modified()
        self._parsers[origin] = parser
        delay = parser.crawl_delay(self.agent) if not (parser.allow_all or parser.disallow_all) else None
        if delay:
            self.fetcher.limit_rate(origin, 1.0 / float(delay))

    def allows(self, url: str) -> bool:
        if not self.respect:
            return True
        parser = self._parsers.get(origin_of(url))
        return True if parser is None else parser.can_fetch(self.agent, url)

    def sitemaps(self, origin: str) -> list[str]:
        """The ``Sitemap:`` lines of an origin's robots.txt, if it was loaded."""
        parser = self._parsers.get(origin)
        return list(parser.site_maps() or []) if parser is not None else []
