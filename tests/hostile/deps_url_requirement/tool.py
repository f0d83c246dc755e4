"""Class dependencies: direct URL and VCS requirements (to the host's loopback socket, a file:// path, git+file://).

Expected: rejected at the dependency gate (or HIGH and pending) before pip reaches anything; no host code runs."""


def deps_url_requirement(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
