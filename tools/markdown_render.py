"""An HTML element tree rendered as Markdown blocks, for chunking and search.

ATX headings, paragraphs, lists, pipe tables, fenced code blocks tagged with the language the page
declares (code kept byte for byte, line numbers and copy buttons left out) and inline `code`. Links
keep their text only. ``evorag.tools.extract`` chooses what to render (the main content); this module
only renders it.
"""

from __future__ import annotations

import re

import lxml.etree

_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = {
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "center",
    "dd",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "li",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
    "html",
    "caption",
}
# Blocks that make an inline element wrapping them render as a block itself.
_WRAPPED_BLOCKS = frozenset({"p", "pre", "div", "ul", "ol", "table", *_HEADINGS})
_INLINE_CODE_TAGS = {"code", "tt", "kbd", "samp", "var"}
_SKIP_INLINE = {"img", "picture", "video", "audio", "source", "track", "map", "wbr"}

_LANGUAGE_CLASS = re.compile(r"^(?:language|lang|highlight|brush|sourcecode)-([\w+#.-]+)$", re.IGNORECASE)
_LANGUAGE_ALIASES = {
    "python3": "python",
    "py": "python",
    "py3": "python",
    "ipython3": "ipython",
    "js": "javascript",
    "shell-session": "console",
    "yml": "yaml",
    "c++": "cpp",
}
_NO_LANGUAGE = {"none", "text", "default", "plain", "plaintext", "txt", "nohighlight", "output"}
# Class tokens of line-number columns and copy buttons next to code: never code themselves.
CODE_FURNITURE = re.compile(
    r"(?:^|[-_ ])(?:linenos?|lineno|line-numbers?|copybutton|clipboard|code-?copy)(?:[-_ ]|$)", re.IGNORECASE
)

# Runs of whitespace collapse to one space outside code.
SPACES = re.compile(r"[ \t\r\n\f\v]+")


def text_of(element: lxml.etree._Element) -> str:
    """All the text inside ``element``, as written."""
    return "".join(element.itertext())


def _classes(element: lxml.etree._Element) -> list[str]:
    return (element.get("class") or "").split()


def _code_language(pre: lxml.etree._Element) -> str | None:
    """The language a code block declares on itself, its <code> child or a wrapper (Sphinx, pandoc)."""
    candidates = [pre]
    code = pre.find("code")
    if code is not None:
        candidates.insert(0, code)
    ancestor = pre.getparent()
    # Sphinx puts the language 2 levels up (5 with line numbers: div.highlight-c > table > tr > td > div).
    for _ in range(6):
        if ancestor is None:
            break
        candidates.append(ancestor)
        ancestor = ancestor.getparent()
    for element in candidates:
        for attribute in ("data-language", "data-lang", "lang"):
            value = element.get(attribute)
            if value and element.tag != "html":
                return _normalize_language(value)
        classes = _classes(element)
        for name in classes:
            match = _LANGUAGE_CLASS.match(name)
            if match:
                return _normalize_language(match.group(1))
        if "sourceCode" in classes:  # pandoc: <pre class="sourceCode python">
            others = [name for name in classes if name != "sourceCode"]
            if others:
                return _normalize_language(others[0])
    return None


def _normalize_language(name: str) -> str | None:
    name = name.strip().lower()
    if not name or name in _NO_LANGUAGE:
        return None
    return _LANGUAGE_ALIASES.get(name, name)


def _code_text(pre: lxml.etree._Element) -> str:
    """The text of a code block exactly as shown: <br> as newlines, line numbers and buttons left out."""
    parts: list[str] = []

    def walk(element: lxml.etree._Element) -> None:
        if element.text:
            parts.append(element.text)
        for child in element:
            if isinstance(child.tag, str):
                if child.tag == "br":
                    parts.append("\n")
                elif not CODE_FURNITURE.search(child.get("class") or "") and child.tag != "button":
                    walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(pre)
    return "".join(parts)


def _fence(code: str, language: str | None) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", code)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language or ''}\n{code}\n{fence}"


def _inline_code(text: str) -> str:
    text = SPACES.sub(" ", text)
    if not text.strip():
        return ""
    if "`" not in text:
        return f"`{text}`"
    longest = max(len(run) for run in re.findall(r"`+", text))
    ticks = "`" * (longest + 1)
    return f"{ticks} {text} {ticks}"


