"""Fuzzed command-line arguments: every run ends with an exit code and a message, never a traceback or a hang.

Runs the real entry point in-process (`evorag.cli.main`); over 1,000 generated cases per test session.
Crawl URLs are drawn only from forms the URL guard refuses before any network use (odd schemes, IP
literals in private ranges, malformed), so nothing leaves the machine.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evorag.cli import main

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80)
NAMES = st.one_of(TEXT, st.sampled_from(["../../etc", "..", "a" * 100, "ok-name", "-rf", "--json", "évé", "[/0]",
                                         "[bold]x", "[link=http://x]y"]))
INTS = st.one_of(st.integers(min_value=-10**6, max_value=10**6).map(str), TEXT)
REFUSED_URLS = st.one_of(
    st.sampled_from(["file:///etc/passwd", "gopher://x", "javascript:alert(1)", "http://", "://", "http:///x",
                     "http://127.0.0.1/", "http://0x7f000001/", "http://2130706433/", "http://[::1]/",
                     "http://10.0.0.1/", "http://169.254.169.254/latest", "http://[::ffff:127.0.0.1]/",
                     "ftp://example.com/", "http://user@127.0.0.1/", "http://0177.0.0.1/"]),
    st.builds(lambda a, b: f"http://192.168.{a}.{b}/", st.integers(0, 255), st.integers(0, 255)),
    st.builds(lambda t: f"{t}://host/", st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
              .filter(lambda s: s.lower() not in ("http", "https"))),
)
OK_CODES = {0, 1, 2, 3}
FUZZ = settings(max_examples=210, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _quiet(capsys):
    yield
    capsys.readouterr()


def _run(args: list[str]) -> int:
    code = main(args)
    assert code in OK_CODES, (args, code)
    return code


@FUZZ
@given(query=TEXT, limit=INTS, source=st.one_of(st.none(), NAMES), code=st.booleans())
def test_search(query, limit, source, code):
    args = ["search", query, "--limit", limit, "--json"]
    args += ["--source", source] if source is not None else []
    _run(args + (["--code"] if code else []))


@FUZZ
@given(url=REFUSED_URLS, source=st.one_of(st.none(), NAMES), pages=INTS, depth=INTS)
def test_crawl_refused_urls(url, source, pages, depth):
    """Every one of these URLs must be refused (exit 2, the caller's input), whatever the other arguments: a
    crawl that started (0), or failed at the site (3), would have reached for the network."""
    args = ["crawl", url, "--max-pages", pages, "--max-depth", depth, "--json"]
    assert _run(args + (["--source", source] if source is not None else [])) == 2, args


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://0x7f000001/", "http://10.0.0.1/",
                                 "file:///etc/passwd", "http://[::ffff:127.0.0.1]/"])
def test_a_refused_url_is_one_line_naming_it_and_creates_nothing(url, capsys, evorag_home):
    assert main(["crawl", url, "--max-pages", "5", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "Traceback" not in captured.err
    assert len(lines) <= 2  # the error, and at most its hint
    assert not (evorag_home / "catalog.sqlite3").exists()  # no source was recorded


@FUZZ
@given(name=NAMES, arguments=TEXT)
def test_tools_call_and_sources_remove(name, arguments):
    _run(["tools", "call", name, arguments])
    _run(["sources", "remove", name])


@FUZZ
@given(version=NAMES, approval=NAMES)
def test_versions_rollback_and_approvals(version, approval):
    _run(["rollback", version, "--yes", "--json"])
    _run(["approvals", "approve", approval, "--json"])
    _run(["approvals", "reject", approval])


@FUZZ
@given(path=NAMES, tolerance=INTS)
def test_eval_and_restore(path, tolerance):
    _run(["eval", path, "--tolerance", tolerance, "--json"])
    _run(["restore", path])
    _run(["tools", "add", path, "--yes", "--json"])


@pytest.mark.parametrize("command", ["search", "ask"])
@pytest.mark.parametrize("raw", [b"\xff\xfe", b"ok \xed\xa0\x80 surrogate", b"\xc3"])
def test_undecodable_arguments_are_refused_in_one_line(command, raw, tmp_path):
    """Bytes the locale cannot decode reach argv as lone surrogates: refused (exit 2), never a traceback."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_") or k == "EVORAG_LLM_PROVIDER"}
    env.update(EVORAG_HOME=str(tmp_path / "home"), EVORAG_CONFIG=str(tmp_path / "none.toml"), LANG="C.UTF-8",
               LC_ALL="C.UTF-8", EVORAG_LLM_PROVIDER="replay", EVORAG_REPLAY_FILE=str(tmp_path / "none.json"))
    args = [sys.executable.encode(), b"-m", b"evorag.cli", command.encode(), raw]
    result = subprocess.run(args, env=env, capture_output=True, timeout=300, check=False)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("error: the ") and "is not valid UTF-8 text" in stderr.splitlines()[0]
