"""Sources read from disk: a local folder (Markdown, reStructuredText, HTML, notebooks, text, PDF) and a git
repository (README, docs/, Python docstrings), with a crawl's semantics: file citations, the same chunking,
incremental re-runs by content hash, removal of deleted files, change reports, crash safety, limits, and
symbolic links kept inside the folder. Real store, real embedding model, real git, real pypdf."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from doc_fixtures import run_cli
from evorag.tools.file_formats import UnreadableFile, convert, notebook_to_markdown, rst_to_markdown
from evorag.tools.local_files import FolderLimits, read_file, walk_folder
from evorag.tools.python_docs import module_markdown
from evorag.tools.stores import SearchFilter

from evorag.errors import BlockedURLError, ExternalError, NotFoundError, UserError
from evorag.service import CrawlRequest, Evorag

GUIDE = """# Widget guide

Install the widget with pip install widget.

## Configure

Set WIDGET_TIMEOUT to 30 seconds.

```python
widget.configure(timeout=30)
```
"""

API_RST = """==========
Widget API
==========

Configuring
-----------

Call :func:`widget.configure` with a timeout in seconds. Example::

    widget.configure(timeout=5)

.. code-block:: python
   :linenos:

   import widget
   widget.spin(rpm=1200)

.. note:: Spinning needs a configured widget.
"""

HTML = """<html><head><title>Plugins</title></head><body><nav>Home | Docs</nav><main>
<h1>Plugins</h1><p>Widgets load plugins from the widget.plugins entry point group.</p></main></body></html>"""

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "source": ["# Tutorial\n", "\n", "Train a widget on sample data."]},
        {"cell_type": "code", "source": ["model = widget.train(samples, epochs=7)\n"], "outputs": [
            {"output_type": "stream", "text": ["HUGE OUTPUT NOT DOCUMENTATION\n"]}]},
        {"cell_type": "raw", "source": "raw cell text"},
    ],
    "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF: one line of Helvetica text per page, with a correct cross-reference table."""
    count = len(pages)
    font = 3 + 2 * count
    objects = ["<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(count))}] /Count {count} >>"]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 {font} "
                       f"0 R >> >> /Contents {4 + 2 * i} 0 R >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info = ""
    if title:
        objects.append(f"<< /Title ({title}) >>")
        info = f" /Info {len(objects)} 0 R"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_folder(root: Path) -> None:
    (root / "api").mkdir(parents=True)
    (root / "guide.md").write_text(GUIDE)
    (root / "api" / "widget.rst").write_text(API_RST)
    (root / "plugins.html").write_text(HTML)
    (root / "tutorial.ipynb").write_text(json.dumps(NOTEBOOK))
    (root / "notes.txt").write_text("Widgets rattle when the flux capacitor is loose.\n")
    (root / "manual.pdf").write_bytes(make_pdf(["The gadget manual covers calibration of the widget.",
                                                "Calibrate with widget.calibrate(level=3) after unpacking."],
                                               title="Widget Manual"))
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.md").write_text("# Hidden\n\nhidden-folder-text\n")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "_sources").mkdir()  # a Sphinx build's copy of its page sources
    (root / "_sources" / "guide.md.txt").write_text("sphinx-copy-text\n")
    outside = root.parent / "outside.md"
    outside.write_text("# Outside\n\noutside-the-folder-text\n")
    (root / "leak.md").symlink_to(outside)
    (root / "linked").symlink_to(root.parent)  # a folder link out: never entered


@pytest.fixture(scope="module")
def folder_home(tmp_path_factory):
    """A home where a folder of every supported format was indexed once."""
    base = tmp_path_factory.mktemp("folder")
    root = base / "docs"
    write_folder(root)
    home = tmp_path_factory.mktemp("home")
    with Evorag(home=home, llm_provider="none") as rag:
        report = rag.add_folder(root, source="widget")
    return home, root, report


