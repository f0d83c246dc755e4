"""Class gate-fake: the test file deletes its own failing test at import (runtime deletion).

Expected: the tests gate refuses it (or the code gate rates it HIGH and it waits, untested, for a human); never deployed."""


def fake_delete_tests(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
