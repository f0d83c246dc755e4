"""Page-aware ranking (tools/page_ranking.py): results diversified across pages, pages supported by several
matching sections and by covering the query's terms, changelogs demoted unless asked about, headings
searchable as part of each section.

The rules are checked on the ranking function itself, through the real searcher on a real Qdrant Edge store
with controlled vectors (so scores are known), and end to end: a small documentation site built here,
served on 127.0.0.1, crawled and searched through the service with the real embedding model.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from evorag.tools.page_ranking import PageRanking, asks_about_changes, is_changelog, rank_by_page
from evorag.tools.search import HybridSearcher, SearchOptions
from evorag.tools.sparse import encode_document, term_id, tokenize
from evorag.tools.stores import EdgeStore
from evorag.tools.types import Chunk, PageRef, Scored
from sitefixtures import serve

from evorag.errors import ConfigError, UserError
from evorag.settings import Settings, load_settings

# -- the ranking function ---------------------------------------------------------------------------------------

GUIDE, REFERENCE, CHANGELOG = "https://d.test/guide.html", "https://d.test/reference.html", "https://d.test/changes.html"


def _refs(*entries: tuple[str, str, str, str]) -> dict[str, PageRef]:
    """``(chunk id, url, title, section)`` rows as the store's ``page_refs`` returns them."""
    return {chunk_id: PageRef(url, title, section) for chunk_id, url, title, section in entries}


SEVERAL_SECTIONS = _refs(
    ("g1", GUIDE, "Caching", "Caching > Turning it on"),
    ("g2", GUIDE, "Caching", "Caching > Expiry"),
    ("g3", GUIDE, "Caching", "Caching > Clearing"),
    ("r1", REFERENCE, "Options", "Options > cache_ttl"),
)
FUSED = [Scored("r1", 0.85), Scored("g1", 0.80), Scored("g2", 0.75), Scored("g3", 0.70)]


def test_a_page_whose_several_sections_match_outranks_one_lucky_chunk() -> None:
    chunk_order = rank_by_page(FUSED, SEVERAL_SECTIONS, PageRanking(max_per_page=1), query="q", limit=2)
    assert [item.id for item in chunk_order] == ["r1", "g1"]  # without support the lucky chunk wins
    ranked = rank_by_page(FUSED, SEVERAL_SECTIONS, PageRanking(max_per_page=1, page_support=0.4), query="q", limit=2)
    assert [item.id for item in ranked] == ["g1", "r1"]
    # The guide's score is its best chunk plus 0.4 * (1/2 * 0.75 + 1/4 * 0.70); the reference keeps its own.
    assert [item.score for item in ranked] == pytest.approx([0.80 + 0.4 * (0.375 + 0.175), 0.85])


def test_a_long_section_cut_in_two_is_one_piece_of_evidence() -> None:
    refs = _refs(("g1", GUIDE, "Caching", "Caching > Expiry"), ("g2", GUIDE, "Caching", "Caching > Expiry"),
                 ("r1", REFERENCE, "Options", "Options > cache_ttl"))
    fused = [Scored("r1", 0.85), Scored("g1", 0.80), Scored("g2", 0.79)]
    ranked = rank_by_page(fused, refs, PageRanking(max_per_page=1, page_support=1.0), query="q", limit=2)
    assert [(item.id, item.score) for item in ranked] == [("r1", 0.85), ("g1", 0.80)]


def test_one_page_per_result_unless_more_are_asked_for() -> None:
    def pages(max_per_page: int, limit: int = 4) -> list[str]:
        ranked = rank_by_page(FUSED, SEVERAL_SECTIONS, PageRanking(max_per_page=max_per_page), query="q", limit=limit)
        return [SEVERAL_SECTIONS[item.id].url for item in ranked]

    assert pages(1) == [REFERENCE, GUIDE]
    assert pages(2) == [REFERENCE, GUIDE, GUIDE]
    assert pages(0) == [REFERENCE, GUIDE, GUIDE, GUIDE]  # no limit: the fused order
    assert pages(0, limit=2) == [REFERENCE, GUIDE]
    assert pages(1, limit=0) == []


def _terms(**texts: str) -> dict[str, frozenset[int]]:
    """Chunk id -> its BM25 term ids, as the store's ``page_terms`` reads them from the sparse vectors."""
    return {chunk_id: frozenset(encode_document(text).indices) for chunk_id, text in texts.items()}


