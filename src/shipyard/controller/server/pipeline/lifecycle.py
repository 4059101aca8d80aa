"""Starts and stops the job worker, the scheduler, the notification sender and the preview reconciler.

Called from create_app's lifespan: the one place the controller's background pipeline threads live.
The worker and the scheduler run when the controller runs jobs; notifications are sent always, since
deployments made without a job notify too; previews are reconciled always, since a preview taken
down by hand must go even without a worker. With several controller replicas the scheduler, the
sender and the reconciler act only on the leader (each round asks); every replica's worker claims
jobs (SKIP LOCKED).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.notify_sender import NotificationSender
from shipyard.controller.server.pipeline.preview_reconciler import PreviewReconciler
from shipyard.controller.server.pipeline.scheduler import Scheduler
from shipyard.controller.server.pipeline.worker import JobWorker

SCHEDULER_INTERVAL_S = 5.0


@dataclass
class PipelineThreads:
    sender: NotificationSender
    previews: PreviewReconciler
    worker: JobWorker | None = None
    scheduler: Scheduler | None = None


def start_jobs(app: FastAPI, context: ControllerContext) -> PipelineThreads:
    settings = context.settings
    threads = PipelineThreads(
        NotificationSender(
            context,
            interval=settings.notify_interval,
            backoff_base=settings.notify_backoff,
            active=lambda: context.leadership.is_leader,
        ),
        PreviewReconciler(
            context,
            interval=settings.preview_reconcile_interval,
            active=lambda: context.leadership.is_leader,
        ),
    )
    threads.sender.start()
    threads.previews.start()
    context.wake_preview_reconciler = threads.previews.wake
    if settings.run_jobs:
        threads.worker = JobWorker(context, lease=settings.job_lease)
        threads.scheduler = Scheduler(
            context,
            interval=SCHEDULER_INTERVAL_S,
            on_queued=threads.worker.wake,
            active=lambda: context.leadership.is_leader,
        )
        app.state.job_worker = threads.worker
        context.wake_jobs = threads.worker.wake
        threads.worker.start()
        threads.scheduler.start()
    return threads


def stop_jobs(threads: PipelineThreads) -> None:
    if threads.scheduler is not None:
        threads.scheduler.stop()
    if threads.worker is not None:
        threads.worker.stop()
    threads.previews.stop()
    threads.sender.stop()
