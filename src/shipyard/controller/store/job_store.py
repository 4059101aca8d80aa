"""Jobs in the database: admission, claims with a lease, heartbeats, recovery, logs, cancel and retry.

The rules come from engine.py; this module only loads rows into its views and stores its decisions.
On PostgreSQL a claim takes `FOR UPDATE SKIP LOCKED` on the job and on its app, so several
controller processes can run workers without two of them starting jobs of one app at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from shipyard.controller.engine import jobs as engine
from shipyard.controller.engine.github import Verdict
from shipyard.controller.errors import ConflictError
from shipyard.controller.store import audit, notify_store
from shipyard.controller.store.models import App
from shipyard.controller.store.pipeline_models import Hook, Job, JobLogLine
from shipyard.errors import NotFoundError

LOG_LINE_LIMIT = 4000  # characters kept of one line: a runaway line must not bloat the table


def view_of(job: Job) -> engine.JobView:
    return engine.JobView(
        id=job.id,
        environment=job.environment,
        branch=job.branch,
        sha=job.sha,
        status=job.status,
        commit_time=job.commit_time,
        attempt=job.attempt,
        lease_until=job.lease_until,
    )


def _app_jobs(session: Session, app_id: int) -> Sequence[Job]:
    return session.scalars(select(Job).where(Job.app_id == app_id).order_by(Job.id)).all()


def admit_commit(
    session: Session,
    hook: Hook,
    verdict: Verdict,
    *,
    trigger: str,
    delivery_id: str | None,
    actor: str,
    now: datetime,
) -> tuple[Job | None, engine.Admission]:
    """The job for the verdict's commit (None when that commit already has one), per engine.admit."""
    jobs = _app_jobs(session, hook.app_id)
    candidate = engine.Candidate(verdict.environment, verdict.branch, verdict.sha, verdict.commit_time)
    next_id = (max((job.id for job in jobs), default=0)) + 1
    admission = engine.admit(candidate, [view_of(job) for job in jobs], next_id)
    if not admission.create:
        return None, admission
    by_id = {job.id: job for job in jobs}
    job = Job(
        app_id=hook.app_id,
        environment=verdict.environment,
        branch=verdict.branch,
        sha=verdict.sha,
        repository=hook.repository,
        trigger=trigger,
        delivery_id=delivery_id,
        commit_time=verdict.commit_time,
        status=admission.status,
        message=admission.reason,
        created_by=actor,
        created_at=now,
        finished_at=now if admission.status in engine.FINISHED else None,
        timings={},
    )
    session.add(job)
    session.flush()
    for older in admission.supersede:
        _finish(by_id[older], engine.SUPERSEDED, f"job {job.id} ships a newer commit of {job.branch}", now)
    return job, admission


def _finish(job: Job, status: str, message: str, now: datetime) -> None:
    job.status, job.message, job.finished_at = status, message, now
    job.lease_until = None


def find_job(session: Session, job_id: int, *, lock: bool = False) -> Job:
    query = select(Job).where(Job.id == job_id)
    job = session.scalar(query.with_for_update() if lock else query)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist; list jobs with 'shipyard jobs'.")
    return job


def list_jobs(
    session: Session, *, app: str | None = None, environment: str | None = None, limit: int = 50
) -> Sequence[Job]:
    query = select(Job).options(joinedload(Job.app)).order_by(Job.id.desc()).limit(limit)
    if app is not None:
        query = query.join(App, Job.app_id == App.id).where(App.name == app)
    if environment is not None:
        query = query.where(Job.environment == environment)
    return session.scalars(query).all()


def has_work(session: Session, *, now: datetime) -> bool:
    """A queued job, or a running one whose lease lapsed: a cheap read before any write transaction."""
    due = or_(
        Job.status == engine.QUEUED,
        (Job.status == engine.RUNNING) & (Job.lease_until.is_(None) | (Job.lease_until <= now)),
    )
    return session.scalar(select(Job.id).where(due).limit(1)) is not None


