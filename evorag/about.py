"""evorag's own version, as installed (what `tools openapi` and the MCP server report)."""

from __future__ import annotations

from importlib import metadata


def evorag_version() -> str:
    """The installed distribution's version; ``__version__`` when running from a source tree not installed."""
    try:
        return metadata.version("evorag")
    except metadata.PackageNotFoundError:
        from evorag import __version__

        return __version__
