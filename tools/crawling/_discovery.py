"""Pages a site lists about itself: sitemaps (indexes, gzipped, plain text) and llms.txt.

Both are fetched through the guarded fetcher with their own size caps; a missing or broken list gives
no pages, never an error (the crawl still follows links).
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from urllib.parse import urldefrag, urljoin

import lxml.etree
from evorag.tools.crawling._fetch import FetchError, FetchResult, HttpFetcher

from evorag.errors import UserError

_LLMS_MAX_BYTES = 1024 * 1024
_SITEMAP_MAX_BYTES = 20 * 1024 * 1024
_MAX_SITEMAPS = 25
_MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?<![(<\w])(https?://[^\s)<>\]]+)")


async def _fetch_list(fetcher: HttpFetcher, url: str, max_bytes: int) -> FetchResult | None:
    """The 200 response of a list with a body, or None (missing, refused, failed, too large)."""
    try:
        result = await fetcher.fetch(url, max_bytes=max_bytes)
    except (FetchError, UserError):
        return None
    if result.status != 200 or not result.body:
        return None
    return result


async def llms_txt_urls(fetcher: HttpFetcher, url: str) -> list[str]:
    """The pages an llms.txt links to (absolute, without fragment)."""
    result = await _fetch_list(fetcher, url, _LLMS_MAX_BYTES)
    if result is None or result.body is None:
        return []
    return llms_txt_links(result.body.decode("utf-8", errors="replace"), result.url)


def llms_txt_links(text: str, base_url: str) -> list[str]:
    """Markdown links and bare URLs of an llms.txt, resolved against ``base_url``."""
    urls = []
    for match in _MARKDOWN_LINK.finditer(text):
        link = match.group(1) or match.group(2)
        try:
            absolute = urldefrag(urljoin(base_url, link))[0]
        except ValueError:
            continue
        # llms.txt links often point at the Markdown twin of a page ("page.html.md"); crawl the page.
        absolute = absolute.removesuffix(".md")
        urls.append(absolute)
    return urls


async def sitemap_urls(fetcher: HttpFetcher, candidates: list[str]) -> list[str]:
    """Page URLs of the ``candidates`` sitemaps and of the sitemaps they index (25 sitemaps at most)."""
    pending = deque(dict.fromkeys(candidates))
    fetched: set[str] = set()
    urls: list[str] = []
    while pending and len(fetched) < _MAX_SITEMAPS:
        sitemap = pending.popleft()
        if sitemap in fetched:
            continue
        fetched.add(sitemap)
        result = await _fetch_list(fetcher, sitemap, _SITEMAP_MAX_BYTES)
        if result is None or result.body is None:
            continue
        pages, children = parse_sitemap(result.body)
        urls.extend(pages)
        pending.extend(child for child in children if child not in fetched)
    return urls


def parse_sitemap(body: bytes) -> tuple[list[str], list[str]]:
    """Page URLs and child sitemap URLs of a sitemap, sitemap index, gzipped sitemap or text sitemap."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, _SITEMAP_MAX_BYTES)
        except zlib.error:
            return [], []
    stripped = body.lstrip()
    if not stripped.startswith(b"<"):
        lines = body.decode("utf-8", errors="replace").splitlines()
        return [line.strip() for line in lines if line.strip().startswith(("http://", "https://"))], []
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    try:
        root = lxml.etree.fromstring(stripped, parser=parser)
    except lxml.etree.XMLSyntaxError:
        return [], []
    if root is None:
        return [], []
    pages: list[str] = []
    children: list[str] = []
    is_index = lxml.etree.QName(root).localname == "sitemapindex"
    for element in root.iter("{*}loc"):
        text = (element.text or "").strip()
        if text:
            (children if is_index else pages).append(text)
    return pages, children
