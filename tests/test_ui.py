"""The Chainlit UI: its helpers (parsing, rendering, login, history schema, plots) and, end to end, the
real UI in a real browser (Debian Chromium through Playwright) on a pre-crawled demo site.

Screenshots of the browser test go to test-artifacts/ui/ at the repository root.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from evorag.tools.approvals import PolicyApprover
from server_process import free_port, stop, wait_healthy

from evorag.errors import ConfigError, UserError
from evorag.service import FROM_SETTINGS, FROM_STORE, Evorag, TeamTurn, check_credentials
from evorag.settings import Settings
from evorag.ui import (
    crawl_arguments,
    ensure_auth_secret,
    link_citations,
    parse_command,
    quality_table,
    render_answer,
    render_outcome,
    render_team_turn,
    render_versions,
)
from evorag.ui._launch import allowed_origins, prepare_app_root
from evorag.ui._plots import metrics_figure, trend_line
from evorag.ui._render import text_cell
from evorag.ui._steps import event_text, step_title

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


# Commands


def test_plain_text_is_a_question_and_slash_commands_are_parsed():
    assert parse_command("  How do I crawl?  ").name == "ask"
    assert parse_command("How do I crawl?").argument == "How do I crawl?"
    assert (parse_command("/crawl http://x/docs/ mydocs").name, parse_command("/crawl http://x/ a").argument) == (
        "crawl", "http://x/ a")
    assert crawl_arguments("http://x/docs/ mydocs") == ("http://x/docs/", "mydocs")
    assert crawl_arguments("http://x/") == ("http://x/", None)
    assert parse_command("/METRICS").name == "metrics"
    assert parse_command("").name == "help"


def test_a_command_picked_in_the_composer_menu_carries_its_argument_as_text():
    command = parse_command("word count", command="evolve")
    assert (command.name, command.argument) == ("evolve", "word count")
    assert parse_command("", command="versions").name == "versions"


def test_evolve_takes_documentation_urls():
    command = parse_command("/evolve a slugify tool --docs http://a/ --docs http://b/ please")
    assert command.argument == "a slugify tool please"
    assert command.options == {"docs": ["http://a/", "http://b/"]}
    assert parse_command("/evolve count words, don't fail").argument == "count words, don't fail"


def test_in_team_mode_plain_text_goes_to_the_team_and_commands_still_work():
    assert (parse_command("build a word counter", team_mode=True).name,
            parse_command("build a word counter", team_mode=True).argument) == ("team", "build a word counter")
    assert parse_command("/ask how do I crawl?", team_mode=True).name == "ask"
    assert parse_command("/team").name == "team" and parse_command("/team").argument == ""
    assert parse_command("hello", command="team").argument == "hello"
    assert parse_command("hello").name == "ask"


@pytest.mark.parametrize("text", ["/frobnicate", "/crawl", "/evolve", "/evolve --docs http://a/", "/ask  "])
def test_bad_commands_are_user_errors_with_the_usage(text):
    with pytest.raises(UserError) as info:
        parse_command(text)
    assert info.value.hint


def test_crawl_refuses_extra_words():
    with pytest.raises(UserError):
        crawl_arguments("http://x/ a b")


# Rendering

CITATIONS = [
    {"number": 1, "url": "http://127.0.0.1:9/a (b).html", "title": "Getting | started", "section": "Install [x]"},
    {"number": 3, "url": "http://127.0.0.1:9/c.html", "title": "Search", "section": "Python"},
]


def test_citation_markers_become_links_and_unknown_numbers_stay_plain():
    text = link_citations("Use a [1]. Both [1, 3]. Bogus [7].", CITATIONS)
    assert "\\[[1](http://127.0.0.1:9/a%20%28b%29.html)\\]" in text
    assert "\\[[1](http://127.0.0.1:9/a%20%28b%29.html), [3](http://127.0.0.1:9/c.html)\\]" in text
    assert text.endswith("Bogus \\[7\\].")


def test_answer_shows_linked_sources_and_the_correctness_report():
    answer = SimpleNamespace(
        answer="Crawl with --allow-private [1].", citations=CITATIONS[:1], model="replay:x.json",
        note="the language model failed: timeout: this answer quotes the top sources instead.",
        metrics={"grounding": 0.91, "rougeL": None, "ndcg": 0.5, "code_quality": None, "overall": 0.734},
    )

    markdown = render_answer(answer)
    assert "[1](http://127.0.0.1:9/a%20%28b%29.html)" in markdown
    assert "**Sources**" in markdown
    # Page text cannot break the list or the link: pipes and brackets are escaped.
    assert "[Getting \\| started — Install \\[x\\]](http://127.0.0.1:9/a%20%28b%29.html)" in markdown
    assert "**Note:** the language model failed" in markdown
    assert "| 0.91 | – | 0.50 | – | 0.73 |" in markdown


def test_crawl_progress_counts_pages_and_names_the_last_one():
    from evorag.tools.crawl_job import CrawlProgress

    from evorag.ui import render_crawl_progress

    assert render_crawl_progress("http://x/", None) == "Crawling http://x/ … starting"
    text = render_crawl_progress("http://x/", CrawlProgress(done=3, discovered=10, indexed=2, unchanged=1,
                                                            chunks=7, last_url="http://x/a`b"))
    assert "**3** of 10 pages done · 2 indexed · 1 unchanged · 0 failed · 7 chunks" in text
    assert text.endswith("last: `` http://x/a`b ``")
    # Before the crawl knows how many pages there are, it does not claim "3 of 0".
    assert "**3** pages done" in render_crawl_progress("http://x/", CrawlProgress(done=3))


def test_quality_table_is_empty_without_metrics():
    assert quality_table(None) == ""
    assert quality_table({}) == ""


def test_text_cell_keeps_one_line_and_escapes_markup():
    assert text_cell("a\n|b|  [c](d) *e*") == "a \\|b\\| \\[c\\](d) \\*e\\*"
    assert len(text_cell("x" * 500, 20)) == 20


def test_outcome_lists_each_gate_and_versions_mark_the_current_one():
    from evorag.tools.evolution import EvolutionOutcome, GateVerdict
    from evorag.tools.plugins import Version

    outcome = EvolutionOutcome("rejected", "tests", "1 test failed", "LOW", tool="word_count",
                               verdicts=[GateVerdict("code", True), GateVerdict("tests", False, "1 test failed")])
    text = render_outcome(outcome)
    assert text.startswith("✗ **rejected** (risk LOW): tool `word_count`")
    assert "| tests | ✗ fail | 1 test failed |" in text
    versions = [Version("a" * 40, "Initial checkpoint", 0.0, []), Version("b" * 40, "add tool x", 1.0, ["x"])]
    rows = render_versions(versions).splitlines()
    assert rows[2].startswith("| `bbbbbbbbbbbb` (current)") and rows[3].startswith("| `aaaaaaaaaaaa` |")


def test_a_team_turn_ends_with_the_teams_last_word_or_its_question():
    from evorag.tools.evolution import EvolutionOutcome

    messages = [{"source": "user", "content": "a word counter"},
                {"source": "orchestrator", "content": "Which language?\nEnglish or French?"}]
    asking = render_team_turn(TeamTurn("c" * 32, messages, waiting_for_human=True,
                                       question="Which language?\nEnglish or French?"))
    assert asking.startswith("**`orchestrator` asks you:**\n\n> Which language?\n> English or French?")
    assert "_Reply in your next message._" in asking and "Conversation `cccccccc`" in asking
    done = render_team_turn(TeamTurn("c" * 32, [*messages, {"source": "deployer", "content": "DEPLOYED: word_count"},
                                                {"source": "orchestrator", "content": "All set. TERMINATE"}],
                                     stop_reason="Text 'TERMINATE' mentioned",
                                     outcomes=[EvolutionOutcome("deployed", None, None, "LOW", tool="word_count",
                                                                version_id="f" * 40)]))
    assert done.startswith("**`orchestrator`:** All set.") and "TERMINATE" not in done.split("stopped")[0]
    assert "✓ **deployed** (risk LOW): tool `word_count`" in done


def test_team_events_become_titled_steps():
    class Message:
        source, content = "integration_tester", "TESTS: PASS (3.2s)\nall good"

    assert event_text(Message()) == ("integration_tester", "TESTS: PASS (3.2s)\nall good")
    assert event_text({"source": "health_checks", "content": "ok"}) == ("health_checks", "ok")
    assert event_text({"source": "user", "content": "the task"}) is None
    assert event_text({"source": "human", "content": ""}) is None
    assert event_text(object()) is None
    assert step_title("integration_tester", Message.content) == "integration_tester · TESTS: PASS (3.2s)"
    assert step_title("tool_generator", "Here is the code") == "tool_generator"


# Plots


def test_metrics_figure_plots_each_metric_and_the_trend():
    history = [{"created_at": 1_700_000_000 + i * 60, "query": f"q{i}", "grounding": 0.5 + i / 20,
                "rougeL": None, "ndcg": 0.6, "code_quality": None, "overall": 0.4 + i / 10} for i in range(4)]
    figure = metrics_figure(history, window=3)
    names = [trace.name for trace in figure.data]
    assert names == ["grounding", "nDCG", "overall", "trend (overall, last 3)"]
    trend = figure.data[-1]
    assert trend.y[0] == pytest.approx(0.5) and trend.y[1] == pytest.approx(0.7)
    assert metrics_figure([], window=3) is None
    assert trend_line([1.0]) is None
    assert trend_line([1.0, 2.0, 3.0]) == pytest.approx((1.0, 1.0))


def _analysis():
    from evorag.tools.usage_analysis import MissingCapability, Topic, UsageAnalysis, WeakTopic

    tls = Topic(1, "How do I set TLS | certs?", ["tls"], 3, 1, "rising", 0.12, 0.0, 0.3, 1, 2, {"cli": 3}, [],
                thumbs_up=1, thumbs_down=2)
    install = Topic(2, "How do I install it?", ["install"], 2, 2, "steady", 0.81, 1.0, 0.7, 0, 1, {"ui": 2}, [])
    unscored = Topic(3, "x" * 60, [], 1, 0, "new", None, None, None, 0, 1, {"mcp": 1}, [])
    weak = WeakTopic(tls, 0.88, 2.64, ["low answer quality", "1 rephrasing"],
                     [{"query": f"tls question {n}"} for n in range(7)])
    missing = MissingCapability("evolution", "convert to PDF", 2, 1.0, 2.0, 1, ["convert a page to PDF"])
    return UsageAnalysis(1_700_000_000.0, 1_700_604_800.0, {
        "queries": 6, "searches": 1, "asks": 5, "errors": 0, "by_interface": {"cli": 3, "mcp": 1, "ui": 2},
        "mean_latency_ms": 41.6, "evolution_requests": 2}, [tls, install, unscored], [weak], [missing])


def test_usage_view_shows_totals_topics_weak_topics_with_evidence_and_missing_capabilities():
    from evorag.ui import render_usage

    lines = render_usage(_analysis()).splitlines()
    assert lines[0] == "## Usage · 2023-11-14 22:13 to 2023-11-21 22:13 (UTC)"
    assert lines[2] == ("**6 queries** (1 searches, 5 answers, 0 failed) · by interface: cli 3, mcp 1, ui 2 · mean "
                        "latency 42 ms · 2 evolution requests")
    assert "| How do I set TLS \\| certs? | 3 | 1 | rising | 0.12 | 0% | 1 | 2 | 1 / 2 |" in lines  # rated answers
    assert "| How do I install it? | 2 | 2 | steady | 0.81 | 100% | 0 | 1 | – |" in lines
    assert any(line.startswith(f"| {'x' * 60} | 1 | 0 | new | – | – |") for line in lines)
    weak = next(line for line in lines if line.startswith("| How do I set TLS") and "2.64" in line)
    assert weak.endswith("| 2.64 | 0.88 | low answer quality; 1 rephrasing | tls question 0 · tls question 1 · "
                         "tls question 2 · tls question 3 · tls question 4 (+2 more) |")
    assert "| convert to PDF | evolution | 2.00 | 2 | 100% | convert a page to PDF |" in lines
    empty = render_usage(type(_analysis())(0.0, 1.0, {}))
    assert "No queries in this period." in empty and "No weak topics." in empty
    assert "Nothing asked for was missing." in empty


def test_proposals_view_shows_each_proposal_with_its_effect_and_who_may_decide():
    from evorag.tools.proposals import Proposal

    from evorag.principals import Principal, Role
    from evorag.ui import render_effect, render_proposals

    crawl = Proposal("p1", "crawl", "tls", ["How do I set TLS?"], 2.5, urls=["http://d/tls.html"], approval_id="a1")
    done = Proposal("p2", "crawl", "rate", ["rate?"], 1.0, urls=["http://d/rate.html"], status="done",
                    effect={"mean_before": {"overall": 0.1, "grounding": 0.2, "ndcg": 0.0},
                            "mean_after": {"overall": 0.8, "grounding": 0.9, "ndcg": 1.0}})
    tool = Proposal("p3", "tool", "pdf", ["convert to PDF"], 2.0, request="Build a PDF converter",
                    status="failed", error="request r1 failed: boom")
    assert render_effect(done) == "overall 0.10 → 0.80 · grounding 0.20 → 0.90 · nDCG 0.00 → 1.00"
    assert render_effect(tool) == "request r1 failed: boom" and render_effect(crawl) == "–"
    approver = render_proposals(Principal("ada", Role.APPROVER), [crawl, done, tool])
    assert "3 proposal(s), 1 waiting for a decision: Approve queues" in approver
    assert "| `p1` | crawl | 2.50 | proposed | – | `http://d/tls.html` | How do I set TLS? |" in approver
    assert "| `p3` | tool | 2.00 | failed | request r1 failed: boom | Build a PDF converter | convert to PDF |" in (
        approver)
    reader = render_proposals(Principal("rita", Role.READER), [crawl])
    assert "Only approvers can decide them; you are reader." in reader
    assert "/proposals make" in render_proposals(Principal("rita", Role.READER), [])


def test_usage_figure_colours_topics_by_quality_busiest_first():
    from evorag.ui import usage_figure
    from evorag.ui._plots import quality_color

    figure = usage_figure(_analysis())
    bars = figure.data[0]
    assert list(bars.x) == [3, 2, 1] and bars.y[0] == "How do I set TLS | certs?" and bars.y[2] == "x" * 47 + "…"
    assert list(bars.marker.color) == [quality_color(0.12), quality_color(0.81), quality_color(None)] == [
        "#f85149", "#3fb950", "#8b949e"]
    assert figure.layout.yaxis.autorange == "reversed"
    assert usage_figure(type(_analysis())(0.0, 1.0, {})) is None


@pytest.mark.parametrize("text", ["/proposals delete", "/usage 7d 24h"])
def test_usage_and_proposals_refuse_other_arguments(text):
    with pytest.raises(UserError) as info:
        parse_command(text)
    assert info.value.hint.startswith("usage: /")
    assert parse_command("/proposals make").argument == "make" and parse_command("/usage 24h").argument == "24h"


# Login and launch


def _settings(tmp_path, **values) -> Settings:
    return Settings(home=tmp_path / "home", **values)


def test_login_needs_both_configured_credentials(tmp_path):
    settings = _settings(tmp_path, ui_user="admin", ui_password="s3cret passphrase")
    assert check_credentials(settings, "admin", "s3cret passphrase")
    assert not check_credentials(settings, "admin", "s3cret passphrase ")
    assert not check_credentials(settings, "Admin", "s3cret passphrase")
    assert not check_credentials(settings, "", "")
    unset = _settings(tmp_path)
    assert not check_credentials(unset, "", "")
    with Evorag(unset) as rag, pytest.raises(ConfigError):
        rag.require_ui_login()
    with Evorag(_settings(tmp_path, ui_user="admin", ui_password="")) as rag, pytest.raises(ConfigError):
        rag.require_ui_login()


def test_the_service_logs_people_in_and_reads_their_role_again_at_every_use(tmp_path):
    from evorag.principals import Role

    with Evorag(_settings(tmp_path, ui_user="boss", ui_password="the settings passphrase")) as rag:
        rag.principals.add("ada", "approver", password="a long passphrase for ada")
        login = rag.authenticate("ada", "a long passphrase for ada")
        assert (login.principal.name, login.principal.role, login.principal.human, login.source) == (
            "ada", Role.APPROVER, True, FROM_STORE)
        assert rag.authenticate("ada", "wrong") is None
        assert rag.authenticate("ada", "the settings passphrase") is None  # a store name is checked there only
        boss = rag.authenticate("boss", "the settings passphrase")
        assert (boss.principal.role, boss.source) == (Role.ADMIN, FROM_SETTINGS)
        assert rag.session_principal("ada", FROM_STORE).role == Role.APPROVER
        rag.remove_user("ada")
        assert rag.session_principal("ada", FROM_STORE) is None  # removed: the open session is refused
        assert rag.session_principal("boss", FROM_STORE) is None and rag.session_principal("boss", "x") is None


def test_evorag_ui_refuses_to_start_without_a_login(monkeypatch, capsys):
    from evorag.cli import main

    assert main(["ui", "--port", "1"]) == 2
    assert "EVORAG_UI_PASSWORD" in capsys.readouterr().err


def test_auth_secret_is_generated_once_privately_unless_given(tmp_path, monkeypatch):
    monkeypatch.delenv("CHAINLIT_AUTH_SECRET", raising=False)
    first = ensure_auth_secret(tmp_path)
    assert len(first) >= 40 and ensure_auth_secret(tmp_path) == first
    path = tmp_path / "ui" / "auth_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "from-the-environment")
    assert ensure_auth_secret(tmp_path) == "from-the-environment"


def test_app_root_is_under_the_home_with_cors_limited_to_the_ui(tmp_path):
    import tomllib

    root = prepare_app_root(tmp_path, "127.0.0.1", 8123)
    assert root == tmp_path / "ui"
    config = tomllib.loads((root / ".chainlit" / "config.toml").read_text())
    assert config["project"]["allow_origins"] == ["http://127.0.0.1:8123", "http://localhost:8123"]
    assert config["features"]["spontaneous_file_upload"]["enabled"] is False
    assert (root / "chainlit.md").read_text() == (REPO / "chainlit.md").read_text()
    assert json.loads((root / "public" / "theme.json").read_text()) == {"custom_fonts": []}
    assert allowed_origins("0.0.0.0", 80) == []
    assert allowed_origins("10.1.2.3", 80) == ["http://10.1.2.3:80"]


# Chat history schema (imports Chainlit, which writes into its app root: point it at a temporary folder)


@pytest.fixture(scope="module")
def chainlit_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("chainlit-root")
    previous = os.environ.get("CHAINLIT_APP_ROOT")
    if "chainlit" not in sys.modules:
        os.environ["CHAINLIT_APP_ROOT"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("CHAINLIT_APP_ROOT", None)
    else:
        os.environ["CHAINLIT_APP_ROOT"] = previous


def test_history_schema_is_idempotent_and_holds_a_real_conversation(tmp_path, chainlit_root):
    from chainlit.context import init_http_context
    from chainlit.types import Pagination, ThreadFilter
    from chainlit.user import User

    from evorag.ui.history import chainlit_columns, create_data_layer, ensure_schema, history_db_path

    home = tmp_path / "home"
    ensure_schema(history_db_path(home), chainlit_columns())
    ensure_schema(history_db_path(home), chainlit_columns())  # a second start changes nothing

    async def conversation():
        init_http_context()
        layer = create_data_layer(home)  # ensures the schema a third time
        try:
            user = await layer.create_user(User(identifier="admin", metadata={"provider": "credentials"}))
            await layer.update_thread("t-1", name="How do I crawl?", user_id=user.id)
            for number, (kind, output) in enumerate([("user_message", "How do I crawl?"),
                                                     ("assistant_message", "Use --allow-private [1].")]):
                await layer.create_step({
                    "id": f"s-{number}", "threadId": "t-1", "name": "admin", "type": kind, "output": output,
                    "streaming": False, "isError": False, "waitForAnswer": False, "metadata": {"k": 1},
                    "createdAt": f"2026-01-01T00:00:0{number}Z", "showInput": "json", "defaultOpen": False,
                    "autoCollapse": False, "command": None, "language": None,
                })
            from chainlit.element import Text

            element = Text(name="word_count.diff", content="+def word_count(): ...", language="diff",
                           display="inline", for_id="s-1", thread_id="t-1")
            await layer.create_element(element)
            threads = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=user.id))
            return threads.data
        finally:
            await layer.close()

    threads = asyncio.run(conversation())
    assert [t["name"] for t in threads] == ["How do I crawl?"]
    steps = threads[0]["steps"]
    assert [s["output"] for s in steps] == ["How do I crawl?", "Use --allow-private [1]."]
    assert not steps[1]["streaming"] and steps[1]["showInput"] == "json"
    [element] = threads[0]["elements"]
    assert element["url"].startswith("data:") and ";base64," in element["url"]
    import base64

    assert base64.b64decode(element["url"].split(",", 1)[1]) == b"+def word_count(): ..."


# End to end in a real browser

WORD_COUNT = (REPO / "tests" / "candidates" / "good_word_count" / "tool.py").read_text()
WORD_COUNT_TESTS = (REPO / "tests" / "candidates" / "good_word_count" / "test_word_count.py").read_text()
# Every model client the UI creates replays this script from its start: the answerer takes the first
# response as its answer (one citation), the evolution team takes it as its plan (the JSON object in it),
# then the second as the generated code. The third is spare, in case a gate sends the team round again.
PLAN = '{"tool_name": "word_count", "description": "Count the words in a text", "requirements": []}'
REPLAY = [
    f"Pass `--allow-private` to crawl documentation served on localhost [1].\n\n```json\n{PLAN}\n```",
    f"```python tool.py\n{WORD_COUNT}```\n\n```python test_tool.py\n{WORD_COUNT_TESTS}```\n",
    f"```python tool.py\n{WORD_COUNT}```\n\n```python test_tool.py\n{WORD_COUNT_TESTS}```\n",
]
USER, PASSWORD = "admin", "correct horse battery staple"
# Accounts of the principal store, beside the EVORAG_UI_USER admin.
APPROVER, READER, STORE_PASSWORD = "ada", "rita", "a long passphrase for the store"


@contextlib.contextmanager
def _running_ui(tmp: Path, home: Path, replay: list[str], settings: dict[str, str] | None = None):
    """`evorag ui` on a free port over ``home``, every model client replaying ``replay``; ``settings`` adds
    environment variables (EVORAG_...)."""
    replay_file = tmp / "replay.json"
    replay_file.write_text(json.dumps(replay))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVORAG_", "CHAINLIT_")) and k != "CI"}
    env.update({
        "EVORAG_HOME": str(home), "EVORAG_CONFIG": str(tmp / "no-config.toml"),
        "EVORAG_UI_USER": USER, "EVORAG_UI_PASSWORD": PASSWORD, "CHAINLIT_AUTH_SECRET": "x" * 64,
        "EVORAG_ALLOW_PRIVATE": "true", "EVORAG_LLM_PROVIDER": "replay", "EVORAG_REPLAY_FILE": str(replay_file),
        "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    })
    env.update(settings or {})
    log = tmp / "ui.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "evorag.cli", "ui", "--port", str(port)], cwd=REPO,
                                   env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_healthy(url + "health", process, log)
        yield {"url": url, "home": home, "log": log, "process": process}
    finally:
        stop(process)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """`evorag ui` on a free port, on a home holding the demo site (served for the whole test)."""
    from evorag.demo import DEMO_SOURCE, serve_demo_site
    from evorag.service import CrawlRequest

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium); the UI test drives it")
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "home"
    with serve_demo_site(0) as base_url:
        with Evorag(home=home) as rag:
            report = rag.crawl(CrawlRequest(url=base_url + "index.html", source=DEMO_SOURCE, allow_private=True))
            rag.principals.add(APPROVER, "approver", password=STORE_PASSWORD)
            rag.principals.add(READER, "reader", password=STORE_PASSWORD)
            # A HIGH-risk change waiting for a person: the approvals view lists it.
            pending = rag.add_tool(REPO / "tests" / "candidates" / "reads_secret_env",
                                   approver=PolicyApprover(assume_yes=True))
        assert report.pages_indexed >= 5
        assert (pending.status, pending.risk) == ("pending", "HIGH"), pending.reason
        with _running_ui(tmp, home, REPLAY) as server:
            yield {**server, "base_url": base_url, "pending": pending.approval_id}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium); the UI test drives it")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _send(page, text: str) -> None:
    """Type into the composer as a person would. A bare `/command` becomes a chip in Chainlit's command
    menu on the first Enter, and is sent by the second; text after a command is sent at once."""
    box = page.locator("#chat-input")
    box.click()
    box.press_sequentially(text)
    if text.startswith("/") and " " not in text:
        # The menu arrives with the chat's commands: an Enter before it would be lost on a busy machine.
        page.get_by_role("option", name=text[1:], exact=False).first.wait_for(timeout=30_000)
        box.press("Enter")
        page.locator(f"#command-{text[1:]}").wait_for(timeout=5000)
    from playwright.sync_api import expect

    # A sent message leaves the composer empty. On a page whose chat session is still connecting, Chainlit
    # keeps the text and ignores the Enter: press it again then (a person would).
    for _ in range(3):
        box.press("Enter")
        try:
            expect(box).to_be_empty(timeout=10_000)
            return
        except AssertionError:
            continue
    raise AssertionError(f"the composer did not send {text!r}")


def _log_tail(server) -> str:
    return server["log"].read_text()[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ui_end_to_end(ui_server, browser):
    from playwright.sync_api import expect

    base_url = ui_server["base_url"]
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.set_default_timeout(60_000)
    try:
        page.goto(ui_server["url"])
        page.get_by_label("Email address").fill(USER)
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign In").click()
        expect(page.get_by_role("alert")).to_contain_text("Unable to sign in")
        expect(page.locator("#chat-input")).to_have_count(0)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        page.locator("#chat-input").wait_for()
        expect(page.get_by_text("Quality dashboard")).to_be_visible()  # a starter per intent
        page.wait_for_timeout(700)  # the starters fade in
        _shot(page, "01-start")

        # Ask (the starter sends the demo question): the citation links to the crawled page.
        page.get_by_text("Ask the documentation").click()
        citation = page.locator(f".message-content a[href^='{base_url}']").first
        citation.wait_for()
        expect(page.get_by_text("Correctness report")).to_be_visible()
        expect(page.get_by_role("columnheader", name="overall")).to_be_visible()
        _shot(page, "02-answer")

        # Crawl again: nothing changed, so the report counts the pages as unchanged.
        _send(page, f"/crawl {base_url}index.html evorag-demo")
        expect(page.get_by_text("Crawled evorag-demo")).to_be_visible()
        expect(page.get_by_text("0 pages indexed")).to_be_visible()

        # Evolve: the team streams its steps, then asks for approval with the diff and the test output.
        _send(page, "/evolve word count")
        approve = page.get_by_role("button", name="Approve")
        approve.wait_for()
        expect(page.get_by_text("Approval needed: deploy")).to_be_visible()
        expect(page.get_by_text("Risk: LOW")).to_be_visible()
        expect(page.get_by_text("+def word_count(text: str", exact=False).first).to_be_visible()
        expect(page.get_by_text("passed", exact=False).first).to_be_visible()
        approve.scroll_into_view_if_needed()
        _shot(page, "03-approval")
        approve.click()
        expect(page.get_by_text("deployed", exact=True)).to_be_visible()
        expect(page.get_by_text("Evolution team", exact=False).first).to_be_visible()
        expect(page.get_by_text("integration_tester · TESTS: PASS", exact=False).first).to_be_visible()
        _shot(page, "04-deployed")

        _send(page, "/tools")
        expect(page.get_by_role("cell", name="word_count")).to_be_visible()

        # The dashboard: the Plotly chart of the answer's scores, the evolution, the versions.
        _send(page, "/metrics")
        page.locator(".js-plotly-plot").first.wait_for()
        expect(page.get_by_text("Evolutions", exact=True)).to_be_visible()
        rollback = page.get_by_role("button", name="Roll back to", exact=False).first
        rollback.wait_for()
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        _shot(page, "05-metrics")

        # Roll back to the checkpoint before the tool, after confirming.
        rollback.click()
        page.get_by_role("button", name="Roll back", exact=True).click()
        expect(page.get_by_text("Rolled back to", exact=False)).to_be_visible()
        expect(page.get_by_text("Tools now: none.", exact=False)).to_be_visible()
        _shot(page, "06-rollback")

        # History: a fresh page lists the conversation and reopens it with the answer's citation.
        page.goto(ui_server["url"])
        page.get_by_text("How do I crawl documentation", exact=False).first.click()
        page.locator(f".message-content a[href^='{base_url}']").first.wait_for()
        expect(page.get_by_text("Approval needed: deploy")).to_be_visible()
        _shot(page, "07-history")
    except Exception as exc:
        _shot(page, "failure")
        raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(ui_server)}") from exc
    finally:
        page.close()
    # The deploy and the rollback really happened, and the tool set is back to none.
    from evorag.service import Evorag

    with Evorag(home=ui_server["home"]) as rag:
        messages = [v.message.splitlines()[0] for v in rag.versions()]
        deployed = rag.registry.tools()
    assert any(m.startswith("add tool word_count") for m in messages), messages
    assert deployed == []


def _log_in(browser, server, user: str, password: str):
    page = browser.new_page(viewport={"width": 1280, "height": 1100})  # a new context: no earlier session
    page.set_default_timeout(60_000)
    page.goto(server["url"])
    page.get_by_label("Email address").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()
    page.locator("#chat-input").wait_for()
    return page


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ui_a_reader_sees_the_pending_approvals_but_cannot_decide_them(ui_server, browser):
    from playwright.sync_api import expect

    page = _log_in(browser, ui_server, READER, STORE_PASSWORD)
    try:
        _send(page, "/approvals")
        expect(page.get_by_text("Signed in as rita · role reader")).to_be_visible()
        expect(page.get_by_text("Only approvers can decide them; you are reader.")).to_be_visible()
        expect(page.get_by_text(f"Approval {ui_server['pending']}", exact=False)).to_be_visible()
        expect(page.get_by_text("Risk: HIGH").first).to_be_visible()
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        _shot(page, "08-reader-approvals")
        _send(page, "/crawl http://127.0.0.1:9/ nope")
        expect(page.get_by_text("crawl needs the operator role; rita has the reader role")).to_be_visible()
    except Exception as exc:
        _shot(page, "failure-reader")
        raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(ui_server)}") from exc
    finally:
        page.close()
    from evorag.service import Evorag

    with Evorag(home=ui_server["home"]) as rag:
        assert ui_server["pending"] in [p.id for p in rag.pending_approvals()]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ui_an_approver_approves_a_high_risk_change(ui_server, browser):
    from playwright.sync_api import expect

    page = _log_in(browser, ui_server, APPROVER, STORE_PASSWORD)
    try:
        _send(page, "/approvals")
        expect(page.get_by_text("Signed in as ada · role approver")).to_be_visible()
        expect(page.get_by_text(f"Approval {ui_server['pending']}", exact=False)).to_be_visible()
        approve = page.get_by_role("button", name="Approve")
        expect(approve).to_have_count(1)
        _shot(page, "09-approver-approvals")
        approve.click()
        expect(page.get_by_text(f"Approved {ui_server['pending']}", exact=False)).to_be_visible(timeout=180_000)
        expect(page.get_by_text("deployed", exact=True)).to_be_visible()
        _shot(page, "10-approver-deployed")
    except Exception as exc:
        _shot(page, "failure-approver")
        raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(ui_server)}") from exc
    finally:
        page.close()
    # A click in a logged-in session is a person's decision: recorded with the principal and as the proof.
    from evorag.service import Evorag

    with Evorag(home=ui_server["home"]) as rag:
        decided = rag.evolution.approvals.get(ui_server["pending"])
        entries = [e for e in rag.evolution.audit.entries() if e.get("approval_id") == ui_server["pending"]]
        tools = [m.name for m in rag.registry.tools()]
    assert (decided.status, decided.decided_by, decided.decided_via, decided.proof) == (
        "approved", APPROVER, "ui", "ui login")
    assert any(e["event"] == "approved" and e["principal"]["name"] == APPROVER and e["principal"]["human"]
               for e in entries)
    assert "has_api_key" in tools


# Team mode: the group chat in the browser. The conversation team's one model client replays this script: the
# selector picks the orchestrator, who writes the tool; then the deployer, who needs no model; then the orchestrator
# again, who ends the turn.
TEAM_REPLAY = [
    "orchestrator",
    f"Here is the tool.\n\n```python tool.py\n{WORD_COUNT}```\n\n```python test_tool.py\n{WORD_COUNT_TESTS}```\n",
    "deployer",
    "orchestrator",
    "The word_count tool is deployed. TERMINATE",
]


@pytest.fixture(scope="module")
def team_ui_server(tmp_path_factory):
    """`evorag ui` on an empty home whose model client replays the team's script."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium); the UI test drives it")
    tmp = tmp_path_factory.mktemp("team-ui")
    with _running_ui(tmp, tmp / "home", TEAM_REPLAY) as server:
        yield server


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ui_team_mode_streams_the_agents_and_asks_for_approval_inline(team_ui_server, browser):
    from playwright.sync_api import expect

    page = _log_in(browser, team_ui_server, USER, PASSWORD)
    try:
        _send(page, "/team")
        expect(page.get_by_text("Team mode on.", exact=False)).to_be_visible()
        _send(page, "Please build a tool that counts the words in a text")
        # The orchestrator's message streams as a step; the deployer's submission asks for approval inline.
        approve = page.get_by_role("button", name="Approve")
        approve.wait_for(timeout=180_000)
        expect(page.get_by_text("Agent team", exact=False).first).to_be_visible()
        expect(page.get_by_text("Approval needed: deploy")).to_be_visible()
        expect(page.get_by_text("Risk: LOW")).to_be_visible()
        approve.scroll_into_view_if_needed()
        _shot(page, "11-team-approval")
        approve.click()
        expect(page.get_by_text("deployer · DEPLOYED: word_count", exact=False).first).to_be_visible(
            timeout=120_000)
        expect(page.get_by_text("messages this turn", exact=False)).to_be_visible(timeout=60_000)
        expect(page.get_by_text("The word_count tool is deployed.", exact=False).last).to_be_visible()
        _shot(page, "12-team-deployed")
    except Exception as exc:
        _shot(page, "failure-team")
        raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(team_ui_server)}") from exc
    finally:
        page.close()
    with Evorag(home=team_ui_server["home"]) as rag:
        tools = [m.name for m in rag.registry.tools()]
        decided = [e for e in rag.evolution.audit.entries() if e.get("event") == "approved"]
    assert tools == ["word_count"]
    assert decided and decided[-1]["principal"]["name"] == USER and decided[-1]["principal"]["human"]
    [conversation] = (team_ui_server["home"] / "conversations").glob("*.json")
    assert json.loads(conversation.read_text())["owner"] == USER


