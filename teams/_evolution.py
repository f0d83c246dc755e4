"""The evolution flow as an AutoGen GraphFlow (the seed's LangGraph flow):

    orchestrator -> dependency_validator --PASS--> tool_generator -> code_debugger --PASS--> integration_tester
                                 |FAIL: stop         ^        FAIL |       ^          FAIL |     |PASS
                                                     +-------------+       +---------------+     v
                                                                                    human --APPROVE--> deployer

Every retry consumes an attempt; when none are left a step says STOP and the flow ends. A message
limit backs the graph up in case a model loops.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable, Sequence

from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import DiGraphBuilder, GraphFlow
from evorag.agents import (
    CodeDebugger,
    DependencyValidator,
    Deployer,
    EvolutionOrchestrator,
    EvolutionState,
    IntegrationTester,
    ToolGenerator,
    approval_proxy,
)
from evorag.teams._distributed import run_on, team_runtime
from evorag.teams._ports import Knowledge, TeamPorts
from evorag.tools.code_checks import max_risk
from evorag.tools.evolution import EvolutionOutcome
from evorag.tools.resources import check_resources
from evorag.tools.types import CrawlRequest

from evorag.errors import UserError


def _starts(prefix: str) -> Callable:
    return lambda message: getattr(message, "content", "").startswith(prefix)


def build_evolution_flow(state: EvolutionState, model_client, *, memory=None, runtime=None) -> GraphFlow:
    orchestrator = EvolutionOrchestrator(state=state, model_client=model_client, memory=memory)
    validator = DependencyValidator(state=state)
    generator = ToolGenerator(state=state, model_client=model_client)
    debugger = CodeDebugger(state=state, model_client=model_client)
    tester = IntegrationTester(state=state)
    human = approval_proxy(state)
    deployer = Deployer(state=state)

    builder = DiGraphBuilder()
    for agent in (orchestrator, validator, generator, debugger, tester, human, deployer):
        builder.add_node(agent)
    builder.set_entry_point(orchestrator)
    builder.add_edge(orchestrator, validator)
    builder.add_edge(validator, generator, condition=_starts("DEPENDENCIES: PASS"),
                     activation_group="generate", activation_condition="any")
    builder.add_edge(generator, debugger, activation_group="debug", activation_condition="any")
    builder.add_edge(debugger, generator, condition=_starts("DEBUG: FAIL"),
                     activation_group="generate", activation_condition="any")
    builder.add_edge(debugger, tester, condition=_starts("DEBUG: PASS"))
    builder.add_edge(tester, debugger, condition=_starts("TESTS: FAIL"),
                     activation_group="debug", activation_condition="any")
    builder.add_edge(tester, human, condition=_starts("TESTS: PASS"))
    builder.add_edge(human, deployer, condition=_starts("APPROVE"))
    return GraphFlow(
        participants=builder.get_participants(),
        graph=builder.build(),
        termination_condition=MaxMessageTermination(4 + 6 * state.max_attempts),
        runtime=runtime,
    )


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
) -> EvolutionOutcome:
    """Run the whole evolution for ``request``; returns how it ended (deployed, rejected or pending).

    Raises RateLimitedError when the hourly limit is reached and ResourceError when the machine is too
    short of memory or disk to run it safely. Everything else ends as a rejected outcome with its gate.
    """
    if not request or not request.strip():
        raise UserError("the feature request is empty", hint="describe the tool you want")
    check_resources(ports.settings.home)
    # Connect before taking a slot of the hourly limit: an unreachable runtime host costs no evolution.
    async with team_runtime(ports.settings) as runtime:
        await asyncio.to_thread(ports.limiter.acquire, "evolution")
        return await _evolve(ports, request, docs, approver, on_event, runtime)


async def _evolve(ports: TeamPorts, request: str, docs, approver, on_event, runtime) -> EvolutionOutcome:
    pipeline, settings = ports.pipeline, ports.settings
    run_id = uuid.uuid4().hex[:12]
    workdir = settings.home / "work" / run_id
    state = EvolutionState(request=request.strip(), run_id=run_id, workdir=workdir, pipeline=pipeline,
                           approver=approver, max_attempts=settings.evolution_attempts)
    pipeline.audit.write("evolution_started", run_id=run_id, request=state.request, docs=list(docs))
    try:
        if docs:
            state.docs_context = await _docs_context(ports.knowledge, settings, state.request, docs, run_id)
        flow = build_evolution_flow(state, ports.model_client(), memory=pipeline.memory, runtime=runtime)
        async for event in run_on(runtime, flow.run_stream(task=state.request)):
            source = getattr(event, "source", None)
            content = getattr(event, "content", None)
            if source and isinstance(content, str):
                pipeline.audit.write("agent_message", run_id=run_id, agent=source, content=content[:2000])
            if on_event is not None:
                on_event(event)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    outcome = state.outcome or EvolutionOutcome(
        "rejected", state.last_gate or "flow", state.last_failure or "the flow ended without a deployable tool",
        max_risk(*(v.risk for v in state.verdicts)), tool=state.plan.get("tool_name"), verdicts=state.verdicts,
        run_id=run_id,
    )
    outcome.tokens = dict(state.tokens)
    pipeline.audit.write("evolution_finished", run_id=run_id, status=outcome.status, gate=outcome.gate,
                         reason=outcome.reason, tokens=state.tokens)
    if state.outcome is None:
        pipeline.remember(state.request, outcome)
    return outcome
