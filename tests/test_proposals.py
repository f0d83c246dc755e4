"""Proposals end to end: a docs site served on 127.0.0.1 and indexed only in part (its sitemap lists pages the
crawl left out), questions about those pages answered badly, a crawl proposal naming them with the questions as
evidence, a signed ``proposal`` webhook, approval through the approval queue, the queued crawl run by a worker,
and the effect (scores before and after). No language model: answers are extractive."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from doc_fixtures import page_html
from evorag.tools.crawling import CrawlOptions, CrawlSummary, crawl_site
from evorag.tools.proposals import (
    Candidate,
    MissingFeature,
    WeakTopic,
    crawl_proposal,
    group_queries,
    missing_features_from_audit,
    weak_topics_from_answers,
)
from evorag.tools.webhooks import verify_signature
from sitefixtures import serve
from test_webhooks import Receiver, fast

from evorag.cli import main
from evorag.errors import NotFoundError
from evorag.service import CrawlRequest, Evorag

TLS_QUESTIONS = ("How do I configure TLS certificates for the widget server?",
                 "Which option sets the TLS certificate file of the widget server?")
RATE_QUESTION = "What is the default rate limit of widget requests per minute?"


def _write_site(root: Path) -> None:
    """Three linked pages, and two more that only the sitemap lists."""
    pages = {
        "index.html": ("Widgetlib", "<p>Widgetlib renders widgets. Read the installation and usage pages.</p>",
                       ("install.html", "usage.html")),
        "install.html": ("Installing widgetlib", ("<p>Install widgetlib with pip install widgetlib and import "
                         "widgetlib in your program.</p>"), ("index.html",)),
        "usage.html": ("Using widgetlib", "<p>Create a Widget and call render to draw it on the canvas.</p>",
                       ("index.html",)),
        "guide/tls-certificates.html": (
            "TLS certificates", ("<p>To configure TLS certificates for the widget server, set the option "
            "tls_cert_file to the path of the PEM certificate file and tls_key_file to its private key. The "
            "widget server then serves HTTPS with that TLS certificate.</p>"), ()),
        "guide/rate-limits.html": (
            "Rate limits", "<p>The default rate limit is 600 widget requests per minute per client.</p>", ()),
    }
    for path, (title, body, links) in pages.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page_html(title, body, links))
    (root / "sitemap.xml").write_text(
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<url><loc>{{BASE}}{path}</loc></url>" for path in pages) + "</urlset>")


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    _write_site(root)
    with serve(root) as server:
        sitemap = root / "sitemap.xml"
        sitemap.write_text(sitemap.read_text().replace("{BASE}", server.url("/")))
        yield server


def _partial_index(rag: Evorag, site) -> None:
    # Three pages fit the page limit; the rate-limits page is excluded by a pattern: the TLS page is left in
    # the sitemap past the limit.
    report = rag.crawl(CrawlRequest(url=site.url("/index.html"), source="widgets", max_pages=3, allow_private=True,
                                    exclude=("*rate-limits*",)))
    assert report.pages_indexed == 3


def test_the_crawler_remembers_the_pages_it_knew_but_did_not_visit(site) -> None:
    async def summary() -> CrawlSummary:
        options = CrawlOptions(max_pages=3, allow_private=True, exclude=["*rate-limits*"])
        events = [event async for event in crawl_site(site.url("/index.html"), options)]
        return events[-1].summary

    unvisited = {url: (reason, via) for url, reason, via in asyncio.run(summary()).unvisited}
    assert unvisited == {site.url("/guide/tls-certificates.html"): ("page limit", "sitemap"),
                         site.url("/guide/rate-limits.html"): ("excluded", "sitemap")}

    async def shallow() -> CrawlSummary:
        options = CrawlOptions(max_pages=10, max_depth=0, allow_private=True)
        return [event async for event in crawl_site(site.url("/index.html"), options)][-1].summary

    cut = {url: reason for url, reason, _ in asyncio.run(shallow()).unvisited}
    assert cut == {site.url("/install.html"): "depth limit", site.url("/usage.html"): "depth limit"}


def test_matching_is_by_shared_terms_and_explained() -> None:
    topic = WeakTopic("tls certif", TLS_QUESTIONS, impact=2.0)
    candidates = [Candidate("http://d.example/guide/tls-certificates.html", "sitemap", "docs", "page limit"),
                  Candidate("http://d.example/guide/rate-limits.html", "sitemap", "docs", "excluded"),
                  Candidate("https://tls.example.org/", "package docs", "unrelated-package")]
    proposal = crawl_proposal(topic, candidates)
    assert proposal is not None and proposal.urls == ["http://d.example/guide/tls-certificates.html"]
    assert proposal.reasons[0]["matched_terms"] == ["certif", "tls"] and proposal.evidence == list(TLS_QUESTIONS)
    assert crawl_proposal(WeakTopic("x", ("How do I render a widget?",)), candidates) is None
    # Package docs only for questions naming the package.
    named = crawl_proposal(WeakTopic("h", ("How do I set httpx timeouts?",)),
                           [Candidate("https://www.python-httpx.org/advanced/timeouts/", "package docs", "httpx")])
    assert named is not None and named.reasons[0]["origin"] == "package docs"
    # A word of a compound package name does not name the package.
    assert crawl_proposal(WeakTopic("t", ("What is the default job timeout?",)), [Candidate(
        "https://github.com/pytest-dev/pytest-timeout", "package docs", "pytest-timeout")]) is None
    assert group_queries([*TLS_QUESTIONS, RATE_QUESTION]) == [list(TLS_QUESTIONS), [RATE_QUESTION]]
    rows = [{"query": q, "model": "extractive", "overall": 0.2} for q in (*TLS_QUESTIONS, TLS_QUESTIONS[0])]
    topics = weak_topics_from_answers(rows + [{"query": "fine", "model": "gpt", "grounding": 0.9, "ndcg": 0.9}])
    assert [(t.queries, t.impact) for t in topics] == [(TLS_QUESTIONS, 2.4)]
    audit = [{"event": "candidate", "run_id": "a", "request": "convert widget files to PDF"},
             {"event": "rejected", "run_id": "a"},
             {"event": "candidate", "run_id": "b", "request": "convert widget files into PDF documents"},
             {"event": "rejected", "run_id": "b"},
             {"event": "candidate", "run_id": "c", "request": "count words"}, {"event": "deployed", "run_id": "c"}]
    assert missing_features_from_audit(audit) == [MissingFeature(
        "convert file pdf", ("convert widget files to PDF", "convert widget files into PDF documents"), 2.0)]


def test_weak_topic_becomes_an_approved_crawl_whose_effect_is_measured(site, evorag_home) -> None:
    with Receiver() as receiver, fast(Evorag(home=evorag_home, llm_provider="none", allow_private=True)) as rag:
        _, secret = rag.add_webhook(receiver.url, ["proposal"], allow_private=True)
        _partial_index(rag, site)
        for question in (*TLS_QUESTIONS, RATE_QUESTION, "How do I install widgetlib?"):
            rag.ask(question)
        made = rag.make_proposals(packages=False)
        # The usage analysis groups the questions by meaning; its evidence is newest first.
        by_topic = {frozenset(p.evidence): p for p in made}
        tls = by_topic[frozenset(TLS_QUESTIONS)]
        assert tls.kind == "crawl" and tls.urls == [site.url("/guide/tls-certificates.html")]
        assert tls.reasons[0]["origin"] == "sitemap" and tls.reasons[0]["reason"] == "page limit"
        rate = by_topic[frozenset({RATE_QUESTION})]
        assert rate.urls == [site.url("/guide/rate-limits.html")] and rate.reasons[0]["reason"] == "excluded"
        assert len(made) == 2  # the install question is answered from an indexed page: nothing to propose
        assert rag.make_proposals(packages=False) == []  # made once
        # ... and not again as part of another set of pages while it waits: a question touching both gaps would
        # name both pages, each already proposed.
        question = "What rate limit applies to widget requests and where is the TLS certificate file?"
        both = WeakTopic("rate and tls", (question,), 1.0)
        assert rag.make_proposals(topics=[both], features=[], packages=False) == []
        # Each proposal waits in the approval queue, and the webhook was told, signed.
        pending = {a.id: a for a in rag.pending_approvals()}
        assert tls.approval_id in pending and pending[tls.approval_id].risk == "MEDIUM"
        assert rag.parts.webhooks.flush(30)
        events = [json.loads(body) for _, body in receiver.requests]
        assert {e["data"]["proposal_id"] for e in events} == {tls.id, rate.id}
        for headers, body in receiver.requests:
            assert headers["X-Evorag-Event"] == "proposal"
            assert verify_signature(secret, headers["X-Evorag-Timestamp"], body, headers["X-Evorag-Signature"])

        # Rejected: never crawled, and not proposed again.
        rag.decide_approval(rate.approval_id, approve=False)
        assert rag.get_proposal(rate.id).status == "rejected" and rag.get_proposal(rate.id).request_id is None
        assert rag.make_proposals(packages=False) == []
        # ... not even next to another page.
        assert rag.make_proposals(topics=[both], features=[], packages=False) == []
        # Approved: a crawl request of origin "proposal" is queued; a worker runs it.
        rag.decide_approval(tls.approval_id, approve=True)
        approved = rag.get_proposal(tls.id)
        assert approved.status == "approved" and approved.request_id
        request = rag.queue_request(approved.request_id)
        assert (request.kind, request.origin, request.status) == ("proposal-crawl", "proposal", "queued")
        with rag.serve_in_background(workers=1):
            finished = asyncio.run(rag.wait_request(approved.request_id, 300))
        assert finished.status == "done", finished.error
        done = rag.get_proposal(tls.id)
        assert done.status == "done" and done.effect["crawled"][0]["pages"] == 1
        before, after = done.effect["mean_before"], done.effect["mean_after"]
        print(f"\ntopic {done.topic!r}: before {before} after {after}")
        assert after["overall"] > before["overall"]
        hits = rag.search("tls_cert_file PEM certificate", limit=1)
        assert hits[0].chunk.url == site.url("/guide/tls-certificates.html")
        assert all(r.subject != "widgets-rate" for r in rag.queue_requests())
        assert not [s for s in rag.sources() if s.name.startswith(f"proposal-{rate.id}")]


def test_tool_proposal_becomes_a_queued_evolution_request(evorag_home) -> None:
    with Evorag(home=evorag_home, llm_provider="none") as rag:
        feature = MissingFeature("convert pdf", ("convert widget files to PDF",) * 3, 3.0)
        [proposal] = rag.make_proposals(topics=[], features=[feature])
        assert proposal.kind == "tool" and "convert widget files to PDF" in proposal.request
        rag.decide_approval(proposal.approval_id, approve=True)
        request = rag.queue_request(rag.get_proposal(proposal.id).request_id)
        assert (request.kind, request.origin, request.status) == ("evolve", "proposal", "queued")
        assert request.payload["request"] == proposal.request
        assert request.priority > rag.submit_request("evolve", {"request": "x tool"}, origin="proposal").priority
        rag.cancel_request(request.id)
        cancelled = rag.get_proposal(proposal.id)
        assert cancelled.status == "failed" and "cancelled" in cancelled.error


def test_unknown_ids_and_the_cli(evorag_home, capsys) -> None:
    with Evorag(home=evorag_home, llm_provider="none") as rag:
        with pytest.raises(NotFoundError, match="no proposal 'nope'"):
            rag.get_proposal("nope")
        [proposal] = rag.make_proposals(topics=[], features=[MissingFeature("pdf", ("convert to PDF",), 1.0)])
    assert main(["proposals", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in listed] == [proposal.id] and listed[0]["status"] == "proposed"
    assert main(["proposals", "show", proposal.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evidence"] == ["convert to PDF"]
    assert main(["proposals", "show", "nope"]) == 2
    assert "no proposal 'nope'" in capsys.readouterr().err
    assert main(["proposals", "make", "--json", "--no-packages"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_mcp_readers_list_proposals(evorag_home) -> None:
    from mcp.shared.memory import create_connected_server_and_client_session

    from evorag.mcp_server import build_server
    from evorag.principals import Principal, Role

    async def listed(rag: Evorag, arguments: dict) -> dict:
        server = build_server(rag, principal=Principal("rita", Role.READER, via="mcp"))
        try:
            async with create_connected_server_and_client_session(server) as client:
                result = await client.call_tool("list_proposals", arguments)
                return {"error": result.isError, "content": result.structuredContent,
                        "text": result.content[0].text if result.content else ""}
        finally:
            await server.aclose()

    with Evorag(home=evorag_home, llm_provider="none") as rag:
        [proposal] = rag.make_proposals(topics=[], features=[MissingFeature("pdf", ("convert to PDF",), 1.0)])
        result = asyncio.run(listed(rag, {}))
        assert not result["error"]
        assert [(p["id"], p["kind"], p["evidence"]) for p in result["content"]["proposals"]] == [
            (proposal.id, "tool", ["convert to PDF"])]
        assert asyncio.run(listed(rag, {"status": "done"}))["content"]["proposals"] == []
        assert asyncio.run(listed(rag, {"status": "bogus"}))["error"]


def test_an_unanswered_proposal_expires_and_is_made_again_while_a_rejected_one_is_not(evorag_home) -> None:
    pdf = MissingFeature("convert pdf", ("convert widget files to PDF",), 1.0)
    svg = MissingFeature("render svg", ("render widgets as SVG",), 1.0)
    with Evorag(home=evorag_home, llm_provider="none") as rag:
        # Made by a periodic task at any hour, a proposal waits a week for a person (not an evolution's hour).
        [waiting] = rag.make_proposals(topics=[], features=[pdf])
        [approval] = [a for a in rag.pending_approvals() if a.id == waiting.approval_id]
        assert approval.expires_at - approval.created_at == pytest.approx(7 * 86_400)
        rag.decide_approval(waiting.approval_id, approve=False, reason="not wanted")
        assert rag.get_proposal(waiting.id).status == "rejected"
    with Evorag(home=evorag_home, llm_provider="none", proposal_timeout=0.2) as rag:
        [unanswered] = rag.make_proposals(topics=[], features=[pdf, svg])  # the rejected one is not made again
        assert unanswered.topic == "render svg"
        time.sleep(0.4)
        assert rag.get_proposal(unanswered.id).status == "expired"  # nobody decided: not "rejected"
        assert [p.id for p in rag.list_proposals(status="expired")] == [unanswered.id]
        # A later analysis that still finds it proposes it again; the expired one stays listed.
        [again] = rag.make_proposals(topics=[], features=[pdf, svg])
        assert again.topic == "render svg" and again.id != unanswered.id and again.status == "proposed"
        assert {p.id: p.status for p in rag.list_proposals()} == {
            waiting.id: "rejected", unanswered.id: "expired", again.id: "proposed"}
        assert rag.make_proposals(topics=[], features=[pdf, svg]) == []  # pending: not made twice
