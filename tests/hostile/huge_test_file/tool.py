"""Class files-are-files / resource (huge files): a 600 kB test file and a sparse 700 MB requirements.txt.

Expected: refused with a one-line error before anything reads them."""


def huge_test_file(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
