"""The evolution flow as an AutoGen GraphFlow, assembled from a team spec: evorag's own (teams/specs/evolution.yaml)
or a plugin's that extends it.

    orchestrator -> dependency_validator --PASS--> tool_generator -> code_debugger --PASS--> integration_tester
                                 |FAIL: stop         ^        FAIL |       ^          FAIL |     |PASS
                                                     +-------------+       +---------------+     v
                                                                                    human --APPROVE--> deployer

Every retry consumes an attempt; when none are left a step says STOP and the flow ends. A message
limit backs the graph up in case a model loops. Which team ``evorag evolve`` runs is EVORAG_EVOLUTION_TEAM
(default ``evolution``); a plugin team adds steps (e.g. a security review before the integration tester) and
can never route around the gates (teams/_team_spec.py, agents/_human.py).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable, Sequence

from autogen_agentchat.conditions import FunctionalTermination, MaxMessageTermination
from autogen_agentchat.teams import GraphFlow
from evorag.agents import AgentContext, EvolutionState
from evorag.teams._assemble import build_agents, build_graph_flow
from evorag.teams._distributed import run_on, team_runtime
from evorag.teams._ports import Knowledge, TeamPorts
from evorag.teams._registry import PluginRegistry
from evorag.teams._team_spec import ResolvedTeam
from evorag.tools.code_checks import max_risk
from evorag.tools.evolution import EvolutionOutcome
from evorag.tools.rate_limit import INFRASTRUCTURE_FAILURES
from evorag.tools.resources import check_resources
from evorag.tools.types import CrawlRequest

from evorag.errors import EvoragError, ExternalError, ModelUnavailableError, UserError


def build_evolution_flow(team: ResolvedTeam, registry: PluginRegistry, state: EvolutionState, model_client, *,
                         memory=None, knowledge: Knowledge | None = None, runtime=None) -> GraphFlow:
    """The GraphFlow of ``team`` (an evolution team) for one run: every node's step built on ``state``."""
    def context(name: str) -> AgentContext:
        return AgentContext(name=name, team=team.name, model_client=model_client, knowledge=knowledge,
                            pipeline=state.pipeline, memory=memory, state=state)

    agents = build_agents(team, registry, context)
    # A step whose model failed says STOP, but the edges out of some steps are unconditional: the run ends on
    # the failure itself, whichever step met it.
    model_failed = FunctionalTermination(lambda _messages: state.model_failure is not None)
    return build_graph_flow(team, agents, runtime=runtime,
                            termination=MaxMessageTermination(team.message_limit(state.max_attempts)) | model_failed)


def evolution_team(registry: PluginRegistry, name: str) -> ResolvedTeam:
    """The evolution team ``name``, resolved and checked; UserError when it is another kind of team."""
    team = registry.resolve(name)
    if team.flow != "evolution":
        raise UserError(f"team {name} is a {team.flow} team, not an evolution",
                        hint="`evorag teams list` shows each team's flow")
    return team


async def _docs_context(knowledge: Knowledge, settings, request: str, docs: Sequence[str], run_id: str) -> str:
    """Crawl the given documentation (as a source of its own, kept small by the evolution_docs_* settings) and
    keep the passages the request needs."""
    passages = []
    for number, url in enumerate(docs):
        source = f"evolve-{run_id}-{number}"
        await knowledge.acrawl(CrawlRequest(url=url, source=source, max_pages=settings.evolution_docs_max_pages,
                                            max_depth=settings.evolution_docs_max_depth))
        hits = await asyncio.to_thread(knowledge.search, request, source=source, limit=4)
        passages += [f"[{hit.chunk.url} — {hit.chunk.section}]\n{hit.chunk.text[:1200]}" for hit in hits]
    return "\n\n".join(passages)[:6000]


