"""Documents on disk turned into the Markdown the chunker reads: Markdown, reStructuredText, HTML, Jupyter
notebooks, plain text and PDF.

One file becomes one or more sections (a PDF: one per page, cited as ``FILE#page=N``). The conversion keeps what
the chunker cuts on: headings and fenced code blocks. Which files are read is decided by suffix (an allowlist,
``SUFFIXES``); a file that cannot be read as its suffix says raises ``UnreadableFile`` with the reason.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import PurePosixPath

MARKDOWN = frozenset({".md", ".markdown", ".mdx"})
RESTRUCTURED = frozenset({".rst", ".rest"})
HTML = frozenset({".html", ".htm"})
NOTEBOOK = frozenset({".ipynb"})
TEXT = frozenset({".txt", ".text"})
PDF = frozenset({".pdf"})
SUFFIXES = MARKDOWN | RESTRUCTURED | HTML | NOTEBOOK | TEXT | PDF


class UnreadableFile(Exception):
    """A file that is not what its suffix says (binary text, broken JSON, an encrypted PDF...)."""


@dataclass(frozen=True, slots=True)
class Section:
    """What one file (or one page of a PDF: ``fragment`` ``page=N``) contributes to the index."""

    title: str
    markdown: str
    fragment: str | None = None


def is_supported(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in SUFFIXES


def convert(name: str, data: bytes, *, max_pdf_pages: int = 2000) -> list[Section]:
    """The sections of file ``name`` (its suffix picks the format) holding ``data``; empty when it has no text."""
    suffix = PurePosixPath(name).suffix.lower()
    stem = PurePosixPath(name).name
    if suffix in PDF:
        return _pdf(data, stem, max_pdf_pages)
    text = _decode(data)
    if suffix in MARKDOWN:
        markdown = text
    elif suffix in RESTRUCTURED:
        markdown = rst_to_markdown(text)
    elif suffix in HTML:
        from evorag.tools.extract import extract_main_content  # lxml: loaded when an HTML file is met

        page = extract_main_content(data, f"file:///{stem}")
        return [Section(page.title or stem, page.markdown)] if page.markdown.strip() else []
    elif suffix in NOTEBOOK:
        markdown = notebook_to_markdown(text)
    elif suffix in TEXT or suffix == "":
        markdown = text
    else:
        raise UnreadableFile(f"unsupported file type {suffix!r}")
    if not markdown.strip():
        return []
    return [Section(_first_heading(markdown) or stem, markdown)]


def _first_heading(markdown: str) -> str:
    for line in markdown.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableFile("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableFile("not UTF-8 text") from None


# reStructuredText ----------------------------------------------------------------------------------------------
_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^\.\.\s+([\w:-]+)::\s*(.*)$")
_ROLE = re.compile(r":[\w:.+-]+:`([^`]+)`")
_DOUBLE_LITERAL = re.compile(r"``([^`]+)``")
_CODE_DIRECTIVES = frozenset({"code-block", "code", "sourcecode", "ipython", "doctest"})
_ADMONITIONS = frozenset({"note", "warning", "tip", "important", "caution", "danger", "attention", "hint", "error",
                          "seealso", "deprecated", "versionadded", "versionchanged", "admonition"})


def rst_to_markdown(text: str) -> str:
    """reStructuredText reduced to Markdown headings, fenced code and paragraphs (not a full renderer: the index
    needs the section structure and the code, not the typography). Heading levels follow the order in which
    adornment styles first appear, as docutils assigns them."""
    lines = text.expandtabs(4).splitlines()
    styles: list[tuple[str, bool]] = []
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _rst_heading(lines, i)
        if heading is not None:
            title, style, consumed = heading
            if style not in styles:
                styles.append(style)
            out += ["", "#" * min(styles.index(style) + 1, 6) + " " + _inline(title), ""]
            i += consumed
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            name, argument = directive.group(1).lower(), directive.group(2).strip()
            body, i = _indented_block(lines, i + 1)
            if name in _CODE_DIRECTIVES:
                language = argument.split()[0] if argument else ""
                out += ["", f"```{language}", *_drop_options(body), "```", ""]
            elif name in _ADMONITIONS:
                label = name.capitalize() if name != "admonition" else argument
                out += ["", f"**{label}:** {_inline(argument) if name != 'admonition' else ''}".rstrip(),
                        *(_inline(b) for b in _drop_options(body)), ""]
            elif name in {"toctree", "image", "figure", "include", "raw", "only", "meta", "contents", "index"}:
                pass  # navigation and layout: no searchable text
            else:
                out += ["", *(_inline(b) for b in _drop_options(body)), ""]
            continue
        if line.startswith(".. "):  # a comment, a target or a substitution definition, with its block
            _, i = _indented_block(lines, i + 1)
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            # A literal block follows ("Example::" reads "Example:"; a lone "::" disappears).
            intro = line.rstrip()[:-2].rstrip()
            if intro:
                out.append(_inline(intro + (":" if not intro.endswith(":") else "")))
            body, i = _indented_block(lines, i + 1)
            if body:
                out += ["", "```", *body, "```", ""]
            continue
        out.append(_inline(line))
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def _rst_heading(lines: list[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """(title, (adornment character, overlined?), lines consumed) when a section title starts at line ``i``."""
    line = lines[i]
    following = lines[i + 1] if i + 1 < len(lines) else ""
    if _ADORNMENT.match(line) and i + 2 < len(lines):  # overline, title, underline
        title, under = lines[i + 1].strip(), lines[i + 2].rstrip()
        # Lenient on length: an overlined title is unambiguous, and hand-written ones are often a bit short.
        if title and under == line.rstrip() and not _ADORNMENT.match(lines[i + 1]):
            return title, (line.strip()[0], True), 3
    title = line.strip()
    if (title and line == line.lstrip() and not _ADORNMENT.match(line) and _ADORNMENT.match(following)
            and len(following.rstrip()) >= len(title)):
        return title, (following.strip()[0], False), 2
    return None


def _indented_block(lines: list[str], i: int) -> tuple[list[str], int]:
    """The indented block starting at line ``i`` (blank lines inside kept), dedented; and the line after it."""
    block: list[str] = []
    while i < len(lines) and (not lines[i].strip() or lines[i][:1].isspace()):
        block.append(lines[i])
        i += 1
    while block and not block[-1].strip():
        block.pop()
    return textwrap.dedent("\n".join(block)).strip("\n").splitlines(), i


def _drop_options(body: list[str]) -> list[str]:
    """A directive body without its leading ``:option: value`` lines."""
    start = 0
    while start < len(body) and re.match(r"^:[\w-]+:", body[start]):
        start += 1
    while start < len(body) and not body[start].strip():
        start += 1
    return body[start:]


def _inline(line: str) -> str:
    return _DOUBLE_LITERAL.sub(r"`\1`", _ROLE.sub(r"`\1`", line))


# Jupyter notebooks ---------------------------------------------------------------------------------------------
def notebook_to_markdown(text: str) -> str:
    """A notebook's markdown cells as they are and its code cells fenced in the kernel's language; outputs and
    raw cells are left out (they are results, often large, rarely documentation)."""
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableFile(f"not a notebook (invalid JSON: {exc.msg})") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise UnreadableFile("not a notebook (no cell list)")
    metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
    language = ((metadata.get("kernelspec") or {}).get("language")
                or (metadata.get("language_info") or {}).get("name") or "python")
    language = language if isinstance(language, str) and re.fullmatch(r"[\w+#.-]{1,30}", language) else ""
    parts: list[str] = []
    for cell in notebook["cells"]:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        source = "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else str(source)
        if not source.strip():
            continue
        if cell.get("cell_type") == "markdown":
            parts.append(source.strip())
        elif cell.get("cell_type") == "code":
            parts.append(f"```{language}\n{source.rstrip()}\n```")
    return "\n\n".join(parts)


# PDF -----------------------------------------------------------------------------------------------------------
def _pdf(data: bytes, name: str, max_pages: int) -> list[Section]:
    """One section per page with text, cited as ``page=N`` (1-based, as PDF viewers number pages)."""
    import pypdf  # loaded when a PDF is met: most folders have none
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("an encrypted PDF")
        title = _pdf_title(reader) or name
        sections = []
        for number, page in enumerate(reader.pages, 1):
            if number > max_pages:
                break
            text = (page.extract_text() or "").strip()
            if text:
                sections.append(Section(f"{title} (page {number})", _plain_lines(text), f"page={number}"))
        return sections
    except UnreadableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableFile(f"not a readable PDF ({type(exc).__name__})") from None


def _pdf_title(reader) -> str:
    try:
        title = (reader.metadata or {}).get("/Title")
    except Exception:  # noqa: BLE001 - broken metadata must not lose the page text
        return ""
    return str(title).strip()[:200] if title else ""


def _plain_lines(text: str) -> str:
    """Extracted text whose lines must not read as Markdown headings or fences to the chunker."""
    return "\n".join("\\" + line if line.lstrip().startswith(("#", "```", "~~~")) else line
                     for line in text.splitlines())
