"""One page response into Markdown: content-type check, charset decoding, main-content extraction."""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus

from evorag.tools.crawling._fetch import FetchResult
from evorag.tools.extract import ExtractedPage, extract_main_content

_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
# Pages above this size are extracted in a worker thread so the event loop keeps serving sockets.
_THREAD_EXTRACT_BYTES = 256 * 1024


def accept_html(result: FetchResult) -> str | None:
    """The ``accept`` check of page fetches: why a response is refused (not HTML), or None to read it."""
    content_type = result.content_type
    if not content_type or content_type in _HTML_TYPES:
        return None
    return f"not HTML: {content_type}"


def decode_html(body: bytes, content_type_header: str) -> str:
    """Text of an HTML body: the Content-Type charset, else a ``<meta>`` charset, else UTF-8, else cp1252."""
    charset = None
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type_header, re.IGNORECASE)
    if match:
        charset = match.group(1)
    else:
        meta = _META_CHARSET.search(body[:4096])
        if meta:
            charset = meta.group(1).decode("ascii", errors="ignore")
    if charset:
        try:
            return body.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


async def extract_page(html: str, url: str, selector: str | None) -> ExtractedPage:
    """``extract_main_content`` of a page; a large page off the event loop."""
    if len(html) > _THREAD_EXTRACT_BYTES:
        return await asyncio.to_thread(extract_main_content, html, url, selector=selector)
    return extract_main_content(html, url, selector=selector)
