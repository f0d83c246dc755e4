"""Class terminal escapes (finding 10): the failing test's message and its output carry OSC/CSI escape sequences (window title, clear screen, hyperlink, 8-bit CSI) and a bidi override.

Expected: rejected at the tests gate; no raw control byte reaches the operator's terminal (the JSON output escapes them)."""


def terminal_escapes(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