@dataclass(frozen=True)
class Claim:
    job_id: int
    lease_until: datetime


def claim_next(session: Session, *, worker: str, now: datetime, lease: float) -> Claim | None:
    """Start the oldest job that may run now; None when there is none (or another worker holds it)."""
    queued = session.scalars(
        select(Job).where(Job.status == engine.QUEUED).order_by(Job.id).with_for_update(skip_locked=True)
    ).all()
    for app_id in dict.fromkeys(job.app_id for job in queued):
        # Holding the app's row keeps another worker from starting a job of this app concurrently.
        if session.scalar(select(App.id).where(App.id == app_id).with_for_update(skip_locked=True)) is None:
            continue
        jobs = [view_of(job) for job in _app_jobs(session, app_id)]
        ready = [job for job in engine.claimable(jobs) if job.status == engine.QUEUED]
        if ready:
            job = session.get(Job, ready[0].id)
            assert job is not None
            until = now + timedelta(seconds=lease)
            job.status, job.worker, job.lease_until, job.started_at = engine.RUNNING, worker, until, now
            job.message = f"claimed by {worker}"
            _notify(session, job, "job.started")
            return Claim(job.id, until)
    return None


def renew_lease(session: Session, job_id: int, *, worker: str, now: datetime, lease: float) -> bool:
    """Extend the lease; False when the job is no longer this worker's (expired and recovered)."""
    job = session.get(Job, job_id)
    if job is None or job.status != engine.RUNNING or job.worker != worker:
        return False
    job.lease_until = now + timedelta(seconds=lease)
    return True


def recover_expired(session: Session, *, now: datetime) -> list[int]:
    """Jobs whose worker stopped renewing: interrupted, and retried once (engine.recover)."""
    running = session.scalars(
        select(Job).where(Job.status == engine.RUNNING).with_for_update(skip_locked=True)
    ).all()
    retried: list[int] = []
    for job in running:
        if not engine.lease_expired(view_of(job), now):
            continue
        again = _interrupt(session, job, engine.LEASE_LAPSED, now)
        if again is not None:
            retried.append(again.id)
    return retried


def interrupt(
    session: Session,
    job_id: int,
    *,
    worker: str,
    cause: str,
    timings: dict[str, float],
    now: datetime,
) -> bool:
    """A job this worker stopped on its way out (the controller stopping): interrupted at once and
    retried per engine.recover, rather than after its lease lapses. False when the lease was lost."""
    job = find_job(session, job_id, lock=True)
    if job.status != engine.RUNNING or job.worker != worker:
        return False
    job.timings = {name: round(seconds, 3) for name, seconds in timings.items()}
    _interrupt(session, job, cause, now)
    return True


def _interrupt(session: Session, job: Job, cause: str, now: datetime) -> Job | None:
    recovery = engine.recover(view_of(job), cause)
    _finish(job, recovery.status, recovery.message, now)
    _notify(session, job, f"job.{recovery.status}")
    audit.record(session, actor=audit.CONTROLLER_ACTOR, action="job.interrupted", target=f"job {job.id}")
    if not recovery.retry:
        return None
    return _copy(session, job, trigger=f"retry of {job.id}", actor="controller", now=now)


def _copy(session: Session, job: Job, *, trigger: str, actor: str, now: datetime) -> Job:
    again = Job(
        app_id=job.app_id,
        environment=job.environment,
        branch=job.branch,
        sha=job.sha,
        repository=job.repository,
        trigger=trigger,
        delivery_id=job.delivery_id,
        commit_time=job.commit_time,
        status=engine.QUEUED,
        message="",
        attempt=job.attempt + 1,
        retry_of=job.id,
        preview_id=job.preview_id,
        created_by=actor,
        created_at=now,
        timings={},
    )
    session.add(again)
    session.flush()
    return again


def _notify(session: Session, job: Job, event: str) -> None:
    app = session.get(App, job.app_id)
    fields = {
        "job_id": job.id,
        "environment": job.environment,
        "branch": job.branch,
        "sha": job.sha,
        "trigger": job.trigger,
        "message": job.message,
    }
    notify_store.emit(session, event, app=app.name if app else str(job.app_id), fields=fields)


