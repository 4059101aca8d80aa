"""The job worker: a thread of the controller process that claims jobs and runs their steps.

A claim is a lease: while a job runs, a heartbeat renews it every third of its length and looks for a
cancel every second; a cancel stops the running step's commands (their process groups: SIGTERM, then
SIGKILL) and the job ends cancelled. A worker stopped with the controller stops them the same way and
leaves the job interrupted with its retry queued. A worker that dies (SIGKILL, a crash) stops
renewing; any worker then finds the lease expired, marks the job interrupted and queues its retry
(engine.recover), so no job stays running forever.
On SQLite the controller runs one worker; on PostgreSQL each controller process runs one, and the
claims' SKIP LOCKED keeps them apart.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import structlog
from sqlalchemy import select

from shipyard.adapters.process_groups import ProcessScope
from shipyard.controller.engine import jobs as engine
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.job_log import JobLog
from shipyard.controller.server.pipeline.preview_steps import run_preview_steps
from shipyard.controller.server.pipeline.steps import (
    CANCELLED_REASON,
    LEASE_LOST_REASON,
    STOPPING_REASON,
    JobCancelled,
    JobInput,
    JobRun,
    run_steps,
)
from shipyard.controller.store import job_store
from shipyard.controller.store.pipeline_models import Hook
from shipyard.errors import ShipyardError
from shipyard.secrets.redaction import Redactor

log = structlog.get_logger("shipyard.controller.jobs")
CANCEL_POLL_S = 1.0  # a cancel stops the running step within about this long


class JobWorker:
    def __init__(self, context: ControllerContext, *, lease: float, poll_interval: float = 1.0) -> None:
        self._context, self._lease, self._poll = context, lease, poll_interval
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._processes: ProcessScope | None = None  # the running job's commands

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="shipyard-job-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wakeup.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, and stop a running job's commands: the job ends interrupted, its retry queued.
        A job still running after `timeout` keeps its lease until it expires and is then recovered."""
        self._stopping.set()
        self._wakeup.set()
        processes = self._processes
        if processes is not None:
            processes.stop(STOPPING_REASON)
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                worked = self.run_once()
            except Exception:  # a database hiccup must not end the worker; the next round retries
                log.exception("job worker round failed")
                worked = False
            if not worked:
                self._wakeup.wait(self._poll)
                self._wakeup.clear()

    def run_once(self) -> bool:
        """Recover expired leases, then claim and run one job; True when a job ran."""
        with self._context.db.read() as session:  # most rounds find nothing: no write lock taken then
            if not job_store.has_work(session, now=self._context.now()):
                return False
        with self._context.db.transaction() as session:
            job_store.recover_expired(session, now=self._context.now())
            claim = job_store.claim_next(
                session, worker=self.name, now=self._context.now(), lease=self._lease
            )
        if claim is None:
            return False
        self._run(claim.job_id)
        return True

    def _run(self, job_id: int) -> None:
        with self._context.db.read() as session:
            job = job_store.find_job(session, job_id)
            hook = session.scalar(select(Hook).where(Hook.app_id == job.app_id))
            # The hook's own secrets have no business in a job log either.
            secrets = [hook.secret, hook.previous_secret or ""] if hook is not None else []
            preview_id = job.preview_id
            job_input = JobInput(
                job.id,
                job.app.name,
                job.environment,
                job.branch,
                job.sha,
                job.repository,
                hook.deploy_key_secret if hook is not None else None,
            )
        job_log = JobLog(self._context.db, job_id, self._context.clock, Redactor(secrets))
        cancel = threading.Event()
        lost = threading.Event()
        processes = self._processes = ProcessScope()
        if self._stopping.is_set():  # stop() ran before the scope existed
            processes.stop(STOPPING_REASON)
        heartbeat = threading.Thread(
            target=self._heartbeat,
            args=(job_id, cancel, lost, processes),
            name=f"shipyard-job-{job_id}-lease",
            daemon=True,
        )
        heartbeat.start()
        run = JobRun(self._context, job_input, job_log, cancel.is_set, processes)
        status, message = engine.FAILED, ""
        try:
            message = run_steps(run) if preview_id is None else run_preview_steps(run, preview_id)
            status = engine.SUCCEEDED
        except JobCancelled as exc:
            stopping = processes.reason == STOPPING_REASON
            status, message = (engine.INTERRUPTED if stopping else engine.CANCELLED), exc.message
        except ShipyardError as exc:
            message = f"{job_log.step or 'job'} failed: {exc.message}"
            for detail in exc.details:
                job_log.line(detail)
        except Exception as exc:  # a bug in a step ends the job, not the worker
            log.exception("job step crashed", job=job_id)
            message = (
                f"{job_log.step or 'job'} failed unexpectedly ({type(exc).__name__}); see the controller log."
            )
        finally:
            job_log.line(message)
            job_log.flush()
            lost.set()
            heartbeat.join()
            self._processes = None
        with self._context.db.transaction() as session:
            if status == engine.INTERRUPTED:
                stored = job_store.interrupt(
                    session,
                    job_id,
                    worker=self.name,
                    cause=job_log.redact(message),
                    timings=run.timings,
                    now=self._context.now(),
                )
            else:
                stored = job_store.finish(
                    session,
                    job_id,
                    worker=self.name,
                    status=status,
                    message=job_log.redact(message),
                    timings=run.timings,
                    now=self._context.now(),
                )
        if not stored:
            log.warning("job lease lost before it finished", job=job_id)

    def _heartbeat(
        self, job_id: int, cancel: threading.Event, done: threading.Event, processes: ProcessScope
    ) -> None:
        renew_every = self._lease / 3
        renewed_at = time.monotonic()
        while not done.wait(min(CANCEL_POLL_S, renew_every)):
            try:
                if time.monotonic() - renewed_at >= renew_every:
                    with self._context.db.transaction() as session:
                        held = job_store.renew_lease(
                            session, job_id, worker=self.name, now=self._context.now(), lease=self._lease
                        )
                    if not held:  # someone else recovered it: stop its commands, finish nothing
                        cancel.set()
                        processes.stop(LEASE_LOST_REASON)
                        return
                    renewed_at = time.monotonic()
                if not cancel.is_set():
                    with self._context.db.read() as session:
                        asked = job_store.cancel_asked(session, job_id)
                    if asked:
                        cancel.set()
                        processes.stop(CANCELLED_REASON)
            except Exception:  # the lease may lapse; recovery then takes over
                log.exception("renewing a job lease failed", job=job_id)
