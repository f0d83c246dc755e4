"""Team use cases: evolve a tool, heal, knowledge gaps, conversations with the team, scripted runs, serving
chat agents to a runtime host, and what agents and teams are installed. Each hands the flow its ``TeamPorts``;
the flows, and the registry of agents and teams (evorag's and the plugins'), live in evorag.teams.

This module imports evorag.teams (AutoGen AgentChat, ~0.3 s): the service builds ``TeamsService`` on first use,
so that commands which never run a team (search, ask, sources...) start without it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evorag.errors import UserError
from evorag.principals import Principal, acting_principal
from evorag.service._context import ServiceContext
from evorag.service._conversations import ConversationStore, TeamTurn
from evorag.service._inputs import require_text
from evorag.service._knowledge import KnowledgeService
from evorag.teams import (
    CheckResult,
    GapProposal,
    GapReport,
    HealingReport,
    PluginInfo,
    TeamPorts,
    default_registry,
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
        self._conversations = ConversationStore(ctx.settings.home / "conversations")
        # Agents and teams by name, evorag's and the plugins' (entry points are read on first need, a plugin's
        # code imported only when a listing or a team needs it).
        self.registry = default_registry()

    def installed_agents(self, *, principal: Principal | None = None) -> list[PluginInfo]:
        """Every agent a team spec can name, where it comes from and whether it loads (reader role). Listing
        imports the plugins: a broken one is reported with its error, never raised."""
        self._ctx.check(principal, "list_tools")
        return self.registry.agents()

    def installed_teams(self, *, principal: Principal | None = None) -> list[PluginInfo]:
        """Every team (``team run``, ``team chat``, ``evolve --team``), where it comes from and whether it can be
        assembled (reader role)."""
        self._ctx.check(principal, "list_tools")
        return self.registry.teams()

    async def ports(self, model_client: Any = None) -> TeamPorts:
        """What a flow gets; ``model_client`` replaces the service's model client for this run."""
        parts = self._ctx.parts
        pipeline = await asyncio.to_thread(lambda: parts.pipeline)  # opens the plugins' git repository
        limiter = await asyncio.to_thread(lambda: parts.rate_limiter)
        client = ((lambda: parts.metered(model_client, type(model_client).__name__)) if model_client is not None
                  else (lambda: parts.model_client("agents")))
        return TeamPorts(settings=self._ctx.settings, knowledge=self._knowledge, index=self._knowledge,
                         pipeline=pipeline, limiter=limiter, model_client=client, registry=self.registry)

    async def aevolve(self, request: str, *, approver: Approver, docs: Sequence[str] = (),
                      on_event: EventCallback | None = None, model_client: Any = None,
                      principal: Principal | None = None, team: str | None = None) -> EvolutionOutcome:
        """Let the agent team build a tool for ``request`` (operator role). ``docs`` are crawled first (each
        crawl a job, as small as the evolution_docs_* settings say). ``team``: an evolution team of
        ``installed_teams`` (default: the evolution_team setting). See teams.run_evolution."""
        with self._ctx.acting(principal, "evolve") as who:
            started, usage = time.perf_counter(), self._knowledge.usage  # the request and outcome are logged
            try:
                # Refused URLs fail now, before the run takes a slot of the hourly limit.
                docs = [await asyncio.to_thread(self._knowledge.check_url, url) for url in docs]
                ports = await self.ports(model_client)
                outcome = await run_evolution(ports, request, docs=docs, approver=approver, on_event=on_event,
                                              team=team)
            except Exception as exc:
                await asyncio.to_thread(usage.evolution, who, request, started=started, error=exc)
                raise
            await asyncio.to_thread(usage.evolution, who, request, outcome=outcome, started=started)
            return outcome

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
                        max_messages: int | None = None, model_client: Any = None, approver: Approver | None = None,
                        principal: Principal | None = None, team: str = "conversation",
                        follow_up: Callable | None = None) -> list[dict]:
        """Run the conversation team (SelectorGroupChat with the human proxy), or another chat team of
        ``installed_teams`` (``team``), on ``task`` (operator role); returns the transcript.
        ``user_input(question)`` (sync or async) answers for the human; without it, or when it returns None, the
        run ends when the team asks the human. ``follow_up()`` (sync or async) gives the person's next message
        whenever the team stops, and the same team goes on, until it returns None or "" (`evorag team chat`).
        A tool the team's deployer submits goes through the gates and ``approver`` (default: the policy, which
        leaves it pending for an approver). ``max_messages`` bounds each run (default: the team's spec)."""
        with self._ctx.acting(principal, "converse") as who:
            task = require_text(task, "message")
            ports = await self.ports(model_client)
            run = await run_conversation(ports, task, team=team, user_input=user_input, follow_up=follow_up,
                                         on_event=on_event, max_messages=max_messages,
                                         approver=approver or self._policy(who))
            return run.messages

    async def atalk(self, message: str, *, conversation_id: str | None = None, user_input: Callable | None = None,
                    approver: Approver | None = None, on_event: EventCallback | None = None, max_messages: int = 20,
                    model_client: Any = None, principal: Principal | None = None,
                    team: str | None = None) -> TeamTurn:
        """One turn of a conversation with a chat team (operator role): ``message`` goes to the team of
        conversation ``conversation_id`` (only its owner's), or starts a new conversation with ``team`` (default:
        the conversation team). Like ``aconverse`` otherwise; when the team asks the human and ``user_input`` gives
        no answer, the turn ends ``waiting_for_human`` and the next message is the answer."""
        with self._ctx.acting(principal, "converse") as who:
            message = require_text(message, "message")
            if not message.strip():
                raise UserError("the message is empty", hint="say what you want the team to do")
            store = self._conversations
            conversation = (await asyncio.to_thread(store.get, conversation_id, who.name) if conversation_id
                            else store.new(who.name, team or "conversation"))
            if team is not None and team != conversation.team:
                raise UserError(f"conversation {conversation.id} is with team {conversation.team}, not {team}",
                                hint="leave the team out to continue it, or start a new conversation")
            if conversation.turns and conversation.state is None:
                raise UserError(f"conversation {conversation.id} cannot be continued: its agents ran through an "
                                "agent runtime host, which cannot save their state", hint="start a new conversation")
            with store.turn(conversation.id):
                ports = await self.ports(model_client)
                run = await run_conversation(ports, message, team=conversation.team, user_input=user_input,
                                             on_event=on_event,
                                             max_messages=max_messages, approver=approver or self._policy(who),
                                             state=conversation.state)
                conversation.turns += 1
                conversation.state, conversation.updated_at = run.state, time.time()
                conversation.messages += run.messages
                await asyncio.to_thread(store.save, conversation)
            return TeamTurn(conversation.id, run.messages, waiting_for_human=run.waiting_for_human,
                            question=run.question, stop_reason=run.stop_reason, outcomes=run.outcomes)

    async def arun_spec(self, path: Path, *, on_event: EventCallback | None = None,
                        principal: Principal | None = None) -> dict:
        """A scripted team run (operator role) of any team of ``installed_teams``, built-in or a plugin's, by its
        flow; its ``approve: yes`` approves LOW risk only. A chat team gets the task as its first message and the
        spec's ``replies`` as the person's answers."""
        with self._ctx.acting(principal, "evolve") as who:
            spec = load_spec(Path(path))
            approver = PolicyApprover(assume_yes=spec.get("approve") == "yes", principal=who)
            name = spec["team"]
            flow = (await asyncio.to_thread(self.registry.team, name)).flow
            task = spec.get("task") or ""
            if flow != "gaps" and not task.strip():
                raise UserError(f"{path}: 'task' must say what team {name} should do")
            if spec.get("docs") and flow != "evolution":
                raise UserError(f"{path}: 'docs' is for evolution teams; {name} is a {flow} team")
            if flow == "evolution":
                outcome = await self.aevolve(task, docs=spec.get("docs", []), approver=approver, on_event=on_event,
                                             team=name)
                return outcome.to_dict()
            if flow == "healing":
                return (await self.aheal(task, approver=approver, on_event=on_event)).to_dict()
            if flow == "gaps":
                report = await self.agaps(threshold=float(spec.get("threshold", 0.5)), crawl=True,
                                          approver=approver, on_event=on_event)
                return report.to_dict()
            replies = iter(spec.get("replies", []))
            turn = await self.atalk(task, user_input=lambda question: next(replies, None), approver=approver,
                                    on_event=on_event, team=name)
            return {"team": name, **turn.to_dict()}

    async def aserve_agents(self, names: Sequence[str], *, on_ready: Callable[[str], None] | None = None,
                            model_client: Any = None, principal: Principal | None = None) -> None:
        """Serve chat agents (built-in or plugins') to the teams of the agent runtime host (operator role) until
        stopped."""
        with self._ctx.acting(principal, "evolve"):
            ports = await self.ports(model_client)
            await serve_conversation_agents(ports, names, on_ready=on_ready)

    def _policy(self, principal: Principal | None) -> PolicyApprover:
        return PolicyApprover(assume_yes=False, principal=principal or acting_principal() or self._ctx.principal)

