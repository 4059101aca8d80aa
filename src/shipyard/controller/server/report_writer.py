"""Work written in batches: one short write transaction for everything queued at that moment.

Agent reports arrive in bursts (every agent reports right after a change reaches it). Writing each in
its own transaction makes them queue for SQLite's single writer, each holding a worker thread while
it waits. Here an item is queued in memory and one writer task hands everything queued so far to a
batch function (see reports.store_reports) in a single transaction; the function returns one outcome
per item, a ShipyardError refusing that item alone. Waiting items hold no thread and no connection;
a lone item is written at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from shipyard.controller.store.db import Database
from shipyard.errors import ShipyardError

Item = TypeVar("Item")
Result = TypeVar("Result")
MAX_BATCH = 500
StoreBatch = Callable[[Session, list[Item]], Sequence[Result | ShipyardError]]


@dataclass(eq=False)
class _Queued(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result] = field(repr=False)


class BatchWriter(Generic[Item, Result]):
    def __init__(self, db: Database, store: StoreBatch[Item, Result], *, max_batch: int = MAX_BATCH) -> None:
        self._db, self._store, self._max_batch = db, store, max_batch
        self._queue: list[_Queued[Item, Result]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0  # how many write transactions stored the queued work (tests, diagnostics)

    async def submit(self, item: Item) -> Result:
        """Store `item` with the next batch; a ShipyardError refusing it is raised here."""
        loop = asyncio.get_running_loop()
        queued: _Queued[Item, Result] = _Queued(item, loop.create_future())
        self._queue.append(queued)
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._wakeup.set()
        return await asyncio.shield(queued.future)

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

    def _write(self, batch: list[_Queued[Item, Result]]) -> Sequence[Result | ShipyardError]:
        with self._db.transaction() as session:
            outcomes = self._store(session, [queued.item for queued in batch])
        self.transactions += 1
        return outcomes

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
