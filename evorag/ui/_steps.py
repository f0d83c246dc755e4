"""Agent teams stream into the chat: one parent step per run, one nested step per agent message."""

from __future__ import annotations

import asyncio
import logging
from typing import Self

from evorag.team_events import event_text, step_title

__all__ = ["AgentSteps", "event_text", "step_title"]


class AgentSteps:
    """``on_event`` for teams: ``async with AgentSteps("Evolution team") as steps: await run(on_event=steps)``.

    Team callbacks are synchronous, Chainlit calls are not: events are queued and one task sends them
    in order. The parent step is not made the current step, so messages the team sends meanwhile (the
    approval question) stay in the main conversation instead of folding into the step.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.count = 0
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._parent = None

    def __call__(self, event: object) -> None:
        self._queue.put_nowait(event)

    async def __aenter__(self) -> Self:
        import chainlit as cl
        from chainlit.step import local_steps

        # Under the step of the current callback, like the messages sent meanwhile, so they interleave in time.
        current = local_steps.get() or []
        self._parent = cl.Step(name=self.title, type="run", default_open=True, show_input=False,
                               parent_id=current[-1].id if current else None)
        self._parent.start = self._parent.created_at
        await self._parent.send()
        self._task = asyncio.create_task(self._drain())
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        from chainlit.utils import utc_now

        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task
        parent = self._parent
        parent.end = utc_now()
        if exc is not None:
            parent.is_error = True
            parent.output = f"stopped: {exc}"
        else:
            parent.output = f"{self.count} agent messages"
        await parent.update()

    async def _drain(self) -> None:
        import chainlit as cl

        while (event := await self._queue.get()) is not None:
            spoken = event_text(event)
            if spoken is None:
                continue
            source, content = spoken
            self.count += 1
            step = cl.Step(name=step_title(source, content), type="tool", parent_id=self._parent.id,
                           show_input=False)
            step.start = step.end = step.created_at
            step.output = content
            try:
                await step.send()
            except Exception:  # a step that fails to render must not stop the team
                logging.getLogger(__name__).exception("could not show the step of %s", source)
