"""Change reports: a re-crawl records the pages added, removed and changed, and for a changed page the sections
whose text changed with a short diff; shown by `evorag sources changes` (filtered by date) and kept in the
catalog across crashes."""

from __future__ import annotations

import json
import math
import time

import pytest
from doc_fixtures import run_cli, write_site
from evorag.tools import changes
from evorag.tools.catalog import Catalog, PageRecord
from sitefixtures import serve

from evorag.errors import NotFoundError, UserError
from evorag.service import CrawlRequest, Evorag

BEFORE = {
    "index.html": ("Guide", "<p>The guide to the widget library.</p>"),
    "setup.html": ("Setup", ("<h2>Install</h2><p>Install the widget with pip install widget.</p>"
                            "<h2>Configure</h2><p>Set WIDGET_TIMEOUT to 30 seconds.</p>"
                            "<pre><code class=\"language-python\">widget.configure(timeout=30)\n</code></pre>"
                            "<h2>Uninstall</h2><p>Remove it with pip uninstall widget.</p>")),
    "old.html": ("Legacy API", "<p>The legacy API is kept for compatibility.</p>"),
    "faq.html": ("FAQ", "<p>Questions people ask about widgets.</p>"),
}
AFTER = {
    "index.html": BEFORE["index.html"],
    "setup.html": ("Setup", ("<h2>Install</h2><p>Install the widget with pip install widget.</p>"
                            "<h2>Configure</h2><p>Set WIDGET_TIMEOUT to 60 seconds.</p>"
                            "<pre><code class=\"language-python\">widget.configure(timeout=60)\n</code></pre>"
                            "<h2>Upgrade</h2><p>Upgrade with pip install -U widget.</p>")),
    "new.html": ("Plugins", "<p>Widgets load plugins from entry points.</p>"),
    "faq.html": BEFORE["faq.html"],
}


@pytest.fixture(scope="module")
def crawled_twice(tmp_path_factory):
    """A home where the site was crawled, edited (a page changed, one added, one removed), and crawled again."""
    root = tmp_path_factory.mktemp("site")
    home = tmp_path_factory.mktemp("home")
    with serve(root) as site, Evorag(home=home, llm_provider="none") as rag:
        write_site(root, BEFORE)
        first = rag.crawl(CrawlRequest(site.url("/index.html"), source="widget", allow_private=True))
        between = time.time()
        time.sleep(1.1)  # the CLI test's --since has whole seconds: keep a whole second between the crawls
        write_site(root, AFTER)
        second = rag.crawl(CrawlRequest(site.url("/index.html"), source="widget", allow_private=True))
    return home, first, second, between


def test_the_recrawl_reports_what_was_added_removed_and_changed(crawled_twice):
    home, first, second, _ = crawled_twice
    assert first.changes["added"] == 4 and first.changes["changed"] == first.changes["removed"] == 0
    assert (second.changes["added"], second.changes["changed"], second.changes["removed"]) == (1, 1, 1)
    with Evorag(home=home) as rag:
        report = rag.source_changes("widget").reports[0]
    pages = {page["url"].rsplit("/", 1)[1]: page for page in report.pages}
    assert {name: page["change"] for name, page in pages.items()} == {
        "new.html": "added", "old.html": "removed", "setup.html": "changed"}  # index and faq are unchanged
    assert pages["old.html"]["title"] == "Legacy API" and pages["new.html"]["title"] == "Plugins"
    sections = {" > ".join(s["path"]): s for s in pages["setup.html"]["sections"]}
    assert {path: s["change"] for path, s in sections.items()} == {
        "Setup > Configure": "changed", "Setup > Uninstall": "removed", "Setup > Upgrade": "added"}
    diff = sections["Setup > Configure"]["diff"]
    assert "-Set WIDGET_TIMEOUT to 30 seconds." in diff and "+Set WIDGET_TIMEOUT to 60 seconds." in diff
    assert "+widget.configure(timeout=60)" in diff and "-widget.configure(timeout=30)" in diff
    assert "+Upgrade with pip install -U widget." in sections["Setup > Upgrade"]["diff"]
    assert report.finished_at is not None and report.to_dict()["complete"] is True


def test_reports_are_filtered_by_date(crawled_twice):
    home, _, second, between = crawled_twice
    with Evorag(home=home) as rag:
        assert len(rag.source_changes("widget").reports) == 2
        assert [r.id for r in rag.source_changes("widget", since=between).reports] == [second.changes["report_id"]]
        assert rag.source_changes("widget", since="2999-01-01").reports == []
        assert len(rag.source_changes("widget", since="1h").reports) == 2
        assert rag.source_changes("widget", since="1h").totals() == {"added": 5, "changed": 1, "removed": 1}
        with pytest.raises(UserError, match="cannot read 'yesterday' as a date"):
            rag.source_changes("widget", since="yesterday")
        with pytest.raises(NotFoundError, match="unknown source 'nothing'"):
            rag.source_changes("nothing")


