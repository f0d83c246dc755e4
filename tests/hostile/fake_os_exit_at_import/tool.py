"""Class gate-fake (finding 4): os._exit(0) at import time in a test file of an always-failing tool.

Expected: the tests gate refuses it (or the code gate rates it HIGH and it waits, untested, for a human); never deployed."""


def fake_os_exit_at_import(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
