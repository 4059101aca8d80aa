"""Starts and stops the job worker with the controller app (called from create_app's lifespan)."""

from __future__ import annotations

from fastapi import FastAPI

from shipyard.controller.context import ControllerContext
from shipyard.controller.pipeline.worker import JobWorker


def start_jobs(app: FastAPI, context: ControllerContext) -> JobWorker | None:
    if not context.settings.run_jobs:
        return None
    worker = JobWorker(context, lease=context.settings.job_lease)
    app.state.job_worker = worker
    worker.start()
    return worker


def stop_jobs(worker: JobWorker | None) -> None:
    if worker is not None:
        worker.stop()
