"""Main-content extraction on the fixture sites (Sphinx, MkDocs Material, Docusaurus, plain <main>)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from evorag.tools.extract import extract_main_content

from evorag.errors import UserError

SITES = Path(__file__).parent / "sites"


def extract(relative: str, url: str | None = None, **kwargs):
    html = (SITES / relative).read_text(encoding="utf-8")
    return extract_main_content(html, url or f"https://docs.example.org/{relative}", **kwargs)


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block."""
    return [
        (m.group(2), m.group(3))
        for m in re.finditer(r"^(`{3,})(\S*)\n(.*?)\n\1$", markdown, re.DOTALL | re.MULTILINE)
    ]


def assert_absent(markdown: str, phrases: list[str]) -> None:
    for phrase in phrases:
        assert phrase not in markdown, f"{phrase!r} leaked into the content"


def test_sphinx_keeps_content_and_drops_sidebar_related_nav_and_footer() -> None:
    page = extract("sphinx/docs/quickstart.html")
    assert page.title == "Quickstart"
    assert page.markdown.startswith("# Quickstart\n\n")
    assert "## Making a request" in page.markdown
    assert "Always pass a `timeout`" in page.markdown
    assert_absent(
        page.markdown,
        [
            "Quick search",
            "Table of Contents",
            "Show Source",
            "Previous topic",
            "Copyright",
            "Created using",
            "tinyhttp 2.1 documentation",
            "Navigation",
            "¶",
            "Permalink",
            "Link to this heading",
            "searchbox",
        ],
    )


def test_sphinx_code_blocks_are_intact_with_their_language() -> None:
    page = extract("sphinx/docs/quickstart.html")
    blocks = code_blocks(page.markdown)
    assert ("console", "$ python -m pip install tinyhttp") in blocks
    assert (
        "python",
        (
            'import tinyhttp\n\nresponse = tinyhttp.get("https://example.org/", timeout=5)\n'
            'print(response.status, response.headers["content-type"])\n'
            "if response.ok:\n    print(response.text[:200])"
        ),
    ) in blocks
    assert page.code_languages == ["console", "python"]  # python3 is reported as python


def test_sphinx_api_signatures_and_tables() -> None:
    page = extract("sphinx/docs/api.html")
    assert "tinyhttp.get(url, *, params=None, timeout=10.0)" in page.markdown
    assert (
        "| Exception | Raised when |\n|---|---|\n| `TimeoutError` | the server did not answer in time |"
        in page.markdown
    )


def test_mkdocs_material_drops_header_nav_toc_edit_button_and_footer() -> None:
    page = extract("mkdocs/configuration/index.html", "https://lantern.example.org/configuration/")
    assert page.title == "Configuration"
    assert "Every setting can also be given as an environment variable" in page.markdown
    assert "| `batch_size` | `1000` | Maximum events per batch |" in page.markdown
    assert_absent(
        page.markdown,
        [
            "Skip to content",
            "Edit this page",
            "Table of contents",
            "Made with",
            "Material for MkDocs",
            "lantern-example/lantern",
            "Last update",
            "Previous",
            "Next",
            "¶",
            "Search",
            "Copy to clipboard",
        ],
    )
    assert code_blocks(page.markdown) == [
        (
            "yaml",
            (
                "inputs:\n  - type: file\n    paths:\n      - /var/log/nginx/access.log\noutputs:\n  - type: loki\n"
                "    url: http://loki.internal:3100\n    labels:\n      job: nginx"
            ),
        )
    ]


def test_docusaurus_keeps_header_h1_and_rebuilds_prism_lines() -> None:
    page = extract("docusaurus/docs/queues/index.html", "https://rivet.example.org/docs/queues/")
    assert page.title == "Queues"
    assert page.markdown.startswith("# Queues\n\n")
    assert "## Priorities\n" in page.markdown  # the zero-width hash link is gone
    assert_absent(
        page.markdown,
        [
            "Skip to main content",
            "Docs sidebar",
            "Workers",
            "Retries",
            "Home",
            "On this page",
            "Edit this page",
            "Previous",
            "Next",
            "Copyright",
            "Built with Docusaurus",
            "Discord",
            "Copy",
            "\u200b",
        ],
    )
    [(language, code)] = code_blocks(page.markdown)
    assert language == "ts"
    assert code.splitlines()[0] == 'import { Pool } from "pg";'
    assert code.splitlines()[2] == ""
    assert code.endswith(
        'await emails.enqueue({ to: "ada@example.org" }, { priority: 10, delaySeconds: 30 });'
    )


def test_plain_main_and_other_language_markers() -> None:
    commands = extract("plain/commands.html")
    assert commands.title == "Commands"  # the <h1>, not "Commands · kvstore manual"
    assert_absent(commands.markdown, ["kvstore manual", "MIT license", "Replication"])
    assert code_blocks(commands.markdown)[0][0] == "python"  # pandoc's "sourceCode python"
    replication = extract("plain/replication.html")
    assert code_blocks(replication.markdown) == [
        ("toml", '[replication]\nleader = "10.0.0.5:7400"\nsnapshot_every = "1h"')  # data-lang
    ]
    index = extract("plain/index.html")
    assert code_blocks(index.markdown)[0][0] == "shell"  # class="lang-shell"


