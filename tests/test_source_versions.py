"""Versioned documentation: versions of one source side by side, selected as NAME@X, NAME@latest or a range;
an unknown version names those that exist; results and citations carry their version; old catalogs migrate.

The site is served on 127.0.0.1 and its three versions are crawled from the same URLs (one server whose files
change between crawls), so versions must be kept apart by more than their URLs."""

from __future__ import annotations

import json
import sqlite3

import pytest
from doc_fixtures import run_cli, write_site
from evorag.tools.catalog import Catalog
from evorag.tools.versions import (
    describe_versions,
    latest_version,
    parse_selector,
    range_specifiers,
    resolve_version,
    sort_versions,
    validate_version_label,
)
from sitefixtures import serve

from evorag.errors import NotFoundError, UserError
from evorag.service import CrawlRequest, Evorag

PYTHON = {"1.0": "3.8", "2.0": "3.10", "2.1": "3.12"}


def site_pages(version: str) -> dict[str, tuple[str, str]]:
    tag = version.replace(".", "_")
    return {
        "index.html": (f"Lib {version}", f"<p>Welcome to the documentation of lib release{tag}.</p>"),
        "install.html": (f"Installing lib {version}", (f"<h2>Requirements</h2><p>lib release{tag} requires "
                                                       f"Python {PYTHON[version]} or newer on every platform.</p>")),
        "api.html": (f"API of lib {version}", (f"<h2>Connecting</h2><p>Open a connection with connect, "
                                               f"release{tag}.</p><pre><code class=\"language-python\">"
                                               f"conn = lib.connect(timeout={tag})\n</code></pre>")),
    }


@pytest.fixture(scope="module")
def versioned(tmp_path_factory):
    """A home holding lib 1.0, 2.0 and 2.1 (crawled from the same URLs), and the site, still served."""
    root = tmp_path_factory.mktemp("site")
    home = tmp_path_factory.mktemp("home")
    with serve(root) as site:
        with Evorag(home=home, llm_provider="none") as rag:
            for version in ("1.0", "2.0", "2.1"):
                write_site(root, site_pages(version))
                report = rag.crawl(CrawlRequest(site.url("/index.html"), source="lib", version=version,
                                                allow_private=True))
                assert (report.pages_indexed, report.version) == (3, version)
            write_site(root, site_pages("2.1"))
        yield home, site, root


def _rag(home):
    return Evorag(home=home, llm_provider="none")


# The version model, without an index


@pytest.mark.parametrize(("spec", "expected"), [
    (None, "2.1"), ("latest", "2.1"), ("LATEST", "2.1"), ("1.0", "1.0"), ("1", "1.0"), ("2", "2.0"),
    ("v2.1", "2.1"), (">=2,<2.1", "2.0"), ("~=2.0", "2.1"), ("==2.*", "2.1"), ("2.x", "2.1"), ("^1", "1.0"),
    ("^2", "2.1"), ("~2.0", "2.0"), ("~2", "2.1"), ("<2", "1.0"), ("!=2.1", "2.0"), (">=1.0,!=2.1,<3", "2.0"),
])
def test_a_selector_resolves_to_one_version(spec, expected):
    assert resolve_version("lib", spec, ["2.0", "1.0", "2.1", "3.0rc1"]) == expected


def test_caret_and_tilde_follow_npm_and_wildcards_become_pep440():
    assert str(range_specifiers("^1.2.3")) == "<2,>=1.2.3"
    assert str(range_specifiers("^0.3")) == "<0.4,>=0.3"
    assert str(range_specifiers("^0.0.3")) == "<0.0.4,>=0.0.3"
    assert str(range_specifiers("~1.2.3")) == "<1.3,>=1.2.3"
    assert str(range_specifiers("~1")) == "<2,>=1"
    assert str(range_specifiers("1.4.x")) == "==1.4.*"
    assert range_specifiers("1.4") is None and range_specifiers("stable") is None


