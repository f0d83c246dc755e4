"""No deploy without tests: a candidate that brings none gets them from the team's model (the Integration Tester),
judged by the same gates as hand-written tests, or it is refused.

Everything is real (the sandbox, coverage.py, git, the plugin repository, the CLI); only the model is replayed
(AutoGen's ReplayChatCompletionClient through ``replay_client``), recording every prompt it was sent.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from evorag.agents.model_clients import replay_client
from evorag.tools.approvals import PolicyApprover
from evorag.tools.test_writing import NO_TESTS_NO_MODEL

from evorag.cli import main
from evorag.errors import ConfigError
from evorag.service import Evorag

# Six statements (docstrings are none): lower, upper and title case each need a test to be covered.
TOOL = '''"""Change the case of a text."""


def change_case(text: str, mode: str = "lower") -> str:
    """``text`` in lower, upper or title case (any other mode)."""
    if mode == "lower":
        return text.lower()
    if mode == "upper":
        return text.upper()
    return text.title()
'''
GOOD_TESTS = '''Here are the tests.

```python test_change_case.py
from tool import change_case


def test_lower():
    assert change_case("AbC") == "abc"


def test_upper():
    assert change_case("AbC", mode="upper") == "ABC"


def test_title():
    assert change_case("ab cd", mode="title") == "Ab Cd"
```
'''
WRONG_TESTS = GOOD_TESTS.replace('mode="upper") == "ABC"', 'mode="upper") == "abc"')
THIN_TESTS = '''```python test_change_case.py
from tool import change_case


def test_lower():
    assert change_case("AbC") == "abc"
```
'''
# A test that reaches pytest's internals could report its own failure as a pass.
HOSTILE_TESTS = '''```python test_change_case.py
import _pytest.runner

from tool import change_case


def test_lower():
    assert change_case("AbC") == "abc"
```
'''


def recording_client(script):
    """A replayed model that also keeps every prompt it was sent."""

    class Recording(type(replay_client(script))):
        async def create(self, messages, **kwargs):
            self.prompts.append("\n".join(str(getattr(m, "content", "")) for m in messages))
            return await super().create(messages, **kwargs)

    client = Recording(script)
    client.prompts = []
    return client


def untested(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tool.py").write_text(TOOL)
    return root


def add(rag: Evorag, path: Path):
    return rag.add_tool(path, approver=PolicyApprover(assume_yes=True))


def test_an_untested_candidate_gets_tests_from_the_model_and_deploys_with_them(tmp_path):
    client = recording_client([GOOD_TESTS])
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100, model_client=client) as rag:
        outcome = add(rag, untested(tmp_path / "change_case"))
        assert outcome.status == "deployed", outcome.reason
        tests = next(v for v in outcome.verdicts if v.gate == "tests")
        assert tests.details["written_tests"] == ["test_change_case.py"] and tests.details["rounds"] == 1
        assert tests.details["coverage"] == 100.0
        assert rag.registry.get("change_case").coverage == 100.0  # the manifest keeps the figure
        # The written tests are committed with the tool, like hand-written ones.
        repository = rag.evolution.repository
        assert "tools/change_case/test_change_case.py" in repository.repo.git.ls_files().splitlines()
        assert "def test_title" in (repository.tools_dir / "change_case" / "test_change_case.py").read_text()
        written = [e for e in rag.evolution.audit.entries() if e["event"] == "tests_written"]
        assert [(e["files"], e["rounds"], e["coverage"]) for e in written] == [(["test_change_case.py"], 1, 100.0)]
    # The tool's source reached the model as data between fences it cannot close (a random marker).
    [prompt] = client.prompts
    marker = prompt.split(" BEGIN tool.py", 1)[0].rsplit("\n", 1)[-1]
    assert marker.startswith("DATA-") and len(marker) == len("DATA-") + 16
    assert f"{marker} BEGIN tool.py\n{TOOL}\n{marker} END tool.py" in prompt
    assert f"{marker} BEGIN signature\nchange_case(text: str, mode: str = 'lower') -> str\n" in prompt
    assert "never instructions" in prompt


def test_tests_that_fail_go_back_to_the_model_with_the_failure_until_they_pass(tmp_path):
    client = recording_client([WRONG_TESTS, GOOD_TESTS])
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100, model_client=client) as rag:
        outcome = add(rag, untested(tmp_path / "change_case"))
        assert outcome.status == "deployed", outcome.reason
        tests = next(v for v in outcome.verdicts if v.gate == "tests")
        assert (tests.details["rounds"], tests.details["coverage"]) == (2, 100.0)
        deployed = rag.evolution.repository.tools_dir / "change_case" / "test_change_case.py"
        assert deployed.read_text() == GOOD_TESTS.split("```python test_change_case.py\n")[1].split("```")[0]
    second = client.prompts[1]
    assert "FAILED test_change_case.py::test_upper" in second  # the failing run ...
    assert "(your previous draft)" in second and 'mode="upper") == "abc"' in second  # ... and the draft it judged


def test_tests_that_cover_too_little_are_refused_naming_the_coverage(tmp_path):
    client = recording_client([THIN_TESTS, THIN_TESTS])
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100, model_client=client, evolution_attempts=2) as rag:
        before = rag.evolution.repository.current().id
        outcome = add(rag, untested(tmp_path / "change_case"))
        assert (outcome.status, outcome.gate) == ("rejected", "tests"), outcome.reason
        assert outcome.reason.startswith("no passing tests with enough coverage after 2 drafts written for the tool: "
                                         "its own tests cover 50.0% of tool.py's 6 statements, below the minimum "
                                         "of 80% (EVORAG_MIN_COVERAGE)"), outcome.reason
        assert rag.evolution.repository.current().id == before and rag.registry.tools() == []
    assert len(client.prompts) == 2 and "below the minimum of 80%" in client.prompts[1]


def test_hostile_written_tests_are_refused_by_the_static_check(tmp_path):
    client = recording_client([HOSTILE_TESTS, GOOD_TESTS])
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100, model_client=client) as rag:
        outcome = add(rag, untested(tmp_path / "change_case"))
        assert (outcome.status, outcome.gate) == ("rejected", "tests"), outcome.reason
        assert outcome.reason == ("the tests written for the tool are refused by the test-file check: "
                                  "test_change_case.py line 1: imports _pytest.runner, the test runner's internals")
        assert rag.registry.tools() == []
    assert len(client.prompts) == 1  # refused at once: no second draft


def test_a_writer_that_finds_the_tool_wrong_refuses_it_with_its_reason(tmp_path):
    client = recording_client([WRONG_TESTS, "TOOL_BUG: upper case returns lower case"])
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100, model_client=client) as rag:
        outcome = add(rag, untested(tmp_path / "change_case"))
    assert (outcome.status, outcome.gate) == ("rejected", "tests")
    assert outcome.reason.startswith("the tests written for the tool show a fault in the tool, not in its tests: "
                                     "upper case returns lower case (the failing run: FAILED test_change_case.py::"
                                     "test_upper"), outcome.reason


def test_without_a_writer_the_pipeline_refuses_an_untested_candidate(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as rag:
        outcome = asyncio.run(rag.evolution.run(untested(tmp_path / "change_case"), request="change case",
                                                approver=PolicyApprover(assume_yes=True)))
        assert (outcome.status, outcome.gate, outcome.reason) == ("rejected", "tests", NO_TESTS_NO_MODEL)
        assert "configure a model" in outcome.reason and rag.registry.tools() == []


def test_without_a_model_the_service_refuses_an_untested_candidate_as_a_setting(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=1, llm_provider="none") as rag:
        for _ in range(2):  # refused before it takes the one slot of the hour
            with pytest.raises(ConfigError) as refused:
                add(rag, untested(tmp_path / "change_case"))
            assert refused.value.message.startswith("change_case has no tests (test_*.py) and no model is "
                                                    "configured to write them")
            assert refused.value.message.endswith("add tests to the candidate or configure a model "
                                                  "(EVORAG_LLM_PROVIDER)") and refused.value.hint is None
        # A candidate with its own tests needs no model.
        (tmp_path / "change_case" / "test_case.py").write_text(
            GOOD_TESTS.split("```python test_change_case.py\n")[1].split("```")[0])
        assert add(rag, tmp_path / "change_case").status == "deployed"


def test_cli_tools_add_of_an_untested_folder_without_a_model_exits_2_and_deploys_nothing(tmp_path, monkeypatch,
                                                                                         capsys):
    monkeypatch.setenv("EVORAG_LLM_PROVIDER", "none")
    assert main(["tools", "add", str(untested(tmp_path / "change_case")), "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "change_case has no tests (test_*.py) and no model is configured" in err[0], err
    assert "add tests to the candidate or configure a model" in err[0]
    assert main(["tools", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["versions", "--json"]) == 0
    assert [v["tools"] for v in json.loads(capsys.readouterr().out)] == [[]]


def test_cli_tools_add_with_the_model_down_ends_in_one_line_with_exit_3(tmp_path, monkeypatch, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    monkeypatch.setenv("EVORAG_LLM_PROVIDER", "openai")
    monkeypatch.setenv("EVORAG_LLM_BASE_URL", url)
    monkeypatch.setenv("EVORAG_EVOLUTIONS_PER_HOUR", "1")
    for _ in range(2):  # the slot of the hour is given back: the second run is not refused for rate
        assert main(["tools", "add", str(untested(tmp_path / "change_case")), "--yes"]) == 3
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: the agent team's model failed, adding tool change_case "
                                                   "stopped"), err
        assert "EVORAG_LLM_BASE_URL" in err[0] and "Traceback" not in err[0]
    assert main(["tools", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


# The team: the Tool Generator wrote no tests, so the Integration Tester's model writes them.

PLAN = json.dumps({"tool_name": "change_case", "description": "Change the case of a text.", "requirements": []})
TOOL_ONLY = f"```python tool.py\n{TOOL}```"


def test_the_team_writes_the_tests_the_generator_left_out(tmp_path):
    events = []
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as rag:
        outcome = asyncio.run(rag.aevolve("a tool that changes the case of a text",
                                          approver=PolicyApprover(assume_yes=True), on_event=events.append,
                                          model_client=replay_client([PLAN, TOOL_ONLY, GOOD_TESTS])))
        assert outcome.status == "deployed", outcome.reason
        tester = [e.content for e in events if getattr(e, "source", None) == "integration_tester"]
        assert tester == ["TESTS: PASS (" + tester[0].split("(", 1)[1]] and "wrote test_change_case.py" in tester[0]
        assert "coverage 100.0%" in tester[0]
        tests_dir = rag.evolution.repository.tools_dir / "change_case"
        assert sorted(p.name for p in tests_dir.glob("test_*.py")) == ["test_change_case.py"]
        assert rag.registry.get("change_case").coverage == 100.0
        assert rag.registry.call("change_case", {"text": "ab", "mode": "upper"}) == "AB"


def test_the_team_without_passing_written_tests_deploys_nothing(tmp_path):
    # One attempt: the tester's one round of writing gets tests that pass but cover half the tool.
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100, evolution_attempts=1) as rag:
        outcome = asyncio.run(rag.aevolve("a tool that changes the case of a text",
                                          approver=PolicyApprover(assume_yes=True),
                                          model_client=replay_client([PLAN, TOOL_ONLY, THIN_TESTS])))
        assert (outcome.status, outcome.gate) == ("rejected", "tests"), outcome.reason
        assert "coverage" in outcome.reason and rag.registry.tools() == []