def test_the_ui_process_runs_what_another_process_queued(ui_server):
    """`evorag ui` is a long-running server: its scheduler and queue workers run requests queued elsewhere
    (here a re-crawl queued by another process on the same home), as `evorag serve` would."""
    from evorag.demo import DEMO_SOURCE

    with Evorag(home=ui_server["home"]) as rag:  # only queues: this instance starts no workers
        queued = rag.submit_request("crawl", {"url": ui_server["base_url"] + "index.html", "source": DEMO_SOURCE,
                                              "allow_private": True})
    assert queued.status == "queued"
    deadline = time.monotonic() + 180
    while True:
        with Evorag(home=ui_server["home"]) as rag:
            request = rag.queue_request(queued.id)
        if request.status in ("done", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert request.status == "done", (request.to_dict(), _log_tail(ui_server))


def _table(page, first_header: str) -> list[list[str]]:
    """The cells of the newest table whose first column is headed ``first_header``, row by row."""
    table = page.locator("table").filter(
        has=page.get_by_role("columnheader", name=first_header, exact=True)).last
    table.wait_for()
    return table.evaluate("t => [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.innerText.trim()))")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ui_health_dashboard_and_costs_view_show_the_services_figures(tmp_path, browser):
    """/status and /costs on a home with a week of model calls, evolutions and a scheduled run (health_fixtures):
    the rendered tables and plots hold what the service's Status and CostReport say; a reader sees the health
    dashboard but not the costs."""
    from health_fixtures import seed_health
    from playwright.sync_api import expect

    home = tmp_path / "home"
    seed_health(home)
    with Evorag(home=home) as rag:
        rag.principals.add(READER, "reader", password=STORE_PASSWORD)
    with _running_ui(tmp_path, home, [], {"EVORAG_DAILY_BUDGET_USD": "2"}) as server:
        page = _log_in(browser, server, USER, PASSWORD)
        try:
            _send(page, "/status")
            figures = dict(_table(page, "measure"))
            schedules = _table(page, "schedule")
            agents = _table(page, "agent")
            plots = page.locator(".js-plotly-plot")
            expect(plots).to_have_count(2)
            # Chainlit may mount the two plots in either order: each is found by its title.
            by_title = {plots.nth(n).evaluate("p => p.layout.title.text"): plots.nth(n) for n in range(2)}
            cost_plot = next(plot for title, plot in by_title.items() if "cost" in title.lower())
            outcome_plot = next(plot for title, plot in by_title.items() if "evolution" in title.lower())
            cost_bars = cost_plot.evaluate("p => p.data[0].y")
            outcome_bars = outcome_plot.evaluate("p => [p.data[0].x, p.data[0].y]")
            plots.nth(0).scroll_into_view_if_needed()
            _shot(page, "13-status")
            _send(page, "/costs")
            summary = page.get_by_text(" completion tokens", exact=False).filter(has_text="prompt + ").last
            summary.wait_for()
            total = summary.inner_text()
            by_principal, by_operation = _table(page, "principal"), _table(page, "operation")
            by_model = _table(page, "model")
            _shot(page, "14-costs")
        except Exception as exc:
            _shot(page, "failure-status")
            raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(server)}") from exc
        finally:
            page.close()
        with Evorag(home=home, daily_budget_usd=2.0) as rag:
            status, costs = rag.status(), rag.costs()

        reader = _log_in(browser, server, READER, STORE_PASSWORD)
        try:
            _send(reader, "/costs")
            expect(reader.get_by_text("costs needs the operator role; rita has the reader role")).to_be_visible()
            _send(reader, "/status")
            expect(reader.locator(".js-plotly-plot")).to_have_count(2)
        except Exception as exc:
            _shot(reader, "failure-status-reader")
            raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(server)}") from exc
        finally:
            reader.close()

    # What the browser showed is what the service says.
    assert figures["queue"] == f"{status.queue_waiting} waiting, {status.queue_running} running"
    assert figures["cost today"] == (f"${status.cost_today_usd:.4f} of $2.00 budget, ${status.budget_left_usd:.4f} "
                                     f"left · {status.model_calls_today} model calls") == (
        "$1.3500 of $2.00 budget, $0.6500 left · 4 model calls")
    assert figures["evolutions (last 7 days)"] == (
        f"{status.evolutions.finished} finished, success rate {status.evolutions.success_rate:.0%} (2 deployed, "
        "1 model_unavailable, 1 pending, 2 rejected)") == (
        "6 finished, success rate 40% (2 deployed, 1 model_unavailable, 1 pending, 2 rejected)")
    assert figures["anomalies"] == "none" and not status.recent_anomalies
    assert f"% of {status.resources['cpu_count']} cores (load " in figures["CPU"]
    # The seeded daily health run, and any periodic task the UI's scheduler added at its start (never run yet).
    assert schedules == [[s.name, s.spec, _utc(s.next_due), _utc(s.last_finished_at or s.last_submitted_at),
                          s.last_status or "–"] for s in status.schedules]
    [health] = [s for s in status.schedules if s.name == "task:health"]
    assert health.last_status == "done" and health.last_finished_at is not None
    assert agents == [[a.key, str(a.calls), str(a.failed), str(a.prompt_tokens), str(a.completion_tokens),
                       f"{a.mean_seconds:.2f}"] for a in status.agents]
    assert [row[0] for row in agents] == ["orchestrator", "code_debugger"]
    assert cost_bars == [day.cost_usd for day in status.cost_by_day] and cost_bars[-2:] == [1.0, 1.35]
    assert outcome_bars == [list(status.evolutions.by_status), list(status.evolutions.by_status.values())]
    assert total == (f"${costs.total_usd:.4f} of $2.00 budget, ${costs.remaining_usd:.4f} left · {costs.calls} model "
                     f"calls · {costs.prompt_tokens} prompt + {costs.completion_tokens} completion tokens") == (
        "$1.3500 of $2.00 budget, $0.6500 left · 4 model calls · 950 prompt + 200 completion tokens")
    assert [(row[0], row[5]) for row in by_principal] == [(r.key, f"{r.cost_usd:.4f}") for r in costs.by_principal]
    assert [row[0] for row in by_model] == [r.key for r in costs.by_model] == ["openai:gpt-test"]
    assert [(row[0], row[1]) for row in by_operation] == [(r.key, str(r.calls)) for r in costs.by_operation] == [
        ("evolve", "3"), ("ask", "1")]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ui_usage_and_proposals_views_show_the_services_figures_and_approve_inline(tmp_path, browser):
    """/usage and /proposals on a home with real questions, asked through the service, about a docs site indexed in
    part (the questions about the pages left out are answered badly) and the proposals made from them: the tables
    and the plot hold what the service says; a reader sees the proposals without buttons; an approver's Approve
    goes through the approval queue and queues the proposal's crawl."""
    from playwright.sync_api import expect
    from sitefixtures import serve
    from test_proposals import RATE_QUESTION, TLS_QUESTIONS, _partial_index, _write_site

    from evorag.ui._plots import quality_color

    home, root = tmp_path / "home", tmp_path / "site"
    _write_site(root)
    with serve(root) as site:
        sitemap = root / "sitemap.xml"
        sitemap.write_text(sitemap.read_text().replace("{BASE}", site.url("/")))

        def seed():  # the synchronous service runs its own event loop: not in Playwright's thread, which has one
            with Evorag(home=home, llm_provider="none", allow_private=True) as rag:
                _partial_index(rag, site)
                for question in (*TLS_QUESTIONS, RATE_QUESTION, "How do I install widgetlib?", TLS_QUESTIONS[0]):
                    rag.ask(question)
                made = rag.make_proposals(packages=False)
                rag.principals.add(APPROVER, "approver", password=STORE_PASSWORD)
                rag.principals.add(READER, "reader", password=STORE_PASSWORD)
                return made, rag.usage_report(since="7d").analysis, rag.list_proposals(limit=50)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            made, analysis, proposals = pool.submit(seed).result()
        assert len(made) == 2 and len(analysis.weak_topics) == 2  # the two planted gaps, one proposal each
        first = proposals[0]  # the first Approve button is the first proposal listed
        with _running_ui(tmp_path, home, [], {"EVORAG_LLM_PROVIDER": "none"}) as server:
            reader = _log_in(browser, server, READER, STORE_PASSWORD)
            try:
                _send(reader, "/usage")
                topics, weak = _table(reader, "topic"), _table(reader, "weak topic")
                plot = reader.locator(".js-plotly-plot")
                expect(plot).to_have_count(1)
                bars = plot.evaluate("p => [p.data[0].x, p.data[0].marker.color]")
                totals = reader.get_by_text(" evolution requests", exact=False).last.inner_text()
                plot.scroll_into_view_if_needed()
                _shot(reader, "15-usage")
                _send(reader, "/proposals")
                listed = _table(reader, "proposal")
                expect(reader.get_by_text("Only approvers can decide them; you are reader.")).to_be_visible()
                expect(reader.get_by_role("button", name="Approve")).to_have_count(0)
                _send(reader, "/proposals make")
                expect(reader.get_by_text("gaps needs the operator role; rita has the reader role")).to_be_visible()
            except Exception as exc:
                _shot(reader, "failure-usage-reader")
                raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(server)}") from exc
            finally:
                reader.close()
            page = _log_in(browser, server, APPROVER, STORE_PASSWORD)
            try:
                _send(page, "/proposals")
                approve = page.get_by_role("button", name="Approve")
                expect(approve).to_have_count(2)
                _shot(page, "16-proposals")
                approve.first.click()
                expect(page.get_by_text(f"the work of proposal {first.id} is queued", exact=False)).to_be_visible(
                    timeout=60_000)
                with Evorag(home=home) as rag:
                    approved = rag.get_proposal(first.id)
                    approval = rag.evolution.approvals.get(first.approval_id)
                    request = rag.queue_request(approved.request_id)
                # The UI's queue worker crawls the proposed page (the site is still served); then the view shows
                # the effect: the evidence queries' scores before and after.
                deadline = time.monotonic() + 150
                while (ran := _proposal(home, first.id)).status == "approved" and time.monotonic() < deadline:
                    time.sleep(1)
                _send(page, "/proposals")
                tables = page.locator("table").filter(has=page.get_by_role("columnheader", name="proposal", exact=True))
                expect(tables).to_have_count(2)
                after = _table(page, "proposal")
                _shot(page, "17-proposal-effect")
            except Exception as exc:
                _shot(page, "failure-proposals")
                raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(server)}") from exc
            finally:
                page.close()
            admin = _log_in(browser, server, USER, PASSWORD)
            try:  # an operator (here the admin) makes proposals; the UI also looks at installed packages' docs
                _send(admin, "/proposals make")
                said = admin.get_by_text(re.compile(r"^(Made \d+ proposal\(s\)|No new proposals)")).last
                said.wait_for(timeout=120_000)
                made_text = admin.locator("body").inner_text()
            except Exception as exc:
                _shot(admin, "failure-proposals-make")
                raise AssertionError(f"{exc}\n--- UI log ---\n{_log_tail(server)}") from exc
            finally:
                admin.close()
            still = _proposal(home, proposals[1].id)
            with Evorag(home=home) as rag:
                new = [p for p in rag.list_proposals(limit=50) if p.id not in {q.id for q in proposals}]

    # What the browser showed is what the service says.
    t = analysis.totals
    assert t["by_interface"] == {"python": 5} and t["asks"] == 5
    assert totals == (f"{t['queries']} queries ({t['searches']} searches, {t['asks']} answers, {t['errors']} failed)"
                      f" · by interface: python {t['queries']} · mean latency {t['mean_latency_ms']:.0f} ms · 0 "
                      "evolution requests")
    assert topics == [[topic.label, str(topic.volume), str(topic.previous_volume), topic.trend,
                       "–" if topic.quality is None else f"{topic.quality:.2f}",
                       "–" if topic.answered_share is None else f"{topic.answered_share:.0%}", str(topic.rephrasings),
                       str(topic.principals),
                       f"{topic.thumbs_up} / {topic.thumbs_down}" if topic.thumbs_up or topic.thumbs_down else "–"]
                      for topic in analysis.topics]
    assert weak == [[w.topic.label, f"{w.score:.2f}", f"{w.impact:.2f}", "; ".join(w.reasons),
                     " · ".join(e["query"] for e in w.evidence[:5])] for w in analysis.weak_topics]
    assert bars == [[topic.volume for topic in analysis.topics], [quality_color(topic.quality)
                                                                   for topic in analysis.topics]]
    assert "#f85149" in bars[1]  # the weak topics are red
    assert listed == [[p.id, p.kind, f"{p.score:.2f}", "proposed", "–", ", ".join(p.urls),
                       " · ".join(p.evidence[:5])] for p in proposals]
    # Approved in the approval queue by the logged-in approver, and the proposal's crawl queued.
    assert (approval.status, approval.decided_by, approval.decided_via) == ("approved", APPROVER, "ui")
    assert approved.status in ("approved", "done") and approved.decided_by == APPROVER
    assert (request.kind, request.origin, request.payload) == ("proposal-crawl", "proposal", {"proposal": first.id})
    assert still.status == "proposed"
    # /proposals make showed what it made: the proposals new in the store.
    assert (f"Made {len(new)} proposal(s)" if new else "No new proposals") in made_text
    assert all(f"{p.id} {p.kind}: " in made_text for p in new)
    # Once run, the view shows the measured effect.
    assert ran.status == "done", (ran.to_dict(), _log_tail(server))
    before, after_means = ran.effect["mean_before"], ran.effect["mean_after"]
    shown = {row[0]: row for row in after}
    assert shown[first.id][3:5] == ["done", " · ".join(
        f"{label} {before[key]:.2f} → {after_means[key]:.2f}" for key, label in (
            ("overall", "overall"), ("grounding", "grounding"), ("ndcg", "nDCG")))]
    assert after_means["overall"] > before["overall"], ran.effect


def _proposal(home: Path, proposal_id: str):
    with Evorag(home=home) as rag:
        return rag.get_proposal(proposal_id)


def _utc(timestamp: float | None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M") if timestamp else "–"
