"""The agent team's evolution flow (AutoGen GraphFlow) with a replayed model and the real gates."""

from __future__ import annotations

import asyncio
import json

import pytest
from evorag.agents.model_clients import replay_client
from evorag.tools.approvals import PolicyApprover, TerminalApprover
from slug_tool_replies import GOOD, PLAN, REQUEST

from evorag.service import Evorag

BROKEN = "```python tool.py\ndef slugify_title(title: str) -> str\n    return title\n```"
WRONG = GOOD.replace('separator.join(words)', 'separator.join(reversed(words))')


@pytest.fixture
def rag(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as service:
        yield service


def _run(rag, script, approver=None, events=None):
    return asyncio.run(rag.aevolve(REQUEST,
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
    assert ("code", False) in gates and gates[-4:] == [("approval", True), ("deployed_tests", True),
                                                        ("examples", True), ("smoke", True)]


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


# The conversation team as a product surface: turns of a stored conversation, the human, the deployer.


def recording_client(script):
    """A scripted model that also keeps every prompt it was sent (to see what the agents heard)."""

    class Recording(type(replay_client(script))):
        async def create(self, messages, **kwargs):
            self.prompts.append("\n".join(str(getattr(m, "content", "")) for m in messages))
            return await super().create(messages, **kwargs)

    client = Recording(script)
    client.prompts = []
    return client


def test_a_conversation_waits_for_the_human_and_the_next_turn_continues_it(rag):
    from evorag.errors import NotFoundError
    from evorag.principals import Principal, Role

    client = recording_client(["orchestrator", "Which tool do you want?", "human",
                              "code_debugger", "A word counter needs no packages. TERMINATE"])
    with rag.override(model_client=client):
        first = asyncio.run(rag.atalk("I need a tool"))
        assert first.waiting_for_human and first.question == "Which tool do you want?"
        assert [m["source"] for m in first.messages][:2] == ["user", "orchestrator"]
        second = asyncio.run(rag.atalk("a word counter", conversation_id=first.conversation_id))
    assert second.conversation_id == first.conversation_id and not second.waiting_for_human
    assert second.messages[0] == {"source": "user", "content": "a word counter"}
    assert second.messages[-1]["source"] == "code_debugger" and "TERMINATE" in second.stop_reason
    # The code debugger, who first spoke in the second turn, heard the first turn: the state was continued.
    assert "Which tool do you want?" in client.prompts[-1] and "a word counter" in client.prompts[-1]
    stored = rag.settings.home / "conversations" / f"{first.conversation_id}.json"
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    assert json.loads(stored.read_text())["turns"] == 2
    # Someone else cannot continue it, nor learn that it exists.
    with pytest.raises(NotFoundError, match="no conversation"):
        asyncio.run(rag.atalk("hi", conversation_id=first.conversation_id,
                              principal=Principal("mallory", Role.ADMIN, via="test")))


def test_the_human_answers_through_the_interface_within_the_turn(rag):
    asked = []

    async def answer(question: str) -> str:
        asked.append(question)
        return "a word counter, please"

    client = replay_client(["orchestrator", "Which tool do you want?", "human", "orchestrator", "Noted. TERMINATE"])
    turn = asyncio.run(rag.atalk("I need a tool", user_input=answer, model_client=client))
    assert asked == ["Which tool do you want?"]
    assert {"source": "human", "content": "a word counter, please"} in turn.messages
    assert not turn.waiting_for_human and turn.messages[-1]["content"] == "Noted. TERMINATE"


@pytest.mark.parametrize("conversation_id", ["../../etc/passwd", "0" * 31, "Z" * 32])
def test_a_bad_conversation_id_is_a_clear_error(rag, conversation_id):
    from evorag.errors import UserError

    with pytest.raises(UserError, match="invalid conversation id"):
        asyncio.run(rag.atalk("hi", conversation_id=conversation_id, model_client=replay_client(["human"])))


def test_the_deployer_ships_the_newest_tool_through_the_gates_and_the_approver(rag):
    script = ["orchestrator", GOOD, "deployer", "orchestrator", "The tool is deployed. TERMINATE"]
    turn = asyncio.run(rag.atalk("a tool that turns page titles into URL slugs", model_client=replay_client(script),
                                 approver=PolicyApprover(assume_yes=True)))
    [outcome] = turn.outcomes
    assert outcome.status == "deployed", outcome.reason
    said = {m["source"]: m["content"] for m in turn.messages}
    assert said["deployer"].startswith("DEPLOYED: slugify_title (version ")
    assert rag.registry.call("slugify_title", {"title": "Crawl & Index"}) == "crawl-index"
    # Without an approver that may decide, the change waits for a person.
    pending = asyncio.run(rag.atalk("the same again", model_client=replay_client(["deployer", "human"]),
                                    conversation_id=turn.conversation_id))
    assert pending.outcomes[0].status == "pending" and pending.outcomes[0].approval_id
    assert pending.messages[1]["content"].startswith("PENDING: slugify_title waits for approval ")


def test_the_deployer_says_so_when_there_is_nothing_to_submit(rag):
    turn = asyncio.run(rag.atalk("ship it", model_client=replay_client(["deployer", "human"])))
    assert turn.outcomes == [] and turn.messages[1]["content"].startswith("NOTHING to submit")


def test_a_conversation_spec_runs_with_the_replies_it_names(rag, tmp_path):
    spec = tmp_path / "chat.json"
    spec.write_text(json.dumps({"team": "conversation", "task": "I need a tool", "replies": ["a slug tool"]}))
    script = ["orchestrator", "Which tool?", "human", "orchestrator", "On it. TERMINATE"]
    with rag.override(model_client=replay_client(script)):
        result = asyncio.run(rag.arun_spec(spec))
    assert {"source": "human", "content": "a slug tool"} in result["messages"]
    assert result["conversation_id"] and result["waiting_for_human"] is False


# A tool written in the chat without tests: the team's model writes them, or the tests gate refuses it.
UNTESTED, TESTS_ONLY = GOOD.split("```python test_tool.py", 1)
TESTS_ONLY = "```python test_tool.py" + TESTS_ONLY


def test_the_deployer_has_the_teams_model_write_the_tests_a_chat_tool_lacks(rag):
    script = ["orchestrator", UNTESTED, "deployer", TESTS_ONLY, "orchestrator", "The tool is deployed. TERMINATE"]
    turn = asyncio.run(rag.atalk(REQUEST, model_client=replay_client(script), approver=PolicyApprover(assume_yes=True)))
    [outcome] = turn.outcomes
    assert outcome.status == "deployed", outcome.reason
    tests = next(v for v in outcome.verdicts if v.gate == "tests")
    assert tests.details["written_tests"] == ["test_tool.py"] and tests.details["coverage"] == 100.0
    said = {m["source"]: m["content"] for m in turn.messages}
    assert said["deployer"].startswith("DEPLOYED: slugify_title (version ")
    repository = rag.evolution.repository
    assert "tools/slugify_title/test_tool.py" in repository.repo.git.ls_files().splitlines()
    assert "def test_separator" in (repository.tools_dir / "slugify_title" / "test_tool.py").read_text()


def test_a_deployer_without_a_model_refuses_an_untested_tool_saying_how_to_fix_it(rag):
    from autogen_agentchat.messages import TextMessage
    from autogen_core import CancellationToken
    from evorag.agents import ConversationDeployer
    from evorag.tools.test_writing import NO_TESTS_NO_MODEL

    deployer = ConversationDeployer(pipeline=rag.evolution, approver=PolicyApprover(assume_yes=True),
                                    limiter=rag.parts.rate_limiter)
    response = asyncio.run(deployer.on_messages([TextMessage(content=UNTESTED, source="orchestrator")],
                                                CancellationToken()))
    head = response.chat_message.content.splitlines()[0]
    assert head == f"REJECTED: at the tests gate: {NO_TESTS_NO_MODEL}"
    assert "add tests to the candidate or configure a model (EVORAG_LLM_PROVIDER)" in head
    assert rag.registry.tools() == []
    [rejected] = [e for e in rag.evolution.audit.entries() if e["event"] == "rejected"]
    assert (rejected["gate"], rejected["reason"]) == ("tests", NO_TESTS_NO_MODEL)
