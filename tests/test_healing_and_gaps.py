"""Self-healing through the gates, and knowledge gaps turned into approved crawls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from evorag.agents.model_clients import replay_client
from evorag.tools.approvals import PolicyApprover, TerminalApprover

from evorag.cli import main
from evorag.service import Evorag

CANDIDATES = Path(__file__).parent / "candidates"
GOOD_TOOL = (CANDIDATES / "good_word_count" / "tool.py").read_text()


@pytest.fixture
def rag(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as service:
        yield service


def _break_deployed_tool(rag) -> None:
    """A bad change lands in the tool repository (e.g. by hand): the tool no longer passes its tests."""
    repository = rag.evolution.repository
    path = repository.tools_dir / "word_count" / "tool.py"
    path.write_text(GOOD_TOOL.replace("return len(", "return 1 + len("))
    repository.repo.git.add("-A")
    repository.repo.index.commit("manual edit that broke word_count")
    rag.registry.refresh()


def test_a_failing_tool_is_diagnosed_and_repaired_through_the_gates(rag):
    assert rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=True)).status == "deployed"
    _break_deployed_tool(rag)
    failing = [c for c in asyncio.run(rag.ahealth_checks()) if not c.ok]
    assert [c.name for c in failing] == ["tool:word_count"]

    fix = f"The function adds 1 to the count.\n\n```python tool.py\n{GOOD_TOOL}```"
    report = asyncio.run(rag.aheal("word counts are off by one", approver=PolicyApprover(assume_yes=True),
                                   model_client=replay_client([fix])))
    assert report.healed, report.to_dict()
    assert "adds 1" in report.diagnosis[0]
    action = report.actions[0]
    assert action["action"] == "repair" and action["status"] == "deployed" and action["version"]
    assert rag.registry.call("word_count", {"text": "a b c"}) == 3


def test_a_useless_fix_is_stopped_by_the_gates_and_nothing_changes(rag):
    rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=True))
    _break_deployed_tool(rag)
    head = rag.evolution.repository.current().id
    bad_fix = "Maybe this.\n\n```python tool.py\ndef word_count(text: str) -> int\n    pass\n```"
    report = asyncio.run(rag.aheal("broken", approver=PolicyApprover(assume_yes=True),
                                   model_client=replay_client([bad_fix])))
    assert not report.healed
    assert report.actions[0]["status"] == "rejected" and report.actions[0]["gate"] == "code"
    assert rag.evolution.repository.current().id == head


def test_interrupted_writes_are_healed_without_a_model(rag):
    rag.catalog.upsert_source("docs", "http://d/", {})
    rag.catalog.begin_pages("docs", [("http://d/a", "h1")])  # a crawl killed mid-write
    report = asyncio.run(rag.aheal("after a crash", approver=PolicyApprover(assume_yes=False)))
    assert [c.name for c in report.before if not c.ok] == ["index_consistency"]
    assert report.healed and report.actions[0]["pages"] == 1


def test_cli_heal_reports_json(monkeypatch, capsys):
    assert main(["heal", "routine", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["healed"] is True and {c["name"] for c in data["before"]} >= {"catalog_database", "sandbox"}
    assert data["about"] == [] and {c["name"] for c in data["before"]} >= {"index_alias", "answer_quality"}


def test_weak_answers_become_crawl_proposals_and_are_crawled_after_approval(demo_home, tmp_path, monkeypatch):
    from evorag.demo import serve_demo_site

    # No language model: answers are extractive.
    with serve_demo_site(0) as other_site, Evorag(home=tmp_path / "gaps", allow_private=True,
                                                  llm_provider="none") as rag:
        # The index knows a page that links to documentation it has not crawled.
        rag.catalog.upsert_source("seed", None, {})
        rag.catalog.finish_crawl("seed", {}, [other_site + "configuration.html", "https://unrelated.example/x"])
        answer = rag.ask("Which configuration sets the Qdrant server URL?")
        assert answer.citations == [] and answer.report_id  # nothing indexed yet: weak, and recorded
        proposals = rag.find_gaps(threshold=0.9)
        assert proposals and proposals[0].url == other_site + "configuration.html"
        # A proposed crawl is MEDIUM risk: the policy (--yes) leaves it pending for an approver ...
        pending = asyncio.run(rag.afill_gaps(proposals[:1], approver=PolicyApprover(assume_yes=True), max_pages=5))
        assert pending.crawled[0]["status"] == "pending" and not pending.after
        # ... and an approver answering at the terminal (here the Python API's caller, the home's admin) crawls it.
        approver = TerminalApprover(ask=lambda prompt: "y", show=lambda text: None)
        report = asyncio.run(rag.afill_gaps(proposals[:1], approver=approver, max_pages=5))
        assert report.crawled[0]["status"] == "crawled" and report.crawled[0]["pages"] >= 1
        query = proposals[0].queries[0]
        assert report.after[query]["grounding"] is not None
        assert rag.search("Qdrant server URL", limit=1)[0].chunk.url.startswith(other_site)


def test_heal_listens_to_the_description_and_checks_the_tool_through_its_recorded_example(rag, tmp_path):
    """A change its tests do not catch: the recorded example shows it, and the description names the tool."""
    with_example = GOOD_TOOL.replace("_WORD = re.compile", 'EXAMPLES = [{"text": "well-known tools"}]\n\n_WORD = '
                                     "re.compile", 1)
    candidate = tmp_path / "word_count"
    candidate.mkdir()
    (candidate / "tool.py").write_text(with_example)
    (candidate / "test_word_count.py").write_text((CANDIDATES / "good_word_count" / "test_word_count.py").read_text())
    assert rag.add_tool(candidate, approver=PolicyApprover(assume_yes=True)).status == "deployed"
    assert rag.registry.get("word_count").examples[0]["result"] == 2
    repository = rag.evolution.repository
    (repository.tools_dir / "word_count" / "tool.py").write_text(with_example.replace("['’-]", "['’]"))
    repository.repo.git.add("-A")
    repository.repo.index.commit("manual edit: hyphenated words split")
    rag.registry.refresh()

    fix = f"Hyphens no longer join words.\n\n```python tool.py\n{with_example}```"
    report = asyncio.run(rag.aheal("word_count splits well-known into two words",
                                   approver=PolicyApprover(assume_yes=True), model_client=replay_client([fix])))
    assert [t.label() for t in report.about][:1] == ["tool word_count"]
    [failing] = [c for c in report.before if not c.ok]
    assert failing.name == "tool:word_count" and "returned 3, recorded 2" in failing.detail
    assert report.healed and report.actions[0]["status"] == "deployed", report.to_dict()
    assert rag.registry.call("word_count", {"text": "well-known tools"}) == 2



# --- a repaired tool whose deployed version has no tests (a home from before every deploy needed them) ----------

WORD_COUNT_TESTS = (CANDIDATES / "good_word_count" / "test_word_count.py").read_text()
WITH_EXAMPLE = GOOD_TOOL.replace("_WORD = re.compile", 'EXAMPLES = [{"text": "well-known tools"}]\n\n_WORD = '
                                 "re.compile", 1)


def _deploy_then_drop_tests_and_break(home: Path, tmp_path: Path) -> None:
    """``word_count`` deployed with a recorded example, then a commit removes its tests and splits hyphenated
    words: the example fails, and the tool has no tests for a repair to keep."""
    candidate = tmp_path / "word_count"
    candidate.mkdir()
    (candidate / "tool.py").write_text(WITH_EXAMPLE)
    (candidate / "test_word_count.py").write_text(WORD_COUNT_TESTS)
    with Evorag(home=home, evolutions_per_hour=100) as rag:
        assert rag.add_tool(candidate, approver=PolicyApprover(assume_yes=True)).status == "deployed"
        repository = rag.evolution.repository
        (repository.tools_dir / "word_count" / "test_word_count.py").unlink()
        (repository.tools_dir / "word_count" / "tool.py").write_text(WITH_EXAMPLE.replace("['’-]", "['’]"))
        repository.repo.git.add("-A")
        repository.repo.index.commit("manual edit: tests removed, hyphenated words split")


def test_a_repaired_tool_without_tests_gets_them_from_the_healing_model(tmp_path):
    home = tmp_path / "home"
    _deploy_then_drop_tests_and_break(home, tmp_path)
    fix = f"Hyphens no longer join words.\n\n```python tool.py\n{WITH_EXAMPLE}```"
    tests = f"```python test_word_count.py\n{WORD_COUNT_TESTS}```"
    with Evorag(home=home, evolutions_per_hour=100) as rag:
        report = asyncio.run(rag.aheal("word_count splits well-known into two words",
                                       approver=PolicyApprover(assume_yes=True),
                                       model_client=replay_client([fix, tests])))
        assert report.healed and report.actions[0]["status"] == "deployed", report.to_dict()
        assert rag.registry.call("word_count", {"text": "well-known tools"}) == 2
        # The written tests are committed with the repaired tool.
        repository = rag.evolution.repository
        assert "tools/word_count/test_word_count.py" in repository.repo.git.ls_files().splitlines()
        assert (repository.tools_dir / "word_count" / "test_word_count.py").read_text().strip() == \
            WORD_COUNT_TESTS.strip()
        written = [e for e in rag.evolution.audit.entries() if e["event"] == "tests_written"]
        assert [e["files"] for e in written] == [["test_word_count.py"]]


def test_healing_an_untested_tool_without_a_model_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    _deploy_then_drop_tests_and_break(home, tmp_path)
    monkeypatch.setenv("EVORAG_HOME", str(home))
    monkeypatch.setenv("EVORAG_LLM_PROVIDER", "none")
    assert main(["heal", "word_count splits well-known into two words", "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the events printed as heal went, then the error
    [error] = [line for line in err if line.startswith("error:")]
    assert error == "error: no language model for the agents: llm_provider is none", err
    assert "EVORAG_LLM_PROVIDER" in err[err.index(error) + 1]  # its hint names the setting
    with Evorag(home=home) as rag:
        finished = [e for e in rag.evolution.audit.entries() if e["event"] == "healing_finished"]
        assert [(e["healed"], e["status"]) for e in finished] == [(False, "no_model")]
        assert "llm_provider is none" in finished[0]["reason"]
        tool = rag.evolution.repository.tools_dir / "word_count"
        assert "['’]" in (tool / "tool.py").read_text() and not (tool / "test_word_count.py").exists()
