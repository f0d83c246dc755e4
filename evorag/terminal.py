"""Untrusted text on the operator's terminal: printed as text, never as terminal commands.

Tool results, gate messages, test output, approval diffs, crawled page text and model output all come
from places evorag does not trust. A terminal obeys escape sequences inside them (retitle the window,
clear the screen, rewrite earlier lines, on some terminals even write files or answer back), so
``strip_control`` removes them before anything reaches a terminal. What is kept is decided by an
allowlist: printable text, newline and tab.
"""

from __future__ import annotations

import re

# Whole escape sequences first, so their printable parameters ("]0;pwned") do not survive as text.
_ESCAPE_SEQUENCES = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]?               # CSI: cursor moves, colours, clear screen
    | \x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?  # OSC: window title, hyperlinks, clipboard
    | \x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?   # DCS, SOS, PM, APC strings
    | \x1b[ -/]*[0-~]?                        # every other ESC sequence (charset, keypad, reset)
    | \x9b[0-?]*[ -/]*[@-~]?                  # 8-bit CSI
    | \x9d[^\x07\x9c]*(?:\x07|\x9c)?            # 8-bit OSC
    | [\x90\x98\x9e\x9f][^\x9c]*\x9c?          # 8-bit DCS, SOS, PM, APC
    """,
    re.VERBOSE,
)
# Control characters that remain (C0 except tab and newline, DEL, C1), and the Unicode format characters
# that reorder how a line is displayed (bidirectional overrides: "Trojan Source" text).
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def strip_control(text: object) -> str:
    """``text`` without terminal escape sequences and control characters (newline and tab are kept)."""
    value = text if isinstance(text, str) else str(text)
    return _CONTROL_CHARACTERS.sub("", _ESCAPE_SEQUENCES.sub("", value))


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape_json_controls(text: str) -> str:
    """Escape what ``json.dumps(ensure_ascii=False)`` leaves raw and a terminal would act on (DEL, C1,
    bidi overrides) as ``\\uXXXX``. Valid in JSON strings, so the output still parses to the same data."""
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
