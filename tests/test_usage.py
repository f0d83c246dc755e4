"""Usage analysis: every search and answer is logged through the service (whatever the interface), queries are
clustered into topics with the real local embedder, weak topics and missing capabilities are ranked by frequency x
impact, and the log never breaks a search. Real embedded store, real embedder, the bundled demo site."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import pytest
from evorag.tools.costs import metering
from evorag.tools.usage_analysis import analyse, cluster_texts
from evorag.tools.usage_log import FILENAME, MAX_TEXT, EvolutionRecord, QueryRecord, ToolCallRecord, UsageLog
from mcp.shared.memory import create_connected_server_and_client_session

from evorag.cli import main
from evorag.demo import DEMO_SOURCE
from evorag.errors import UserError
from evorag.mcp_server import build_server
from evorag.principals import Principal, Role, os_user
from evorag.service import Evorag, PolicyApprover

ALICE = Principal("alice", Role.READER, via="mcp")
BOB = Principal("bob", Role.OPERATOR, via="ui")
DAY = 86400.0
NOW = 1_765_000_000.0

# Realistic questions about a documentation site: three paraphrase groups and two unrelated questions.
CRAWL_FILTERS = ["How do I exclude pages from a crawl?", "how can I skip some URLs when crawling",
                 "crawl only certain paths, excluding the changelog"]
GPU = ["Does evorag need a GPU?", "can it run without a graphics card"]
EMBEDDINGS = ["can I use openai embeddings instead of the local model", "how to switch the embedding model"]
UNRELATED = ["where does evorag store its data", "how are search results ranked"]


@pytest.fixture(scope="module")
def embed():
    from evorag.tools.embedding import create_embedder

    from evorag.settings import load_settings

    return create_embedder(load_settings()).embed_documents


@pytest.fixture
def demo(demo_home):
    """The demo home with an empty usage log (the demo home is shared by the session)."""
    for path in demo_home.glob(FILENAME + "*"):
        path.unlink()
    with Evorag(home=demo_home, llm_provider="none") as rag:  # extractive answers: no model in tests
        yield rag


def _rows(home) -> list[dict]:
    with sqlite3.connect(home / FILENAME) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM queries ORDER BY id")]


def test_searches_and_answers_are_logged_with_interface_principal_and_scores(demo, demo_home) -> None:
    hits = demo.search("exclude pages from a crawl", limit=3)
    answer = demo.ask("Does evorag need a GPU?", principal=ALICE)
    demo.search("how do I crawl localhost", source=DEMO_SOURCE, principal=BOB)
    with pytest.raises(UserError):
        demo.search("anything", source="no-such-source", principal=BOB)
    with metering(operation="evolve"):  # an agent team searching while it evolves a tool: not usage
        demo.search("slugify a page title", principal=BOB)

    rows = _rows(demo_home)
    assert [(r["kind"], r["interface"], r["principal"]) for r in rows] == [
        ("search", "python", os_user()), ("ask", "mcp", "alice"), ("search", "ui", "bob"), ("search", "ui", "bob")]
    search, ask, sourced, failed = rows
    assert search["query"] == "exclude pages from a crawl" and search["hits"] == len(hits) == 3
    assert search["top_score"] == pytest.approx(max(h.score for h in hits), abs=1e-6)
    assert search["latency_ms"] > 0 and search["error"] is None and search["not_found"] == 0
    # The answer is logged once (its retrieval is not logged as a search of its own), with its scores.
    grounding = answer.metrics.get("grounding")
    assert ask["grounding"] is None if grounding is None else ask["grounding"] == pytest.approx(grounding)
    assert ask["overall"] == pytest.approx(answer.metrics["overall"])
    assert ask["extractive"] == int(answer.fallback) == 1  # no language model in tests: extractive
    assert ask["not_found"] == int(answer.not_found) and ask["top_score"] is not None
    assert sourced["source"] == DEMO_SOURCE
    assert failed["error"].startswith("NotFoundError: unknown source") and failed["hits"] is None


def test_cli_queries_land_in_the_log_and_usage_json_parses(demo_home, monkeypatch, capsys) -> None:
    for path in demo_home.glob(FILENAME + "*"):
        path.unlink()
    monkeypatch.setenv("EVORAG_HOME", str(demo_home))
    assert main(["search", "how do I exclude pages from a crawl", "--json"]) == 0
    assert main(["search", "how can I skip some URLs when crawling", "--json"]) == 0
    assert main(["search", "Does evorag need a GPU?", "--json"]) == 0
    capsys.readouterr()
    rows = _rows(demo_home)
    assert {(r["interface"], r["principal"]) for r in rows} == {("cli", os_user())} and len(rows) == 3

    assert main(["usage", "--since", "1h", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["queries"] == 3 and report["totals"]["by_interface"] == {"cli": 3}
    volumes = sorted(topic["volume"] for topic in report["topics"])
    assert volumes == [1, 2]  # the two crawl-filter paraphrases are one topic, the GPU question another
    crawl_topic = next(t for t in report["topics"] if t["volume"] == 2)
    assert "crawl" in " ".join(crawl_topic["terms"]) or "crawling" in " ".join(crawl_topic["terms"])
    # Asked again within minutes by the same person: a rephrasing.
    assert crawl_topic["rephrasings"] == 1

    for bad in ("yesterday", "7x", "2024-13-45"):
        assert main(["usage", "--since", bad]) == 2
        assert "cannot read" in capsys.readouterr().err
    assert main(["usage", "--since", "2999-01-01"]) == 2
    assert "must be in the past" in capsys.readouterr().err


def test_usage_html_and_the_mcp_tool(demo, demo_home, tmp_path) -> None:
    demo.search("<script>alert(1)</script> crawl filters", principal=ALICE)
    report = demo.usage_report(since="1h", html=tmp_path / "usage.html")
    page = (tmp_path / "usage.html").read_text()
    assert "<svg" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert report.analysis.totals["by_interface"] == {"mcp": 1}

    async def over_mcp():
        server = build_server(demo, principal=Principal("reader", Role.READER, via="mcp"))
        try:
            async with create_connected_server_and_client_session(server) as client:
                listed = {tool.name for tool in (await client.list_tools()).tools}
                found = await client.call_tool("search_code_examples", {"query": "crawl a site"})
                result = await client.call_tool("usage_report", {"since": "1h"})
                bad = await client.call_tool("usage_report", {"since": "last tuesday"})
        finally:
            await server.aclose()
        return listed, found, result, bad

    listed, found, result, bad = asyncio.run(over_mcp())
    assert "usage_report" in listed and not found.isError and not result.isError
    assert result.structuredContent["totals"]["by_interface"] == {"mcp": 2}
    assert {r["principal"] for r in _rows(demo_home)} == {"alice", "reader"}
    assert bad.isError and "cannot read 'last tuesday' as a date" in bad.content[0].text


def test_a_broken_log_never_breaks_a_search(demo_home, caplog) -> None:
    for path in demo_home.glob(FILENAME + "*"):
        path.unlink()
    (demo_home / FILENAME).write_bytes(b"this is not a database" * 100)
    try:
        with Evorag(home=demo_home, llm_provider="none") as rag, caplog.at_level(logging.WARNING, logger="evorag.usage"):
            assert rag.search("exclude pages from a crawl", limit=2)
            answer = rag.ask("Does evorag need a GPU?")
            assert answer.answer
        assert any("could not write the usage log" in r.getMessage() for r in caplog.records)
        with Evorag(home=demo_home) as rag, pytest.raises(UserError, match="not a readable usage log"):
            rag.usage_report()
    finally:
        (demo_home / FILENAME).unlink()


def test_secrets_are_redacted_and_long_queries_capped(tmp_path) -> None:
    log = UsageLog(tmp_path / FILENAME, known_secrets=["hunter2-very-secret"])
    token = "evr_" + "A" * 40
    log.record_query(kind="search", via="cli", principal="p", query=f"why does {token} fail with hunter2-very-secret")
    log.record_query(kind="ask", via="cli", principal="p", query="x" * (MAX_TEXT * 3))
    first, second = log.queries()
    assert token not in first.query and "hunter2-very-secret" not in first.query and "[REDACTED]" in first.query
    assert len(second.query) == MAX_TEXT
    # The schema is versioned; a file from a newer evorag is refused, not altered.
    with sqlite3.connect(tmp_path / FILENAME) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(UserError, match="newer evorag"):
        UsageLog(tmp_path / FILENAME)


def test_clustering_groups_paraphrases_and_separates_topics(embed) -> None:
    texts = CRAWL_FILTERS + GPU + EMBEDDINGS + UNRELATED
    clusters = cluster_texts(texts, [1] * len(texts), embed(texts))
    groups = [CRAWL_FILTERS, GPU, EMBEDDINGS]
    ids = [{clusters[texts.index(t)] for t in group} for group in groups]
    assert all(len(i) == 1 for i in ids), ids  # each paraphrase group is one topic
    ids += [{clusters[texts.index(t)]} for t in UNRELATED]
    assert len(set().union(*ids)) == len(ids)  # and no two groups (or unrelated questions) share one
    # Deterministic: the same input in another order gives the same partition.
    reordered = list(reversed(texts))
    again = cluster_texts(reordered, [1] * len(texts), embed(reordered))
    partition = {frozenset(t for t in texts if clusters[texts.index(t)] == c) for c in clusters}
    assert partition == {frozenset(t for t in reordered if again[reordered.index(t)] == c) for c in again}


def _query(text: str, ts: float, *, principal: str = "p", overall: float | None = None, not_found: bool = False,
           kind: str = "ask", via: str = "cli") -> QueryRecord:
    return QueryRecord(ts=ts, kind=kind, interface=via, principal=principal, query=text, overall=overall,
                       grounding=overall, not_found=not_found, latency_ms=10.0, id=int(ts * 10) % 10**9)


def test_weak_topics_rank_by_frequency_times_impact_with_trend_and_rephrasings(embed) -> None:
    since = NOW - 7 * DAY
    queries = []
    # Six badly answered crawl-filter questions from six people, an hour apart: impact 0.8, score 4.8.
    for i in range(6):
        queries.append(_query(CRAWL_FILTERS[i % 3], since + 3600 * (i + 1), principal=f"u{i}", overall=0.2))
    # Three GPU questions the docs did not answer: impact 1.0, score 3.0 (fewer, but each worse).
    for i in range(3):
        queries.append(_query(GPU[i % 2], since + DAY + 3600 * i, principal=f"g{i}", not_found=True))
    # Ten well answered embedding questions: not weak, whatever their volume; five the week before (rising).
    for i in range(10):
        queries.append(_query(EMBEDDINGS[i % 2], since + 2 * DAY + 3600 * i, principal=f"e{i}", overall=0.9))
    for i in range(5):
        queries.append(_query(EMBEDDINGS[0], since - DAY - 3600 * i, principal=f"e{i}", overall=0.9))
    # One person asking the same thing three times in five minutes, answered well enough (0.8): not weak by its
    # scores, but the rephrasings add 2/3 to its impact: weak, score 3 x 0.87 = 2.6.
    for i, text in enumerate(["where does evorag store its data", "where is the data kept",
                              "which folder holds evorag's data"]):
        queries.append(_query(text, since + 3 * DAY + 120 * i, principal="r", overall=0.8))

    analysis = analyse(queries, [], [], embed=embed, since=since, until=NOW)
    by_label = {t.label: t for t in analysis.topics}
    assert len(analysis.topics) == 4, list(by_label)
    embeddings = next(t for t in analysis.topics if t.label in EMBEDDINGS)
    assert (embeddings.volume, embeddings.previous_volume, embeddings.trend) == (10, 5, "rising")
    assert embeddings.quality == pytest.approx(0.9) and embeddings.answered_share == 1.0
    gpu = next(t for t in analysis.topics if t.label in GPU)
    assert gpu.answered_share == 0.0 and gpu.quality == 0.0 and gpu.trend == "new"

    weak = analysis.weak_topics
    labels = [w.topic.label for w in weak]
    assert len(labels) == 3 and labels[0] in CRAWL_FILTERS and labels[1] in GPU, labels
    assert [w.score for w in weak] == sorted((w.score for w in weak), reverse=True)
    assert weak[0].score == pytest.approx(6 * 0.8) and weak[1].score == pytest.approx(3 * 1.0)
    assert not any(w.topic.label in EMBEDDINGS for w in weak)
    data = next(w for w in weak if "data" in w.topic.label or "folder" in w.topic.label)
    assert data.topic.rephrasings == 2 and data.impact == pytest.approx(0.2 + 2 / 3, abs=1e-3)
    assert any("rephrasing" in reason for reason in data.reasons)
    # The evidence is the queries behind the topic, for proposals.
    assert {e["query"] for e in weak[0].evidence} == set(CRAWL_FILTERS) and len(weak[0].evidence) == 6
    assert json.loads(json.dumps(analysis.to_dict()))["weak_topics"][0]["topic"]["volume"] == 6


def test_missing_capabilities_from_failed_evolutions_and_tool_errors(embed) -> None:
    since = NOW - DAY

    def evolution(text: str, outcome: str, hours: float, who: str = "p") -> EvolutionRecord:
        return EvolutionRecord(ts=since + 3600 * hours, interface="mcp", principal=who, request=text, outcome=outcome)

    evolutions = [
        evolution("a tool that converts a PDF manual to markdown", "rejected", 1, "a"),
        evolution("convert PDF documents into markdown pages", "model_unavailable", 2, "b"),
        evolution("turn a PDF file into markdown", "rejected", 3, "c"),
        evolution("a tool that converts a PDF manual to markdown", "pending", 4, "a"),
        # Asked, failed, then built: not missing any more.
        evolution("count the words of a web page", "rejected", 1),
        evolution("a word counter for web pages", "deployed", 5),
        evolution("summarise the changelog", "refused", 2),  # a refused request is no failure
    ]
    calls = [ToolCallRecord(ts=since + 60 * i, interface="cli", principal="p", tool="slugify", ok=i % 2 == 0,
                            error=None if i % 2 == 0 else "ValueError: empty title", latency_ms=5.0)
             for i in range(4)]
    analysis = analyse([], calls, evolutions, embed=embed, since=since, until=NOW)
    missing = analysis.missing_capabilities
    assert [(m.kind, m.count) for m in missing] == [("evolution", 3), ("tool_error", 2)], missing
    pdf = missing[0]
    assert "pdf" in pdf.label.lower() and pdf.impact == pytest.approx(3 / 4) and pdf.principals == 3
    assert pdf.score == pytest.approx(3 * 0.75) and len(pdf.evidence) == 3
    assert missing[1].label == "slugify" and missing[1].score == pytest.approx(2 * 0.5)
    assert missing[1].evidence == ["ValueError: empty title (x2)"]
    assert analysis.tools == [{"tool": "slugify", "calls": 4, "errors": 2, "mean_latency_ms": 5.0}]


def test_tool_calls_and_evolution_requests_are_logged_through_the_service(evorag_home) -> None:
    with Evorag(home=evorag_home) as rag:
        with pytest.raises(UserError):
            rag.call_tool("no_such_tool", {}, principal=BOB)
        with pytest.raises(UserError):
            asyncio.run(rag.aevolve("index my intranet wiki", docs=["http://127.0.0.1/wiki"],
                                    approver=PolicyApprover(assume_yes=False, principal=BOB), principal=BOB))
        log = rag.parts.usage_log
        [call] = log.tool_calls()
        assert (call.tool, call.ok, call.interface, call.principal) == ("no_such_tool", False, "ui", "bob")
        assert call.error and call.latency_ms >= 0
        [request] = log.evolutions()
        assert (request.request, request.outcome, request.principal) == ("index my intranet wiki", "refused", "bob")
        assert request.reason.startswith("BlockedURLError") and request.latency_ms >= 0
        # Readers may see the analysis; the weak-topic function proposals use needs no more.
        assert rag.usage_weak_topics(since="1h", principal=ALICE) == []
