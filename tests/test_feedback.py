"""Feedback on answers (thumbs up/down) from every interface: stored per principal with its interface in the usage
log, refused with one line for an unknown answer, used by ranking (a principal's rejected pages are demoted on the
same question asked again, for that principal only) and by the usage analysis (thumbs-down make a topic weak).
Real embedded store, real local embedder, real MCP client in memory, the CLI through ``main``; no model (the
answers are extractive)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from types import SimpleNamespace

import pytest
from evorag.tools.usage_analysis import analyse
from evorag.tools.usage_log import FILENAME, FeedbackRecord, QueryRecord, UsageLog
from mcp.shared.memory import create_connected_server_and_client_session

from evorag.cli import main
from evorag.errors import NotFoundError, UserError
from evorag.mcp_server import build_server
from evorag.principals import Principal, Role, os_user
from evorag.service import Evorag
from evorag.ui._feedback import give_feedback, remember_answer

ALICE = Principal("alice", Role.READER, via="ui")
BOB = Principal("bob", Role.READER, via="ui")
QUESTION = "How do I exclude pages from a crawl?"
PARAPHRASE = "how can I exclude some pages when crawling"  # cosine 0.95 with QUESTION (MiniLM query vectors)


def _clear_log(home) -> None:
    for path in home.glob(FILENAME + "*"):
        path.unlink()


@pytest.fixture
def demo(demo_home):
    """The shared demo home with an empty usage log (and left empty: other tests count its rows)."""
    _clear_log(demo_home)
    with Evorag(home=demo_home, llm_provider="none") as rag:
        yield rag
    _clear_log(demo_home)


def _feedback_rows(home) -> list[dict]:
    with sqlite3.connect(home / FILENAME) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM feedback ORDER BY id")]


def _urls(hits) -> list[str]:
    return [h.chunk.url for h in hits]


def test_python_and_ui_feedback_land_with_principal_interface_and_cited_pages(demo, demo_home) -> None:
    answer = demo.ask(QUESTION, principal=ALICE)
    assert answer.answer_id is not None and answer.citations
    cited = {c["url"] for c in answer.citations}

    record = demo.feedback(answer.answer_id, "down", comment="not what I asked", principal=ALICE)
    assert (record.principal, record.interface, record.value, record.query_id) == ("alice", "ui", -1, answer.answer_id)
    assert set(record.pages) == cited and record.query == QUESTION

    # The chat's thumbs: Chainlit's Feedback (forId = the message, value 1 up / 0 down) through the app's handler.
    answers: dict[str, int] = {}
    remember_answer(answers, "message-1", answer.answer_id)
    click = SimpleNamespace(forId="message-1", value=1, comment=None, threadId="t")
    up = asyncio.run(give_feedback(demo, ALICE, click, answers))
    assert (up.value, up.interface, up.query_id) == (1, "ui", answer.answer_id)
    with pytest.raises(NotFoundError, match="not an answer this chat session can rate"):
        asyncio.run(give_feedback(demo, ALICE, SimpleNamespace(forId="message-2", value=0, comment=None), answers))
    with pytest.raises(UserError, match="1 \\(up\\) or 0 \\(down\\)"):
        asyncio.run(give_feedback(demo, ALICE, SimpleNamespace(forId="message-1", value=7, comment=None), answers))

    # Named by the question's text (any case and spacing): the principal's newest answer to it.
    by_text = demo.feedback("  how do I EXCLUDE pages from a crawl? ", "up", principal=ALICE)
    assert (by_text.query_id, set(by_text.pages)) == (answer.answer_id, cited)

    rows = _feedback_rows(demo_home)
    assert [(r["principal"], r["interface"], r["value"], r["comment"]) for r in rows] == [
        ("alice", "ui", -1, "not what I asked"), ("alice", "ui", 1, None), ("alice", "ui", 1, None)]


def test_bad_ids_and_values_are_one_line_errors_and_store_nothing(demo, demo_home) -> None:
    answer = demo.ask(QUESTION, principal=ALICE)
    for bad_id in (999_999, "999999"):
        with pytest.raises(NotFoundError, match="no answer or search with id 999999 of alice"):
            demo.feedback(bad_id, "down", principal=ALICE)
    with pytest.raises(NotFoundError, match=f"id {answer.answer_id} of bob"):  # not bob's answer to rate
        demo.feedback(answer.answer_id, "down", principal=BOB)
    for bad_value in ("sideways", 0, 2, True, ""):
        with pytest.raises(UserError, match="feedback is up \\(\\+1\\) or down \\(-1\\)"):
            demo.feedback(answer.answer_id, bad_value, principal=ALICE)
    with pytest.raises(UserError, match="at most 500"):
        demo.feedback(answer.answer_id, "up", comment="x" * 501, principal=ALICE)
    with pytest.raises(UserError, match="name the answer"):
        demo.feedback("  ", "up", principal=ALICE)
    assert _feedback_rows(demo_home) == []


def test_the_mcp_tool_rates_the_answer_the_ask_tool_returned(demo, demo_home) -> None:
    carol = Principal("carol", Role.READER, via="mcp")

    async def over_mcp():
        server = build_server(demo, principal=carol)
        try:
            async with create_connected_server_and_client_session(server) as client:
                listed = {tool.name for tool in (await client.list_tools()).tools}
                answered = await client.call_tool("perform_rag_query_with_metrics", {"query": QUESTION})
                answer_id = answered.structuredContent["answer_id"]
                rated = await client.call_tool("rate_answer", {"answer_id": answer_id, "value": "down",
                                                               "comment": "outdated"})
                unknown = await client.call_tool("rate_answer", {"answer_id": answer_id + 1000, "value": "up"})
                bad = await client.call_tool("rate_answer", {"answer_id": answer_id, "value": "meh"})
        finally:
            await server.aclose()
        return listed, answer_id, rated, unknown, bad

    listed, answer_id, rated, unknown, bad = asyncio.run(over_mcp())
    assert "rate_answer" in listed and isinstance(answer_id, int)
    assert not rated.isError and rated.structuredContent["answer_id"] == answer_id
    assert rated.structuredContent["value"] == -1 and rated.structuredContent["pages"]
    assert unknown.isError and f"no answer or search with id {answer_id + 1000} of carol" in unknown.content[0].text
    assert bad.isError and "value" in bad.content[0].text
    rows = _feedback_rows(demo_home)
    assert [(r["principal"], r["interface"], r["value"], r["query_id"], r["comment"]) for r in rows] == [
        ("carol", "mcp", -1, answer_id, "outdated")]


def test_the_cli_rates_an_answer_by_id_and_survives_a_restart(demo_home, monkeypatch, capsys) -> None:
    _clear_log(demo_home)
    monkeypatch.setenv("EVORAG_HOME", str(demo_home))
    monkeypatch.setenv("EVORAG_LLM_PROVIDER", "none")
    try:
        assert main(["ask", QUESTION, "--no-eval", "--json"]) == 0
        answer_id = json.loads(capsys.readouterr().out)["answer_id"]
        assert main(["feedback", str(answer_id), "down", "--comment", "wrong page"]) == 0
        assert f"down recorded for answer {answer_id}" in capsys.readouterr().out
        assert main(["feedback", "424242", "up"]) == 2
        assert "no answer or search with id 424242" in capsys.readouterr().err
        assert main(["feedback", "abc", "up"]) == 2
        assert "the answer id is a number" in capsys.readouterr().err
        assert main(["feedback", str(answer_id), "sideways"]) == 2
        assert "feedback is up (+1) or down (-1)" in capsys.readouterr().err

        # A new process (a new service) reads it back, and it still demotes for the same person.
        with Evorag(home=demo_home, llm_provider="none") as rag:
            given = rag.feedback_given(principal=Principal(os_user(), Role.ADMIN, via="python"))
            assert [(g.interface, g.value, g.query_id, g.comment) for g in given] == [
                ("cli", -1, answer_id, "wrong page")]
            assert given[0].pages
            hits = rag.search(PARAPHRASE, limit=5)
            assert _urls(hits)[0] not in set(given[0].pages)
    finally:
        _clear_log(demo_home)


def test_rejected_pages_are_demoted_for_that_principal_on_a_paraphrase_only(demo) -> None:
    before = demo.search(PARAPHRASE, limit=5, principal=ALICE)
    answer = demo.ask(QUESTION, principal=ALICE)
    rejected = {c["url"] for c in answer.citations}
    kept = [u for u in _urls(before) if u not in rejected]
    demoted = kept + [u for u in _urls(before) if u in rejected]
    assert rejected & set(_urls(before)) and demoted != _urls(before)  # the demotion will show in the order
    demo.feedback(answer.answer_id, "down", principal=ALICE)

    after = demo.search(PARAPHRASE, limit=5, principal=ALICE)
    assert _urls(after) == demoted  # behind the others, in their old order: demoted, not removed
    # Another principal, and another question of the same principal, keep the plain ranking.
    assert _urls(demo.search(PARAPHRASE, limit=5, principal=BOB)) == _urls(before)
    other = "Does evorag need a GPU?"
    assert _urls(demo.search(other, limit=5, principal=ALICE)) == _urls(demo.search(other, limit=5, principal=BOB))
    # The answer to the same question, asked again, no longer leads with the rejected pages.
    again = demo.ask(PARAPHRASE, principal=ALICE)
    assert again.sources_used[0]["url"] not in rejected


def test_feedback_lookup_costs_little_per_search(demo) -> None:
    """The added cost of the per-principal lookup, measured on the real demo index (printed with -s)."""
    answer = demo.ask(QUESTION, principal=ALICE)
    for _ in range(20):  # more thumbs-down than anyone gives on one question
        demo.feedback(answer.answer_id, "down", principal=ALICE)
    demo.search(PARAPHRASE, principal=ALICE)  # warm: the model, the store, the cached question vector

    times: dict[str, list[float]] = {"alice": [], "bob": []}
    for _ in range(30):  # interleaved: load from other processes on the machine hits both alike
        for who in (BOB, ALICE):
            started = time.perf_counter()
            demo.search(PARAPHRASE, limit=5, principal=who)
            times[who.name].append((time.perf_counter() - started) * 1000)
    without, with_feedback = (sorted(times[name])[15] for name in ("bob", "alice"))
    print(f"search p50: {without:.2f} ms without feedback, {with_feedback:.2f} ms with 20 thumbs-down")
    assert with_feedback - without < 5.0


def _query(text: str, ts: float, *, overall: float, qid: int, principal: str = "p") -> QueryRecord:
    return QueryRecord(ts=ts, kind="ask", interface="ui", principal=principal, query=text, overall=overall, id=qid)


def test_thumbs_down_make_a_well_scored_topic_weak_and_thumbs_up_clear_a_mediocre_one(demo) -> None:
    embed = demo.embedder.embed_documents
    since, until = 1_765_000_000.0, 1_765_000_000.0 + 86400
    crawl = ["How do I exclude pages from a crawl?", "how can I skip some URLs when crawling"]
    gpu = ["Does evorag need a GPU?", "can it run without a graphics card"]
    queries = [_query(crawl[i % 2], since + 3600 * i, overall=0.9, qid=i, principal=f"c{i}") for i in range(6)]
    queries += [_query(gpu[i % 2], since + 3600 * i + 60, overall=0.45, qid=100 + i, principal=f"g{i}")
                for i in range(4)]

    def votes(texts, value, n, base):
        return [FeedbackRecord(ts=since + 7200 + i, interface="mcp", principal=f"v{i}", query=texts[i % 2],
                               value=value, query_id=base + i) for i in range(n)]

    plain = analyse(queries, [], [], embed=embed, since=since, until=until)
    assert [w.topic.label for w in plain.weak_topics] == ["Does evorag need a GPU?"]  # 0.45: weak on scores

    rated = analyse(queries, [], [], embed=embed, since=since, until=until,
                    feedback=votes(crawl, -1, 2, 0) + votes(gpu, 1, 3, 100))
    weak = {w.topic.label: w for w in rated.weak_topics}
    crawl_label = next(t.label for t in rated.topics if t.label in crawl)
    assert set(weak) == {crawl_label}  # the well-scored topic people disliked is weak; the liked one is not
    assert weak[crawl_label].impact >= 1.0 and "2 thumbs-down" in weak[crawl_label].reasons
    topics = {t.label: t for t in rated.topics}
    assert (topics[crawl_label].thumbs_down, topics["Does evorag need a GPU?"].thumbs_up) == (2, 3)
    # Feedback outside the period changes nothing.
    late = [FeedbackRecord(ts=until + 10, interface="mcp", principal="v", query=crawl[0], value=-1)]
    assert [w.topic.label for w in analyse(queries, [], [], embed=embed, since=since, until=until,
                                           feedback=late).weak_topics] == ["Does evorag need a GPU?"]


def test_the_service_analysis_counts_feedback_and_the_log_migrates(demo, demo_home, tmp_path) -> None:
    answer = demo.ask(QUESTION, principal=ALICE)
    demo.feedback(answer.answer_id, "down", principal=ALICE)
    weak = demo.usage_weak_topics(since="1h", principal=ALICE)
    assert [w.topic.label for w in weak] == [QUESTION] and weak[0].topic.thumbs_down == 1
    assert "1 thumbs-down" in weak[0].reasons

    # A usage log from before feedback existed (schema 1) gains the table and keeps its rows.
    old = tmp_path / FILENAME
    with sqlite3.connect(old) as db:
        from evorag.tools.usage_log import MIGRATIONS

        db.executescript(MIGRATIONS[0][1] + ";CREATE TABLE schema_version (version INTEGER NOT NULL);"
                         "INSERT INTO schema_version VALUES (1);"
                         "INSERT INTO queries (ts, kind, interface, principal, query, latency_ms) "
                         "VALUES (1.0, 'ask', 'cli', 'p', 'old question', 3.0);")
    log = UsageLog(old)
    try:
        assert [q.query for q in log.queries()] == ["old question"] and log.queries()[0].pages == ()
        log.record_feedback(via="cli", principal="p", query="old question", value=1, query_id=1)
        assert [f.value for f in log.feedback(principal="p")] == [1]
    finally:
        log.close()


def _two_libraries(tmp_path):
    """Two local sources that both document a timeout setting, worded alike."""
    for name, setting in (("alpha", "ALPHA_TIMEOUT"), ("beta", "BETA_TIMEOUT")):
        root = tmp_path / name
        root.mkdir()
        (root / "configuration.md").write_text(
            f"# Configuration of {name}\n\n## Timeouts\n\nSet {setting} to change how long a request may take "
            "before the client gives up. The default timeout is 30 seconds.\n", encoding="utf-8")
        (root / "install.md").write_text(f"# Installing {name}\n\nInstall {name} with pip.\n", encoding="utf-8")
    return tmp_path / "alpha", tmp_path / "beta"


def test_the_sources_a_principal_usually_names_come_first_for_them_only(tmp_path) -> None:
    alpha, beta = _two_libraries(tmp_path)
    alice = Principal("alice", Role.READER, via="mcp")
    bob = Principal("bob", Role.READER, via="mcp")
    with Evorag(home=tmp_path / "home", llm_provider="none", api_calls_per_minute=0) as rag:
        rag.add_folder(alpha, source="alpha")
        rag.add_folder(beta, source="beta")
        question = "how long before a request times out"
        baseline = [hit.chunk.source for hit in rag.search(question, limit=4, principal=bob)]
        assert {"alpha", "beta"} <= set(baseline)
        # Alice works with the library that comes second for everyone: she names it in her searches (a version
        # suffix counts as the source).
        usual = "beta" if baseline[0] == "alpha" else "alpha"
        for text in ("install", "configuration", "timeouts", "pip"):
            rag.search(text, source=usual, principal=alice)
        rag.search("install", source=f"{usual}@latest", principal=alice)
        rag.knowledge.preferred._cache.clear()
        hers = rag.search(question, limit=4, principal=alice)
        assert hers[0].chunk.source == usual, [(h.chunk.source, h.score) for h in hers]
        # Nobody else's results change, and naming a source leaves the ranking alone.
        assert [hit.chunk.source for hit in rag.search(question, limit=4, principal=bob)] == baseline
        named = rag.search(question, source="alpha", limit=4, principal=alice)
        assert {hit.chunk.source for hit in named} == {"alpha"}
        # A principal with no history: nothing changes either.
        assert rag.knowledge.preferred.shares(bob) == {}
        assert rag.knowledge.preferred.shares(alice) == {usual: 1.0}