async def run_evolution(
    ports: TeamPorts,
    request: str,
    *,
    docs: Sequence[str] = (),
    approver,
    on_event: Callable[[object], None] | None = None,
    team: str | None = None,
) -> EvolutionOutcome:
    """Run the whole evolution for ``request`` with the evolution team ``team`` (default: the setting
    evolution_team); returns how it ended (deployed, rejected or pending).

    Raises RateLimitedError when the acting principal's hourly limit is reached and ResourceError when the machine is too
    short of memory or disk to run it safely. When a step's model fails (unreachable, timed out, refused), the
    run ends after that step: audited as finished with status ``model_unavailable``, remembered, its slot of
    the hourly limit given back, then ModelUnavailableError (one line naming the setting to fix), or the
    model's own UserError (a rejected key, a spent budget) is raised. Any other infrastructure failure that ends
    the run (evorag.tools.rate_limit.INFRASTRUCTURE_FAILURES: no usable sandbox, a store) also gives the slot back. Everything else ends as a rejected
    outcome with its gate, and counts.
    """
    if not request or not request.strip():
        raise UserError("the feature request is empty", hint="describe the tool you want")
    # A missing or broken team fails before anything else happens (plugins load here, off the event loop).
    graph = await asyncio.to_thread(evolution_team, ports.registry, team or ports.settings.evolution_team)
    check_resources(ports.settings.home)
    # Connect before taking a slot of the hourly limit: an unreachable runtime host costs no evolution.
    async with team_runtime(ports.settings) as runtime:
        slot = await asyncio.to_thread(ports.limiter.acquire, "evolution")
        try:
            return await _evolve(ports, graph, request, docs, approver, on_event, runtime)
        except _ModelUnavailable as failure:
            # The run did no work: it does not count against the hourly limit.
            await asyncio.to_thread(ports.limiter.release, slot)
            raise failure.error from None
        except INFRASTRUCTURE_FAILURES:
            # Infrastructure failed under the run (no usable sandbox, a docs crawl, a store): no verdict, no use counted.
            await asyncio.to_thread(ports.limiter.release, slot)
            raise


class _ModelUnavailable(Exception):
    """A run ended by its model (already audited and remembered); ``error`` is what the caller gets."""

    def __init__(self, error: EvoragError) -> None:
        super().__init__(str(error))
        self.error = error


def model_failure_error(failure: Exception, what: str) -> EvoragError:
    """What a run (``what``, e.g. "evolution 1a2b") ended by its model raises: ModelUnavailableError for an
    endpoint that failed (one line, the hint naming the setting folded in), else the model client's own error (a
    rejected key, a spent budget)."""
    if isinstance(failure, EvoragError) and not isinstance(failure, ExternalError):
        return failure
    return ModelUnavailableError(f"the agent team's model failed, {what} stopped: {failure}")


async def _evolve(ports: TeamPorts, graph: ResolvedTeam, request: str, docs, approver, on_event,
                  runtime) -> EvolutionOutcome:
    pipeline, settings = ports.pipeline, ports.settings
    run_id = uuid.uuid4().hex[:12]
    workdir = settings.home / "work" / run_id
    state = EvolutionState(request=request.strip(), run_id=run_id, workdir=workdir, pipeline=pipeline,
                           approver=approver, max_attempts=settings.evolution_attempts)
    pipeline.audit.write("evolution_started", run_id=run_id, request=state.request, docs=list(docs), team=graph.name)
    try:
        if docs:
            state.docs_context = await _docs_context(ports.knowledge, settings, state.request, docs, run_id)
        try:
            model_client = ports.model_client()
        except (ExternalError, UserError) as exc:  # no model for the team (provider none, a missing key...)
            state.model_failure = exc
        else:
            await _run_flow(ports, graph, state, model_client, runtime, on_event)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    risk = max_risk(*(v.risk for v in state.verdicts))
    if state.model_failure is not None:
        error = model_failure_error(state.model_failure, f"evolution {run_id}")
        outcome = EvolutionOutcome("model_unavailable", "model", error.message, risk, tool=state.plan.get("tool_name"),
                                   verdicts=state.verdicts, run_id=run_id)
    else:
        outcome = state.outcome or EvolutionOutcome(
            "rejected", state.last_gate or "flow", state.last_failure or "the flow ended without a deployable tool",
            risk, tool=state.plan.get("tool_name"), verdicts=state.verdicts, run_id=run_id,
        )
    outcome.tokens = dict(state.tokens)
    pipeline.audit.write("evolution_finished", run_id=run_id, status=outcome.status, gate=outcome.gate,
                         reason=outcome.reason, tokens=state.tokens)
    if state.outcome is None:
        pipeline.remember(state.request, outcome)
    if state.model_failure is not None:
        raise _ModelUnavailable(error)
    return outcome


async def _run_flow(ports: TeamPorts, graph: ResolvedTeam, state: EvolutionState, model_client, runtime,
                    on_event) -> None:
    audit = ports.pipeline.audit
    flow = build_evolution_flow(graph, ports.registry, state, model_client, memory=ports.pipeline.memory,
                                knowledge=ports.knowledge, runtime=runtime)
    async for event in run_on(runtime, flow.run_stream(task=state.request)):
        source = getattr(event, "source", None)
        content = getattr(event, "content", None)
        if source and isinstance(content, str):
            # The tokens this step's model calls used (counts, not secrets: the audit log keeps them).
            audit.write("agent_message", run_id=state.run_id, agent=source, content=content[:2000],
                        tokens=state.take_step_tokens(source))
        if on_event is not None:
            on_event(event)
