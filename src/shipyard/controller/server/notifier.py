"""Wakes this process's waiting long-polls when the desired state may have changed.

Callers take a snapshot before reading the state and wait on that snapshot afterwards, so a change
committed in between is never missed. Waiters also time out and re-check, which covers changes made
by another controller process. `generation` counts notifications; `desired_generation` counts only
those that may move a host's desired state, and the desired-state cache keys on it: the rollout loop
records a host's progress (healthy, succeeded) several times a second while a large wave reports, and
that must wake the dashboards without making every agent request wait for a fresh desired-state read.

With replicas, `on_notify` carries every local notify() to the others (change_feed.ChangeFeed),
and their messages arrive through notify_from_peer(), which wakes this process without echoing back.
Progress-only changes stay local: other replicas' dashboards see them on their recheck.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class ChangeNotifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._generation = 0
        self._desired_generation = 0
        self._counter_lock = threading.Lock()
        # Called after every local notify(): tells the other controller replicas (set at startup).
        self.on_notify: Callable[[], None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._event = loop, asyncio.Event()

    @property
    def generation(self) -> int:
        """Bumped at once (in the notifying thread) by every notify()."""
        return self._generation

    @property
    def desired_generation(self) -> int:
        """Bumped by notify(), not by notify_progress()."""
        return self._desired_generation

    def snapshot(self) -> asyncio.Event | None:
        return self._event

    def notify(self) -> None:
        """Something changed, perhaps a desired state. Safe to call from any thread."""
        self.notify_from_peer()
        if self.on_notify is not None:
            self.on_notify()

    def notify_from_peer(self) -> None:
        """A change committed by another replica: wake this process's waiters only."""
        with self._counter_lock:
            self._desired_generation += 1
            self._generation += 1
        self._wake_soon()

    def notify_progress(self) -> None:
        """Something changed that moves no desired state (a deployment's per-host progress, a host lost)."""
        with self._counter_lock:
            self._generation += 1
        self._wake_soon()

    def _wake_soon(self) -> None:
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
