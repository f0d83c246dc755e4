"""Chat teams, assembled from team specs: the conversation team (a SelectorGroupChat: the model picks who speaks
next among the agents and the person) and chat graphs (a GraphFlow of chat agents, e.g. a plugin's). `evorag
team chat`, the UI and MCP reach them through the service (``aconverse``, ``atalk``).

The built-in chat agents are the Evolution Orchestrator, the Dependency Validator, the Code Debugger and the
Integration Tester, whose tools are the deterministic capabilities the flows use (documentation search,
dependency and code checks, sandboxed test runs; given only to models that can call functions, which the tiny
local model cannot), the human proxy (``ConversationHuman``: the person at the interface) and the deployer
(``ConversationDeployer``: ships the newest tool written in the chat through every gate and the approval).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tempfile
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import TaskResult
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import SelectorGroupChat
from evorag.agents import AgentBuilder, AgentContext, ConversationDeployer, ConversationHuman, prompts
from evorag.agents._test_writer import ModelTestWriter
from evorag.teams._assemble import build_agents, build_graph_flow
from evorag.teams._distributed import run_on, team_runtime, wait_for_stop
from evorag.teams._evolution import model_failure_error
from evorag.teams._ports import TeamPorts
from evorag.teams._registry import PluginRegistry
from evorag.teams._remote import RemoteAgent, agent_type, serve_agent
from evorag.teams._team_spec import ResolvedTeam
from evorag.tools.approvals import PolicyApprover

from evorag.errors import (
    ConfigError,
    ExternalError,
    ModelError,
    ModelUnavailableError,
    NotFoundError,
    UserError,
)
from evorag.team_events import event_record

CHAT_FLOWS = ("conversation", "graph")


@dataclass(slots=True)
class ConversationRun:
    """What a chat run said (``messages``: source, content), the team's state to continue from (None when its
    agents ran through an agent runtime host, whose agents' state cannot be saved), whether it stopped to wait
    for the person (``question``: what they were asked), why it stopped, and the outcome of every tool the
    deployer submitted."""

    messages: list[dict]
    state: dict[str, Any] | None = None
    waiting_for_human: bool = False
    question: str | None = None
    stop_reason: str | None = None
    outcomes: list = field(default_factory=list)


def conversation_tools(ctx: AgentContext) -> dict[str, list]:
    """The built-in chat agents' tools, by agent name, over ``ctx``'s knowledge and gates."""
    knowledge, pipeline = ctx.knowledge, ctx.pipeline

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


def chat_assistant(description: str, prompt: str) -> AgentBuilder:
    """The chat builder of a built-in assistant: system prompt ``prompts.<prompt>``, its tools when the model
    can call functions."""
    def build(ctx: AgentContext) -> AssistantAgent:
        can_call = bool(getattr(ctx.model_client, "model_info", {}).get("function_calling"))
        tools = conversation_tools(ctx).get(ctx.name) if can_call else None
        return AssistantAgent(ctx.name, ctx.model_client, tools=tools, description=description,
                              system_message=getattr(prompts, prompt) + "\nSay TERMINATE when the request is done.")

    return build


def human_participant(ctx: AgentContext) -> ConversationHuman:
    """The person at the interface, answering through ``ctx.user_input``; when that gives no answer the run
    stops and waits (their next message is the answer)."""
    return ConversationHuman(ctx.user_input)


def chat_deployer(ctx: AgentContext) -> ConversationDeployer:
    """Ships the newest tool of the chat through the gates and ``ctx.approver`` (default: the policy, which
    leaves anything that needs a person pending). A tool written without tests gets them from the team's model
    (no deploy without tests)."""
    writer = ModelTestWriter.over_client(ctx.model_client) if ctx.model_client is not None else None
    return ConversationDeployer(pipeline=ctx.pipeline, approver=ctx.approver or PolicyApprover(assume_yes=False),
                                limiter=ctx.limiter, on_outcome=ctx.on_outcome, test_writer=writer)


async def _call(function: Callable, *args: object) -> object:
    """Call an interface's callback: a coroutine function on the loop, a plain one in a thread (it may block
    on a terminal)."""
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    result = await asyncio.to_thread(function, *args)
    return await result if inspect.isawaitable(result) else result


def chat_team(registry: PluginRegistry, name: str) -> ResolvedTeam:
    """The chat team ``name`` (conversation or graph), resolved and checked."""
    team = registry.resolve(name)
    if team.flow not in CHAT_FLOWS:
        raise UserError(f"team {name} is a {team.flow} team, not one to chat with",
                        hint="`evorag teams list` shows each team's flow; chat with a conversation or graph team")
    return team


async def run_conversation(ports: TeamPorts, task: str, *, team: str = "conversation",
                           user_input: Callable | None = None, follow_up: Callable | None = None, approver=None,
                           on_event: Callable[[object], None] | None = None, max_messages: int | None = None,
                           state: Mapping[str, Any] | None = None) -> ConversationRun:
    """Run the chat team ``team`` on ``task``, continuing from ``state`` (a ``ConversationRun.state``) if given.

    ``user_input(question)`` answers when the team asks the person; when it is missing or returns None the run
    stops, waiting for them (``waiting_for_human``). ``follow_up()`` gives the person's next message once a run
    stops, and the same team (with what it has heard so far) goes on, until it returns None or an empty
    message. Both may be coroutine functions; plain ones run in a thread (they may block on a terminal).
    ``approver`` decides what the deployer submits (default: the policy, which leaves it pending).
    ``max_messages`` bounds each run (default: the team spec's)."""
    if not task or not task.strip():
        raise UserError("the message to the team is empty", hint="say what you need")
    settings = ports.settings
    resolved = await asyncio.to_thread(chat_team, ports.registry, team)
    remote = list(settings.agent_runtime_remote_agents)
    await asyncio.to_thread(_check_remote_names, settings, ports.registry, remote, from_settings=True)
    remote = [name for name in remote if name in resolved.nodes]
    run = ConversationRun(messages=[])
    async with team_runtime(settings) as runtime:
        for name in remote:
            if not await runtime.serves(agent_type(name)):
                raise ExternalError(f"no `evorag agents-worker` serves {name} at {settings.agent_runtime_host}",
                                    hint=f"start `evorag agents-worker {name}` with the same host, or remove "
                                         "it from EVORAG_AGENT_RUNTIME_REMOTE_AGENTS")
        session = uuid.uuid4().hex
        remotes = {name: RemoteAgent(name, ports.registry.agent(name).description, runtime, session=session)
                   for name in remote}
        client = ports.model_client()

        def context(name: str) -> AgentContext:
            return AgentContext(name=name, team=resolved.name, model_client=client, knowledge=ports.knowledge,
                                pipeline=ports.pipeline, memory=ports.pipeline.memory, approver=approver,
                                user_input=user_input, limiter=ports.limiter, on_outcome=run.outcomes.append)

        agents = build_agents(resolved, ports.registry, context, stand_ins=remotes)
        humans = [agent for agent in agents.values() if isinstance(agent, ConversationHuman)]
        termination = TextMentionTermination("TERMINATE") | MaxMessageTermination(max_messages or resolved.max_messages)
        for human in humans:
            termination |= human.stop
        if resolved.flow == "conversation":
            chat = SelectorGroupChat(list(agents.values()), client, termination_condition=termination,
                                     runtime=runtime)
        else:
            chat = build_graph_flow(resolved, agents, termination=termination, runtime=runtime)
        if state:
            try:
                await chat.load_state(state)
            except (ValueError, KeyError) as exc:
                raise UserError(f"the saved conversation does not fit team {resolved.name}: {exc}",
                                hint="start a new conversation") from None
        message: str | None = task
        try:
            while message is not None:
                for human in humans:
                    human.waiting = False
                async for event in run_on(runtime, chat.run_stream(task=message)):
                    if on_event is not None:
                        on_event(event)
                    if isinstance(event, TaskResult):
                        run.stop_reason = event.stop_reason
                        continue
                    record = event_record(event)
                    if record is not None:
                        run.messages.append(record)
                        ports.pipeline.audit.write("conversation", team=resolved.name, agent=record["source"],
                                                   content=record["content"][:2000])
                waiting = next((human for human in humans if human.waiting), None)
                run.waiting_for_human = waiting is not None
                run.question = waiting.question if waiting is not None else None
                message = await _next_message(follow_up)
            # The agents of a runtime host keep their state in their own processes: it cannot be saved here.
            run.state = await chat.save_state() if runtime is None else None
        except ModelError as exc:
            if isinstance(exc, ModelUnavailableError):
                raise
            # The model endpoint failed (unreachable, timed out): one line naming the setting, exit 3, as evolve.
            raise model_failure_error(exc, f"the conversation with team {resolved.name}") from None
        finally:
            # Best effort, and not through a runtime that failed: a worker that is gone has nothing to release.
            for agent in remotes.values() if remotes and not runtime.failed.done() else ():
                with contextlib.suppress(Exception, TimeoutError):
                    await asyncio.wait_for(agent.release(), 5)
    await asyncio.sleep(0)
    return run


async def _next_message(follow_up: Callable | None) -> str | None:
    if follow_up is None:
        return None
    reply = await _call(follow_up)
    return str(reply) if reply is not None and str(reply).strip() else None


def _servable_names(registry: PluginRegistry) -> list[str]:
    names = []
    for info in registry.agents():
        if info.status == "ok" and "conversation" in info.flows and registry.agent(info.name).serve_remotely:
            names.append(info.name)
    return names


def _check_remote_names(settings, registry: PluginRegistry, names: Collection[str], *, from_settings: bool) -> None:
    unknown = []
    for name in names:
        try:
            agent = registry.agent(name)
        except NotFoundError:
            unknown.append(name)
            continue
        if agent.chat is None or not agent.serve_remotely:
            unknown.append(name)
    if unknown and from_settings:
        raise ConfigError("invalid setting agent_runtime_remote_agents: no chat agent another process can serve "
                          f"named {', '.join(sorted(unknown))}",
                          hint=f"EVORAG_AGENT_RUNTIME_REMOTE_AGENTS may list {', '.join(_servable_names(registry))}")
    if unknown:
        raise UserError(f"no chat agent another process can serve named {', '.join(sorted(unknown))}",
                        hint=f"choose among {', '.join(_servable_names(registry))}")
    if names and not settings.agent_runtime_host:
        raise ConfigError("agents served by other processes need an agent runtime host",
                          hint="start `evorag agents-host` and set EVORAG_AGENT_RUNTIME_HOST to its host:port")


async def serve_conversation_agents(ports: TeamPorts, names: Sequence[str], *,
                                    on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the chat agents ``names`` (built-in or plugins') to the teams of the agent runtime host until
    SIGINT/SIGTERM or until the host goes away.

    The agents use this process's settings: its model, and tools over its own index and sandbox; approvals
    their tools ask for stay pending for an approver (nobody is at this process's interface).
    """
    if not names:
        raise UserError("name at least one agent to serve",
                        hint=f"choose among {', '.join(await asyncio.to_thread(_servable_names, ports.registry))}")
    settings = ports.settings
    await asyncio.to_thread(_check_remote_names, settings, ports.registry, names, from_settings=False)
    client = ports.model_client()
    async with team_runtime(settings) as runtime:
        for name in dict.fromkeys(names):
            builder = ports.registry.agent(name).chat
            context = AgentContext(name=name, team="served", model_client=client, knowledge=ports.knowledge,
                                   pipeline=ports.pipeline, memory=ports.pipeline.memory, limiter=ports.limiter)
            await serve_agent(runtime, name, lambda builder=builder, context=context: builder(context))
        if on_ready is not None:
            on_ready(settings.agent_runtime_host)
        await wait_for_stop(runtime)
