"""Class files-are-files: requirements.txt and a test file are FIFOs.

Expected: refused with a one-line error, at once (never a hang)."""


def fifo_requirements(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
