"""Check whether a URL answers."""

import requests


def is_up(url: str) -> bool:
    """True when ``url`` answers with a status below 400."""
    return requests.head(url, timeout=5).status_code < 400
