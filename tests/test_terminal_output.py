"""Untrusted text reaches the operator's terminal as text: no escape sequence from a tool, a candidate's tests,
an approval or a crawled page gets through the CLI (real `evorag` processes, a real sandbox, a real crawl)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from evorag.tools.plugins import PluginRepository, ToolManifest

from evorag.terminal import escape_json_controls, strip_control

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = "before\x1b]0;pwned\x07\x1b[2Jafter [bold]markup[/bold]"
SHOWN = "beforeafter [bold]markup[/bold]"  # the escapes gone, the markup printed as text
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\x9d")

NOISY_TOOL = '''"""A tool whose output carries terminal escape sequences."""

import sys

PAYLOAD = "before\\x1b]0;pwned\\x07\\x1b[2Jafter [bold]markup[/bold]"


def noisy(mode: str) -> str:
    """Return, raise or print a window-title change and a screen clear."""
    if mode == "raise":
        raise ValueError(PAYLOAD)
    if mode == "crash":
        sys.stderr.write(PAYLOAD + "\\n")
        sys.exit(1)
    return PAYLOAD
'''


@pytest.mark.parametrize(
    "text, expected",
    [
        (PAYLOAD, SHOWN),
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink
        ("\x9b2Jeight-bit CSI", "eight-bit CSI"),
        ("a\x00b\x08c\rd\x7fe", "abcde"),
        ("keeps\nlines\tand tabs", "keeps\nlines\tand tabs"),
        ("unicode ü ✓ and [bold]markup[/bold]", "unicode ü ✓ and [bold]markup[/bold]"),
        ("bidi \u202eevil\u202c trick", "bidi evil trick"),
        ("dangling \x1b", "dangling "),
    ],
)
def test_strip_control(text, expected):
    assert strip_control(text) == expected


def test_json_keeps_the_data_and_escapes_what_a_terminal_would_run():
    text = escape_json_controls(json.dumps({"v": "\x9b2J\u202e" + PAYLOAD}, ensure_ascii=False))
    assert not any(c in text for c in RAW_CONTROLS + ("\u202e",))
    assert json.loads(text) == {"v": "\x9b2J\u202e" + PAYLOAD}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_") or k == "EVORAG_LLM_PROVIDER"}
    env.update(EVORAG_HOME=str(home), EVORAG_CONFIG=str(home.parent / "none.toml"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO), EVORAG_RESOLVE_DEPENDENCIES="false")
    return env


def _evorag(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evorag.cli", *args], env=_env(home), cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False)


def _clean(result: subprocess.CompletedProcess) -> str:
    both = result.stdout + result.stderr
    assert not any(c in both for c in RAW_CONTROLS), repr(both[-500:])
    assert "Traceback" not in both
    return both


@pytest.fixture
def noisy_home(tmp_path) -> Path:
    home = tmp_path / "home"
    candidate = tmp_path / "noisy"
    candidate.mkdir()
    (candidate / "tool.py").write_text(NOISY_TOOL)
    PluginRepository(home / "plugins").deploy(candidate, ToolManifest(
        name="noisy", description="Noisy " + PAYLOAD, risk="LOW",
        parameters_schema={"type": "object", "properties": {"mode": {"type": "string"}}, "required": ["mode"]},
    ), message="noisy " + PAYLOAD)
    return home


def test_tool_results_errors_and_descriptions_are_printed_as_text(noisy_home):
    returned = _evorag(noisy_home, "tools", "call", "noisy", '{"mode": "return"}')
    assert returned.returncode == 0, returned.stderr
    _clean(returned)
    assert json.loads(returned.stdout) == PAYLOAD  # JSON keeps the data, escaped

    raised = _evorag(noisy_home, "tools", "call", "noisy", '{"mode": "raise"}')
    assert raised.returncode == 2 and SHOWN in _clean(raised)
    crashed = _evorag(noisy_home, "tools", "call", "noisy", '{"mode": "crash"}')
    assert crashed.returncode == 3 and SHOWN in _clean(crashed)

    for args in (["tools", "list"], ["tools", "docs"], ["versions"], ["tools", "list", "--json"]):
        result = _evorag(noisy_home, *args)
        assert result.returncode == 0, result.stderr
        _clean(result)
    assert "Noisy before" in _evorag(noisy_home, "tools", "list").stdout


def test_approvals_and_gate_messages_are_printed_as_text(tmp_path):
    from evorag.tools.approvals import ApprovalRequest, ApprovalStore, TerminalApprover

    home = tmp_path / "home"
    home.mkdir()
    store = ApprovalStore(home / "approvals.sqlite3")
    store.create(tool="noisy", risk="LOW", summary="Deploy " + PAYLOAD, diff="+" + PAYLOAD, tests=PAYLOAD)
    listed = _evorag(home, "approvals")
    assert "Deploy " + SHOWN in _clean(listed)

    shown: list[str] = []
    approver = TerminalApprover(ask=lambda prompt: "n", show=shown.append)
    import asyncio

    asyncio.run(approver(ApprovalRequest(id="x", tool="noisy", risk="LOW", summary=PAYLOAD, diff=PAYLOAD,
                                         tests=PAYLOAD, risk_reasons=[PAYLOAD])))
    assert shown and not any(c in line for line in shown for c in RAW_CONTROLS)

    # A candidate whose test fails with escape sequences in its message: the gate's verdict is printed clean.
    candidate = tmp_path / "cand"
    candidate.mkdir()
    (candidate / "tool.py").write_text('def shout(text: str) -> str:\n    """Upper-case ``text``."""\n'
                                       "    return text.upper()\n")
    (candidate / "test_shout.py").write_text(
        "from tool import shout\n\n\ndef test_shout():\n"
        f"    assert shout('a') == 'b', {PAYLOAD!r}\n")
    added = _evorag(home, "tools", "add", str(candidate), "--yes")
    assert added.returncode == 1, added.stdout + added.stderr
    assert "rejected" in _clean(added)


def test_crawled_page_text_is_printed_as_text(tmp_path):
    from sitefixtures import SiteServer

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        "<html><head><title>Escapes&#27;]0;pwned&#7;</title></head><body><main><h1>Terminal &#x1b;[2J tricks</h1>"
        "<p>The zebrafish escape paragraph hides a window title &#27;]0;pwned&#7; and a screen clear &#x1b;[2J "
        "and an eight-bit &#x9b;2J sequence inside words that are long enough to be indexed as content.</p>"
        "</main></body></html>")
    home = tmp_path / "home"
    with SiteServer(site) as server:
        crawled = _evorag(home, "crawl", server.url("/index.html"), "--allow-private", "--source", "esc")
        assert crawled.returncode == 0, crawled.stderr
    found = _evorag(home, "search", "zebrafish escape paragraph")
    assert found.returncode == 0, found.stderr
    text = _clean(found)
    assert "zebrafish escape paragraph hides a window title" in text
    _clean(_evorag(home, "search", "zebrafish escape paragraph", "--json"))
