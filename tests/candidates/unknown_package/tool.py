"""Summarise text with a package that does not exist."""

import evorag_nonexistent_pkg_zz9


def summarise(text: str) -> str:
    """Return a one-line summary of ``text``."""
    return evorag_nonexistent_pkg_zz9.summarise(text)
