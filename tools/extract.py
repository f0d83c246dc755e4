"""Main-content extraction: documentation HTML in, clean Markdown out.

Generic rules for the common documentation generators (Sphinx, MkDocs Material, Docusaurus, plain
``<main>``/``<article>`` pages) find the content container; navigation, sidebars, tables of contents,
breadcrumbs, headers, footers, "Edit this page" and permalink (``¶``) anchors are dropped. A
per-source CSS ``selector`` overrides the container choice.

The chosen container is rendered as Markdown by ``evorag.tools.markdown_render`` (meant for chunking
and search: headings, lists, pipe tables, fenced code blocks with their language). Links keep their
text only; their targets are returned separately in ``ExtractedPage.links``, collected from the whole
page (navigation included), because that is how a crawler discovers pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

import lxml.etree
from evorag.tools.markdown_render import CODE_FURNITURE, SPACES, MarkdownRenderer, text_of
from lxml.cssselect import CSSSelector

from evorag.errors import UserError

__all__ = ["ExtractedPage", "WordCounts", "extract_main_content", "title_from_markdown"]


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
    words: WordCounts = field(default_factory=lambda: WordCounts(0, 0, 0))
    """How the main content's words divide between link text and prose (see ``WordCounts``)."""


@dataclass(slots=True, frozen=True)
class WordCounts:
    """Words of the main content outside headings, one-character tokens left out (index letters, bullets).

    ``total``: all of them; ``in_links``: inside ``<a>`` elements; ``prose``: in running text, outside
    links, lists, definition lists, tables, code blocks and headings. A page whose words are nearly all
    link text, with hardly any prose, is a list of links (an index, a generated table of contents).
    """

    total: int
    in_links: int
    prose: int


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
    renderer = MarkdownRenderer()
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
        words=_count_words(root),
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


def _has_text(element: lxml.etree._Element, minimum: int) -> bool:
    count = 0
    for piece in element.itertext():
        count += len(piece.strip())
        if count >= minimum:
            return True
    return False


def _page_title(document: lxml.etree._Element) -> str:
    for title in document.iter("title"):
        return SPACES.sub(" ", text_of(title)).strip()
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
        text = text_of(element).strip()
        if len(text) > 30:
            return False
        if text in _PERMALINK_TEXT and (element.get("href") or "").startswith("#"):
            return True
        return bool(_EDIT_OR_SKIP_TEXT.match(text)) or "skip" in classes.lower() and "link" in classes.lower()
    if tag == "header":
        # Docusaurus puts the page's <h1> in a <header> inside the article: keep that one.
        return element.find(".//h1") is None
    classes = element.get("class")
    if classes and CODE_FURNITURE.search(classes):
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


_COUNTED_WORD = re.compile(r"\w\w+")
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Text inside these is structure (lists, tables, code), not running prose.
_NOT_PROSE = {"li", "dt", "dd", "table", "pre"}


def _count_words(root: lxml.etree._Element) -> WordCounts:
    totals = [0, 0, 0]  # total, in links, prose

    def add(text: str | None, in_link: bool, structured: bool) -> None:
        count = len(_COUNTED_WORD.findall(text or ""))
        totals[0] += count
        totals[1] += count if in_link else 0
        totals[2] += count if not (in_link or structured) else 0

    # Iterative walk (deep documents must not hit the recursion limit): (element, in a link, in structure).
    stack: list[tuple[lxml.etree._Element, bool, bool]] = [(root, False, False)]
    while stack:
        element, in_link, structured = stack.pop()
        if not isinstance(element.tag, str) or element.tag in _HEADINGS:
            continue
        in_link = in_link or element.tag == "a"
        structured = structured or element.tag in _NOT_PROSE
        add(element.text, in_link, structured)
        for child in element:
            stack.append((child, in_link, structured))
            add(child.tail, in_link, structured)  # a child's tail belongs to this element
    return WordCounts(*totals)


def _first_heading(root: lxml.etree._Element) -> str:
    for heading in root.iter("h1"):
        text = SPACES.sub(" ", text_of(heading)).strip().rstrip("¶").strip()
        if text:
            return text
    return ""


