"""The sessions that have listed or called tools, each with its event loop, to tell them the tool list changed, and
the search and answer results each session was sent (so it is not sent them twice)."""

from __future__ import annotations

import asyncio
import weakref

from evorag.tools.result_budget import SeenResults


class Sessions:
    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._sending: set[asyncio.Task] = set()
        # Forgotten with the session object: a new session (a reconnect included) starts with nothing seen.
        self._seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def remember(self, session) -> None:
        self._loops[session] = asyncio.get_running_loop()

    def seen(self, session, capacity: int) -> SeenResults:
        """The results ``session`` was sent (at most ``capacity`` ids remembered)."""
        if session not in self._seen:
            self._seen[session] = SeenResults(capacity)
        return self._seen[session]

    def notify_tools_changed(self) -> None:
        """Thread-safe: schedules one notification per session on that session's loop."""
        for session, loop in list(self._loops.items()):
            try:
                loop.call_soon_threadsafe(self._spawn, session, loop)
            except RuntimeError:  # that loop is closed: the session is gone
                self._loops.pop(session, None)

    def _spawn(self, session, loop) -> None:
        task = loop.create_task(self._send(session))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, session) -> None:
        try:
            await session.send_tool_list_changed()
        except Exception:  # noqa: BLE001 - a closed session is simply forgotten
            self._loops.pop(session, None)
