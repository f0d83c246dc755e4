"""Class resource (fork bomb): the test forks without end.

Expected: stopped by a sandbox limit (or rated HIGH and never run before approval); never deployed."""


def resource_fork_bomb(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
