"""Fetch the title of a web page."""

import re
import urllib.request as fetch


def page_title(url: str) -> str:
    """Download ``url`` and return the text of its <title> element ('' when it has none)."""
    with fetch.urlopen(url, timeout=10) as response:
        html = response.read(200_000).decode("utf-8", "replace")
    match = re.search(r"<title[^>]*>(.*?)</title>", html, re.IGNORECASE | re.DOTALL)
    return match.group(1).strip() if match else ""