# Conversions (no model) ----------------------------------------------------------------------------------------
def test_rst_headings_follow_adornment_order_and_code_is_fenced():
    markdown = rst_to_markdown(API_RST)
    assert "# Widget API" in markdown.splitlines() and "## Configuring" in markdown.splitlines()
    assert "```\nwidget.configure(timeout=5)\n```" in markdown  # the "Example::" literal block
    assert "```python\nimport widget\nwidget.spin(rpm=1200)\n```" in markdown  # options dropped
    assert "Example:" in markdown and "Example::" not in markdown and "`widget.configure`" in markdown
    assert "**Note:** Spinning needs a configured widget." in markdown


def test_notebook_keeps_markdown_and_code_cells_not_outputs():
    markdown = notebook_to_markdown(json.dumps(NOTEBOOK))
    assert markdown.startswith("# Tutorial")
    assert "```python\nmodel = widget.train(samples, epochs=7)\n```" in markdown
    assert "HUGE OUTPUT" not in markdown and "raw cell" not in markdown
    with pytest.raises(UnreadableFile, match="not a notebook"):
        notebook_to_markdown("{not json")


def test_pdf_text_per_page_and_broken_files_are_refused():
    sections = convert("m.pdf", make_pdf(["First page words.", "Second page words."], title="Manual"))
    assert [(s.fragment, s.title, s.markdown) for s in sections] == [
        ("page=1", "Manual (page 1)", "First page words."), ("page=2", "Manual (page 2)", "Second page words.")]
    with pytest.raises(UnreadableFile, match="not a readable PDF"):
        convert("broken.pdf", b"%PDF-1.4\nthis is not a pdf")
    with pytest.raises(UnreadableFile, match="binary"):
        convert("notes.txt", b"text\x00\x01binary")
    with pytest.raises(UnreadableFile, match="UTF-8"):
        convert("notes.md", "caf\xe9".encode("latin-1"))


def test_docstrings_are_read_without_running_the_module(tmp_path):
    marker = tmp_path / "ran"
    source = (f'"""Module doc."""\nopen({str(marker)!r}, "w").write("x")\n\n'
              "def spin(rpm: int = 10) -> None:\n"
              '    """Spin it.\n\n    >>> spin(5)\n    spun\n    """\n\n'
              "class Widget(Base):\n"
              '    """A widget."""\n\n'
              "    def calibrate(self, level):\n"
              '        """Calibrate."""\n\n'
              "def _hidden():\n"
              '    """Private."""\n').encode()
    markdown = module_markdown("src/wpkg/core.py", source)
    assert markdown.startswith("# wpkg.core\n\nModule doc.")
    assert "spin(rpm: int=10) -> None" in markdown and "```pycon\n>>> spin(5)\nspun\n```" in markdown
    assert "## class Widget(Base)" in markdown and "### Widget.calibrate" in markdown
    assert "Private" not in markdown and not marker.exists()
    assert module_markdown("empty.py", b"x = 1\n") == ""
    with pytest.raises(UnreadableFile, match="not valid Python"):
        module_markdown("bad.py", b"def (:\n")


def test_the_walk_stays_in_the_folder_and_within_limits(tmp_path):
    root, outside = tmp_path / "docs", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "page.md").write_text("# Page\n")
    (outside / "page.md").write_text("# Secret\n")
    (root / "big.md").write_text("x" * 2000)
    (root / "inside-link.md").symlink_to(root / "sub" / "page.md")
    limits = FolderLimits(max_file_bytes=1000)
    walk = walk_folder(root.resolve(), limits)
    assert walk.files == ["inside-link.md", "sub/page.md"] and walk.complete
    assert walk.skipped == [("big.md", "larger than 1000 bytes")]
    assert read_file(walk.root, "inside-link.md", limits) == b"# Page\n"
    # A folder on the way swapped for a link to outside after the walk: the file there is not read.
    (root / "sub" / "page.md").unlink()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the folder"):
        read_file(walk.root, "sub/page.md", limits)


