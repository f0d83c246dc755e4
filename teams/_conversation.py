"""The open conversation team (SelectorGroupChat) for free-form requests.

The model picks who speaks next among the Evolution Orchestrator, the Dependency Validator, the Code
Debugger, the Integration Tester and the human. Their tools are the same deterministic capabilities
the flows use: documentation search, dependency and code checks, sandboxed test runs. Tools are given
only to models that can call functions (the tiny local model cannot); the human answers through the
interface's input function.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

from autogen_agentchat.agents import AssistantAgent, UserProxyAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import SelectorGroupChat


def _conversation_tools(service) -> dict[str, list]:
    def search_documentation(query: str, source: str | None = None) -> str:
        """Search the indexed documentation; returns the top passages with their URLs."""
        hits = service.search(query, source=source, limit=4)
        return "\n\n".join(f"[{h.chunk.url} — {h.chunk.section}]\n{h.chunk.text[:800]}" for h in hits) or "no results"

    def check_requirements(requirements: list[str]) -> str:
        """Check requirement lines (e.g. 'tabulate==0.9.0') against the environment, allowlist and index."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp)
            (path / "tool.py").write_text("")
            (path / "requirements.txt").write_text("\n".join(requirements) + "\n")
            verdict = service.evolution.check_dependencies(path)
        return f"{'PASS' if verdict.ok else 'FAIL'} (risk {verdict.risk}): {verdict.reason or 'ok'}"

    def check_tool_code(code: str) -> str:
        """Run the code gate (parse, one typed public function with a docstring, lint, security scan)."""
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "tool.py").write_text(code)
            verdict, _ = service.evolution.check_code(Path(tmp))
        return f"{'PASS' if verdict.ok else 'FAIL'} (risk {verdict.risk}): {verdict.reason or 'ok'}"

    def run_tool_tests(code: str, tests: str) -> str:
        """Run the tool's tests and generated edge cases in the sandbox; returns the verdict and output."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp)
            (path / "tool.py").write_text(code)
            (path / "test_tool.py").write_text(tests)
            verdict, result = service.evolution.check_code(path)
            if not verdict.ok:
                return f"FAIL at the code gate: {verdict.reason}"
            verdict = service.evolution.run_tests(path, result.function.name, result.function.json_schema)
        return f"{'PASS' if verdict.ok else 'FAIL'}: {verdict.reason or ''}\n{verdict.details.get('output', '')[-1500:]}"

    return {
        "orchestrator": [search_documentation],
        "dependency_validator": [check_requirements],
        "code_debugger": [check_tool_code],
        "integration_tester": [run_tool_tests],
    }


def build_conversation_team(service, model_client, *, user_input: Callable | None = None,
                            max_messages: int = 20) -> SelectorGroupChat:
    from agents import _prompts

    can_call = bool(getattr(model_client, "model_info", {}).get("function_calling"))
    tools = _conversation_tools(service) if can_call else {}
    roles = {
        "orchestrator": ("Plans and coordinates; searches the documentation.", _prompts.ORCHESTRATOR_CHAT),
        "dependency_validator": ("Checks the packages a change needs.", _prompts.DEPENDENCY_VALIDATOR),
        "code_debugger": ("Checks and repairs code.", _prompts.DEBUGGER),
        "integration_tester": ("Runs tests in the sandbox.", _prompts.INTEGRATION_TESTER),
    }
    participants = [
        AssistantAgent(name, model_client, tools=tools.get(name), description=description,
                       system_message=prompt + "\nSay TERMINATE when the request is done.")
        for name, (description, prompt) in roles.items()
    ]
    participants.append(UserProxyAgent("human", description="The human who asked; answers questions.",
                                       input_func=user_input or (lambda prompt: "Carry on without me.")))
    termination = TextMentionTermination("TERMINATE") | MaxMessageTermination(max_messages)
    return SelectorGroupChat(participants, model_client, termination_condition=termination)


async def run_conversation(service, task: str, *, model_client=None, user_input: Callable | None = None,
                           on_event: Callable[[object], None] | None = None, max_messages: int = 20) -> list[dict]:
    """Run the conversation team on ``task``; returns the transcript (source, content)."""
    from teams._runtime import team_model_client

    team = build_conversation_team(service, model_client or team_model_client(service), user_input=user_input,
                                   max_messages=max_messages)
    transcript = []
    async for event in team.run_stream(task=task):
        if on_event is not None:
            on_event(event)
        source, content = getattr(event, "source", None), getattr(event, "content", None)
        if source is not None and content is not None:
            transcript.append({"source": source, "content": content if isinstance(content, str) else str(content)})
            service.evolution.audit.write("conversation", agent=source, content=str(content)[:2000])
    await asyncio.sleep(0)
    return transcript
