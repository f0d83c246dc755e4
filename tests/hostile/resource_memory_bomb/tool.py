"""Class resource (memory): allocates 8 GiB at import, in plain code that the analyser rates LOW.

Expected: MemoryError under the sandbox's memory limit -> rejected at the tests gate."""

_CACHE = bytearray(8 * 1024**3)


def resource_memory_bomb(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + len(_CACHE) * 0
