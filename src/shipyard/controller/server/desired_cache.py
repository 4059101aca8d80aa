"""The desired state of each group, computed once per change and shared by every waiting long-poll.

A group's plan (GroupPlan) is valid while the notifier's desired generation is unchanged (every local
change that can move the desired state notifies) and for at most `max_age` seconds, so changes made by
another controller process sharing the database still arrive. Concurrent callers for one group share
a single load (single flight), which runs in a worker thread with one short read transaction.

Waiting long-polls hold neither a database connection nor a thread: each is a future registered
here. One refresher task per group with waiters reloads the plan after every change (or every
`max_age`), and resolves only the waiters whose desired state differs from the version they hold, so a
change that moves no host's desired state wakes nobody. The refresher also marks the waiting agents
as seen, since a waiting agent is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from shipyard.controller.server.notifier import ChangeNotifier
from shipyard.controller.server.presence import Presence
from shipyard.controller.store.db import Database
from shipyard.controller.store.desired import GroupPlan, group_plan


@dataclass(frozen=True)
class _Entry:
    generation: int
    loaded_at: float
    plan: GroupPlan


@dataclass(eq=False)
class _Waiter:
    host_id: int
    host: str
    version: int
    future: asyncio.Future[GroupPlan] = field(repr=False)


class DesiredCache:
    def __init__(
        self,
        db: Database,
        notifier: ChangeNotifier,
        *,
        max_age: float,
        presence: Presence | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._db, self._notifier, self._max_age = db, notifier, max_age
        self._presence, self._clock = presence, clock
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[tuple[str, int], asyncio.Task[GroupPlan]] = {}
        self._waiters: dict[str, set[_Waiter]] = {}
        self._refreshers: dict[str, asyncio.Task[None]] = {}
        self.loads = 0  # how many times a plan was read from the database (tests, diagnostics)

    def _load(self, group: str) -> GroupPlan:
        with self._db.read() as session:
            return group_plan(session, group)

    async def _load_entry(self, group: str, generation: int) -> GroupPlan:
        started = asyncio.get_running_loop().time()
        plan = await run_in_threadpool(self._load, group)
        self.loads += 1
        current = self._entries.get(group)
        if current is not None and current.plan == plan:
            plan = current.plan  # unchanged: keep the per-host answers already computed
        if current is None or current.loaded_at <= started:
            self._entries[group] = _Entry(generation, started, plan)
        return plan

    async def plan(self, group: str) -> GroupPlan:
        loop = asyncio.get_running_loop()
        generation = self._notifier.desired_generation
        entry = self._entries.get(group)
        fresh = entry is not None and loop.time() - entry.loaded_at < self._max_age
        if entry is not None and fresh and entry.generation == generation:
            return entry.plan
        key = (group, generation)
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load_entry(group, generation))
            self._loading[key] = task
            task.add_done_callback(lambda _done: self._loading.pop(key, None))
        # shield: a caller that goes away (client disconnect) must not cancel the load the others await
        return await asyncio.shield(task)

    async def wait_for_change(
        self, group: str, host_id: int, host: str, version: int, timeout: float
    ) -> GroupPlan | None:
        """The group's plan once the host's desired state in it differs from `version`; None on timeout."""
        future: asyncio.Future[GroupPlan] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(host_id, host, version, future)
        self._waiters.setdefault(group, set()).add(waiter)
        if group not in self._refreshers:
            self._refreshers[group] = asyncio.ensure_future(self._refresh(group))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(group)
            if waiters is not None:
                waiters.discard(waiter)

    async def _refresh(self, group: str) -> None:
        try:
            while self._waiters.get(group):
                snapshot = self._notifier.snapshot()
                generation = self._notifier.desired_generation
                try:
                    plan = await self.plan(group)
                except Exception:  # the database hiccuped; waiters time out or the next round works
                    plan = None
                waiters = list(self._waiters.get(group, ()))
                if self._presence is not None and self._clock is not None:
                    self._presence.seen_many([w.host_id for w in waiters], self._clock())
                if plan is not None:
                    self._resolve(plan, waiters)
                if self._notifier.desired_generation == generation:
                    await self._notifier.wait(snapshot, self._max_age)
        finally:
            self._refreshers.pop(group, None)

    @staticmethod
    def _resolve(plan: GroupPlan, waiters: list[_Waiter]) -> None:
        for waiter in waiters:
            moved = plan.version_for(waiter.host_id) != waiter.version
            if moved and not waiter.future.done():
                waiter.future.set_result(plan)

    async def close(self) -> None:
        for task in list(self._refreshers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
