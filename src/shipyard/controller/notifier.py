"""Wakes this process's waiting long-polls when the desired state may have changed.

Callers take a snapshot before reading the database and wait on that snapshot afterwards, so a
change committed in between is never missed. Waiters also time out and re-read the database, which
covers changes made by another controller process.
"""

from __future__ import annotations

import asyncio
import contextlib


class ChangeNotifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._event = loop, asyncio.Event()

    def snapshot(self) -> asyncio.Event | None:
        return self._event

    def notify(self) -> None:
        """Safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down; nobody waits anymore
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        if event is not None:
            event.set()

    async def wait(self, snapshot: asyncio.Event | None, timeout: float) -> None:
        if snapshot is None:
            await asyncio.sleep(timeout)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(snapshot.wait(), timeout)