def test_a_page_covering_the_whole_question_across_its_sections_gains_on_a_partial_match() -> None:
    # The reference's one chunk scores best but names only the option; the guide's sections between them
    # name the cache and its expiry.
    terms = _terms(r1="Options > cache_ttl: seconds", g1="Caching > Turning it on: set cache = true",
                   g2="Caching > Expiry: pages expire after a day", g3="Caching > Clearing: run clear")
    query = "when do cached pages expire"  # distinct terms: cach, page, expir (the rest are stopwords)
    assert set(tokenize(query)) == {"cach", "page", "expir"}
    without = rank_by_page(FUSED, SEVERAL_SECTIONS, PageRanking(max_per_page=1), query=query, limit=2, terms=terms)
    assert [item.id for item in without] == ["r1", "g1"]
    ranking = PageRanking(max_per_page=1, term_coverage=0.15)
    ranked = rank_by_page(FUSED, SEVERAL_SECTIONS, ranking, query=query, limit=2, terms=terms)
    assert [item.id for item in ranked] == ["g1", "r1"]
    # The guide covers all three terms across g1..g3 (g1 alone only "cach"): + 0.15; the reference covers
    # "cach" (cache_ttl's part "cach") of three: + 0.05.
    assert [item.score for item in ranked] == pytest.approx([0.80 + 0.15, 0.85 + 0.15 / 3])
    # Without the chunks' terms (or with a weight of 0) the coverage is off: the ranking is the chunk ranking.
    assert rank_by_page(FUSED, SEVERAL_SECTIONS, ranking, query=query, limit=2) == without
    assert rank_by_page(FUSED, SEVERAL_SECTIONS, PageRanking(max_per_page=1, term_coverage=0.0), query=query,
                        limit=2, terms=terms) == without


def test_a_query_without_terms_gives_no_coverage() -> None:
    terms = _terms(r1="cache_ttl", g1="cache", g2="expiry", g3="clearing")
    ranked = rank_by_page(FUSED, SEVERAL_SECTIONS, PageRanking(max_per_page=1, term_coverage=1.0),
                          query="how do I do it?", limit=2, terms=terms)
    assert [(item.id, item.score) for item in ranked] == [("r1", 0.85), ("g1", 0.80)]


def test_changelogs_are_demoted_unless_the_query_asks_about_changes() -> None:
    refs = _refs(("c1", CHANGELOG, "Changelog", "Changelog > 2.0.0"), ("g1", GUIDE, "Caching", "Caching"))
    fused = [Scored("c1", 0.9), Scored("g1", 0.7)]
    ranking = PageRanking(max_per_page=1, changelog_weight=0.5)

    def order(query: str, ranking: PageRanking = ranking) -> list[str]:
        return [item.id for item in rank_by_page(fused, refs, ranking, query=query, limit=2)]

    assert order("how do I turn on the cache") == ["g1", "c1"]
    assert order("what changed about the cache in 2.0?") == ["c1", "g1"]
    assert order("which version added the cache") == ["c1", "g1"]
    assert order("how do I turn on the cache", PageRanking(max_per_page=1, changelog_weight=1.0)) == ["c1", "g1"]


@pytest.mark.parametrize(
    ("url", "title"),
    [
        ("https://d.test/changes.html", "Changes"),  # Flask (Sphinx)
        ("https://d.test/en/stable/changelog.html", "Changelog"),
        ("https://d.test/whatsnew/3.11.html", "What’s New In Python 3.11"),
        ("https://d.test/announce/release-2.3.0.html", "pytest-2.3.0: an API refinement release"),
        ("https://d.test/release-notes/", "Release notes"),  # MkDocs
        ("https://d.test/docs/intro", "Release Notes"),  # by the title alone
        ("https://d.test/history.html", "History"),
    ],
)
def test_changelog_pages_of_common_generators_are_recognised(url: str, title: str) -> None:
    assert is_changelog(url, title)


@pytest.mark.parametrize(
    ("url", "title"),
    [
        ("https://d.test/exchanges.html", "Exchanges"),
        ("https://d.test/news-feed-api.html", "The news feed API"),
        ("https://d.test/how-to/skipping.html", "How to use skip and xfail"),
        ("beir://scifact/4983", "Changes in gene expression after exercise"),
        ("https://d.test/guide/upgrading.html", "Upgrading from 1.x"),  # a guide, not a list of changes
    ],
)
def test_other_pages_are_not_taken_for_changelogs(url: str, title: str) -> None:
    assert not is_changelog(url, title)


def test_questions_about_versions_and_changes_are_recognised() -> None:
    for query in ("what changed in 2.0", "What's new in Python 3.11?", "is this deprecated", "migrating to v3",
                  "release notes for the cache", "which version added it"):
        assert asks_about_changes(query), query
    for query in ("how do I turn on the cache", "change the output folder", "exit code 5 meaning"):
        assert not asks_about_changes(query), query


