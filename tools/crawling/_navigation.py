"""Navigation-only pages: followed for their links, kept out of the index.

Generated indexes (Sphinx's ``genindex.html`` and ``py-modindex.html``, a "contents" page that is only the
table of contents, a section index that lists its children, a list of release announcements) are almost
nothing but link text. They are good for discovering pages, but in search they take top slots for real
questions while never answering one. The rule is about content, not file names, so it holds for any
documentation generator: nearly all words are link text and there is next to no running prose.

Thresholds measured on Debian's Flask and pytest HTML docs (words outside headings; share in links; prose
words), 10 of their 298 pages are navigation: Flask genindex (99%, no prose) and py-modindex (100%), pytest
contents, announce/index, how-to/index, explanation/index, reference/index, _modules/index, py-modindex
(all 100%, no prose) and talks (74%, 9 prose words: a list of external links). Kept: the Flask home page
(82% links but a 140-word introduction), pytest example/index (82%, 48 words of introduction), Flask
patterns/index (70%, 87), the API references (2% and 7%), tutorials and guides (below 20%), and short pages
such as a "this page has moved, see ..." stub (46%).
"""

from __future__ import annotations

from evorag.tools.extract import WordCounts

NAVIGATION_REASON = "navigation page (links only)"
"""Why a crawl did not index a page (``PageSkipped.reason``)."""

MIN_LINK_SHARE = 0.7
"""At least this share of the page's words are link text..."""
MAX_PROSE_WORDS = 25
"""...and fewer words than this are running prose: an introduction of a sentence or two keeps a page."""


def is_navigation_page(words: WordCounts) -> bool:
    """True when the page's main content is a list of links with hardly any prose of its own."""
    if words.in_links == 0:
        return False
    return words.in_links >= MIN_LINK_SHARE * words.total and words.prose < MAX_PROSE_WORDS
