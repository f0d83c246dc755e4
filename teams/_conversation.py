"""The open conversation team (SelectorGroupChat) for free-form requests.

The model picks who speaks next among the Evolution Orchestrator, the Dependency Validator, the Code
Debugger, the Integration Tester and the human. Their tools are the same deterministic capabilities
the flows use: documentation search, dependency and code checks, sandboxed test runs. Tools are given
only to models that can call functions (the tiny local model cannot); the human answers through the
interface's input function.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from autogen_agentchat.agents import AssistantAgent, UserProxyAgent
from autogen_agentchat.base import ChatAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import SelectorGroupChat
from evorag.agents import prompts
from evorag.teams._distributed import run_on, team_runtime, wait_for_stop
from evorag.teams._ports import Knowledge, TeamPorts
from evorag.teams._remote import RemoteAgent, agent_type, serve_agent
from evorag.tools.evolution import EvolutionPipeline

from evorag.errors import ConfigError, ExternalError, UserError


def _conversation_tools(knowledge: Knowledge, pipeline: EvolutionPipeline) -> dict[str, list]:
    def search_documentation(query: str, source: str | None = None) -> str:
        """Search the indexed documentation; returns the top passages with their URLs."""
        hits = knowledge.search(query, source=source, limit=4)
        return "\n\n".join(f"[{h.chunk.url} — {h.chunk.section}]\n{h.chunk.text[:800]}" for h in hits) or "no results"

    def check_requirements(requirements: list[str]) -> str:
        """Check requirement lines (e.g. 'tabulate==0.9.0') against the environment, allowlist and index."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp)
            (path / "tool.py").write_text("")
            (path / "requirements.txt").write_text("\n".join(requirements) + "\n")
            verdict = pipeline.check_dependencies(path)
        return f"{'PASS' if verdict.ok else 'FAIL'} (risk {verdict.risk}): {verdict.reason or 'ok'}"

    def check_tool_code(code: str) -> str:
        """Run the code gate (parse, one typed public function with a docstring, lint, security scan)."""
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "tool.py").write_text(code)
            verdict, _ = pipeline.check_code(Path(tmp))
        return f"{'PASS' if verdict.ok else 'FAIL'} (risk {verdict.risk}): {verdict.reason or 'ok'}"

    def run_tool_tests(code: str, tests: str) -> str:
        """Run the tool's tests and generated edge cases in the sandbox; returns the verdict and output."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp)
            (path / "tool.py").write_text(code)
            (path / "test_tool.py").write_text(tests)
            verdict, result = pipeline.check_code(path)
            if not verdict.ok:
                return f"FAIL at the code gate: {verdict.reason}"
            verdict = pipeline.run_tests(path, result.function.name, result.function.json_schema)
        return f"{'PASS' if verdict.ok else 'FAIL'}: {verdict.reason or ''}\n{verdict.details.get('output', '')[-1500:]}"

    return {
        "orchestrator": [search_documentation],
        "dependency_validator": [check_requirements],
        "code_debugger": [check_tool_code],
        "integration_tester": [run_tool_tests],
    }


# name -> (description, system prompt in agents.prompts); `evorag agents-worker` can serve any of them.
ROLES = {
    "orchestrator": ("Plans and coordinates; searches the documentation.", "ORCHESTRATOR_CHAT"),
    "dependency_validator": ("Checks the packages a change needs.", "DEPENDENCY_VALIDATOR"),
    "code_debugger": ("Checks and repairs code.", "DEBUGGER"),
    "integration_tester": ("Runs tests in the sandbox.", "INTEGRATION_TESTER"),
}


def conversation_agent(name: str, knowledge: Knowledge, pipeline: EvolutionPipeline, model_client) -> AssistantAgent:
    """One assistant of the team, with its tools when the model can call functions."""
    description, prompt = ROLES[name]
    can_call = bool(getattr(model_client, "model_info", {}).get("function_calling"))
    tools = _conversation_tools(knowledge, pipeline).get(name) if can_call else None
    return AssistantAgent(name, model_client, tools=tools, description=description,
                          system_message=getattr(prompts, prompt) + "\nSay TERMINATE when the request is done.")


def build_conversation_team(knowledge: Knowledge, pipeline: EvolutionPipeline, model_client, *,
                            user_input: Callable | None = None, max_messages: int = 20, runtime=None,
                            stand_ins: Mapping[str, ChatAgent] | None = None) -> SelectorGroupChat:
    """The team on ``runtime`` (None: in-process); ``stand_ins`` replace roles, e.g. by RemoteAgents."""
    stand_ins = stand_ins or {}
    participants = [stand_ins.get(name) or conversation_agent(name, knowledge, pipeline, model_client)
                    for name in ROLES]
    participants.append(UserProxyAgent("human", description="The human who asked; answers questions.",
                                       input_func=user_input or (lambda prompt: "Carry on without me.")))
    termination = TextMentionTermination("TERMINATE") | MaxMessageTermination(max_messages)
    return SelectorGroupChat(participants, model_client, termination_condition=termination, runtime=runtime)


def _check_remote_names(settings, names: Collection[str], *, from_settings: bool) -> None:
    unknown = ", ".join(sorted(set(names) - set(ROLES)))
    if unknown and from_settings:
        raise ConfigError(f"invalid setting agent_runtime_remote_agents: no conversation agent named {unknown}",
                          hint=f"EVORAG_AGENT_RUNTIME_REMOTE_AGENTS may list {', '.join(ROLES)}")
    if unknown:
        raise UserError(f"no conversation agent named {unknown}", hint=f"choose among {', '.join(ROLES)}")
    if names and not settings.agent_runtime_host:
        raise ConfigError("agents served by other processes need an agent runtime host",
                          hint="start `evorag agents-host` and set EVORAG_AGENT_RUNTIME_HOST to its host:port")


async def run_conversation(ports: TeamPorts, task: str, *, user_input: Callable | None = None,
                           on_event: Callable[[object], None] | None = None, max_messages: int = 20) -> list[dict]:
    """Run the conversation team on ``task``; returns the transcript (source, content)."""
    settings = ports.settings
    remote = list(settings.agent_runtime_remote_agents)
    _check_remote_names(settings, remote, from_settings=True)
    transcript = []
    async with team_runtime(settings) as runtime:
        for name in remote:
            if not await runtime.serves(agent_type(name)):
                raise ExternalError(f"no `evorag agents-worker` serves {name} at {settings.agent_runtime_host}",
                                    hint=f"start `evorag agents-worker {name}` with the same host, or remove "
                                         "it from EVORAG_AGENT_RUNTIME_REMOTE_AGENTS")
        session = uuid.uuid4().hex
        remotes = {name: RemoteAgent(name, ROLES[name][0], runtime, session=session) for name in remote}
        team = build_conversation_team(ports.knowledge, ports.pipeline, ports.model_client(), user_input=user_input,
                                       max_messages=max_messages, runtime=runtime, stand_ins=remotes)
        try:
            async for event in run_on(runtime, team.run_stream(task=task)):
                if on_event is not None:
                    on_event(event)
                source, content = getattr(event, "source", None), getattr(event, "content", None)
                if source is not None and content is not None:
                    transcript.append({"source": source,
                                       "content": content if isinstance(content, str) else str(content)})
                    ports.pipeline.audit.write("conversation", agent=source, content=str(content)[:2000])
        finally:
            # Best effort, and not through a runtime that failed: a worker that is gone has nothing to release.
            for agent in remotes.values() if remotes and not runtime.failed.done() else ():
                with contextlib.suppress(Exception, TimeoutError):
                    await asyncio.wait_for(agent.release(), 5)
    await asyncio.sleep(0)
    return transcript


async def serve_conversation_agents(ports: TeamPorts, names: Sequence[str], *,
                                    on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``names`` to the teams of the agent runtime host until SIGINT/SIGTERM or until the host goes away.

    The agents use this process's settings: its model, and tools over its own index and sandbox.
    """
    if not names:
        raise UserError("name at least one agent to serve", hint=f"choose among {', '.join(ROLES)}")
    settings = ports.settings
    _check_remote_names(settings, names, from_settings=False)
    client = ports.model_client()
    async with team_runtime(settings) as runtime:
        for name in dict.fromkeys(names):
            await serve_agent(runtime, name,
                              lambda name=name: conversation_agent(name, ports.knowledge, ports.pipeline, client))
        if on_ready is not None:
            on_ready(settings.agent_runtime_host)
        await wait_for_stop(runtime)
