"""Class gate-fake: unittest-style tests (collected although not named Test*) that skip themselves and raise SkipTest at import.

Expected: the tests gate refuses it (or the code gate rates it HIGH and it waits, untested, for a human); never deployed."""


def fake_unittest_skip(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
