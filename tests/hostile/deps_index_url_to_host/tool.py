"""Class dependencies / network: requirements.txt points pip at an index on the host's loopback (the battery's socket) and adds pip options.

Expected: rejected at the dependency gate (or HIGH and pending) before pip reaches anything; no host code runs."""


def deps_index_url_to_host(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
