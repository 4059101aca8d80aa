"""The scheduler: a thread of the controller process that starts the jobs of due schedules.

It runs next to the job worker (started and stopped with it, lifecycle.py). Each round is one
transaction (schedule_store.run_due); the jobs it queues are then picked up by the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store import schedule_store

log = structlog.get_logger("shipyard.controller.schedules")


class Scheduler:
    def __init__(
        self,
        context: ControllerContext,
        *,
        interval: float,
        on_queued: Callable[[], None] | None = None,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        """`active`: asked before each round; False skips it (a controller replica that does not lead)."""
        self._context, self._interval, self._on_queued = context, interval, on_queued
        self._active = active
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="shipyard-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._active():
                    self.run_once()
            except Exception:  # a database hiccup must not end the scheduler; the next round retries
                log.exception("scheduler round failed")
            self._stopping.wait(self._interval)

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