class MarkdownRenderer:
    """Turns an element tree into Markdown blocks (one string per paragraph, heading, code block...)."""

    def __init__(self) -> None:
        self.languages: list[str] = []

    def blocks(self, element: lxml.etree._Element) -> list[str]:
        tag = element.tag
        if not isinstance(tag, str):
            return []
        if tag in _HEADINGS:
            text = self.inline(element).strip().rstrip("¶").strip()
            return [f"{'#' * _HEADINGS[tag]} {text}"] if text else []
        if tag == "pre":
            return [self.code_block(element)]
        if tag in ("ul", "ol", "menu", "dir"):
            return self.list_blocks(element)
        if tag == "table":
            return self.table_blocks(element)
        if tag == "hr":
            return []
        return self.container_blocks(element)

    def container_blocks(self, element: lxml.etree._Element) -> list[str]:
        blocks: list[str] = []
        inline: list[str] = [SPACES.sub(" ", element.text)] if element.text else []
        for child in element:
            if isinstance(child.tag, str) and (child.tag in _BLOCK_TAGS or _has_block(child)):
                self._flush(inline, blocks)
                blocks.extend(self.blocks(child))
            elif isinstance(child.tag, str):
                inline.append(self.inline(child))
            if child.tail:
                inline.append(SPACES.sub(" ", child.tail))
        self._flush(inline, blocks)
        return blocks

    @staticmethod
    def _flush(inline: list[str], blocks: list[str]) -> None:
        if inline:
            text = SPACES.sub(" ", "".join(inline)).strip()
            if text:
                blocks.append(text)
            inline.clear()

    def inline(self, element: lxml.etree._Element) -> str:
        tag = element.tag
        if not isinstance(tag, str) or tag in _SKIP_INLINE:
            return ""
        if tag == "br":
            return "\n"
        if tag in _INLINE_CODE_TAGS and element.getparent() is not None and element.getparent().tag != "pre":
            return _inline_code(text_of(element))
        if tag == "pre":
            return _inline_code(text_of(element))
        parts = [SPACES.sub(" ", element.text)] if element.text else []
        for child in element:
            parts.append(self.inline(child))
            if child.tail:
                parts.append(SPACES.sub(" ", child.tail))
        text = "".join(parts)
        if tag in _BLOCK_TAGS:
            return f" {text} "
        return text

    def code_block(self, pre: lxml.etree._Element) -> str:
        language = _code_language(pre)
        if language and language not in self.languages:
            self.languages.append(language)
        return _fence(_code_text(pre).rstrip("\n"), language)

    def list_blocks(self, element: lxml.etree._Element) -> list[str]:
        ordered = element.tag == "ol"
        number = int(element.get("start") or 1) if (element.get("start") or "1").isdigit() else 1
        lines: list[str] = []
        out: list[str] = []
        for item in element:
            if not isinstance(item.tag, str):
                continue
            item_blocks = self.blocks(item)
            if not item_blocks:
                continue
            marker = f"{number}. " if ordered else "- "
            number += 1
            indent = " " * len(marker)
            first = True
            for block in item_blocks:
                if block.startswith("```"):
                    # Code stays unindented so it is byte-identical to the page's; this ends the list.
                    if lines:
                        out.append("\n".join(lines))
                        lines = []
                    out.append(block)
                    continue
                prefix = marker if first else indent
                block_lines = block.split("\n")
                lines.append(prefix + block_lines[0])
                lines.extend(indent + line if line else "" for line in block_lines[1:])
                first = False
        if lines:
            out.append("\n".join(lines))
        return out

    def table_blocks(self, table: lxml.etree._Element) -> list[str]:
        rows = [row for row in table.iter("tr") if _nearest_table(row) is table]
        layout = (
            table.find(".//pre") is not None
            or table.find(".//table") is not None
            or table.find(".//ul") is not None
            or not rows
        )
        if layout:
            return self.container_blocks(table)
        matrix: list[list[str]] = []
        header_rows = 0
        for row in rows:
            cells = [cell for cell in row if isinstance(cell.tag, str) and cell.tag in ("td", "th")]
            if not cells:
                continue
            texts = [SPACES.sub(" ", self.inline(cell)).strip().replace("|", "\\|") for cell in cells]
            if all(cell.tag == "th" for cell in cells) and header_rows == len(matrix):
                header_rows += 1
            matrix.append(texts)
        if not matrix or not any(any(cell for cell in row) for row in matrix):
            return []
        width = max(len(row) for row in matrix)
        if width == 1:
            return [row[0] for row in matrix if row[0]]
        matrix = [row + [""] * (width - len(row)) for row in matrix]
        caption = table.find("caption")
        blocks = []
        if caption is not None:
            text = SPACES.sub(" ", self.inline(caption)).strip()
            if text:
                blocks.append(text)
        header = matrix[0] if header_rows else [""] * width
        body = matrix[1:] if header_rows else matrix
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * width]
        lines.extend("| " + " | ".join(row) + " |" for row in body)
        blocks.append("\n".join(lines))
        return blocks


def _nearest_table(element: lxml.etree._Element) -> lxml.etree._Element | None:
    parent = element.getparent()
    while parent is not None and parent.tag != "table":
        parent = parent.getparent()
    return parent


def _has_block(element: lxml.etree._Element) -> bool:
    """An inline element wrapping blocks (``<a><div>..</div></a>``) is rendered as a block."""
    for descendant in element.iterdescendants():
        if isinstance(descendant.tag, str) and descendant.tag in _WRAPPED_BLOCKS:
            return True
    return False