# A folder -------------------------------------------------------------------------------------------------------
def test_a_folder_of_every_format_is_indexed_with_file_citations(folder_home):
    home, root, report = folder_home
    uri = root.as_uri()
    expected = {f"{uri}/guide.md", f"{uri}/api/widget.rst", f"{uri}/plugins.html", f"{uri}/tutorial.ipynb",
                f"{uri}/notes.txt", f"{uri}/manual.pdf#page=1", f"{uri}/manual.pdf#page=2"}
    with Evorag(home=home, llm_provider="none") as rag:
        assert set(rag.source_pages("widget")) == expected
        source = rag.sources()[0]
        assert (source.name, source.start_url, source.options.get("kind")) == ("widget", uri, "folder")
        top = rag.search("calibrate level after unpacking", source="widget", limit=1)[0]
        assert top.chunk.url == f"{uri}/manual.pdf#page=2" and top.chunk.title == "Widget Manual (page 2)"
        code = rag.search("train a widget on samples epochs", source="widget", code=True, limit=3)
        notebook = next(hit for hit in code if hit.chunk.url.endswith("tutorial.ipynb"))
        assert notebook.chunk.language == "python" and "widget.train(samples, epochs=7)" in notebook.chunk.text
        rst = rag.search("spin rpm", source="widget", code=True, limit=3)
        assert any(hit.chunk.url.endswith("widget.rst") and hit.chunk.heading_path == ["Widget API", "Configuring"]
                   for hit in rst)
        texts = " ".join(hit.chunk.text for hit in rag.search("text", source="widget", limit=50, max_per_page=0))
    assert "hidden-folder-text" not in texts and "outside-the-folder-text" not in texts
    assert "sphinx-copy-text" not in texts
    assert report.pages_indexed == 7 and report.complete and report.changes["added"] == 7
    assert {f["url"]: f["reason"] for f in report.failures} == {
        "leak.md": "a symbolic link to outside the folder (not followed)"}


def test_a_rerun_indexes_only_what_changed_and_removes_deleted_files(folder_home, tmp_path):
    home, _, _ = folder_home
    work = tmp_path / "copy"
    write_folder(work)
    with Evorag(home=home, llm_provider="none") as rag:
        first = rag.add_folder(work, source="copy")
        unchanged = rag.add_folder(work, source="copy")
        (work / "guide.md").write_text(GUIDE.replace("30 seconds", "60 seconds"))
        (work / "notes.txt").unlink()
        (work / "faq.md").write_text("# FAQ\n\nWidgets are blue.\n")
        (work / "manual.pdf").write_bytes(make_pdf(["The gadget manual covers calibration of the widget."],
                                                   title="Widget Manual"))
        second = rag.add_folder(work, source="copy")
        pages = set(rag.source_pages("copy"))
        changes = rag.source_changes("copy").reports[0]
        store = rag.store
        guide_chunks = store.count(SearchFilter(url=f"{work.as_uri()}/guide.md", source="copy"))
        guide_record = rag.catalog.page(f"{work.as_uri()}/guide.md", source="copy")
    assert first.pages_indexed == 7 and unchanged.pages_indexed == 0 and unchanged.pages_unchanged == 7
    assert unchanged.changes == {"report_id": unchanged.changes["report_id"], "added": 0, "changed": 0, "removed": 0}
    # guide.md changed, faq.md added; notes.txt and the PDF's second page removed; the rest unchanged.
    assert (second.pages_indexed, second.pages_removed, second.pages_unchanged) == (2, 2, 4)
    assert (changes.count("added"), changes.count("changed"), changes.count("removed")) == (1, 1, 2)
    changed = next(page for page in changes.pages if page["change"] == "changed")
    assert changed["url"].endswith("guide.md")
    assert f"{work.as_uri()}/notes.txt" not in pages and f"{work.as_uri()}/manual.pdf#page=2" not in pages
    assert guide_chunks == guide_record.chunk_count > 0  # the old version's chunks are gone


