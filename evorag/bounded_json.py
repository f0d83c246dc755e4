"""JSON from outside (HTTP bodies, backup manifests) read with limits, so bad input is a clear refusal.

Python's ``json`` recurses once per nesting level: 100,000 ``[`` raise RecursionError deep inside the
parser, and undecodable bytes raise UnicodeDecodeError. ``loads_bounded`` checks size, encoding (strict
UTF-8) and nesting depth first, with a scan that does not recurse, then parses; every failure is one
``JSONLimitError`` whose message says what was wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string (skipped whole, so brackets inside strings do not count) or a bracket. An unterminated
# string runs to the end of the text in one match, so the scan never restarts inside it: linear time.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.DOTALL)


class JSONLimitError(ValueError):
    """The input is too large, not UTF-8, nested too deep or not JSON; the message says which."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def nesting_depth(text: str, limit: int) -> int:
    """Deepest bracket nesting of ``text`` (a JSON document); stops counting once past ``limit``."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def loads_bounded(data: bytes | str, *, max_bytes: int, max_depth: int, what: str = "the JSON") -> Any:
    """Parse ``data`` as JSON no larger than ``max_bytes`` and nested no deeper than ``max_depth``.

    Raises JSONLimitError (``too_large`` set for the size limit) naming ``what`` and the problem.
    """
    size = len(data)
    if size > max_bytes:
        raise JSONLimitError(f"{what} is {size} bytes, more than the limit of {max_bytes}", too_large=True)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONLimitError(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    else:
        text = data
        if _has_surrogates(text):
            raise JSONLimitError(f"{what} is not valid UTF-8 text (it holds lone surrogates)")
    if nesting_depth(text, max_depth) > max_depth:
        raise JSONLimitError(f"{what} is nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise JSONLimitError(f"{what} is not valid JSON: {str(exc).splitlines()[0][:200]}") from None


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
