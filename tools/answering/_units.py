"""The pieces an extractive answer is made of: a passage's Markdown cut into sentences, list items, table rows,
definition terms (with their first sentence) and whole code blocks, in reading order.

Chunks are the Markdown our crawler renders (tools/markdown_render.py): ATX headings, paragraphs, ``-``/``1.``
list items, pipe tables, fenced code blocks. Sphinx and pydoc definition lists come out as a paragraph holding
the term alone (``flask.abort(code)``) followed by its definition, so a short signature-like paragraph is read
as a term and joined to the first sentence of the paragraph after it. A code block cut by the context budget
(no closing fence) is marked open: an answer never shows part of a code block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from evorag.tools.evaluation import split_sentences
from evorag.tools.markdown_blocks import CodeBlock, fenced_segments

UnitKind = Literal["sentence", "item", "row", "term", "code"]

_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(?P<title>.*?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
# A definition term: one line, no sentence end, and shaped like an API signature (a dotted or called name,
# a decorator, an option) -- "flask.abort(code)", "class flask.Flask(import_name, ...)", "--lf, --last-failed".
_TERM = re.compile(r"^(?:(?:class|exception|async|def|property|classmethod|staticmethod|data|attribute)\s+)?"
                   r"(?:@|--?)?[A-Za-z_][\w.:\[\]-]*(?:\(.*\))?(?:\s*(?:->|:|=).*)?$")
_CODE_SHAPE = re.compile(r"[(._@]|--|[a-z][A-Z]")
# Prose shorter than this is a label or a fragment ("Parameters:", "New in version 0.9."), not an answer.
MIN_PROSE_CHARS = 20
# Items and rows longer than this are split into sentences like a paragraph.
MAX_WHOLE_ITEM_CHARS = 320


@dataclass(slots=True, frozen=True)
class Unit:
    """One candidate piece of an answer. ``index`` orders the units of a passage; ``section`` is the heading
    the unit sits under inside the passage (the passage's own section when there is none)."""

    passage: int  # the passage's citation number
    index: int
    kind: UnitKind
    text: str
    section: str
    closed: bool = True  # code only: the block's closing fence is in the passage
    before_code: bool = False  # prose only: a code block follows this unit directly
    language: str = ""
    block: int = 0  # the paragraph, item, row or code block the unit comes from (its position in the passage)

    @property
    def is_code(self) -> bool:
        return self.kind == "code"


@dataclass(slots=True)
class _Block:
    kind: Literal["para", "item", "row", "heading", "code"]
    text: str
    closed: bool = True
    language: str = ""


def _blocks(markdown: str) -> list[_Block]:
    """Markdown into headings, paragraphs, list items, table rows and code blocks, in order."""
    blocks: list[_Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(_Block("para", " ".join(paragraph)))
            paragraph.clear()

    for segment in fenced_segments(markdown.splitlines()):
        if isinstance(segment, CodeBlock):
            flush()
            blocks.append(_Block("code", segment.code, closed=segment.closed, language=segment.language))
            continue
        line = segment
        stripped = line.strip()
        heading = _HEADING.match(line)
        if not stripped or _TABLE_RULE.match(stripped):
            flush()
        elif heading is not None:
            flush()
            blocks.append(_Block("heading", heading.group("title")))
        elif stripped.startswith("|"):
            flush()
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            blocks.append(_Block("row", " | ".join(cell for cell in cells if cell)))
        elif _ITEM.match(line):
            flush()
            blocks.append(_Block("item", _ITEM.sub("", line).strip()))
        elif blocks and blocks[-1].kind == "item" and not paragraph and line.startswith((" ", "\t")):
            blocks[-1].text += " " + stripped  # an item's continuation line
        else:
            paragraph.append(stripped.lstrip(">").strip())
    flush()
    return blocks


def _is_term(block: _Block, following: _Block | None) -> bool:
    text = block.text.strip("`* ")
    return (following is not None and following.kind == "para" and len(text) <= 200
            and not text.endswith((".", "!", "?")) and _TERM.match(text) is not None
            and _CODE_SHAPE.search(text) is not None)


def passage_units(number: int, markdown: str, section: str = "") -> list[Unit]:
    """The units of one passage (its citation ``number``), in reading order."""
    blocks = _blocks(markdown)
    units: list[Unit] = []
    current = section
    pending_term: str | None = None

    def add(kind: UnitKind, text: str, block: int, **extra) -> None:
        units.append(Unit(number, len(units), kind, text, current, block=block, **extra))

    for position, block in enumerate(blocks):
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        if block.kind == "heading":
            current = block.text or current
            pending_term = None
            continue
        if block.kind == "code":
            add("code", block.text, position, closed=block.closed, language=block.language)
            pending_term = None
            continue
        if block.kind == "para" and _is_term(block, following):
            pending_term = block.text
            continue
        if block.kind in ("item", "row") and len(block.text) <= MAX_WHOLE_ITEM_CHARS:
            pieces = [block.text]
        else:
            pieces = split_sentences(block.text)
        for number_in_block, piece in enumerate(pieces):
            last = number_in_block == len(pieces) - 1
            before_code = last and following is not None and following.kind == "code"
            if pending_term is not None:
                add("term", f"{pending_term}: {piece}", position, before_code=before_code)
                pending_term = None
            elif len(piece) >= MIN_PROSE_CHARS or before_code:
                kind: UnitKind = "sentence" if block.kind == "para" else block.kind  # type: ignore[assignment]
                add(kind, piece, position, before_code=before_code)
    return units