def test_out_of_range_page_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_per_page"):
        SearchOptions(max_per_page=-1).page_ranking  # noqa: B018 - building it validates
    with pytest.raises(ValueError, match="page_support"):
        PageRanking(page_support=1.5)
    with pytest.raises(ValueError, match="changelog_weight"):
        PageRanking(changelog_weight=-0.1)
    with pytest.raises(ValueError, match="term_coverage"):
        PageRanking(term_coverage=1.1)
    with pytest.raises(ConfigError, match="term_coverage"):
        load_settings(term_coverage=-1)
    with pytest.raises(ConfigError, match="changelog_weight"):
        load_settings(changelog_weight=2)


def test_search_options_from_settings_rank_by_page_and_bare_options_rank_chunks() -> None:
    assert SearchOptions.from_settings(Settings()).page_ranking == PageRanking(
        max_per_page=1, page_support=0.4, changelog_weight=0.5, term_coverage=0.15)
    assert not SearchOptions().page_ranking.active
    assert PageRanking(term_coverage=0.1).active


# -- through the searcher, on a real store ----------------------------------------------------------------------

DIM = 8


def _chunk(url: str, position: int, section: str, text: str) -> Chunk:
    return Chunk(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}#{position}")), url=url, source="docs",
                 title=section.split(" > ")[0], heading_path=section.split(" > "), text=text, kind="text",
                 position=position, content_hash="v1", crawled_at=0.0)


class FixedQuery:
    """The query always embeds to the same unit vector: cosine similarities are set by the chunk vectors."""

    dim = DIM
    vector = np.eye(DIM, dtype=np.float32)[0]

    def embed_query(self, text: str) -> np.ndarray:
        return self.vector


