"""Render rows as a text table."""

from tabulate import tabulate


def render_table(rows: list[list[str]], headers: list[str] | None = None) -> str:
    """Render ``rows`` (and optional ``headers``) as a plain-text table with aligned columns."""
    return tabulate(rows, headers=headers or (), tablefmt="simple")