def test_an_unknown_version_names_the_versions_that_exist_and_never_falls_back():
    with pytest.raises(NotFoundError) as caught:
        resolve_version("lib", "3.0", ["1.0", "2.0"])
    assert "lib" in caught.value.message and "3.0" in caught.value.message
    assert "1.0, 2.0 (latest 2.0)" in caught.value.hint
    with pytest.raises(NotFoundError, match="no version matching '>=5'"):
        resolve_version("lib", ">=5", ["1.0", "2.0"])
    with pytest.raises(NotFoundError, match="indexed without --version"):
        resolve_version("lib", "1.0", [None])
    assert resolve_version("lib", None, [None]) is None and resolve_version("lib", "latest", [None]) is None


def test_latest_prefers_the_marker_then_final_releases_then_a_sole_label():
    assert latest_version(["1.0", "2.0b1"]) == "1.0"
    assert latest_version(["2.0b1", "2.0rc1"]) == "2.0rc1"
    assert latest_version(["1.0", "2.0"], marker="1.0") == "1.0"
    assert latest_version(["stable"]) == "stable"
    assert latest_version(["stable", "1.0"]) == "1.0"
    with pytest.raises(NotFoundError, match="none of main, stable is a version number"):
        latest_version(["stable", "main"])
    assert latest_version(["stable", "main"], marker="stable") == "stable"
    assert sort_versions(["10.0", "9.1", "main", "1.0a1", None]) == [None, "main", "1.0a1", "9.1", "10.0"]
    assert describe_versions(["2.0", "1.0"], marker="1.0") == "1.0, 2.0 (latest 1.0)"


@pytest.mark.parametrize("label", ["", "latest", "-", "1.0/../x", "a b", "x" * 65, "1.0@2", "-1"])
def test_bad_version_labels_are_refused(label):
    with pytest.raises(UserError, match="invalid version"):
        validate_version_label(label)


@pytest.mark.parametrize("spec", ["^x", "~1.2.3.4", ">=", "=>2", ">=2,<"])
def test_malformed_ranges_are_user_errors(spec):
    with pytest.raises(UserError, match="invalid version range"):
        resolve_version("lib", spec, ["1.0"])


def test_selectors_split_at_the_first_at_sign():
    assert parse_selector("lib@>=2,<3") == parse_selector(" lib@>=2,<3 ")
    assert (parse_selector("lib@>=2,<3").name, parse_selector("lib@>=2,<3").spec) == ("lib", ">=2,<3")
    assert parse_selector("lib").spec is None
    with pytest.raises(UserError, match="no version after '@'"):
        parse_selector("lib@")


# Versions side by side in a real index


def test_each_version_answers_only_with_its_own_pages(versioned):
    home, _, _ = versioned
    with _rag(home) as rag:
        for selector, version in (("lib@1.0", "1.0"), ("lib@2.0", "2.0"), ("lib@latest", "2.1"), ("lib", "2.1"),
                                  ("lib@>=2,<2.1", "2.0"), ("lib@^1", "1.0"), ("lib@~=2.0", "2.1")):
            hits = rag.search("which Python version is required", source=selector, limit=5)
            assert hits, selector
            assert {hit.chunk.version for hit in hits} == {version}, selector
            assert f"Python {PYTHON[version]}" in hits[0].chunk.text, (selector, hits[0].chunk.text)
            assert all(hit.to_dict()["version"] == version for hit in hits)
        # Without a source every version is searched. (Page-aware ranking keys pages by URL, and these versions
        # share their URLs: one section per page would keep one version only.)
        everything = rag.search("which Python version is required", limit=20, max_per_page=0)
        assert {hit.chunk.version for hit in everything} == {"1.0", "2.0", "2.1"}


def test_a_question_for_an_unknown_version_lists_the_versions(versioned):
    home, _, _ = versioned
    with _rag(home) as rag, pytest.raises(NotFoundError) as caught:
        rag.search("requirements", source="lib@3.0")
    assert "1.0, 2.0, 2.1 (latest 2.1)" in str(caught.value)
    result = run_cli(home, "search", "requirements", "--source", "lib@>=3")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 2  # the error line and its hint
    assert "no version matching '>=3'" in result.stderr and "1.0, 2.0, 2.1 (latest 2.1)" in result.stderr


