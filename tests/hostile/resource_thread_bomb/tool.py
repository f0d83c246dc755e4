"""Class resource (thread bomb): the test starts threads until it cannot, and passes only above 10,000.

Expected: stopped by a sandbox limit (or rated HIGH and never run before approval); never deployed."""


def resource_thread_bomb(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
