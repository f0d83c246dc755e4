def repeat(text, times: int = 2) -> str:
    """Repeat ``text`` ``times`` times."""
    return text * times
