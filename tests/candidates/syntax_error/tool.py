"""Add two numbers (but the code does not parse)."""


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a +