def test_answers_cite_the_version_they_quote(versioned):
    home, _, _ = versioned
    with _rag(home) as rag:
        answer = rag.ask("Which Python does lib need?", source="lib@1.0", evaluate=False)
    assert answer.citations and {c["version"] for c in answer.citations} == {"1.0"}
    assert {s["version"] for s in answer.sources_used} == {"1.0"}
    assert "3.8" in answer.answer


def test_the_latest_marker_changes_what_name_alone_means(versioned):
    home, _, _ = versioned
    with _rag(home) as rag:
        assert rag.mark_latest("lib@2.0").latest_version == "2.0"
        assert {h.chunk.version for h in rag.search("requirements", source="lib", limit=3)} == {"2.0"}
        assert {h.chunk.version for h in rag.search("requirements", source="lib@latest", limit=3)} == {"2.0"}
        with pytest.raises(UserError, match="does not name one version exactly"):
            rag.mark_latest("lib@>=2")
        assert rag.mark_latest("lib").latest_version == "2.1"
        assert {h.chunk.version for h in rag.search("requirements", source="lib", limit=3)} == {"2.1"}


def test_a_recrawl_of_one_version_is_incremental_within_that_version(versioned):
    home, site, root = versioned
    write_site(root, site_pages("2.1"))
    with _rag(home) as rag:
        report = rag.crawl(CrawlRequest(site.url("/index.html"), source="lib", version="2.1", allow_private=True))
        assert (report.pages_indexed, report.pages_unchanged, report.pages_removed) == (0, 3, 0)
        assert report.changes["added"] == report.changes["changed"] == report.changes["removed"] == 0
        counts = {v.version: (v.pages, v.chunks) for v in rag.sources()[0].versions}
    assert counts["1.0"] == counts["2.0"] == counts["2.1"] and counts["1.0"][0] == 3


def test_versioned_and_unversioned_pages_never_mix_in_one_source(versioned):
    home, site, _ = versioned
    with _rag(home) as rag:
        with pytest.raises(UserError, match="holds versions 1.0, 2.0, 2.1"):
            rag.knowledge.plan_crawl(CrawlRequest(site.url("/index.html"), source="lib", allow_private=True))
        with pytest.raises(UserError, match="invalid version"):
            rag.knowledge.plan_crawl(CrawlRequest(site.url("/index.html"), source="lib", version="latest",
                                                  allow_private=True))
        with pytest.raises(UserError, match="already holds"):
            rag.knowledge.plan_crawl(CrawlRequest(site.url("/api.html"), source="lib", version="1.0",
                                                  allow_private=True))


def test_sources_list_versions_and_the_cli_shows_them(versioned):
    home, _, _ = versioned
    result = run_cli(home, "sources", "--json")
    assert result.returncode == 0, result.stderr
    [lib] = json.loads(result.stdout)
    assert lib["name"] == "lib" and lib["latest"] == "2.1" and lib["latest_marked"] is False
    assert [(v["version"], v["pages"], v["latest"]) for v in lib["versions"]] == [
        ("1.0", 3, False), ("2.0", 3, False), ("2.1", 3, True)]
    table = run_cli(home, "sources")
    assert table.returncode == 0 and "2.1 *" in table.stdout and "1.0" in table.stdout


