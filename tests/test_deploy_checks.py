"""What runs around a deploy: the coverage of the candidate's own tests (tests gate), the plugin regression
suite before the deploy, the examples recorded in the sandbox, and their call through the live registry after it.

Everything is real (the bubblewrap sandbox, pip, git, the plugin repository); the package index is a wheel
house built here from one tiny project (``tinywords`` 0.5), served with ``--no-index --find-links``.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from wheel_house import build_wheels, pip_sees_only, tiny_project, write_candidate

from evorag.mcp_server import build_server
from evorag.principals import Principal, Role
from evorag.service import Evorag, PolicyApprover
from evorag.ui import render_tools

CANDIDATES = Path(__file__).parent / "candidates"
PERSON = Principal("ada", Role.APPROVER, via="ui", human=True)  # an approver logged in to the UI

SPELL_TOOL = '''
"""Spell small numbers."""

import tinywords


def spell_number(n: int) -> str:
    """Spell ``n`` (0 to 2) in English words."""
    if n < 0 or n > 2:
        raise ValueError("only 0 to 2")
    return tinywords.words(n)
'''
SPELL_TEST = '''
from tool import spell_number


def test_spells_two():
    assert spell_number(2) == "two"
'''


@pytest.fixture(scope="module")
def house(tmp_path_factory) -> Path:
    """A wheel of tinywords 0.5 (no dependencies)."""
    house = tmp_path_factory.mktemp("house")
    build_wheels([tiny_project(tmp_path_factory.mktemp("project"), "tinywords", "0.5", [])], house)
    return house


@pytest.fixture
def index(house, monkeypatch) -> Path:
    """pip (run by the gates in this process) sees the wheel house only."""
    return pip_sees_only(house, monkeypatch)


# --- the plugin regression suite -------------------------------------------------------------------------------


def test_a_deploy_is_refused_when_a_deployed_tools_tests_fail_after_environment_drift(index, tmp_path):
    with Evorag(home=tmp_path / "home", dependency_allowlist=["tinywords"], evolutions_per_hour=100) as rag:
        spell = write_candidate(tmp_path, "spell_number", {"tool.py": SPELL_TOOL, "test_tool.py": SPELL_TEST,
                                                           "requirements.txt": "tinywords>=0.5\n"})
        pending = rag.add_tool(spell, approver=PolicyApprover(assume_yes=True))
        assert pending.status == "pending", pending.reason  # a new dependency: a person approves it
        deployed = rag.decide_approval(pending.approval_id, approve=True, principal=PERSON)
        assert deployed.status == "deployed", deployed.reason
        suite = next(v for v in deployed.verdicts if v.gate == "deployed_tests")
        assert suite.ok and suite.details["ran"] == []  # nothing was deployed before it

        # With the tool set healthy, the next deploy re-runs spell_number's tests first and goes through.
        word_count = rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=True))
        assert word_count.status == "deployed", word_count.reason
        suite = next(v for v in word_count.verdicts if v.gate == "deployed_tests")
        assert suite.ok and suite.details["ran"] == ["spell_number"]
        rag.rollback(rag.versions()[-2].id)

        # Drift: the shared, content-addressed environment of spell_number changed after its install (an
        # operator's pip run, a disk fault). Its tests now fail, and the next deploy is refused, naming both.
        lock = (rag.evolution.repository.tools_dir / "spell_number" / "requirements.lock").read_text()
        module = rag.evolution.environments.site(lock) / "tinywords" / "__init__.py"
        module.chmod(0o644)
        module.write_text("def words(n):\n    return ['zero', 'one', 'TWO'][n]\n")
        module.chmod(0o444)
        before = rag.evolution.repository.current().id
        refused = rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=True))
        assert (refused.status, refused.gate) == ("rejected", "deployed_tests"), refused.reason
        assert "deployed tool spell_number fails its tests" in refused.reason
        assert "test_tool.py::test_spells_two" in refused.reason and "AssertionError" in refused.reason
        assert rag.evolution.repository.current().id == before  # nothing was deployed
        assert "word_count" not in [m.name for m in rag.registry.tools()]


# --- examples recorded in the sandbox, and the call through the live registry after the deploy ------------------

ECHO_TOOL = '''
"""Join words."""


def join_words(words: list[str], separator: str = " ") -> str:
    """Join ``words`` with ``separator``.

    >>> join_words(["one", "two"], separator="+")
    """
    return separator.join(words)
'''
ECHO_TEST = '''
from tool import join_words


def test_joins():
    assert join_words(["a", "b"]) == "a b"
'''
# Its output differs from one call to the next: the output recorded at deploy cannot come back live.
TICKET_TOOL = '''
"""Issue tickets."""

import random


def issue_ticket(owner: str) -> str:
    """A new ticket id for ``owner``."""
    return f"{owner}-{random.randrange(10**12)}"
'''
TICKET_TEST = '''
from tool import issue_ticket


def test_ticket_names_its_owner():
    assert issue_ticket("ada").startswith("ada-")
'''


@pytest.fixture(scope="module")
def rag(tmp_path_factory):
    with Evorag(home=tmp_path_factory.mktemp("deploy-checks-home"), evolutions_per_hour=1000) as service:
        yield service


def test_examples_are_recorded_in_the_sandbox_and_shown_in_docs_and_mcp(rag, tmp_path):
    tool = write_candidate(tmp_path, "join_words", {"tool.py": ECHO_TOOL, "test_tool.py": ECHO_TEST})
    outcome = rag.add_tool(tool, approver=PolicyApprover(assume_yes=True))
    assert outcome.status == "deployed", outcome.reason
    gates = [v.gate for v in outcome.verdicts]
    assert gates[-3:] == ["deployed_tests", "examples", "smoke"] and all(v.ok for v in outcome.verdicts)
    manifest = rag.registry.get("join_words")
    # The docstring's doctest call, positional and keyword arguments mapped to the schema, output from the sandbox.
    assert manifest.examples == [{"arguments": {"words": ["one", "two"], "separator": "+"}, "result": "one+two",
                                  "source": "docstring"}]
    docs = rag.tool_docs()
    shown = '{"separator": "+", "words": ["one", "two"]} -> "one+two"'  # the manifest keeps keys sorted
    assert f"Example (recorded in the sandbox, untrusted data): {shown}" in docs

    async def listed_description() -> str:
        server = build_server(rag, principal=Principal("ada", Role.APPROVER, via="mcp"))
        try:
            async with create_connected_server_and_client_session(server) as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
        finally:
            await server.aclose()
        return tools["join_words"].description

    description = anyio.run(listed_description)
    assert description.endswith(f"Example recorded in the sandbox (untrusted data): {shown}")
    cell = r'{"separator": "+", "words": \["one", "two"\]} -\> "one+two"'  # a Markdown table cell, escaped
    assert render_tools(rag.tools()).splitlines()[-1].endswith(f"| {cell} |")  # the UI's tools table
    rag.rollback(rag.versions()[-2].id)


def test_a_declared_example_that_fails_refuses_the_deploy(rag, tmp_path):
    source = ECHO_TOOL.replace('"""Join words."""', '"""Join words."""\n\nEXAMPLES = [{"words": "not a list"}]')
    tool = write_candidate(tmp_path, "join_words", {"tool.py": source, "test_tool.py": ECHO_TEST})
    before = rag.evolution.repository.current().id
    outcome = rag.add_tool(tool, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.gate) == ("rejected", "examples"), outcome.reason
    assert '{"words": "not a list"} (EXAMPLES) fails' in outcome.reason and "is not of type 'array'" in outcome.reason
    assert rag.evolution.repository.current().id == before


def test_a_tool_whose_live_call_differs_from_its_recorded_example_is_rolled_back(rag, tmp_path):
    before = rag.evolution.repository.current()
    tool = write_candidate(tmp_path, "issue_ticket", {"tool.py": TICKET_TOOL, "test_tool.py": TICKET_TEST})
    outcome = rag.add_tool(tool, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.gate) == ("rejected", "smoke"), outcome.reason
    assert outcome.reason.startswith('rolled back: issue_ticket({"owner": "example"}) through the live registry '
                                     "returned \"example-")
    assert "not the output recorded in the sandbox" in outcome.reason and before.id in outcome.reason
    assert outcome.version_id is None
    assert "issue_ticket" not in [m.name for m in rag.registry.tools()]  # the live registry no longer has it
    assert rag.evolution.repository.current().tools == before.tools
    events = [e["event"] for e in rag.evolution.audit.entries()]
    assert events[-2:] == ["gate", "rolled_back"] and "deployed" in events


# --- coverage of tool.py by the candidate's own tests, measured in the sandbox ---------------------------------

# Its one test runs 3 of its 6 statements (docstrings are none): lines 9-11, "upper" and "title", never run.
SHOUT_TOOL = '''
"""Change the case of a text."""


def change_case(text: str, mode: str = "lower") -> str:
    """``text`` in lower, upper or title case."""
    if mode == "lower":
        return text.lower()
    if mode == "upper":
        return text.upper()
    return text.title()
'''
SHOUT_TEST = '''
from tool import change_case


def test_lower():
    assert change_case("AbC") == "abc"
'''


def test_a_fully_covered_candidate_reports_its_coverage(rag):
    outcome = rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=True))
    assert outcome.status == "deployed", outcome.reason
    tests = next(v for v in outcome.verdicts if v.gate == "tests")
    assert tests.details["coverage"] == 100.0
    assert "coverage of tool.py by its own tests: 100.0%" in tests.details["output"]
    rag.rollback(rag.versions()[-2].id)


def test_a_candidate_below_the_minimum_coverage_is_refused(rag, tmp_path, monkeypatch):
    tool = write_candidate(tmp_path, "change_case", {"tool.py": SHOUT_TOOL, "test_tool.py": SHOUT_TEST})
    outcome = rag.add_tool(tool, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.gate) == ("rejected", "tests"), outcome.reason
    assert outcome.reason == ("its own tests cover 50.0% of tool.py's 6 statements, below the minimum of 80% "
                              "(EVORAG_MIN_COVERAGE); lines not run: 9, 10, 11"), outcome.reason
    assert next(v for v in outcome.verdicts if v.gate == "tests").details["coverage"] == 50.0
    # The minimum is a setting (EVORAG_MIN_COVERAGE): at 50% the same candidate passes and deploys.
    monkeypatch.setattr(rag.evolution, "min_coverage", 50.0)
    outcome = rag.add_tool(tool, approver=PolicyApprover(assume_yes=True))
    assert outcome.status == "deployed", outcome.reason
    rag.rollback(rag.versions()[-2].id)


def test_the_minimum_coverage_setting_reads_evorag_min_coverage(monkeypatch):
    from evorag.settings import Settings

    monkeypatch.setenv("EVORAG_MIN_COVERAGE", "65")
    assert Settings().min_coverage == 65.0
    monkeypatch.setenv("EVORAG_MIN_COVERAGE", "120")
    with pytest.raises(Exception, match="min_coverage"):
        Settings()


def test_a_coverage_file_forged_by_the_tests_gives_no_figure(tmp_path):
    """A test that writes a coverage data file where the runner collects them is HIGH risk (it writes outside
    its temporary directory); approved anyway, the runner finds two data files and the gate fails closed."""
    tool = write_candidate(tmp_path, "word_count", {
        "tool.py": (CANDIDATES / "good_word_count" / "tool.py").read_text(),
        "test_forge.py": FORGER_TEST})
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as rag:
        pending = rag.add_tool(tool, approver=PolicyApprover(assume_yes=True))
        assert (pending.status, pending.risk) == ("pending", "HIGH"), pending.reason
        outcome = rag.decide_approval(pending.approval_id, approve=True, principal=PERSON)
        assert (outcome.status, outcome.gate) == ("rejected", "tests"), outcome.reason
        assert outcome.reason == ("the coverage of tool.py could not be measured: more than one coverage data "
                                  "file"), outcome.reason
        assert "word_count" not in [m.name for m in rag.registry.tools()]


FORGER_TEST = '''
import glob

from tool import word_count


def test_counts_and_forges_a_coverage_file():
    for folder in glob.glob("/tmp/evorag-results-*"):
        with open(folder + "/.coverage.forged", "w") as handle:
            handle.write("forged")
    assert word_count("one two") == 2
'''
