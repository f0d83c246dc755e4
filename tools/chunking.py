"""Heading-aware chunking of Markdown pages.

Chunks follow the page's sections and carry their heading path (the breadcrumb). Fenced code blocks are
never split: a block larger than the size bound becomes a chunk of its own. Every code block is also
emitted as a separate ``code`` chunk (with the paragraph that introduces it) so code examples are
searchable on their own.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from evorag.tools.types import Chunk

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+#.-]*)")
_LINE_BACKTICKS = re.compile(r"^[ \t]*(`{3,})", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`(\[])")
_NAMESPACE = uuid.UUID("6f1c1c8e-8f0e-4c55-9d0b-2d8f3f3f2a10")


@dataclass(slots=True)
class _Block:
    kind: str  # "heading" | "code" | "text"
    text: str
    level: int = 0
    language: str | None = None


def parse_blocks(markdown: str) -> list[_Block]:
    """Split Markdown into headings, fenced code blocks and text paragraphs."""
    blocks: list[_Block] = []
    paragraph: list[str] = []

    def flush_paragraph() -> None:
        text = "\n".join(paragraph).strip()
        if text:
            blocks.append(_Block("text", text))
        paragraph.clear()

    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush_paragraph()
            marker = fence.group(2)
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1  # closing fence (or end of document for an unterminated block)
            code = "\n".join(body)
            if code.strip():
                blocks.append(_Block("code", code, language=fence.group(3) or None))
            continue
        heading = _HEADING.match(line)
        if heading:
            flush_paragraph()
            blocks.append(_Block("heading", heading.group(2).strip(), level=len(heading.group(1))))
        elif line.strip():
            paragraph.append(line)
        else:
            flush_paragraph()
        i += 1
    flush_paragraph()
    return blocks


def _render(block: _Block) -> str:
    if block.kind == "code":
        fence = _fence_for(block.text)
        return f"{fence}{block.language or ''}\n{block.text}\n{fence}"
    if block.kind == "heading":
        return f"{'#' * block.level} {block.text}"
    return block.text


def _fence_for(code: str) -> str:
    """A backtick fence longer than any backtick run that starts a line of ``code`` (CommonMark): a ``` line in
    a block the page fenced with ~~~ or ```` must not close the block it is rendered in."""
    longest = max((len(match.group(1)) for match in _LINE_BACKTICKS.finditer(code)), default=0)
    return "`" * max(3, longest + 1)


def _split_long_text(text: str, max_chars: int) -> list[str]:
    """Split an oversized paragraph at sentence ends, then at line ends, then hard."""
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > max_chars:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    prefix = []
    for left, right in zip(a, b):
        if left != right:
            break
        prefix.append(left)
    return prefix or a[:1]


def chunk_id(url: str, content_hash: str, position: int, kind: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{url}\n{content_hash}\n{position}\n{kind}"))


def chunk_page(
    *,
    url: str,
    title: str,
    markdown: str,
    source: str,
    content_hash: str,
    crawled_at: float,
    max_chars: int = 1600,
    min_chars: int = 200,
) -> list[Chunk]:
    """Cut one page into text chunks (by section, within ``max_chars``) and code chunks."""
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []  # (level, heading) stack
    buffer: list[str] = []
    buffer_path: list[str] = []
    buffer_len = 0
    last_text = ""

    def add(text: str, kind: str, heading_path: list[str], language: str | None = None) -> None:
        position = len(chunks)
        chunks.append(
            Chunk(
                id=chunk_id(url, content_hash, position, kind),
                url=url,
                source=source,
                title=title,
                heading_path=list(heading_path),
                text=text,
                kind=kind,  # type: ignore[arg-type]
                position=position,
                content_hash=content_hash,
                crawled_at=crawled_at,
                language=language,
            )
        )

    def flush() -> None:
        nonlocal buffer_len
        text = "\n\n".join(buffer).strip()
        # A buffer holding only headings says nothing on its own; it is carried into the next chunk.
        if text and any(not piece.startswith("#") for piece in buffer):
            add(text, "text", buffer_path)
            buffer.clear()
            buffer_len = 0

    def current_path() -> list[str]:
        return [heading for _, heading in path] or ([title] if title else [])

    for block in parse_blocks(markdown):
        if block.kind == "heading":
            if buffer_len >= min_chars:
                flush()
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, block.text))
            # A chunk spanning several small sections is cited by the path they share.
            buffer_path = _common_prefix(buffer_path, current_path()) if buffer else current_path()
            rendered = _render(block)
            buffer.append(rendered)
            buffer_len += len(rendered)
            continue

        rendered = _render(block)
        pieces = [rendered]
        if block.kind == "text" and len(rendered) > max_chars:
            pieces = _split_long_text(rendered, max_chars)
        for piece in pieces:
            if buffer and buffer_len + len(piece) > max_chars:
                flush()
            if not buffer:
                buffer_path = current_path()
            buffer.append(piece)
            buffer_len += len(piece)

        if block.kind == "code":
            intro = last_text[-400:] if last_text else ""
            code_text = f"{intro}\n\n{rendered}".strip() if intro else rendered
            add(code_text, "code", current_path(), block.language)
        else:
            last_text = block.text
    if buffer:
        text = "\n\n".join(buffer).strip()
        if text:
            add(text, "text", buffer_path)
    # Positions follow document order of emission; renumber so text and code interleave stably.
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """What the dense model sees: the breadcrumb gives short chunks the context they lack."""
    crumbs = " > ".join(part for part in [chunk.title, *chunk.heading_path] if part)
    # Avoid repeating the title when it is also the first heading.
    if chunk.heading_path and chunk.heading_path[0] == chunk.title:
        crumbs = " > ".join(chunk.heading_path)
    return f"{crumbs}\n{chunk.text}" if crumbs else chunk.text
