"""Fenced code blocks in Markdown, read the CommonMark way: the one reader the answerer and the evaluator share.

An opening fence is three or more backticks or tildes indented by at most three spaces; a backtick fence's info
string may not itself hold a backtick (such a line is inline code, not a fence). The block ends at a line of the
same character, at least as long as the opening fence, with nothing after it but spaces; a block without a
closing fence runs to the end of the text and is marked ``closed=False`` (a passage cut by a budget).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)[^\n]*$")


@dataclass(slots=True)
class CodeBlock:
    """A fenced code block; ``language`` is the first word of the info string, lowercased ('' if none)."""

    language: str
    code: str
    closed: bool = True


def _opening_fence(line: str) -> re.Match[str] | None:
    match = _FENCE_OPEN.match(line)
    if match is None or (match.group("fence")[0] == "`" and "`" in line[match.end("fence"):]):
        return None
    return match


def fenced_segments(lines: Sequence[str]) -> Iterator[str | CodeBlock]:
    """The lines outside code blocks (as ``str``) and each fenced block (as one ``CodeBlock``), in order."""
    i = 0
    while i < len(lines):
        opening = _opening_fence(lines[i])
        if opening is None:
            yield lines[i]
            i += 1
            continue
        fence = opening.group("fence")
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            if closing.match(lines[i]):
                closed = True
                i += 1
                break
            body.append(lines[i])
            i += 1
        yield CodeBlock(language=opening.group("info").lower(), code="\n".join(body), closed=closed)
