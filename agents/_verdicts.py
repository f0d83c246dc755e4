"""Verdict lines: the first line of a step's message says how the step ended, and the edges of a team graph
read it (``when: PASS`` in a team spec).

    TESTS: PASS (1.2s)          -> PASS       a check's verdict: LABEL: PASS | LABEL: FAIL
    DEBUG: FAIL code: ...       -> FAIL
    APPROVE, REJECTED: ...      -> APPROVE, REJECTED   otherwise the leading word in capitals
    STOP: tests failed ...      -> STOP       no edge of the built-in graphs follows STOP: the flow ends
    anything else               -> None       only unconditional edges follow it
"""

from __future__ import annotations

import re

_LINE = re.compile(r"^\s*([A-Z][A-Z_]*)\b(?::\s*(PASS|FAIL)\b)?")
VERDICT_WORD = re.compile(r"^[A-Z][A-Z_]*$")


def verdict_of(text: object) -> str | None:
    """The verdict word of a message's first line, or None when it does not start with one."""
    if not isinstance(text, str):
        return None
    match = _LINE.match(text.split("\n", 1)[0])
    if match is None:
        return None
    return match.group(2) or match.group(1)


def verdict_line(label: str, ok: bool, detail: str = "") -> str:
    """``LABEL: PASS detail`` or ``LABEL: FAIL detail``, the first line a check's message starts with."""
    return f"{label}: {'PASS' if ok else 'FAIL'}" + (f" {detail}" if detail else "")
