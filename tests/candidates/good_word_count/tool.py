"""Count the words of a text."""

import re
from typing import Literal

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def word_count(text: str, mode: Literal["all", "unique"] = "all") -> int:
    """Count the words in ``text``.

    A word is a run of letters or digits, with inner apostrophes and hyphens ("don't", "well-known").
    With ``mode="unique"`` each distinct word (case-insensitive) counts once.
    """
    words = _words(text)
    if mode == "unique":
        return len({word.casefold() for word in words})
    return len(words)
