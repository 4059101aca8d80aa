"""The scheduler: a thread of the controller process that starts the jobs of due schedules.

It runs next to the job worker (started and stopped with it, lifecycle.py). Each round is one
transaction (schedule_store.run_due); the jobs it queues are then picked up by the worker.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.periodic import PeriodicThread
from shipyard.controller.store import schedule_store

log = structlog.get_logger("shipyard.controller.schedules")


class Scheduler(PeriodicThread):
    name = "shipyard-scheduler"

    def __init__(
        self,
        context: ControllerContext,
        *,
        interval: float,
        on_queued: Callable[[], None] | None = None,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__(interval=interval, active=active)
        self._context, self._on_queued = context, on_queued

    def run_once(self) -> list[int]:
        """Start the due schedules' jobs now; the ids of the jobs queued."""
        prunes: list[int] = []
        with self._context.db.transaction() as session:
            queued = schedule_store.run_due(session, now=self._context.now(), prunes_requested=prunes)
        if prunes:
            log.info("scheduled prunes requested", prunes=prunes)
            self._context.notifier.notify()  # the agents' long-polls see the new prune at once
        if queued:
            log.info("scheduled jobs queued", jobs=queued)
            if self._on_queued is not None:
                self._on_queued()
        return queued