def test_the_cli_shows_the_changes_as_text_and_json(crawled_twice):
    home, _, second, between = crawled_twice
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(math.ceil(between))) + "Z"
    result = run_cli(home, "sources", "changes", "widget", "--since", since, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "widget" and data["versions"] == [None]
    assert [r["id"] for r in data["reports"]] == [second.changes["report_id"]]
    assert data["totals"] == {"added": 1, "changed": 1, "removed": 1}
    text = run_cli(home, "sources", "changes", "widget", "--last", "1")
    assert text.returncode == 0, text.stderr
    assert "1 added, 1 changed, 1 removed" in text.stdout
    assert "~ " in text.stdout and "changed: Setup > Configure" in text.stdout and "+Set WIDGET_TIMEOUT" in text.stdout
    bad = run_cli(home, "sources", "changes", "widget", "--since", "soon")
    assert bad.returncode == 2 and "cannot read 'soon' as a date" in bad.stderr and bad.stdout == ""


def test_a_report_survives_a_crash_and_the_next_crawl_continues_it(tmp_path):
    """Entries are committed with their pages; a crawl killed before it finished leaves its report open and the
    next crawl of that source merges into it instead of starting a second one."""
    path = tmp_path / "catalog.sqlite3"
    catalog = Catalog(path)
    catalog.upsert_source("docs", "http://d/", {})
    catalog.begin_pages("docs", [("http://d/a", "h1")])
    catalog.commit_pages([PageRecord("http://d/a", "docs", "A", "h1", None, None, None, 1.0, 1)],
                         changes=[{"source": "docs", "version": None, "url": "http://d/a", "change": "added",
                                   "title": "A"}])
    catalog.close()  # killed here: no finish_crawl
    catalog = Catalog(path)
    [open_report] = catalog.change_reports("docs")
    assert open_report.finished_at is None and open_report.count("added") == 1
    catalog.begin_pages("docs", [("http://d/b", "h2")])
    catalog.commit_pages([PageRecord("http://d/b", "docs", "B", "h2", None, None, None, 1.0, 1)],
                         changes=[{"source": "docs", "version": None, "url": "http://d/b", "change": "added",
                                   "title": "B"}])
    closed = catalog.finish_crawl("docs", {})
    assert closed.id == open_report.id and closed.count("added") == 2 and closed.finished_at is not None
    assert len(catalog.change_reports("docs")) == 1


def test_merging_a_page_seen_twice_in_one_report():
    def entry(url, change, **extra):
        return {"source": "s", "version": None, "url": url, "change": change, "title": url, **extra}

    section = {"path": ["P", "A"], "change": "changed", "diff": "-a\n+b"}
    details = changes.merge({}, [entry("added-then-changed", "added"), entry("added-then-removed", "added"),
                                 entry("removed-then-added", "removed"), entry("changed-twice", "changed",
                                                                               sections=[section])])
    details = changes.merge(details, [
        entry("added-then-changed", "changed", sections=[section]), entry("added-then-removed", "removed"),
        entry("removed-then-added", "added"),
        entry("changed-twice", "changed", sections=[{"path": ["P", "B"], "change": "added", "diff": "+c"}])])
    listed = {page["url"]: page for page in changes.listing(details)}
    assert set(listed) == {"added-then-changed", "removed-then-added", "changed-twice"}
    assert listed["added-then-changed"]["change"] == "added"
    assert listed["removed-then-added"]["change"] == "changed" and listed["removed-then-added"]["sections"] is None
    assert [s["path"] for s in listed["changed-twice"]["sections"]] == [["P", "A"], ["P", "B"]]


def test_reports_stay_small_whatever_the_site_does(monkeypatch):
    """Diff excerpts are capped in lines and characters, sections per page and pages per report too."""
    old = "# Page\n\n## Huge\n\n" + "\n".join(f"line {i} " + "x" * 300 for i in range(500))
    new = old.replace("line", "LINE")
    sections, omitted = changes.diff_sections(old, new, title="Page")
    assert omitted == 0 and len(sections) == 1
    diff = sections[0]["diff"]
    assert len(diff) <= changes.MAX_DIFF_CHARS + 40 and diff.endswith("more diff lines)")
    many = "\n\n".join(f"## S{i}\n\ntext {i}" for i in range(40))
    sections, omitted = changes.diff_sections(many, many.replace("text", "TEXT"), title="Page")
    assert len(sections) == changes.MAX_SECTIONS_PER_PAGE and omitted == 40 - changes.MAX_SECTIONS_PER_PAGE
    monkeypatch.setattr(changes, "MAX_PAGES_LISTED", 5)
    details = changes.merge({}, [{"source": "s", "url": f"u{i}", "change": "added", "title": ""} for i in range(8)])
    assert len(details["pages"]) == 5 and details["omitted"] == {"added": 3}


def test_sections_split_at_headings_but_not_inside_code_blocks():
    markdown = "intro\n\n# Title\n\ntext\n\n```python\n# not a heading\nx = 1\n```\n\n## Sub\n\nmore\n\n## Sub\n\nagain"
    found = changes.sections_of(markdown, title="Page")
    assert list(found) == ["Page", "Title", "Title > Sub", "Title > Sub (2)"]
    assert "# not a heading" in found["Title"][1]


def test_an_assistant_asks_over_mcp_what_changed_since_a_date(crawled_twice):
    import anyio
    from mcp.shared.memory import create_connected_server_and_client_session

    from evorag.mcp_server import build_server

    home, _, second, between = crawled_twice

    async def ask() -> tuple[dict, str]:
        with Evorag(home=home) as rag:
            server = build_server(rag)
            try:
                async with create_connected_server_and_client_session(server) as client:
                    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(between)))
                    found = await client.call_tool("get_source_changes", {"source": "widget", "since": since})
                    unknown = await client.call_tool("get_source_changes", {"source": "nothing"})
            finally:
                await server.aclose()
        assert not found.isError and unknown.isError
        return found.structuredContent, unknown.content[0].text

    changes, error = anyio.run(ask)
    assert [report["id"] for report in changes["reports"]] == [second.changes["report_id"]]
    assert changes["totals"] == {"added": 1, "changed": 1, "removed": 1}
    setup = next(page for page in changes["reports"][0]["pages"] if page["url"].endswith("/setup.html"))
    assert "+Set WIDGET_TIMEOUT to 60 seconds." in "".join(section["diff"] for section in setup["sections"])
    assert "unknown source 'nothing'" in error