def test_an_unreadable_file_keeps_its_pages_and_a_limit_removes_nothing(folder_home, tmp_path):
    home, _, _ = folder_home
    work = tmp_path / "docs"
    write_folder(work)
    with Evorag(home=home, llm_provider="none") as rag:
        rag.add_folder(work, source="keep", version="1.0")
        (work / "manual.pdf").write_bytes(b"%PDF-1.4\nhalf-written")
        broken = rag.add_folder(work, source="keep", version="1.0")
        limited = rag.add_folder(work, source="keep", version="1.0", limits=FolderLimits(max_files=2))
        pages = set(rag.source_pages("keep@1.0"))
    assert any(f["url"] == "manual.pdf" and "not a readable PDF" in f["reason"] for f in broken.failures)
    assert broken.pages_removed == 0 and f"{work.as_uri()}/manual.pdf#page=2" in pages
    assert not limited.complete and limited.pages_removed == 0 and len(pages) == 7
    assert any("limit" in f["reason"] for f in limited.failures)


def test_a_run_killed_mid_write_is_recovered_by_the_next(folder_home, tmp_path, monkeypatch):
    home, _, _ = folder_home
    work = tmp_path / "docs"
    write_folder(work)
    with Evorag(home=home, llm_provider="none") as rag:
        store = rag.store
        real_upsert = store.upsert

        def upsert_then_die(*args, **kwargs):
            real_upsert(*args, **kwargs)  # the chunks are written, the catalog never commits them
            raise KeyboardInterrupt

        monkeypatch.setattr(store, "upsert", upsert_then_die)
        with pytest.raises(KeyboardInterrupt):
            rag.add_folder(work, source="crash")
        assert rag.knowledge.half_written_pages() == 7
        monkeypatch.setattr(store, "upsert", real_upsert)
        report = rag.add_folder(work, source="crash")
        counts = {url: store.count(SearchFilter(url=url, source="crash")) for url in rag.source_pages("crash")}
        records = rag.catalog.pages("crash")
    assert report.recovered_pages == 7 and report.pages_indexed == 7
    assert rag.knowledge.half_written_pages() == 0
    assert counts == {url: records[url].chunk_count for url in counts} and all(counts.values())


def test_bad_folders_and_mixed_kinds_are_refused(folder_home, tmp_path):
    home, root, _ = folder_home
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "picture.png").write_bytes(b"\x89PNG")
    (tmp_path / "file.md").write_text("# A file\n")
    with Evorag(home=home, llm_provider="none") as rag:
        with pytest.raises(UserError, match="no such folder"):
            rag.add_folder(tmp_path / "missing")
        with pytest.raises(UserError, match="not a folder"):
            rag.add_folder(tmp_path / "file.md")
        with pytest.raises(UserError, match="no documents to index"):
            rag.add_folder(empty, source="nothing")
        with pytest.raises(NotFoundError):
            rag.source_pages("nothing")
        with pytest.raises(UserError, match="invalid source name"):
            rag.add_folder(root, source="../x")
        with pytest.raises(UserError, match="already holds"):
            rag.add_folder(tmp_path, source="widget")
        with pytest.raises(UserError, match="not files") as refused:
            rag.knowledge.plan_crawl(CrawlRequest(root.as_uri()))
        assert "add-folder" in refused.value.hint
        with pytest.raises(UserError, match="holds a local folder, not a website"):
            rag.knowledge.plan_crawl(CrawlRequest("http://127.0.0.1:9/", source="widget", allow_private=True))


def test_the_cli_indexes_a_folder_and_refuses_a_missing_one(tmp_path):
    home = tmp_path / "home"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text(GUIDE)
    done = run_cli(home, "add-folder", str(docs), "--source", "cli-docs", "--version", "2.0", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["source"], report["version"], report["pages_indexed"]) == ("cli-docs", "2.0", 1)
    missing = run_cli(home, "add-folder", str(tmp_path / "missing"))
    assert missing.returncode == 2 and "no such folder" in missing.stderr


