"""Team use cases: evolve a tool, heal, knowledge gaps, the conversation team, scripted runs, and serving
conversation agents to a runtime host. Each hands the flow its ``TeamPorts``; the flows live in evorag.teams.

This module imports evorag.teams (AutoGen AgentChat, ~0.3 s): the service builds ``TeamsService`` on first use,
so that commands which never run a team (search, ask, sources...) start without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evorag.principals import Principal, acting_principal
from evorag.service._context import ServiceContext
from evorag.service._knowledge import KnowledgeService
from evorag.teams import (
    CheckResult,
    GapProposal,
    GapReport,
    HealingReport,
    TeamPorts,
    fill_knowledge_gaps,
    find_knowledge_gaps,
    load_spec,
    run_conversation,
    run_evolution,
    run_healing,
    run_health_checks,
    serve_conversation_agents,
)
from evorag.tools.approvals import Approver, PolicyApprover
from evorag.tools.evolution import EvolutionOutcome

EventCallback = Callable[[object], None]


class TeamsService:
    def __init__(self, ctx: ServiceContext, knowledge: KnowledgeService) -> None:
        self._ctx = ctx
        self._knowledge = knowledge

    async def ports(self, model_client: Any = None) -> TeamPorts:
        """What a flow gets; ``model_client`` replaces the service's model client for this run."""
        parts = self._ctx.parts
        pipeline = await asyncio.to_thread(lambda: parts.pipeline)  # opens the plugins' git repository
        limiter = await asyncio.to_thread(lambda: parts.rate_limiter)
        client = (lambda: model_client) if model_client is not None else (lambda: parts.model_client("agents"))
        return TeamPorts(settings=self._ctx.settings, knowledge=self._knowledge, index=self._knowledge,
                         pipeline=pipeline, limiter=limiter, model_client=client)

    async def aevolve(self, request: str, *, approver: Approver, docs: Sequence[str] = (),
                      on_event: EventCallback | None = None, model_client: Any = None,
                      principal: Principal | None = None) -> EvolutionOutcome:
        """Let the agent team build a tool for ``request`` (operator role). ``docs`` are crawled first (each
        crawl a job, as small as the evolution_docs_* settings say). See teams.run_evolution."""
        with self._ctx.acting(principal, "evolve"):
            # Refused URLs fail now, before the run takes a slot of the hourly limit.
            docs = [await asyncio.to_thread(self._knowledge.check_url, url) for url in docs]
            ports = await self.ports(model_client)
            return await run_evolution(ports, request, docs=docs, approver=approver, on_event=on_event)

    async def aheal(self, description: str, *, approver: Approver, on_event: EventCallback | None = None,
                    model_client: Any = None, principal: Principal | None = None) -> HealingReport:
        """Run the health checks and repair what fails (operator role); see teams.run_healing."""
        with self._ctx.acting(principal, "heal"):
            ports = await self.ports(model_client)
            return await run_healing(ports, description, approver=approver, on_event=on_event)

    async def ahealth_checks(self, *, principal: Principal | None = None) -> list[CheckResult]:
        """The health checks alone, changing nothing (operator role: they run deployed tools' tests)."""
        with self._ctx.acting(principal, "heal"):
            ports = await self.ports()
            return await asyncio.to_thread(run_health_checks, ports)

    def find_gaps(self, *, threshold: float = 0.5, principal: Principal | None = None) -> list[GapProposal]:
        """Knowledge gaps: weak answers and the links crawls did not follow (reads only: reader role)."""
        self._ctx.check(principal, "metrics")
        parts = self._ctx.parts
        return find_knowledge_gaps(parts.metrics.history(last=200, kind="answer"), parts.catalog.external_links(),
                                   threshold=threshold)

    async def afill_gaps(self, proposals: list[GapProposal], *, approver: Approver, max_pages: int | None = None,
                         on_event: EventCallback | None = None, principal: Principal | None = None) -> GapReport:
        """Crawl approved gap proposals, at most ``max_pages`` each (default EVORAG_GAP_CRAWL_MAX_PAGES), and ask
        the weak questions again (operator role; each crawl is a MEDIUM-risk approval)."""
        with self._ctx.acting(principal, "gaps"):
            pipeline = await asyncio.to_thread(lambda: self._ctx.parts.pipeline)
            return await fill_knowledge_gaps(self._knowledge, pipeline, proposals, approver=approver,
                                             max_pages=max_pages or self._ctx.settings.gap_crawl_max_pages,
                                             on_event=on_event)

    async def agaps(self, *, threshold: float = 0.5, crawl: bool = False, approver: Approver | None = None,
                    on_event: EventCallback | None = None, principal: Principal | None = None) -> GapReport:
        """Find the knowledge gaps and, with ``crawl``, fill them (``afill_gaps``); the report lists the proposals
        either way."""
        proposals = await asyncio.to_thread(self.find_gaps, threshold=threshold, principal=principal)
        if not crawl or not proposals:
            return GapReport(proposals=proposals)
        return await self.afill_gaps(proposals, approver=approver or self._policy(principal), on_event=on_event,
                                     principal=principal)

    async def aconverse(self, task: str, *, user_input: Callable | None = None, on_event: EventCallback | None = None,
                        max_messages: int = 20, model_client: Any = None,
                        principal: Principal | None = None) -> list[dict]:
        """Run the conversation team (SelectorGroupChat with the human proxy, whose answers come from
        ``user_input``) on ``task`` (operator role); returns the transcript."""
        with self._ctx.acting(principal, "evolve"):
            ports = await self.ports(model_client)
            return await run_conversation(ports, task, user_input=user_input, on_event=on_event,
                                          max_messages=max_messages)

    async def arun_spec(self, path: Path, *, on_event: EventCallback | None = None,
                        principal: Principal | None = None) -> dict:
        """A scripted team run (operator role); its ``approve: yes`` approves LOW risk only."""
        with self._ctx.acting(principal, "evolve") as who:
            spec = load_spec(Path(path))
            approver = PolicyApprover(assume_yes=spec.get("approve") == "yes", principal=who)
            if spec["team"] == "evolution":
                outcome = await self.aevolve(spec["task"], docs=spec.get("docs", []), approver=approver,
                                             on_event=on_event)
                return outcome.to_dict()
            if spec["team"] == "healing":
                return (await self.aheal(spec["task"], approver=approver, on_event=on_event)).to_dict()
            report = await self.agaps(threshold=float(spec.get("threshold", 0.5)), crawl=True, approver=approver,
                                      on_event=on_event)
            return report.to_dict()

    async def aserve_agents(self, names: Sequence[str], *, on_ready: Callable[[str], None] | None = None,
                            model_client: Any = None, principal: Principal | None = None) -> None:
        """Serve conversation agents to the teams of the agent runtime host (operator role) until stopped."""
        with self._ctx.acting(principal, "evolve"):
            ports = await self.ports(model_client)
            await serve_conversation_agents(ports, names, on_ready=on_ready)

    def _policy(self, principal: Principal | None) -> PolicyApprover:
        return PolicyApprover(assume_yes=False, principal=principal or acting_principal() or self._ctx.principal)

