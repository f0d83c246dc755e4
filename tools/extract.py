"""Main-content extraction: documentation HTML in, clean Markdown out.

Generic rules for the common documentation generators (Sphinx, MkDocs Material, Docusaurus, plain
``<main>``/``<article>`` pages) find the content container; navigation, sidebars, tables of contents,
breadcrumbs, headers, footers, "Edit this page" and permalink (``¶``) anchors are dropped. A
per-source CSS ``selector`` overrides the container choice.

The Markdown is meant for chunking and search: ATX headings, paragraphs, lists, pipe tables, fenced
code blocks tagged with the language the page declares (code kept byte for byte) and inline
`code`. Links keep their text only; their targets are returned separately in ``ExtractedPage.links``,
collected from the whole page (navigation included), because that is how a crawler discovers pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

import lxml.etree
from lxml.cssselect import CSSSelector

from evorag.errors import UserError

__all__ = ["ExtractedPage", "extract_main_content", "title_from_markdown"]


@dataclass(slots=True)
class ExtractedPage:
    """The readable part of a page. ``markdown`` is empty when the page has no text content."""

    title: str
    markdown: str
    links: list[str] = field(default_factory=list)
    """Every link of the page (navigation included), absolute, without fragments: for discovery."""
    code_languages: list[str] = field(default_factory=list)
    content_links: list[str] = field(default_factory=list)
    """The links inside the main content only (what the page cites, e.g. other sites)."""


# Containers tried in order; the first one holding enough text wins.
_CONTENT_XPATHS = [
    lxml.etree.XPath(expr)
    for expr in (
        # MkDocs Material
        "//article[contains(concat(' ', normalize-space(@class), ' '), ' md-content__inner ')]",
        # Docusaurus
        "//*[contains(concat(' ', normalize-space(@class), ' '), ' theme-doc-markdown ')]",
        # Sphinx (classic, alabaster, python-docs-theme, furo, pydata) and Read the Docs theme
        "//*[@itemprop='articleBody']",
        "//div[@role='main']",
        "//*[@role='main' and not(self::main)]",
        "//main//article",
        "//main",
        "//article",
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' body ')]",
        "//*[contains(concat(' ', normalize-space(@class), ' '), ' md-content ')]",
        "//*[contains(concat(' ', normalize-space(@class), ' '), ' markdown ')]",
        "//div[@id='content' or @id='main-content' or @id='main']",
    )
]
_MIN_CONTENT_CHARS = 40

# Dropped wherever they are, before choosing the container.
_ALWAYS_DROP = {
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "iframe",
    "object",
    "embed",
    "form",
    "button",
    "input",
    "select",
    "textarea",
    "dialog",
    "link",
    "meta",
}
# Dropped inside the container: page furniture rather than content.
_FURNITURE_TAGS = {"nav", "aside", "footer"}
_FURNITURE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"}
# Class or id tokens naming furniture. Matched as whole words inside hyphen/underscore-separated
# tokens, so "md-sidebar--primary" and "table-of-contents__link" match but "menuselection" does not.
_FURNITURE_WORDS = re.compile(
    r"(?:^|[-_])(?:sidebar|sphinxsidebar|sphinxsidebarwrapper|navbar|nav|navigation|menu|breadcrumbs?"
    r"|toc|tocs|table-of-contents|footer|related|pagination|pager|skiplink|edit|"
    r"viewcode|source-file|announce|banner|cookie)(?:[-_]|$)",
    re.IGNORECASE,
)
# Containers the class rule may remove; inline elements (a "toc-backref" link wraps a heading's
# text in Sphinx) are only removed by the explicit rules below.
_FURNITURE_CANDIDATES = {"div", "nav", "aside", "section", "ul", "ol", "header", "footer", "span", "p"}
# Ids are mostly heading slugs in documentation ("file-menu"), so only these exact ids count.
_FURNITURE_IDS = {
    "sidebar",
    "toc",
    "nav",
    "navbar",
    "navigation",
    "menu",
    "footer",
    "header",
    "breadcrumbs",
    "searchbox",
    "search",
    "left-sidebar",
    "right-sidebar",
    "sidebar-wrapper",
    "table-of-contents",
}
_KEEP_CLASSES = re.compile(r"toctree|toc-backref|reference|headerlink-target", re.IGNORECASE)
_EDIT_OR_SKIP_TEXT = re.compile(
    r"^\s*(?:edit this page|edit on github|skip to (?:main )?content|view page source)\s*$", re.IGNORECASE
)
_PERMALINK_TEXT = {"¶", "#", "§", "🔗", "\uf0c1", "\u200b", ""}
_PERMALINK_CLASSES = re.compile(
    r"headerlink|hash-link|anchor-link|anchorjs-link|header-anchor|permalink", re.IGNORECASE
)

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
_CODE_FURNITURE = re.compile(
    r"(?:^|[-_ ])(?:linenos?|lineno|line-numbers?|copybutton|clipboard|code-?copy)(?:[-_ ]|$)", re.IGNORECASE
)

_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_WORD = re.compile(r"\w")
_TITLE_SEPARATORS = re.compile(r"\s+(?:—|–|-|\||·|::)\s+")
_REFRESH_URL = re.compile(r"url\s*=\s*['\"]?([^'\"\s;]+)", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)


def extract_main_content(html: str | bytes, url: str, *, selector: str | None = None) -> ExtractedPage:
    """Extract the main content of ``html`` (fetched from ``url``) as Markdown.

    ``selector`` is a CSS selector for the content container (a per-source override); when it
    matches nothing the generic rules apply. Returns an ``ExtractedPage`` whose ``markdown`` is empty
    when the page has no text (the crawler reports such pages as failed).

    Raises:
        UserError: ``selector`` is not valid CSS.
    """
    compiled = _compile_selector(selector) if selector else None
    document = _parse(html)
    if document is None:
        return ExtractedPage(title="", markdown="")
    base = url
    for base_element in document.iter("base"):
        if base_element.get("href"):
            base = urljoin(url, base_element.get("href").strip())
            break
    resolved: dict[str, str | None] = {}
    links = _collect_links(document, base, resolved)
    page_title = _page_title(document)

    for element in list(document.iter(*_ALWAYS_DROP)):
        _drop(element)

    root = _content_root(document, compiled)
    _drop_furniture(root)
    content_links = _collect_links(root, base, resolved)
    renderer = _MarkdownRenderer()
    blocks = renderer.blocks(root)
    markdown = "\n\n".join(block for block in blocks if block.strip())
    if not _WORD.search(markdown):
        markdown = ""
    title = _first_heading(root) or _strip_site_suffix(page_title)
    return ExtractedPage(
        title=title,
        markdown=markdown,
        links=links,
        code_languages=renderer.languages,
        content_links=content_links,
    )


def title_from_markdown(markdown: str) -> str:
    """The text of the first ATX heading in ``markdown``, or an empty string."""
    for line in markdown.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def _compile_selector(selector: str) -> CSSSelector:
    try:
        return CSSSelector(selector)
    except Exception as exc:  # noqa: BLE001 - cssselect raises several unrelated error types
        raise UserError(
            f"invalid CSS selector {selector!r}: {exc}", hint="fix the source's selector"
        ) from None


# Plain lxml.etree elements: lxml.html's element classes cost a lookup on every element access.
_PARSER = lxml.etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)


def _parse(html: str | bytes) -> lxml.etree._Element | None:
    if isinstance(html, str):
        # lxml refuses str input that carries an encoding declaration.
        html = _XML_DECLARATION.sub("", html, count=1)
    if not html or not html.strip():
        return None
    try:
        return lxml.etree.fromstring(html, _PARSER)
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return None


def _collect_links(document: lxml.etree._Element, base: str, resolved: dict[str, str | None]) -> list[str]:
    """Absolute http(s) links of ``document``, without fragments, in page order.

    ``resolved`` caches href -> absolute URL (None: not a page link) across calls for the same page,
    since urljoin is the expensive part on pages with thousands of links.
    """
    seen: dict[str, None] = {}
    for anchor in document.iter("a", "area", "meta"):
        if anchor.tag == "meta":
            # <meta http-equiv="refresh" content="0; url=..."> moves pages on static hosts.
            if (anchor.get("http-equiv") or "").lower() != "refresh":
                continue
            match = _REFRESH_URL.search(anchor.get("content") or "")
            href = match.group(1) if match else None
        else:
            href = anchor.get("href")
        if not href:
            continue
        if href in resolved:
            absolute = resolved[href]
        else:
            absolute = resolved[href] = _resolve_link(base, href)
        if absolute is not None:
            seen[absolute] = None
    return list(seen)


def _resolve_link(base: str, href: str) -> str | None:
    target = href.strip().split("#", 1)[0]
    if not target or target.lower().startswith(("javascript:", "mailto:", "tel:", "data:")):
        return None
    try:
        absolute = urljoin(base, target)
    except ValueError:
        return None
    return absolute if absolute.startswith(("http://", "https://")) else None


def _text(element: lxml.etree._Element) -> str:
    return "".join(element.itertext())


def _has_text(element: lxml.etree._Element, minimum: int) -> bool:
    count = 0
    for piece in element.itertext():
        count += len(piece.strip())
        if count >= minimum:
            return True
    return False


def _page_title(document: lxml.etree._Element) -> str:
    for title in document.iter("title"):
        return _SPACES.sub(" ", _text(title)).strip()
    return ""


def _strip_site_suffix(title: str) -> str:
    parts = _TITLE_SEPARATORS.split(title)
    return parts[0].strip() if len(parts) > 1 else title


def _content_root(document: lxml.etree._Element, selector: CSSSelector | None) -> lxml.etree._Element:
    if selector is not None:
        matches = selector(document)
        if matches:
            return matches[0]
    for xpath in _CONTENT_XPATHS:
        for candidate in xpath(document):
            if _has_text(candidate, _MIN_CONTENT_CHARS):
                return candidate
    body = document.find("body")
    return body if body is not None else document


def _is_furniture(element: lxml.etree._Element) -> bool:
    tag = element.tag
    if tag in _FURNITURE_TAGS:
        return True
    if (element.get("role") or "").lower() in _FURNITURE_ROLES:
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true" and tag != "span":
        return True
    if tag == "a":
        classes = element.get("class") or ""
        if classes and _PERMALINK_CLASSES.search(classes):
            return True
        text = _text(element).strip()
        if len(text) > 30:
            return False
        if text in _PERMALINK_TEXT and (element.get("href") or "").startswith("#"):
            return True
        return bool(_EDIT_OR_SKIP_TEXT.match(text)) or "skip" in classes.lower() and "link" in classes.lower()
    if tag == "header":
        # Docusaurus puts the page's <h1> in a <header> inside the article: keep that one.
        return element.find(".//h1") is None
    classes = element.get("class")
    if classes and _CODE_FURNITURE.search(classes):
        return True  # line-number columns and copy buttons next to code blocks
    if tag not in _FURNITURE_CANDIDATES:
        return False
    if (element.get("id") or "").lower() in _FURNITURE_IDS:
        return True
    names = (element.get("class") or "").split()
    if not names or any(_KEEP_CLASSES.search(name) for name in names):
        return False
    if not any(_FURNITURE_WORDS.search(name) for name in names):
        return False
    return element.find(".//h1") is None


def _drop_furniture(root: lxml.etree._Element) -> None:
    doomed = []
    stack = list(root)
    while stack:
        element = stack.pop()
        if not isinstance(element.tag, str):
            continue
        if element.tag == "pre":
            continue
        if _is_furniture(element):
            doomed.append(element)
        else:
            stack.extend(element)
    for element in doomed:
        _drop(element)


def _drop(element: lxml.etree._Element) -> None:
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _first_heading(root: lxml.etree._Element) -> str:
    for heading in root.iter("h1"):
        text = _SPACES.sub(" ", _text(heading)).strip().rstrip("¶").strip()
        if text:
            return text
    return ""


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
                elif not _CODE_FURNITURE.search(child.get("class") or "") and child.tag != "button":
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
    text = _SPACES.sub(" ", text)
    if not text.strip():
        return ""
    if "`" not in text:
        return f"`{text}`"
    longest = max(len(run) for run in re.findall(r"`+", text))
    ticks = "`" * (longest + 1)
    return f"{ticks} {text} {ticks}"


class _MarkdownRenderer:
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
        inline: list[str] = [_SPACES.sub(" ", element.text)] if element.text else []
        for child in element:
            if isinstance(child.tag, str) and (child.tag in _BLOCK_TAGS or _has_block(child)):
                self._flush(inline, blocks)
                blocks.extend(self.blocks(child))
            elif isinstance(child.tag, str):
                inline.append(self.inline(child))
            if child.tail:
                inline.append(_SPACES.sub(" ", child.tail))
        self._flush(inline, blocks)
        return blocks

    @staticmethod
    def _flush(inline: list[str], blocks: list[str]) -> None:
        if inline:
            text = _SPACES.sub(" ", "".join(inline)).strip()
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
            return _inline_code(_text(element))
        if tag == "pre":
            return _inline_code(_text(element))
        parts = [_SPACES.sub(" ", element.text)] if element.text else []
        for child in element:
            parts.append(self.inline(child))
            if child.tail:
                parts.append(_SPACES.sub(" ", child.tail))
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
            texts = [_SPACES.sub(" ", self.inline(cell)).strip().replace("|", "\\|") for cell in cells]
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
            text = _SPACES.sub(" ", self.inline(caption)).strip()
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
        if isinstance(descendant.tag, str) and descendant.tag in (
            "p",
            "pre",
            "div",
            "ul",
            "ol",
            "table",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
        ):
            return True
    return False