def test_the_cli_searches_one_version_and_shows_it(versioned):
    home, _, _ = versioned
    result = run_cli(home, "search", "connect with a timeout", "--source", "lib@2.0", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits and {hit["version"] for hit in hits} == {"2.0"} and {hit["source"] for hit in hits} == {"lib"}
    assert any("timeout=2_0" in hit["content"] for hit in hits)


def test_removing_one_version_leaves_the_others(versioned, tmp_path):
    home, site, root = versioned
    with _rag(home) as rag:
        with pytest.raises(UserError, match="does not name one version exactly"):
            rag.remove_source("lib@latest")
        before = rag.store.count()
        v1_chunks = next(v.chunks for v in rag.sources()[0].versions if v.version == "1.0")
        rag.remove_source("lib@1.0")
        assert [v.version for v in rag.sources()[0].versions] == ["2.0", "2.1"]
        assert rag.store.count() == before - v1_chunks > 0
        with pytest.raises(NotFoundError, match="2.0, 2.1"):
            rag.search("requirements", source="lib@1.0")
        # Put it back for the other tests: the same URLs serve 1.0 again.
        write_site(root, site_pages("1.0"))
        rag.crawl(CrawlRequest(site.url("/index.html"), source="lib", version="1.0", allow_private=True))
        write_site(root, site_pages("2.1"))
        assert rag.store.count() == before


def test_an_unversioned_source_keeps_working_and_old_catalogs_migrate_in_place(tmp_path):
    """A schema-1 catalog (before versions) opens as unversioned sources, pages kept; crawling it again is
    incremental and `evorag sources` shows its version as '-'."""
    path = tmp_path / "catalog.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.execute("INSERT INTO sources(name, start_url, options, created_at) VALUES ('old', 'http://d/', '{}', 1)")
    db.execute("INSERT INTO pages(url, source, title, indexed_hash, etag, chunk_count) "
               "VALUES ('http://d/a', 'old', 'A', 'h1', '\"e\"', 2)")
    db.execute("INSERT INTO pages(url, source, indexed_hash, pending_hash) VALUES ('http://d/b', 'old', NULL, 'h2')")
    db.commit()
    db.close()
    catalog = Catalog(path)
    [old] = catalog.sources()
    assert (old.pages, old.chunks, old.version_labels, old.versioned) == (1, 2, [None], False)
    assert catalog.pages("old")["http://d/a"].etag == '"e"' and catalog.pages("old")["http://d/a"].version is None
    assert [p.url for p in catalog.pending_pages()] == ["http://d/b"]
    catalog.close()
    again = Catalog(path)  # a second open finds schema 2 and leaves it alone
    assert again.get_source("old").pages == 1
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2


SCHEMA_1 = """
CREATE TABLE sources (name TEXT PRIMARY KEY, start_url TEXT, options TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL, last_crawl_at REAL, last_summary TEXT);
CREATE TABLE pages (url TEXT PRIMARY KEY, source TEXT NOT NULL REFERENCES sources(name) ON DELETE CASCADE,
    title TEXT NOT NULL DEFAULT '', indexed_hash TEXT, pending_hash TEXT, etag TEXT, last_modified TEXT,
    fetched_at REAL, chunk_count INTEGER NOT NULL DEFAULT 0);
CREATE INDEX pages_by_source ON pages(source);
CREATE TABLE external_links (source TEXT NOT NULL, url TEXT NOT NULL, PRIMARY KEY (source, url));
"""


def test_two_unversioned_sources_of_the_same_pages_keep_their_own_chunks(tmp_path):
    """The same site crawled under two names: each source keeps its points (chunk ids are scoped by source), so
    searching one finds its pages and removing the other leaves it whole."""
    root = tmp_path / "site"
    write_site(root, {"index.html": ("Guide", "<p>The widget library configures timeouts with widget.configure.</p>"),
                      "setup.html": ("Setup", "<p>Install the widget with pip install widget.</p>")})
    with serve(root) as site, Evorag(home=tmp_path / "home", llm_provider="none") as rag:
        for name in ("docs", "docs2"):
            assert rag.crawl(CrawlRequest(site.url("/index.html"), source=name, allow_private=True)).pages_indexed == 2
        for name in ("docs", "docs2"):
            hits = rag.search("install the widget", source=name)
            assert hits and {hit.chunk.source for hit in hits} == {name}
        rag.remove_source("docs2")
        assert {hit.chunk.url for hit in rag.search("install the widget", source="docs")} == {
            site.url("/index.html"), site.url("/setup.html")}
