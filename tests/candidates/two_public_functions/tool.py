"""Two tools in one module: only one is allowed."""


def to_upper(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


def to_lower(text: str) -> str:
    """Lower-case the text."""
    return text.lower()
