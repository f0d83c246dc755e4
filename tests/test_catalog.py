from evorag.tools.catalog import Catalog, PageRecord


def record(url, h, chunks=3):
    return PageRecord(url=url, source="docs", title="T", indexed_hash=h, pending_hash=None, etag='"e"',
                      last_modified=None, fetched_at=1.0, chunk_count=chunks)


def test_pending_versions_survive_a_reopen_until_committed(tmp_path):
    db = tmp_path / "c.sqlite3"
    catalog = Catalog(db)
    catalog.upsert_source("docs", "http://d/", {})
    catalog.begin_pages("docs", [("http://d/a", "h1"), ("http://d/b", "h1")])
    catalog.commit_pages([record("http://d/a", "h1")])
    catalog.close()  # "crash" before b is committed

    catalog = Catalog(db)
    pending = catalog.pending_pages()
    assert [p.url for p in pending] == ["http://d/b"]
    catalog.clear_pending("http://d/b")
    assert set(catalog.pages("docs")) == {"http://d/a"}
    assert catalog.sources()[0].pages == 1 and catalog.sources()[0].chunks == 3


def test_an_interrupted_update_keeps_the_indexed_version(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite3")
    catalog.upsert_source("docs", "http://d/", {})
    catalog.begin_pages("docs", [("http://d/a", "h1")])
    catalog.commit_pages([record("http://d/a", "h1")])
    catalog.begin_pages("docs", [("http://d/a", "h2")])
    assert catalog.page("http://d/a").pending_hash == "h2"
    catalog.clear_pending("http://d/a")
    page = catalog.page("http://d/a")
    assert page.indexed_hash == "h1" and page.pending_hash is None


def test_delete_source_removes_pages_and_links(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite3")
    catalog.upsert_source("docs", "http://d/", {"selector": "main"})
    catalog.begin_pages("docs", [("http://d/a", "h1")])
    catalog.commit_pages([record("http://d/a", "h1")])
    catalog.finish_crawl("docs", {"ok": True}, ["https://other.example/x"])
    assert catalog.external_links("docs") == [("docs", "https://other.example/x")]
    assert catalog.get_source("docs").options == {"selector": "main"}
    catalog.delete_source("docs")
    assert catalog.sources() == [] and catalog.pages("docs") == {} and catalog.external_links() == []
