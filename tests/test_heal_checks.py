"""The checks healing runs: answer quality from the metrics trend, sources whose pages vanished (with the URL
guard's allow_private), the index alias and the embedder setting, deployed tools through recorded examples."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import shutil
import threading

from evorag.teams._heal_checks import (
    answer_quality_check,
    index_checks,
    source_checks,
    tool_example_problems,
)
from evorag.tools.approvals import TerminalApprover
from evorag.tools.catalog import Catalog, PageRecord
from evorag.tools.metrics_store import MetricsStore
from evorag.tools.plugins._manifest import ToolManifest

from evorag.demo import DEMO_SITE
from evorag.errors import ExternalError, UserError
from evorag.service import CrawlRequest, Evorag
from evorag.settings import Settings


def _settings(tmp_path, **overrides) -> Settings:
    return Settings(home=tmp_path / "home", **overrides)


def _record(settings, scores) -> None:
    store = MetricsStore(settings.metrics_path)
    for score in scores:
        store.record({"overall": score}, query="q")


def test_a_drop_in_answer_quality_is_a_finding_with_a_re_crawl(tmp_path):
    settings = _settings(tmp_path)
    assert answer_quality_check(settings).ok  # nothing recorded yet
    _record(settings, [0.8, 0.82, 0.79, 0.81, 0.8, 0.5, 0.45, 0.4, 0.42, 0.41])
    check = answer_quality_check(settings)
    assert not check.ok and check.fix_kind == "re-crawl" and "declining" in check.detail


def test_steady_answer_quality_passes(tmp_path):
    settings = _settings(tmp_path)
    _record(settings, [0.8, 0.82, 0.79, 0.81, 0.8, 0.8, 0.79, 0.82, 0.8, 0.81])
    assert answer_quality_check(settings).ok


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def _site(directory):
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _crawled(settings, base, names) -> None:
    catalog = Catalog(settings.catalog_path)
    try:
        catalog.upsert_source("docs", base + "index.html", {})
        urls = [base + name for name in names]
        catalog.begin_pages("docs", [(url, "h") for url in urls])
        catalog.commit_pages([PageRecord(url, "docs", "t", "h", None, None, None, 1.0, 1) for url in urls])
    finally:
        catalog.close()


def test_vanished_pages_are_found_only_where_the_url_guard_allows(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>home</p>")
    with _site(site) as base:
        settings = _settings(tmp_path, allow_private=True)
        _crawled(settings, base, ["index.html", "a.html", "b.html"])  # a and b are gone
        [check] = source_checks(settings)
        assert not check.ok and check.fix_kind == "re-crawl"
        assert check.fix == f"evorag crawl {base}index.html --source docs" and "2 of 3" in check.detail
        # Without allow_private a loopback address is never fetched: no evidence, no finding.
        [refused] = source_checks(_settings(tmp_path, allow_private=False))
        assert refused.ok and refused.detail.startswith("not checked")
        (site / "a.html").write_text("back")
        (site / "b.html").write_text("back")
        assert source_checks(settings)[0].ok


class _Store:
    alias = "evorag"

    def __init__(self, collections):
        self._collections = collections

    def collections(self):
        return self._collections


def _collection(name, model, points, active):
    return {"collection": name, "model": model, "dim": 384, "points": points, "active": active}


def test_an_alias_on_an_empty_collection_and_a_wrong_embedder_are_findings(tmp_path):
    settings = _settings(tmp_path)  # the local embedder: all-MiniLM-L6-v2
    good = _collection("evorag-minilm", "all-MiniLM-L6-v2", 120, False)
    checks = {c.name: c for c in index_checks(settings, _Store([good, _collection("evorag-x", "x", 0, True)]))}
    assert not checks["index_alias"].ok and checks["index_alias"].fix == "point the alias at evorag-minilm"
    assert checks["embedder_setting"].ok  # the filled collection is the settings' model

    onnx = _settings(tmp_path, embedder="onnx")
    checks = {c.name: c for c in index_checks(onnx, _Store([{**good, "active": True}]))}
    assert checks["index_alias"].ok
    assert not checks["embedder_setting"].ok and checks["embedder_setting"].fix.startswith("set EVORAG_EMBEDDER=local")
    assert [c.ok for c in index_checks(settings, _Store([]))] == [True]  # no index yet


class _Registry:
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def call(self, name, arguments):
        self.calls.append(arguments)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _manifest(examples):
    return ToolManifest(name="word_count", description="", risk="LOW", examples=examples,
                        parameters_schema={"type": "object", "properties": {"text": {"type": "string"}},
                                           "required": ["text"]})


def test_a_recorded_example_whose_output_changed_is_a_problem():
    examples = [{"arguments": {"text": "well-known tools"}, "result": 2}]
    assert tool_example_problems(_Registry(2), _manifest(examples)) == []
    [problem] = tool_example_problems(_Registry(3), _manifest(examples))
    assert "returned 3, recorded 2" in problem


def test_a_tool_without_examples_must_at_least_run():
    registry = _Registry(UserError("tool word_count raised ValueError: no"))
    assert tool_example_problems(registry, _manifest([])) == []  # it ran and refused: an answer
    assert registry.calls == [{"text": "example"}]
    [problem] = tool_example_problems(_Registry(ExternalError("tool word_count failed in the sandbox: boom")),
                                      _manifest([]))
    assert "could not run" in problem


def test_heal_re_crawls_a_source_whose_pages_vanished_after_approval(tmp_path):
    """Through the service: the description names the source, the check finds the pages gone, the approved
    re-crawl removes them, the check passes again."""
    site = tmp_path / "site"
    shutil.copytree(DEMO_SITE, site)
    (site / "sitemap.xml").unlink()
    with _site(site) as base, Evorag(home=tmp_path / "home", allow_private=True, llm_provider="none") as rag:
        assert rag.crawl(CrawlRequest(url=base + "index.html", source="demo")).pages_indexed == 5
        for page in ("configuration.html", "crawling.html", "faq.html", "search.html"):
            (site / page).unlink()
        approver = TerminalApprover(ask=lambda prompt: "y", show=lambda text: None)
        report = asyncio.run(rag.aheal("the demo pages are gone", approver=approver))
        assert report.about[0].label() == "source demo"
        [failing] = [c for c in report.before if not c.ok]
        assert failing.name == "source:demo" and "4 of 5" in failing.detail and failing.fix_kind == "re-crawl"
        action = report.actions[0]
        assert action["action"] == "re-crawl" and action["status"] == "done" and action["pages_removed"] == 4
        assert report.healed, report.to_dict()
        assert rag.source_pages("demo") == [base + "index.html"]
