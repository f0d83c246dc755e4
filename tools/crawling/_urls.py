"""URL utilities of the crawler: canonical form, deduplication, origins, the site's scope and URL filters."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

# Links to these are not pages; skipping them saves a request each ("Show Source" links, downloads).
NOT_PAGE_EXTENSIONS = frozenset(
    [
        ".txt",
        ".rst",
        ".md",
        ".pdf",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".tar",
        ".whl",
        ".egg",
        ".exe",
        ".dmg",
        ".msi",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".svg",
        ".webp",
        ".ico",
        ".bmp",
        ".css",
        ".js",
        ".mjs",
        ".map",
        ".json",
        ".xml",
        ".csv",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".eot",
        ".mp3",
        ".mp4",
        ".webm",
        ".ogg",
        ".wav",
        ".inv",
        ".epub",
        ".ipynb",
        ".py",
        ".c",
        ".h",
    ]
)


def normalize_url(url: str) -> str:
    """Canonical form used to compare URLs: lower-case scheme and host, no default port or fragment.

    Raises:
        ValueError: the URL cannot be parsed.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    if parts.username is not None:
        netloc = f"{parts.username}{':' + parts.password if parts.password is not None else ''}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def dedupe_key(url: str) -> str:
    """``/docs/`` and ``/docs/index.html`` are the same page on virtually every documentation host."""
    for index in ("index.html", "index.htm"):
        if url.endswith("/" + index):
            return url[: -len(index)]
    return url


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, normalized: the unit of rate limits and robots.txt."""
    parts = urlsplit(normalize_url(url))
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(slots=True)
class Scope:
    """Same scheme and host (with port) as the start URL, and a path under its directory."""

    scheme: str
    netloc: str
    prefix: str

    def contains(self, url: str) -> bool:
        parts = urlsplit(url)
        return (
            parts.scheme == self.scheme
            and parts.netloc == self.netloc
            and (parts.path or "/").startswith(self.prefix)
        )


def scope_for(url: str) -> Scope:
    """The site a crawl starting at ``url`` stays in: its origin and the directory of its path."""
    parts = urlsplit(url)
    path = parts.path or "/"
    prefix = path[: path.rfind("/") + 1] or "/"
    return Scope(parts.scheme, parts.netloc, prefix)


def looks_like_page(url: str) -> bool:
    """False for links whose extension says they are not pages (sources, downloads, images)."""
    return os.path.splitext(urlsplit(url).path)[1].lower() not in NOT_PAGE_EXTENSIONS


def wanted(url: str, include: list[str], exclude: list[str]) -> bool:
    """Whether ``url`` matches one of ``include`` (when any) and none of ``exclude``.

    A glob with ``://`` matches the whole URL; any other matches the path, or the path with its query.
    """
    path = urlsplit(url).path or "/"
    path_and_query = path + ("?" + urlsplit(url).query if urlsplit(url).query else "")

    def matches(pattern: str) -> bool:
        if "://" in pattern:
            return fnmatch.fnmatchcase(url, pattern)
        return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path_and_query, pattern)

    if include and not any(matches(p) for p in include):
        return False
    return not any(matches(p) for p in exclude)
