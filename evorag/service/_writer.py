"""The one writer slot: whatever changes the index, the catalog or the deployed tool set holds it.

Crawls, adding and deploying tools, rollbacks, removing a source, index repairs, BEIR indexing and restores
all take this slot, so at most one of them writes at a time in this process (other processes are kept
consistent by SQLite and git themselves). Threads use ``with slot:``; coroutines use ``async with slot:``,
which waits in a thread of its own so the event loop keeps serving while it waits.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self

from evorag.errors import InternalError


class WriterSlot:
    """A non-reentrant lock usable from threads and event loops alike."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None  # thread of a ``with`` holder: re-entering it would deadlock

    @property
    def busy(self) -> bool:
        """True while someone writes: interfaces tell their user that the next write waits."""
        return self._lock.locked()

    def try_acquire(self) -> bool:
        """Take the slot if it is free, without waiting; ``release()`` gives it back. For queue workers, which
        choose their next request by whether they can write now (evorag/service/_workers.py)."""
        return self._lock.acquire(blocking=False)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> Self:
        if self._owner == threading.get_ident():
            raise InternalError("the writer slot was taken twice by one thread (it would wait for itself)")
        self._lock.acquire()
        self._owner = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner = None
        self._lock.release()

    async def __aenter__(self) -> Self:
        if self._lock.acquire(blocking=False):
            return self
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()

        def hand_over() -> None:  # on the loop, once the waiting thread holds the lock
            if granted.cancelled():  # the waiter gave up meanwhile: pass the slot on
                self._lock.release()
            else:
                granted.set_result(None)

        def wait() -> None:
            # A thread per waiter, not the loop's default executor: waiters blocked there could fill it and
            # starve the holder's own ``asyncio.to_thread`` calls, which would then never release the slot.
            self._lock.acquire()
            try:
                loop.call_soon_threadsafe(hand_over)
            except RuntimeError:  # the loop closed while we waited
                self._lock.release()

        threading.Thread(target=wait, name="evorag-writer-wait", daemon=True).start()
        await granted
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()
