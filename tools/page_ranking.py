"""Page-aware ranking: fused chunk candidates in, results ranked by page and diversified across pages.

Documentation is read by the page, and a user asking a question wants the pages that answer it, not five
sections of one page. Given the fused chunk candidates of one search (best first) and the page each one
belongs to, this module

1. scores every page by its best chunk plus some *support* from its next best matching sections
   (``page_support`` times ``1/2 s2 + 1/4 s3``, each from a section not counted yet): a page where several
   sections match outranks a page with one lucky chunk of the same score. Further chunks of a section already
   counted add nothing (a long section cut in two is one piece of evidence, not two), so a page with a single
   matching section keeps that chunk's score, and with one section per page (BEIR corpora) the support leaves
   the chunk ranking as it is;
2. adds the page's *term coverage*: ``term_coverage`` times the share of the query's distinct BM25 terms found
   in at least one of the page's candidate chunks (their text, title or headings). A page that covers the
   whole question across its sections gains on one whose best chunk matched only a part of it (a question
   names its topic and its detail, a page's sections often name one each); it needs the chunks' term ids
   (``terms``: the indices of their BM25 vectors), and without them it is off;
3. demotes changelogs and release notes (``changelog_weight`` times the score) unless the query asks about
   versions or changes: those pages mention every feature, so they match every question about one;
4. moves every chunk by its page's support, coverage and demotion and walks the chunks in that order, keeping at
   most ``max_per_page`` of each page (0: no limit). With 1 the results are the pages in page-score order,
   each by its best chunk; with more, a page's further sections come where their own scores put them.

Measured on the docs-dev sets (bench/bench_docs_dev.py); see the README's retrieval table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from evorag.tools.sparse import term_id, tokenize
from evorag.tools.types import PageRef, Scored

__all__ = ["PageRanking", "asks_about_changes", "is_changelog", "page_key", "rank_by_page"]

# How much the second and third best chunks of a page add, relative to ``page_support``: the first one
# more, so support grows with the number of matching sections but a long page cannot pile up score.
SUPPORT_DECAY = (0.5, 0.25)

# Path segments and titles that name a changelog, release notes or release announcements on the common
# documentation generators (Sphinx "changes"/"changelog"/"whatsnew", MkDocs "release-notes", pytest's
# "announce/", Read the Docs "history"). A segment is matched whole ("changes.html", "release-notes/",
# "whatsnew/3.11.html"), so "exchanges.html" or "news-feed-api.html" are not.
_CHANGELOG_SEGMENT = re.compile(
    r"^(?:change[-_]?log|changes|history|news|release[-_]?notes?|releases?|announce(?:ments?)?|what-?s-?new"
    r"|whatsnew|release-\d[\w.-]*)(?:\.\w+)?$",
    re.IGNORECASE,
)
# A title that is only such a name, or such a name and a version ("What's New In Python 3.11"); a title that
# merely starts with one of the words ("Changes in gene expression") is not.
_CHANGELOG_TITLE = re.compile(
    r"^\W*(?:change ?log|changes|release notes?|release announcements?|what['\u2019]?s new|version history|news)"
    r"(?:\s+[\w.+ ]*?\d[\w.]*)?\W*$",
    re.IGNORECASE,
)
# A query about versions or changes wants exactly those pages: no demotion then.
_ASKS_ABOUT_CHANGES = re.compile(
    r"\b(?:change ?logs?|changed|releases?|released|release notes|what['\u2019]?s new|new in|versions?|"
    r"upgrad(?:e|ed|es|ing)|migrat(?:e|ed|es|ing|ion)|deprecated|deprecations?|v?\d+\.\d+(?:\.\d+)?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class PageRanking:
    """The page-aware part of a search; ``PageRanking()`` is chunk ranking as it was (every part off)."""

    max_per_page: int = 0
    page_support: float = 0.0
    changelog_weight: float = 1.0
    term_coverage: float = 0.0

    def __post_init__(self) -> None:
        if self.max_per_page < 0:
            raise ValueError(f"max_per_page must be >= 0 (0: no limit), got {self.max_per_page}")
        if not 0.0 <= self.page_support <= 1.0:
            raise ValueError(f"page_support must be between 0 and 1, got {self.page_support}")
        if not 0.0 <= self.changelog_weight <= 1.0:
            raise ValueError(f"changelog_weight must be between 0 and 1, got {self.changelog_weight}")
        if not 0.0 <= self.term_coverage <= 1.0:
            raise ValueError(f"term_coverage must be between 0 and 1, got {self.term_coverage}")

    @property
    def active(self) -> bool:
        """Whether ranking needs the pages at all (otherwise the chunk ranking is returned as it is)."""
        return self.max_per_page > 0 or self.page_support > 0 or self.changelog_weight < 1.0 or self.term_coverage > 0


def page_key(url: str) -> str:
    """The page a chunk URL belongs to: section anchors (``#fragment``) point into the same page."""
    return url.split("#", 1)[0]


def is_changelog(url: str, title: str) -> bool:
    """Whether a page is a changelog, release notes or a release announcement (by its path or title)."""
    segments = [segment for segment in urlsplit(url).path.split("/") if segment]
    return any(_CHANGELOG_SEGMENT.match(segment) for segment in segments) or bool(_CHANGELOG_TITLE.match(title))


def asks_about_changes(query: str) -> bool:
    """Whether a query asks about versions, releases or changes (then changelogs are what it wants)."""
    return bool(_ASKS_ABOUT_CHANGES.search(query))


def _support(items: Sequence[Scored], pages: Mapping[str, PageRef]) -> float:
    """``1/2 s2 + 1/4 s3`` over a page's chunks (best first), one chunk per section, the best one's excluded."""
    counted = {pages[items[0].id].section}
    support = 0.0
    decays = iter(SUPPORT_DECAY)
    for item in items[1:]:
        section = pages[item.id].section
        if section in counted:
            continue
        counted.add(section)
        decay = next(decays, None)
        if decay is None:
            break
        support += decay * item.score
    return support


def _coverage(items: Sequence[Scored], terms: Mapping[str, frozenset[int]], query_terms: frozenset[int]) -> float:
    """The share of ``query_terms`` found in at least one of a page's candidate chunks."""
    found: set[int] = set()
    for item in items:
        found |= query_terms & terms.get(item.id, frozenset())
    return len(found) / len(query_terms)


def rank_by_page(
    fused: Sequence[Scored],
    pages: Mapping[str, PageRef],
    ranking: PageRanking,
    *,
    query: str,
    limit: int,
    terms: Mapping[str, frozenset[int]] | None = None,
) -> list[Scored]:
    """Rank ``fused`` chunk candidates (best first) by page; see the module docstring.

    ``pages`` maps chunk ids to their page; a candidate missing from it (deleted since it was found) is
    left out. ``terms`` maps chunk ids to their BM25 term ids (``sparse.term_id`` of each token of the indexed
    text: the indices of the chunk's sparse vector) for the term coverage. A chunk's score becomes ``(its score + its page's support and coverage) * its page's
    demotion``, so the best chunk of a page carries the page's score; equal scores keep the fused order.
    """
    by_page: dict[str, list[Scored]] = {}
    refs: dict[str, PageRef] = {}
    for item in fused:
        ref = pages.get(item.id)
        if ref is None:
            continue
        key = page_key(ref.url)
        by_page.setdefault(key, []).append(item)
        refs.setdefault(key, ref)
    demote = ranking.changelog_weight < 1.0 and not asks_about_changes(query)
    query_terms = (frozenset(term_id(token) for token in tokenize(query))
                   if ranking.term_coverage > 0 and terms is not None else frozenset())
    moved: list[tuple[float, str, str]] = []  # (score, page, chunk id) in fused order
    for key, items in by_page.items():
        bonus = ranking.page_support * _support(items, pages) if ranking.page_support > 0 else 0.0
        if query_terms and terms is not None:
            bonus += ranking.term_coverage * _coverage(items, terms, query_terms)
        factor = ranking.changelog_weight if demote and is_changelog(key, refs[key].title) else 1.0
        moved.extend(((item.score + bonus) * factor, key, item.id) for item in items)
    moved.sort(key=lambda entry: -entry[0])  # stable: ties keep the fused order
    per_page = ranking.max_per_page or None
    taken: dict[str, int] = {}
    ranked: list[Scored] = []
    for score, key, chunk_id in moved:
        if len(ranked) >= limit:
            break
        if per_page is not None and taken.get(key, 0) >= per_page:
            continue
        taken[key] = taken.get(key, 0) + 1
        ranked.append(Scored(chunk_id, score))
    return ranked