def set_step(session: Session, job_id: int, step: str, timings: dict[str, float]) -> bool:
    """Record the step starting now; True when a cancel was asked for (the job stops here)."""
    job = find_job(session, job_id)
    job.step = step
    job.timings = {name: round(seconds, 3) for name, seconds in timings.items()}
    return job.cancel_requested


def cancel_asked(session: Session, job_id: int) -> bool:
    """Whether a cancel of the (running) job was asked for: one column of one row, read every second."""
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def note(session: Session, job_id: int, **fields: int) -> None:
    job = find_job(session, job_id)
    for name, value in fields.items():
        setattr(job, name, value)


def finish(
    session: Session,
    job_id: int,
    *,
    worker: str,
    status: str,
    message: str,
    timings: dict[str, float],
    now: datetime,
) -> bool:
    """Store the end of a job this worker still holds; False when its lease was lost meanwhile."""
    job = find_job(session, job_id, lock=True)
    if job.status != engine.RUNNING or job.worker != worker:
        return False
    _finish(job, status, message, now)
    job.timings = {name: round(seconds, 3) for name, seconds in timings.items()}
    app = session.get(App, job.app_id)
    _notify(session, job, f"job.{status}")
    audit.record(
        session,
        actor=audit.CONTROLLER_ACTOR,
        action=f"job.{status}",
        target=f"{app.name if app else job.app_id}/{job.environment}/job {job.id}",
        sha=job.sha,
    )
    return True


def cancel(session: Session, job_id: int, *, actor: str, source_ip: str | None, now: datetime) -> Job:
    job = find_job(session, job_id, lock=True)
    if engine.cancel(view_of(job)) == engine.CANCELLED:
        _finish(job, engine.CANCELLED, f"cancelled by {actor}", now)
    else:
        job.cancel_requested = True
        job.message = f"cancel asked by {actor}; its worker stops the running step"
    audit.record(session, actor=actor, action="job.cancel", target=f"job {job.id}", source_ip=source_ip)
    return job


def retry(session: Session, job_id: int, *, actor: str, source_ip: str | None, now: datetime) -> Job:
    job = find_job(session, job_id, lock=True)
    engine.check_retry(view_of(job))
    newer = [
        other
        for other in _app_jobs(session, job.app_id)
        if other.id > job.id and other.environment == job.environment and other.status == engine.SUCCEEDED
    ]
    if newer:
        raise ConflictError(
            f"job {newer[-1].id} already shipped a later commit to {job.environment}; "
            "retrying would deploy an older one over it (roll back instead)."
        )
    again = _copy(session, job, trigger=f"retry of {job.id}", actor=actor, now=now)
    again.attempt = 1  # a retry asked by a person gets its own automatic retry
    audit.record(session, actor=actor, action="job.retry", target=f"job {job.id}", source_ip=source_ip)
    return again


def append_log(session: Session, job_id: int, lines: Sequence[tuple[str, str, datetime]]) -> None:
    session.add_all(
        JobLogLine(job_id=job_id, step=step, line=line[:LOG_LINE_LIMIT], at=at) for step, line, at in lines
    )


def log_lines(session: Session, job_id: int, *, after: int = 0, limit: int = 1000) -> Sequence[JobLogLine]:
    query = select(JobLogLine).where(JobLogLine.job_id == job_id, JobLogLine.id > after)
    return session.scalars(query.order_by(JobLogLine.id).limit(limit)).all()


def refresh_pipelines(session: Session, app: str, pipelines: list[dict[str, str]]) -> None:
    """The hook follows the pipelines of the latest commit a job fetched: config lives in the repository."""
    hook = session.scalar(select(Hook).join(App, Hook.app_id == App.id).where(App.name == app))
    if hook is not None and hook.pipelines != pipelines:
        hook.pipelines = pipelines
