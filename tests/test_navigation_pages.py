"""Navigation-only pages (generated indexes, bare tables of contents) are followed but not indexed.

The classifier is checked on small pages shaped like real Sphinx output; the crawl runs against a fixture
site on 127.0.0.1 through the service, the catalog and the store.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from evorag.tools.crawling import CrawlOptions
from evorag.tools.crawling._navigation import NAVIGATION_REASON, is_navigation_page
from evorag.tools.extract import extract_main_content
from sitefixtures import serve

from evorag.service import CrawlRequest, Evorag
from evorag.settings import Settings


def page(body: str) -> str:
    return (
        "<html><head><title>Docs</title></head><body>"
        '<div class="sphinxsidebar" role="navigation"><ul><li><a href="index.html">Home</a></li>'
        '<li><a href="guide.html">Guide</a></li></ul></div>'
        f'<div class="body" role="main">{body}</div></body></html>'
    )


def entry(name: str, where: str, target: str) -> str:
    return f'<li><a href="{target}#{name}">{name}() ({where})</a></li>'


GENINDEX = page(
    "<h1>Index</h1>"
    '<div class="genindex-jumpbox"><a href="#A"><strong>A</strong></a> | <a href="#B"><strong>B</strong></a></div>'
    "<h2 id='A'>A</h2><table><tr><td><ul>"
    + entry("abort", "in module flask", "api.html")
    + entry("add_url_rule", "flask.Flask method", "api.html")
    + entry("after_request", "flask.Blueprint method", "api.html")
    + "</ul></td></tr></table><h2 id='B'>B</h2><table><tr><td><ul>"
    + entry("before_request", "flask.Flask method", "api.html")
    + entry("Blueprint", "class in flask", "guide.html")
    + "</ul></td></tr></table>"
)

MODINDEX = page(
    "<h1>Python Module Index</h1><table><tr><td>f</td></tr>"
    '<tr><td><a href="api.html#module-flask"><code>flask</code></a></td></tr>'
    '<tr><td><a href="api.html#module-flask.json"><code>flask.json</code></a></td></tr></table>'
)

CONTENTS = page(
    "<h1>Full table of contents</h1><div class='toctree-wrapper compound'><ul>"
    + "".join(
        f'<li class="toctree-l1"><a class="reference internal" href="{href}">{text}</a><ul>'
        f'<li class="toctree-l2"><a class="reference internal" href="{href}#a">{text}: first steps</a></li>'
        f'<li class="toctree-l2"><a class="reference internal" href="{href}#b">{text}: going further</a></li>'
        "</ul></li>"
        for href, text in [("installation.html", "Installation"), ("quickstart.html", "Quickstart"),
                           ("api.html", "API reference"), ("testing.html", "Testing Flask applications")]
    )
    + "</ul></div>"
)

HOME_WITH_INTRO = page(
    "<h1>Welcome to Flask</h1>"
    "<p>Welcome to Flask's documentation. Get started with Installation and then get an overview with the "
    "Quickstart. There is also a more detailed Tutorial that shows how to create a small but complete "
    "application with Flask. Common patterns are described in the Patterns for Flask section.</p>"
    "<h2>User's Guide</h2><div class='toctree-wrapper compound'><ul>"
    + "".join(f'<li class="toctree-l1"><a class="reference internal" href="{name}.html">{title}</a></li>'
              for name, title in [("installation", "Installation"), ("quickstart", "Quickstart"),
                                  ("tutorial", "Tutorial"), ("templating", "Templates"),
                                  ("testing", "Testing Flask Applications"), ("errorhandling", "Handling Errors")])
    + "</ul></div>"
)

API_REFERENCE = page(
    "<h1>API</h1><p>This part of the documentation covers all the interfaces of Flask.</p>"
    '<dl class="py class"><dt class="sig sig-object py" id="flask.Flask"><em>class</em> '
    '<span class="sig-prename">flask.</span><span class="sig-name">Flask</span>(<em>import_name</em>, '
    "<em>static_url_path=None</em>, <em>static_folder='static'</em>)</dt>"
    "<dd><p>The flask object implements a WSGI application and acts as the central object. It is passed the "
    'name of the module or package of the application. See <a href="views.html">views</a>.</p>'
    '<div class="highlight-python"><pre>from flask import Flask\napp = Flask(__name__)\n'
    "@app.route('/')\ndef index():\n    return 'Hello World'</pre></div>"
    "<p>The name of the package is used to resolve resources from inside the package or the folder the "
    "module is contained in depending on if the package parameter resolves to an actual python package.</p>"
    "</dd></dl>"
)

MOVED_STUB = page('<p>This page has been moved, please see <a href="warnings.html">Asserting warnings</a>.</p>')


@pytest.mark.parametrize(
    ("html", "navigation"),
    [
        pytest.param(GENINDEX, True, id="generated index"),
        pytest.param(MODINDEX, True, id="module index"),
        pytest.param(CONTENTS, True, id="table of contents alone"),
        pytest.param(HOME_WITH_INTRO, False, id="home page with an introduction"),
        pytest.param(API_REFERENCE, False, id="API reference with code"),
        pytest.param(MOVED_STUB, False, id="short page with a link"),
    ],
)
def test_navigation_pages_are_told_from_content_pages(html: str, navigation: bool) -> None:
    extracted = extract_main_content(html, "http://docs.example/page.html")
    assert extracted.markdown  # the sidebar is dropped, the content is there
    assert is_navigation_page(extracted.words) is navigation, extracted.words


def test_word_counts_separate_link_text_from_prose() -> None:
    words = extract_main_content(HOME_WITH_INTRO, "http://docs.example/index.html").words
    # Headings are not counted; the sidebar is not content; the introduction is prose, the list is links.
    assert words.in_links == 9  # Installation, Quickstart, Tutorial, Templates, Testing Flask Applications, ...
    assert words.prose == 43  # one-character tokens ("a", the "s" of "Flask's") are not counted
    assert words.total == words.in_links + words.prose


def test_the_setting_reaches_the_crawl_options(tmp_path: Path) -> None:
    assert CrawlOptions.from_settings(Settings(home=tmp_path)).index_navigation_pages is False
    assert CrawlOptions.from_settings(Settings(home=tmp_path, index_navigation_pages=True)).index_navigation_pages


HOME = page(
    "<h1>Example docs</h1><p>Example is a small library for serving greetings. Read the guide to get started, "
    "or look a name up in the index of every function.</p>"
    '<p><a href="guide.html">Guide</a> and <a href="genindex.html">Index</a>.</p>'
)
GUIDE = page("<h1>Guide</h1><p>Install example with pip, then call greet with a name to print a greeting.</p>")
# Reached only through the index: the crawl must follow the index's links to find them.
API = page(
    "<h1>API</h1><p>The greet function prints a warm hello to the zebrafish keeper named in its argument.</p>"
    "<pre>greet(name: str) -&gt; None</pre>"
)
FAREWELL = page("<h1>Farewell</h1><p>The farewell function says goodbye politely and returns nothing at all.</p>")
SITE_INDEX = page(
    "<h1>Index</h1><ul>"
    + entry("greet", "in module example", "api.html")
    + entry("farewell", "in module example", "farewell.html")
    + entry("Guide", "getting started", "guide.html")
    + "</ul>"
)


def write_site(root: Path, genindex: str) -> None:
    for name, html in {"index": HOME, "guide": GUIDE, "api": API, "farewell": FAREWELL, "genindex": genindex}.items():
        (root / f"{name}.html").write_text(html)


def indexed(rag: Evorag) -> set[str]:
    return {url.rsplit("/", 1)[1] for url, record in rag.catalog.pages("docs").items() if record.indexed_hash}


def test_a_navigation_page_is_followed_not_indexed_and_leaves_the_index_when_it_becomes_one(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    # At first the index page has prose of its own (a content page); the next crawl finds it a bare index.
    write_site(site, page("<h1>Index</h1><p>" + " ".join(["Every function of example is described here."] * 6)
                          + '</p><p><a href="api.html">greet</a> <a href="farewell.html">farewell</a></p>'))
    with serve(site) as server, Evorag(home=tmp_path / "home") as rag:
        request = CrawlRequest(url=server.url("/index.html"), source="docs", allow_private=True)
        first = rag.crawl(request)
        assert indexed(rag) == {"index.html", "guide.html", "api.html", "farewell.html", "genindex.html"}
        assert first.skipped == []

        write_site(site, SITE_INDEX)
        later = time.time() + 5
        os.utime(site / "genindex.html", (later, later))
        second = rag.crawl(request)
        assert second.skipped == [{"url": server.url("/genindex.html"), "reason": NAVIGATION_REASON}]
        assert second.pages_removed == 1
        assert indexed(rag) == {"index.html", "guide.html", "api.html", "farewell.html"}
        assert all(hit.chunk.url != server.url("/genindex.html") for hit in rag.search("greet farewell", limit=10))


def test_a_fresh_crawl_reports_the_skipped_page_and_still_finds_what_it_links_to(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    write_site(site, SITE_INDEX)
    with serve(site) as server, Evorag(home=tmp_path / "home") as rag:
        report = rag.crawl(CrawlRequest(url=server.url("/index.html"), source="docs", allow_private=True))
        assert indexed(rag) == {"index.html", "guide.html", "api.html", "farewell.html"}
        assert report.to_dict()["skipped"] == [{"url": server.url("/genindex.html"), "reason": NAVIGATION_REASON}]
        assert report.pages_failed == 0 and report.pages_removed == 0
        hits = rag.search("zebrafish keeper", limit=3)
        assert hits and hits[0].chunk.url == server.url("/api.html")  # found only through the index's links

    with serve(site) as server, Evorag(home=tmp_path / "home2", index_navigation_pages=True) as rag:
        report = rag.crawl(CrawlRequest(url=server.url("/index.html"), source="docs", allow_private=True))
        assert report.skipped == []
        assert "genindex.html" in indexed(rag)  # the setting indexes them anyway
