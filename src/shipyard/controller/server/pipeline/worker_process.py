"""The job worker and the scheduler as a process of their own (`shipyard job-worker`).

In the controller's process the worker thread shares the interpreter with the API: a build's secret
scan holds the GIL while webhooks wait to be acknowledged. Here the worker runs beside a controller
started with --no-job-worker, on the same database, at a lower CPU priority (`niceness`, inherited by
the git and docker processes its jobs start), so under load the API is served first. Jobs queued by the
API are found by polling (`poll_interval`); deployments it starts are picked up by the controller's
rollout loop, which re-reads the database every tick, like those of another controller process.
"""

from __future__ import annotations

import os
import threading

import structlog

from shipyard.controller.server.app import build_context
from shipyard.controller.server.pipeline.lifecycle import SCHEDULER_INTERVAL_S
from shipyard.controller.server.pipeline.scheduler import Scheduler
from shipyard.controller.server.pipeline.worker import JobWorker
from shipyard.controller.server.settings import ControllerSettings
from shipyard.controller.store.models import utcnow

log = structlog.get_logger("shipyard.controller.jobs")


def lower_priority(niceness: int) -> int:
    """Add `niceness` to this process's nice value (children inherit it); the value now in force."""
    return os.nice(niceness) if niceness > 0 else os.nice(0)


def run_job_worker(
    settings: ControllerSettings, stop: threading.Event, *, niceness: int = 10, poll_interval: float = 0.5
) -> None:
    """Claim and run jobs, and start the schedules' runs, until `stop` is set."""
    now_nice = lower_priority(niceness)
    context = build_context(settings, utcnow)
    context.db.migrate()  # at head already when the controller started first: a no-op
    worker = JobWorker(context, lease=settings.job_lease, poll_interval=poll_interval)
    scheduler = Scheduler(context, interval=SCHEDULER_INTERVAL_S, on_queued=worker.wake)
    log.info("job worker started", worker=worker.name, nice=now_nice)
    worker.start()
    scheduler.start()
    try:
        while not stop.wait(1.0):  # a timed wait: the signal handler that sets `stop` runs between them
            pass
    finally:
        scheduler.stop()
        worker.stop()
        context.db.dispose()
        log.info("job worker stopped", worker=worker.name)