def test_links_cover_the_whole_page_absolute_and_without_fragments() -> None:
    page = extract("sphinx/docs/quickstart.html", "https://docs.example.org/docs/quickstart.html")
    assert "https://docs.example.org/docs/api.html" in page.links  # from the sidebar and related bar
    assert "https://docs.example.org/docs/advanced.html" in page.links
    assert "https://www.sphinx-doc.org/" in page.links  # footer
    assert all("#" not in link for link in page.links)
    assert len(page.links) == len(set(page.links))
    index = extract("sphinx/docs/index.html", "https://docs.example.org/docs/index.html")
    assert "https://www.rfc-editor.org/rfc/rfc9110" in index.content_links
    assert "https://www.sphinx-doc.org/" not in index.content_links  # footer, not content


def test_base_href_and_meta_refresh_links() -> None:
    html = """<html><head><base href="https://cdn.example.org/v2/"><meta http-equiv="refresh" content="5; url=moved.html">
    </head><body><main><h1>Base</h1><p>See <a href="guide/intro.html#top">the guide</a>.</p></main></body></html>"""
    page = extract_main_content(html, "https://docs.example.org/index.html")
    assert page.links == [
        "https://cdn.example.org/v2/moved.html",
        "https://cdn.example.org/v2/guide/intro.html",
    ]
    assert page.markdown == "# Base\n\nSee the guide."


def test_body_fallback_removes_furniture_by_tag_class_role_and_text() -> None:
    html = """<html><head><title>Widgets – Acme Docs</title><style>p{color:red}</style></head><body>
    <a class="skip-link" href="#content">Skip to content</a>
    <header><a href="/">Acme Docs</a></header>
    <div class="site-navbar">Products Pricing</div>
    <div role="navigation">Home / Guides</div>
    <div class="breadcrumbs">Docs › Widgets</div>
    <div class="sidebar-left"><ul><li>Widgets</li><li>Gadgets</li></ul></div>
    <div id="toc">On this page: Sizes</div>
    <div>
      <p>Widgets come in three sizes.<script>track()</script></p>
      <ul><li>small</li><li>medium<ul><li>medium-tall</li></ul></li></ul>
      <ol start="3"><li>third</li><li>fourth</li></ol>
      <p><a href="https://github.com/acme/docs/edit/main/widgets.md">Edit this page</a></p>
    </div>
    <aside>Related: Gizmos</aside>
    <footer>© Acme</footer>
    </body></html>"""
    page = extract_main_content(html, "https://acme.example/widgets")
    assert page.title == "Widgets"  # <title> minus the site suffix
    assert page.markdown == (
        "Widgets come in three sizes.\n\n- small\n- medium\n  - medium-tall\n\n3. third\n4. fourth"
    )


def test_selector_override_wins_and_invalid_selector_is_a_user_error() -> None:
    html = (
        "<html><body><main><p>Generic main content here, long enough to count.</p></main>"
        "<div class='custom-doc'><h2>Chosen</h2><p>Picked by the selector.</p></div></body></html>"
    )
    assert extract_main_content(html, "https://x.example/", selector="div.custom-doc").markdown == (
        "## Chosen\n\nPicked by the selector."
    )
    assert "Generic main" in extract_main_content(html, "https://x.example/", selector="div.nothing").markdown
    with pytest.raises(UserError, match="invalid CSS selector"):
        extract_main_content(html, "https://x.example/", selector="div[[")


def test_code_is_byte_intact_even_with_backticks_markdown_characters_and_tabs() -> None:
    code = "def f(x):\n\t# *not* _emphasis_ <b>\n    return `x` + '```'\n\n\n    # trailing spaces   "
    html = (
        f"<html><body><main><p>Intro text for the code.</p><pre class='language-python'>"
        f"{code.replace('&', '&amp;').replace('<', '&lt;')}</pre></main></body></html>"
    )
    page = extract_main_content(html, "https://x.example/")
    [(language, extracted)] = code_blocks(page.markdown)
    assert language == "python"
    assert extracted == code
    assert "````python\n" in page.markdown  # the fence is longer than any run of backticks inside


def test_sphinx_line_numbers_and_inline_code_with_backticks() -> None:
    html = """<html><body><div role="main"><h1>Lines</h1><p>Use <code>a`b</code> here, really.</p>
    <div class="highlight-c notranslate"><table class="highlighttable"><tr><td class="linenos"><div class="linenodiv">
    <pre><span class="normal">1</span>\n<span class="normal">2</span></pre></div></td><td class="code"><div class="highlight">
    <pre><span></span>int main(void) {\n    return 0;\n}</pre></div></td></tr></table></div></div></body></html>"""
    page = extract_main_content(html, "https://x.example/")
    assert "Use `` a`b `` here" in page.markdown
    assert code_blocks(page.markdown) == [("c", "int main(void) {\n    return 0;\n}")]


@pytest.mark.parametrize(
    "html",
    [
        "",
        "   ",
        "<html></html>",
        "<html><body>\n</body></html>",
        "<html><body><nav><a href='/a'>A</a></nav><footer>© 2024</footer></body></html>",
        "<html><body><main><img src='x.png'></main></body></html>",
    ],
)
def test_pages_without_text_give_empty_markdown(html: str) -> None:
    assert extract_main_content(html, "https://x.example/").markdown == ""


def test_encodings_and_xml_declaration() -> None:
    declared = (
        '<?xml version="1.0" encoding="utf-8"?><html><body><main><p>naïve café</p></main></body></html>'
    )
    assert extract_main_content(declared, "https://x.example/").markdown == "naïve café"
    as_bytes = '<html><head><meta charset="utf-8"></head><body><p>naïve café</p></body></html>'.encode()
    assert extract_main_content(as_bytes, "https://x.example/").markdown == "naïve café"
