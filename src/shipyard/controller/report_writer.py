"""Agent reports written in batches: one short write transaction for every report waiting at that moment.

Reports arrive in bursts (every agent reports right after a change reaches it). Writing each in its own
transaction makes them queue for SQLite's single writer, each holding a worker thread while it waits.
Here a report is queued in memory and one writer task stores everything queued so far in a single
transaction, each report in its own savepoint so one refused report (a removed host) does not undo
the others. Waiting reports hold no thread and no connection; a lone report is written at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from shipyard.controller.db import Database
from shipyard.errors import ShipyardError

Result = TypeVar("Result")
MAX_BATCH = 250


@dataclass(eq=False)
class _Queued(Generic[Result]):
    write: Callable[[Session], Result]
    future: asyncio.Future[Result] = field(repr=False)


class BatchWriter(Generic[Result]):
    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self._db, self._max_batch = db, max_batch
        self._queue: list[_Queued[Result]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0  # how many write transactions stored the queued work (tests, diagnostics)

    async def submit(self, write: Callable[[Session], Result]) -> Result:
        """Run `write(session)` in the next batch's transaction; its ShipyardError is raised here."""
        loop = asyncio.get_running_loop()
        item: _Queued[Result] = _Queued(write, loop.create_future())
        self._queue.append(item)
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._wakeup.set()
        return await asyncio.shield(item.future)

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                try:
                    outcomes = await run_in_threadpool(self._write, batch)
                except Exception as exc:  # the whole transaction failed: every report in it learns why
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                for item, outcome in zip(batch, outcomes, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(outcome, ShipyardError):
                        item.future.set_exception(outcome)
                    else:
                        item.future.set_result(outcome)

    def _write(self, batch: list[_Queued[Result]]) -> list[Result | ShipyardError]:
        outcomes: list[Result | ShipyardError] = []
        with self._db.transaction() as session:
            for item in batch:
                try:
                    with session.begin_nested():
                        outcomes.append(item.write(session))
                except ShipyardError as exc:
                    outcomes.append(exc)
        self.transactions += 1
        return outcomes

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
