"""Chainlit messages, buttons and progress for the callbacks in app.py, built from the service's results.

Importing Chainlit writes its config into the current directory, so each function imports it when called (the
CLI imports evorag.ui without touching Chainlit).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Self

from evorag.errors import EvoragError
from evorag.ui._commands import COMMANDS
from evorag.ui._plots import cost_figure, evolutions_figure, metrics_figure, usage_figure
from evorag.ui._render import (
    render_costs,
    render_crawl_progress,
    render_crawl_report,
    render_evolutions,
    render_history,
    render_pending,
    render_proposal_decision,
    render_proposals,
    render_rollback_question,
    render_status,
    render_trend,
    render_usage,
    render_versions,
    starter_prompts,
)

PROGRESS_INTERVAL_S = 0.5
APPROVALS_SHOWN = 20


async def offer_commands() -> None:
    """The composer's command menu."""
    import chainlit as cl  # see the module docstring

    await cl.context.emitter.set_commands([
        {"id": name, "description": description, "icon": icon, "button": False, "persistent": False}
        for name, (_, description, icon) in COMMANDS.items()
    ])


def starters(sources) -> list:
    import chainlit as cl  # see the module docstring

    return [cl.Starter(label=label, message=message) for label, message in starter_prompts(sources)]


async def show_error(exc: EvoragError) -> None:
    import chainlit as cl  # see the module docstring

    await cl.ErrorMessage(content=f"**{exc.message}**" + (f"\n\n{exc.hint}" if exc.hint else "")).send()


async def say(content: str, **extra) -> None:
    import chainlit as cl  # see the module docstring

    await cl.Message(content=content, **extra).send()


class CrawlProgressMessage:
    """One message that follows a crawl: ``async with CrawlProgressMessage(url) as on_progress:`` around the crawl
    (``on_progress`` is its progress callback), then ``await message.done(report)``. Updated at most twice a
    second; a crawl that raises leaves "stopped" in it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._latest = None
        self._message = None
        self._ticker: asyncio.Task | None = None

    def __call__(self, progress) -> None:
        self._latest = dataclasses.replace(progress)  # a copy: the crawl goes on changing its own

    async def __aenter__(self) -> Self:
        import chainlit as cl  # see the module docstring

        self._message = cl.Message(content=render_crawl_progress(self.url, None))
        await self._message.send()
        self._ticker = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self._ticker.cancel()
        if exc is not None:
            self._message.content = f"Crawl of {self.url} stopped."
            await self._message.update()

    async def _follow(self) -> None:
        shown = None
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            if self._latest is not shown:
                shown = self._latest
                self._message.content = render_crawl_progress(self.url, shown)
                await self._message.update()

    async def done(self, report) -> None:
        self._message.content = render_crawl_report(report.to_dict())
        await self._message.update()


async def show_quality(report, evolutions: list[dict], window: int) -> None:
    """The dashboard: the answer-quality chart and trend, the newest answers, the finished evolutions."""
    import chainlit as cl  # see the module docstring

    figure = metrics_figure(report.history, window)
    elements = [cl.Plotly(name="answer quality", figure=figure, display="inline", size="large")] if figure else []
    await cl.Message(content=f"## Answer quality\n\n{render_trend(report.trend)}\n\n### Latest answers\n\n"
                             + render_history(report.history), elements=elements).send()
    await cl.Message(content="## Evolutions\n\n" + render_evolutions(evolutions)).send()


async def show_status(status) -> None:
    """The health dashboard: the figures and tables of ``Evorag.status()``, and plots of the cost by day and of
    the evolutions' outcomes (each when it has something to show)."""
    import chainlit as cl  # see the module docstring

    figures = [("cost by day", cost_figure(status.cost_by_day)),
               ("evolution outcomes", evolutions_figure(status.evolutions))]
    elements = [cl.Plotly(name=name, figure=figure, display="inline", size="medium")
                for name, figure in figures if figure is not None]
    await cl.Message(content=render_status(status), elements=elements).send()


async def show_costs(report) -> None:
    """The costs view: a day's model cost by principal, operation and model, the budget and what is left."""
    import chainlit as cl  # see the module docstring

    await cl.Message(content=render_costs(report)).send()


async def show_usage(analysis) -> None:
    """The usage view: ``render_usage`` and a plot of the busiest topics' volume coloured by answer quality."""
    import chainlit as cl  # see the module docstring

    figure = usage_figure(analysis)
    elements = [cl.Plotly(name="queries per topic", figure=figure, display="inline", size="large")] if figure else []
    await cl.Message(content=render_usage(analysis), elements=elements).send()


async def show_proposals(proposals, principal) -> None:
    """The proposals view: the table of proposals, then one message per proposal waiting for a decision with
    Approve / Reject for those who may decide it. The buttons are the /approvals view's ``decide_approval``
    actions on the proposal's approval request: one approval path (the callback checks the role again)."""
    import chainlit as cl  # see the module docstring

    await cl.Message(content=render_proposals(principal, proposals)).send()
    if not principal.can("approve"):
        return
    for proposal in [p for p in proposals if p.status == "proposed" and p.approval_id][:APPROVALS_SHOWN]:
        actions = [
            cl.Action(name="decide_approval", payload={"id": proposal.approval_id, "approve": True}, label="Approve",
                      icon="check", tooltip=f"Approve proposal {proposal.id}: queue its {proposal.kind}"),
            cl.Action(name="decide_approval", payload={"id": proposal.approval_id, "approve": False}, label="Reject",
                      icon="x", tooltip=f"Reject proposal {proposal.id}"),
        ]
        await cl.Message(content=render_proposal_decision(proposal), actions=actions).send()


async def show_pending_approval(request, principal) -> None:
    """One pending change in the /approvals view, with Approve / Reject for those who may decide it."""
    import chainlit as cl  # see the module docstring

    elements = [cl.Text(name=f"{request.tool}.diff", content=request.diff, language="diff", display="inline")
                ] if request.diff else []
    actions = [
        cl.Action(name="decide_approval", payload={"id": request.id, "approve": True}, label="Approve",
                  icon="check", tooltip=f"Approve {request.id} and deploy {request.tool}"),
        cl.Action(name="decide_approval", payload={"id": request.id, "approve": False}, label="Reject",
                  icon="x", tooltip=f"Reject {request.id}"),
    ] if principal.can("approve") else []
    await cl.Message(content=render_pending(request), elements=elements, actions=actions).send()


async def show_versions(checkpoints, principal) -> None:
    """The checkpoints, with a Roll back button per older one for those who may roll back (the callback checks
    again). The newest checkpoint is the tool set in force: rolling back means choosing an older one."""
    import chainlit as cl  # see the module docstring

    actions = [cl.Action(name="rollback", payload={"version": v.id}, label=f"Roll back to {v.id[:8]}",
                         icon="undo-2", tooltip=v.message.splitlines()[0] if v.message else v.id)
               for v in list(reversed(checkpoints))[1:9]] if principal.can("rollback") else []
    await cl.Message(content="## Versions\n\n" + render_versions(checkpoints), actions=actions).send()


async def confirm_rollback(version: str) -> bool:
    import chainlit as cl  # see the module docstring

    answer = await cl.AskActionMessage(
        content=render_rollback_question(version),
        actions=[cl.Action(name="confirm", payload={"confirm": True}, label="Roll back", icon="undo-2"),
                 cl.Action(name="confirm", payload={"confirm": False}, label="Cancel", icon="x")],
        timeout=300,
    ).send()
    return bool(answer and (answer.get("payload") or {}).get("confirm"))