def _at_cosine(cosine: float, axis: int) -> np.ndarray:
    """A unit vector with this cosine to the query vector (axis 0), the rest along another axis."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[0], vector[axis] = cosine, np.sqrt(1 - cosine**2)
    return vector


@pytest.mark.parametrize("backend", ["edge", "qdrant-client-memory"])
def test_stores_give_the_page_and_section_of_each_chunk(tmp_path: Path, backend: str) -> None:
    from evorag.tools.stores import QdrantServerStore

    store = EdgeStore(tmp_path / "qdrant") if backend == "edge" else QdrantServerStore(location=":memory:")
    store.open("test-model", DIM)
    try:
        chunks = [_chunk(GUIDE, 0, "Caching > Expiry", "Pages expire after a day."),
                  _chunk(REFERENCE, 3, "Options > cache_ttl", "The cache_ttl option.")]
        store.upsert(chunks, np.stack([_at_cosine(0.5, 1), _at_cosine(0.4, 2)]),
                     [encode_document(chunk.text) for chunk in chunks])
        refs = store.page_refs([chunks[1].id, str(uuid.uuid4()), chunks[0].id])
        assert refs == {chunks[0].id: PageRef(GUIDE, "Caching", "Caching > Expiry"),
                        chunks[1].id: PageRef(REFERENCE, "Options", "Options > cache_ttl")}
        assert store.page_refs([]) == {}
        # With the term ids of each chunk's BM25 vector, read in the same call.
        assert store.page_terms([chunks[1].id, str(uuid.uuid4()), chunks[0].id]) == {
            chunk.id: (refs[chunk.id], frozenset(term_id(token) for token in tokenize(chunk.text)))
            for chunk in chunks}
        assert store.page_terms([]) == {}
    finally:
        store.close()


def test_the_searcher_ranks_the_supported_page_first_on_a_real_store(tmp_path: Path) -> None:
    guide = [_chunk(GUIDE, n, f"Caching > {name}", f"about caching {name}") for n, name in
             enumerate(["Turning it on", "Expiry", "Clearing"])]
    lucky = _chunk(REFERENCE, 0, "Options > cache_ttl", "cache_ttl")
    others = [_chunk(f"https://d.test/other{n}.html", 0, f"Other {n}", f"other {n}") for n in range(4)]
    chunks = [lucky, *guide, *others]
    cosines = [0.95, 0.90, 0.88, 0.86, 0.30, 0.25, 0.20, 0.15]
    store = EdgeStore(tmp_path / "qdrant")
    store.open("test-model", DIM)
    try:
        dense = np.stack([_at_cosine(c, 1 + n % (DIM - 1)) for n, c in enumerate(cosines)])
        store.upsert(chunks, dense, [encode_document(chunk.text) for chunk in chunks])
        searcher = HybridSearcher(store, FixedQuery())

        def urls(**options) -> list[str]:
            hits = searcher.search("q", SearchOptions(limit=3, sparse_weight=0.0, **options))
            return [hit.chunk.url for hit in hits]

        assert urls() == [REFERENCE, GUIDE, GUIDE]  # chunk ranking: the lucky chunk first, then one page twice
        settings = Settings()
        page_aware = {"max_per_page": settings.max_per_page, "page_support": settings.page_support}
        assert urls(**page_aware) == [GUIDE, REFERENCE, "https://d.test/other0.html"]
        assert urls(**{**page_aware, "max_per_page": 2}) == [GUIDE, GUIDE, REFERENCE]
    finally:
        store.close()


def test_the_searcher_reads_the_candidates_terms_from_a_real_store(tmp_path: Path) -> None:
    # Dense only, so the fused scores are known: the reference's chunk is closest but names only the option;
    # the guide's two sections name the cache and its expiry between them (its title and headings count too).
    lucky = _chunk(REFERENCE, 0, "Options > cache_ttl", "The cache_ttl option, in seconds.")
    guide = [_chunk(GUIDE, 0, "Caching > Turning it on", "Set cache = true."),
             _chunk(GUIDE, 1, "Caching > Expiry", "Rendered pages expire after a day.")]
    chunks = [lucky, *guide]
    store = EdgeStore(tmp_path / "qdrant")
    store.open("test-model", DIM)
    try:
        dense = np.stack([_at_cosine(c, 1 + n) for n, c in enumerate([0.95, 0.90, 0.70])])
        store.upsert(chunks, dense, [encode_document(chunk.text) for chunk in chunks])
        searcher = HybridSearcher(store, FixedQuery())

        def ranked(term_coverage: float) -> list[tuple[str, str]]:
            options = SearchOptions(limit=2, sparse_weight=0.0, max_per_page=1, term_coverage=term_coverage)
            return [(hit.chunk.url, hit.chunk.text) for hit in searcher.search("when do pages expire", options)]

        assert ranked(0.0) == [(REFERENCE, lucky.text), (GUIDE, guide[0].text)]
        # Whole chunks come back (read once for the terms): the guide's best chunk leads, the reference follows.
        assert ranked(0.3) == [(GUIDE, guide[0].text), (REFERENCE, lucky.text)]
    finally:
        store.close()


# -- end to end: a documentation site crawled and searched through the service ----------------------------------

PAGE = """<!DOCTYPE html><html><head><title>{title} &#8212; quill 2.0 documentation</title></head><body>
<div class="related" role="navigation"><ul>{nav}</ul></div>
<div class="document"><div class="body" role="main"><section><h1>{title}</h1>{body}</section></div></div>
</body></html>"""

SITE = {
    "guide/caching.html": ("Caching rendered pages", [
        ("Turning the page cache on", ("Quill can keep every rendered page and reuse it when its source file has "
         "not changed since the last build. Set cache = true in quill.toml to turn the page cache on; the first "
         "build fills the cache and later builds only render the pages whose sources changed.")),
        ("How long cached pages live", ("A cached page is kept for cache_ttl seconds, one day by default. After "
         "that the page is rendered again on the next build even if its source did not change, which picks up "
         "changes to templates and data files that the cache cannot see.")),
        ("Clearing the page cache", ("Run quill cache clear to throw every cached page away, for example after "
         "upgrading a theme. The next build renders the whole site again and fills the page cache anew.")),
    ]),
    "reference/options.html": ("Configuration options", [
        (name, (f"The {name} option {text} It is read from quill.toml when the build starts and can be overridden "
         "on the command line with the option of the same name; the default suits most sites."))
        for name, text in [
            ("output_dir", "names the folder the rendered site is written to."),
            ("theme", "selects the theme package that provides the page templates."),
            ("minify", "turns minification of HTML, CSS and JavaScript output on or off."),
            ("base_url", "is the address the site is published at, used for absolute links."),
            ("drafts", "includes pages marked as drafts when it is set."),
        ]
    ]),
    "changelog.html": ("Changelog", [
        ("2.0.0", ("Added the page cache: set cache = true in quill.toml to turn the page cache on, so rendered "
         "pages are reused when their source files have not changed. Added quill cache clear. Removed the "
         "legacy template loader.")),
        ("1.9.0", ("Faster image resizing. The minify option now also minifies inline JavaScript. Fixed links "
         "to headings that contain non-ASCII characters in the table of contents.")),
    ]),
    "guide/deploying.html": ("Deploying the site", [
        ("Publishing with rsync", ("Copy the output folder to your web server with rsync -az --delete, so "
         "files removed from the site are removed from the server as well. Keep the server's clock correct.")),
        ("Rotating the signing keys", ("Generate a new secret with quill secret new and put it first in the "
         "secrets list; tokens issued with the previous secret stay valid until they expire, after which the "
         "previous secret can be deleted from the list.")),
    ]),
}


def _write_site(root: Path) -> None:
    nav = "".join(f'<li><a href="/{path}">{title}</a></li>' for path, (title, _) in SITE.items())
    pages = {"index.html": ("quill documentation", [("Contents", ("Quill builds static web sites from Markdown "
                                                     "files and templates. Start with the guides below."))])}
    for path, (title, sections) in {**pages, **SITE}.items():
        body = "".join(f"<section><h2>{heading}</h2><p>{text}</p></section>" for heading, text in sections)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(PAGE.format(title=title, nav=nav, body=body), encoding="utf-8")


@pytest.fixture(scope="module")
def quill_home(tmp_path_factory):
    """An EVORAG_HOME with the quill site crawled (real model, real store), once for this module."""
    from evorag.service import CrawlRequest, Evorag

    root = tmp_path_factory.mktemp("quill-site")
    _write_site(root)
    home = tmp_path_factory.mktemp("quill-home")
    with serve(root) as server, Evorag(home=home) as rag:
        report = rag.crawl(CrawlRequest(url=server.url("/index.html"), source="quill", allow_private=True))
    assert report.pages_indexed == len(SITE) + 1
    return home


def _page(url: str) -> str:
    return url.split("/", 3)[3]


def test_search_returns_distinct_pages_by_default_and_several_sections_when_asked(quill_home) -> None:
    from evorag.service import Evorag

    question = "how long are cached pages kept and how do I clear the page cache?"
    with Evorag(home=quill_home) as rag:
        by_default = [_page(hit.chunk.url) for hit in rag.search(question, source="quill", limit=3)]
        unlimited = [_page(hit.chunk.url) for hit in rag.search(question, source="quill", limit=3, max_per_page=0)]
        two = [_page(hit.chunk.url) for hit in rag.search(question, source="quill", limit=3, max_per_page=2)]
        with pytest.raises(UserError, match="max_per_page"):
            rag.search(question, source="quill", max_per_page=-1)
    assert by_default[0] == "guide/caching.html"
    assert len(set(by_default)) == 3
    assert unlimited.count("guide/caching.html") >= 2  # what diversification changed
    assert two[:2] == ["guide/caching.html", "guide/caching.html"] or two.count("guide/caching.html") == 2


def test_a_changelog_gives_way_to_the_reference_unless_the_question_is_about_changes(quill_home) -> None:
    from evorag.service import Evorag

    question = "How do I minify inline JavaScript?"  # the 1.9.0 entry repeats those words: it matches best
    with Evorag(home=quill_home, changelog_weight=1.0) as rag:  # the opt-out setting (EVORAG_CHANGELOG_WEIGHT)
        undemoted = [(_page(hit.chunk.url), hit.score) for hit in rag.search(question, source="quill", limit=3)]
    with Evorag(home=quill_home) as rag:
        demoted = [(_page(hit.chunk.url), hit.score) for hit in rag.search(question, source="quill", limit=3)]
        about_changes = [_page(hit.chunk.url) for hit in
                         rag.search("Which release made minify handle inline JavaScript?", source="quill", limit=3)]
    assert [page for page, _ in undemoted[:2]] == ["changelog.html", "reference/options.html"]
    assert [page for page, _ in demoted[:2]] == ["reference/options.html", "changelog.html"]
    assert demoted[1][1] == pytest.approx(0.5 * undemoted[0][1])  # the default weight, 0.5, and nothing else
    assert about_changes[0] == "changelog.html"


def test_a_query_naming_a_heading_finds_its_section(quill_home) -> None:
    from evorag.service import Evorag

    with Evorag(home=quill_home) as rag:
        hits = rag.search("rotating the signing keys", source="quill", limit=3)
        # BM25 alone: the words are in the heading only, so the heading path is what matches.
        keyword_hits = rag.parts.searcher().search(
            "rotating the signing keys",
            SearchOptions.from_settings(rag.settings, source="quill", kind="text", dense_weight=0.0, limit=3))
    best = hits[0].chunk
    assert (_page(best.url), best.heading_path[-1]) == ("guide/deploying.html", "Rotating the signing keys")
    body = best.text.split("\n", 1)[1].lower()
    assert "rotat" not in body and "signing" not in body
    assert keyword_hits and keyword_hits[0].chunk.id == best.id
