"""Class resource (disk fill in /tmp): the test writes 4 GB into a temporary directory, and passes only if it could.

Expected: stopped by a sandbox limit (or rated HIGH and never run before approval); never deployed."""


def resource_disk_fill(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