# A git repository -----------------------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A repository with a v1.0 tag and a newer main: README, docs/, a package, tests, a module git must not
    run, and a file that is not documentation."""
    repo = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "docs").mkdir()
    (repo / "src" / "wpkg").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "README.md").write_text("# wpkg\n\nThe wpkg package spins widgets.\n")
    (repo / "docs" / "usage.rst").write_text("Usage\n=====\n\nRun ``wpkg spin`` to spin a widget at 1200 rpm.\n")
    (repo / "src" / "wpkg" / "__init__.py").write_text('"""The wpkg package."""\n')
    (repo / "src" / "wpkg" / "core.py").write_text(
        '"""Core of wpkg."""\nraise SystemExit("imported!")\n\n'
        'def spin(rpm: int = 1200) -> None:\n    """Spin the widget at ``rpm`` revolutions per minute."""\n')
    (repo / "src" / "wpkg" / "broken.py").write_text("def (:\n")
    (repo / "tests" / "test_core.py").write_text('def test_spin():\n    """tests-are-not-docs"""\n')
    (repo / "data.csv").write_text("not,documentation\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "tag", "v1.0")
    (repo / "src" / "wpkg" / "core.py").write_text(
        '"""Core of wpkg."""\n\ndef spin(rpm: int = 1200, *, reverse: bool = False) -> None:\n'
        '    """Spin the widget; ``reverse`` spins it backwards (new in 2.0)."""\n')
    _git(repo, "commit", "-qam", "v2")
    return repo


def test_a_git_repository_is_indexed_per_ref_side_by_side(repository, tmp_path):
    with Evorag(home=tmp_path / "home", llm_provider="none") as rag:
        old = rag.add_git(str(repository), ref="v1.0", source="wpkg", version="1.0")
        new = rag.add_git(str(repository), source="wpkg", version="2.0")  # the default branch: main
        old_pages = rag.source_pages("wpkg@1.0")
        hit_old = rag.search("spin backwards reverse", source="wpkg@1.0", limit=5)
        hit_new = rag.search("spin backwards reverse", source="wpkg@2.0", limit=1)[0]
        again = rag.add_git(str(repository), ref="v1.0", source="wpkg", version="1.0")
    base = f"git+{repository.as_uri()}"
    assert sorted(old_pages) == [f"{base}@v1.0#README.md", f"{base}@v1.0#docs/usage.rst",
                                 f"{base}@v1.0#src/wpkg/__init__.py", f"{base}@v1.0#src/wpkg/core.py"]
    assert [f["url"] for f in old.failures] == ["src/wpkg/broken.py"]
    assert "reverse" not in " ".join(hit.chunk.text for hit in hit_old)
    assert hit_new.chunk.url == f"{base}@main#src/wpkg/core.py" and "backwards" in hit_new.chunk.text
    assert hit_new.chunk.version == "2.0" and new.pages_indexed == 4
    assert again.pages_indexed == 0 and again.pages_unchanged == 4


def test_bad_repositories_are_refused(repository, tmp_path):
    with Evorag(home=tmp_path / "home", llm_provider="none") as rag:
        with pytest.raises(UserError, match="invalid git ref"):
            rag.add_git(str(repository), ref="--upload-pack=touch /tmp/x")
        with pytest.raises(ExternalError, match="git clone .* failed"):
            rag.add_git(str(repository), ref="no-such-tag")
        with pytest.raises(UserError, match="ssh repository addresses"):
            rag.add_git("git@github.com:owner/repo.git")
        with pytest.raises(UserError, match="credentials"):
            rag.add_git("https://user:secret@example.com/owner/repo.git")
        with pytest.raises(BlockedURLError):
            rag.add_git("http://127.0.0.1:9/owner/repo.git")
        with pytest.raises(UserError, match="no such repository"):
            rag.add_git(str(tmp_path / "missing"))
        bare = tmp_path / "data-only"
        subprocess.run(["git", "init", "-q", "-b", "main", str(bare)], check=True)
        (bare / "data.csv").write_text("a,b\n")
        _git(bare, "add", "-A")
        _git(bare, "commit", "-qm", "data")
        with pytest.raises(UserError, match=f"no documents to index in {bare.as_uri()} at main"):
            rag.add_git(str(bare))
        assert rag.sources() == []
