"""Citation markers: ``[1]``, ``[2, 3]``, ``[2][3]`` in an answer, mapped to the numbered passages."""

from __future__ import annotations

import re
from collections.abc import Sequence

from evorag.tools.answering._context import Passage

CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    """Citation numbers in order of first appearance: ``[1]``, ``[2, 3]``, ``[2][3]``."""
    seen: dict[int, None] = {}
    for match in CITATION.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            seen.setdefault(int(part), None)
    return list(seen)


def resolve_citations(text: str, passages: Sequence[Passage]) -> tuple[str, list[dict], list[int]]:
    """Map [n] markers to passages; markers that point nowhere are removed from the text and reported."""
    valid = {passage.number: passage for passage in passages}
    numbers = cited_numbers(text)
    invalid = [n for n in numbers if n not in valid]
    if invalid:
        def keep_valid(match: re.Match) -> str:
            kept = [p.strip() for p in re.split(r"[,;]", match.group(1)) if int(p) in valid]
            return f"[{', '.join(kept)}]" if kept else ""

        text = CITATION.sub(keep_valid, text)
    citations = [valid[n].citation() for n in numbers if n in valid]
    return text.strip(), citations, invalid
