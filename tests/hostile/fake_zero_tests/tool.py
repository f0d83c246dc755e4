"""Class gate-fake: a test file that defines zero tests (pytest exits 5, or 0 with other files).

Expected: the tests gate refuses it (or the code gate rates it HIGH and it waits, untested, for a human); never deployed."""


def fake_zero_tests(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
