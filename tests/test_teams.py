"""The agent team's evolution flow (AutoGen GraphFlow) with a replayed model and the real gates."""

from __future__ import annotations

import asyncio
import json

import pytest
from evorag.agents.model_clients import replay_client
from evorag.tools.approvals import PolicyApprover, TerminalApprover

from evorag.service import Evorag

PLAN = json.dumps({"tool_name": "slugify_title", "description": "Turn a title into a URL slug.", "requirements": []})
GOOD = '''Here is the tool.

```python tool.py
import re


def slugify_title(title: str, separator: str = "-") -> str:
    """Turn a page title into a lowercase URL slug."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return separator.join(words)
```

```python test_tool.py
from tool import slugify_title


def test_slug():
    assert slugify_title("Hello, World!") == "hello-world"


def test_separator():
    assert slugify_title("a b", separator="_") == "a_b"
```
'''
BROKEN = "```python tool.py\ndef slugify_title(title: str) -> str\n    return title\n```"
WRONG = GOOD.replace('separator.join(words)', 'separator.join(reversed(words))')


@pytest.fixture
def rag(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as service:
        yield service


def _run(rag, script, approver=None, events=None):
    return asyncio.run(rag.aevolve("a tool that turns page titles into URL slugs",
                                     approver=approver or PolicyApprover(assume_yes=True),
                                     model_client=replay_client(script), on_event=events))


def test_the_team_deploys_a_tool_that_then_works(rag):
    events = []
    outcome = _run(rag, [PLAN, GOOD], events=events.append)
    assert outcome.status == "deployed", outcome.reason
    assert outcome.tool == "slugify_title" and outcome.version_id
    speakers = [getattr(e, "source", None) for e in events if hasattr(e, "content")]
    for agent in ("orchestrator", "dependency_validator", "tool_generator", "code_debugger",
                  "integration_tester", "human", "deployer"):
        assert agent in speakers
    assert rag.registry.call("slugify_title", {"title": "Crawl & Index"}) == "crawl-index"
    audit = [e["event"] for e in rag.evolution.audit.entries()]
    assert audit[0] == "evolution_started" and "deployed" in audit and audit[-1] == "evolution_finished"


def test_a_failing_static_check_sends_the_code_back_to_the_generator(rag):
    outcome = _run(rag, [PLAN, BROKEN, GOOD])
    assert outcome.status == "deployed"
    gates = [(v.gate, v.ok) for v in outcome.verdicts]
    assert ("code", False) in gates and gates[-1] == ("approval", True)


def test_failing_tests_send_the_code_to_the_debugger(rag):
    outcome = _run(rag, [PLAN, WRONG, GOOD])  # the debugger's repair is the third answer
    assert outcome.status == "deployed"
    assert [v.ok for v in outcome.verdicts if v.gate == "tests"] == [False, True]


def test_attempts_are_bounded(rag):
    outcome = _run(rag, [PLAN, BROKEN, BROKEN, BROKEN, BROKEN])
    assert outcome.status == "rejected" and outcome.gate == "code"
    assert "slugify_title" not in [m.name for m in rag.registry.tools()]


def test_a_bad_dependency_stops_the_flow_before_any_code(rag):
    plan = json.dumps({"tool_name": "fetcher", "description": "x", "requirements": ["reqeusts"]})
    outcome = _run(rag, [plan])
    assert (outcome.status, outcome.gate) == ("rejected", "dependencies")
    assert "typo" in outcome.reason


def test_human_rejection_stops_the_deploy(rag):
    outcome = _run(rag, [PLAN, GOOD], approver=TerminalApprover(ask=lambda p: "no", show=lambda s: None))
    assert (outcome.status, outcome.gate) == ("rejected", "approval")
    assert rag.registry.tools() == []
    assert rag.versions()[-1].tools == []


def test_the_conversation_team_selects_speakers_and_calls_real_tools(rag):
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage

    code = 'def double(x: int) -> int:\n    """Double x."""\n    return 2 * x\n'
    usage = RequestUsage(prompt_tokens=1, completion_tokens=1)
    script = [
        "code_debugger",  # the selector picks the next speaker
        CreateResult(finish_reason="function_calls", usage=usage, cached=False, content=[
            FunctionCall(id="1", name="check_tool_code", arguments=json.dumps({"code": code}))]),
        "orchestrator",
        "The tool passes the code gate. TERMINATE",
    ]
    client = replay_client(script, function_calling=True)
    transcript = asyncio.run(rag.aconverse("Is this tool acceptable?", model_client=client))
    speakers = [t["source"] for t in transcript]
    assert "code_debugger" in speakers and speakers[-1] == "orchestrator"
    tool_results = [t["content"] for t in transcript if "PASS (risk LOW)" in t["content"]]
    assert tool_results, transcript  # the real code gate ran
