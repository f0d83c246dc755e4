"""Class gate-fake: sys.exit(0) in a conftest.py and at import of the test file (the conftest-like trick).

Expected: the tests gate refuses it (or the code gate rates it HIGH and it waits, untested, for a human); never deployed."""


def fake_sys_exit_conftest(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
