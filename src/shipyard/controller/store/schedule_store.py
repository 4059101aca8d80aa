"""Schedules in the database: add, list, remove, and the scheduler's tick that starts due jobs.

The tick takes the due schedules `FOR UPDATE SKIP LOCKED`, so with several controller processes on
PostgreSQL each due run starts one job; the rules (missed runs, overlap) come from schedule.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from shipyard.controller.engine import jobs as engine
from shipyard.controller.engine import schedule
from shipyard.controller.store import audit, catalog, prunes
from shipyard.controller.store.models import App
from shipyard.controller.store.pipeline_models import Hook, Job, Schedule
from shipyard.errors import ConfigError, NotFoundError, ShipyardError


def add_schedule(
    session: Session,
    *,
    app: str,
    cron: str,
    timezone: str,
    job: schedule.ScheduledJob,
    overlap: str,
    missed: str,
    actor: str,
    source_ip: str | None,
    now: datetime,
) -> Schedule:
    cron = schedule.check_cron(cron)
    schedule.check_job(job.action, job.environment, job.ref)
    app_row = catalog.ensure_app(session, app)
    row = Schedule(
        app_id=app_row.id,
        cron=cron,
        timezone=timezone,
        action=job.action,
        environment=job.environment,
        ref=job.ref,
        overlap=overlap,
        missed=missed,
        next_run_at=schedule.next_run(cron, timezone, now),
        last_result="",
        created_by=actor,
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="schedule.add",
        target=f"{app}/schedule {row.id}",
        source_ip=source_ip,
        cron=cron,
        timezone=timezone,
        job=job.action,
        environment=job.environment,
    )
    return row


def list_schedules(session: Session, *, app: str | None = None) -> Sequence[Schedule]:
    query = select(Schedule).options(joinedload(Schedule.app)).order_by(Schedule.id)
    if app is not None:
        query = query.join(App, Schedule.app_id == App.id).where(App.name == app)
    return session.scalars(query).all()


def remove_schedule(session: Session, schedule_id: int, *, actor: str, source_ip: str | None) -> None:
    row = session.get(Schedule, schedule_id)
    if row is None:
        raise NotFoundError(f"schedule {schedule_id} does not exist; list them with 'shipyard schedules'.")
    target = f"{row.app.name}/schedule {row.id}"
    session.delete(row)
    audit.record(session, actor=actor, action="schedule.remove", target=target, source_ip=source_ip)


def _latest_shipped(session: Session, app_id: int, environment: str) -> Job | None:
    query = (
        select(Job)
        .where(Job.app_id == app_id, Job.environment == environment, Job.status == engine.SUCCEEDED)
        .order_by(Job.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def _job_for(session: Session, row: Schedule, now: datetime) -> Job:
    """The job a due run starts; ConfigError (recorded as the run's result) when it cannot be made."""
    hook = session.scalar(select(Hook).where(Hook.app_id == row.app_id))
    if hook is None:
        raise ConfigError(f"app {row.app.name} has no hook, so no repository to build from")
    branch = next((p["branch"] for p in hook.pipelines if p.get("environment") == row.environment), None)
    if branch is None:
        raise ConfigError(f"no pipeline of {row.app.name} ships to {row.environment}")
    sha = row.ref
    if row.action == schedule.REBUILD:
        shipped = _latest_shipped(session, row.app_id, row.environment)
        if shipped is None:
            raise ConfigError(
                f"no job has shipped {row.app.name} to {row.environment} yet; nothing to rebuild"
            )
        sha = shipped.sha
    assert sha is not None  # check_job: a deploy has its ref
    job = Job(
        app_id=row.app_id,
        environment=row.environment,
        branch=branch,
        sha=sha,
        repository=hook.repository,
        trigger=f"schedule {row.id}",
        status=engine.QUEUED,
        message=f"{row.action} scheduled by schedule {row.id} ({row.cron} {row.timezone})",
        created_by=f"schedule {row.id}",
        created_at=now,
        timings={},
    )
    session.add(job)
    session.flush()
    return job


def _request_prune(session: Session, row: Schedule, now: datetime) -> int:
    """A scheduled prune starts no job: it asks every host of the environment to prune (prunes.py)."""
    prune = prunes.request_prune(
        session,
        app=row.app.name,
        environment=row.environment,
        actor=f"schedule {row.id}",
        source_ip=None,
        now=now,
        schedule_id=row.id,
    )
    return prune.id


def run_due(session: Session, *, now: datetime, prunes_requested: list[int] | None = None) -> list[int]:
    """Start the job of every due schedule (or record why not); the ids of the jobs queued.

    The ids of the prunes requested are appended to `prunes_requested`: the caller wakes the agents."""
    due = session.scalars(
        select(Schedule)
        .where(Schedule.next_run_at <= now)
        .order_by(Schedule.next_run_at)
        .with_for_update(skip_locked=True)
    ).all()
    queued: list[int] = []
    for row in due:
        previous = session.get(Job, row.last_job_id) if row.last_job_id is not None else None
        decision = schedule.decide(
            due_at=row.next_run_at,
            now=now,
            missed=row.missed,
            overlap=row.overlap,
            previous_status=previous.status if previous is not None else None,
        )
        result, started = decision.reason, False
        if decision.run and row.action == schedule.PRUNE:
            try:
                with session.begin_nested():
                    prune_id = _request_prune(session, row, now)
                if prunes_requested is not None:
                    prunes_requested.append(prune_id)
                result, started = f"prune {prune_id}: {decision.reason}", True
            except ShipyardError as exc:  # the app or environment is gone, or was never deployed there
                result = f"not run: {exc.message}"
        elif decision.run:
            try:
                with session.begin_nested():  # a run that cannot start leaves nothing half-made
                    job = _job_for(session, row, now)
                row.last_job_id = job.id
                queued.append(job.id)
                result, started = f"job {job.id}: {decision.reason}", True
            except ConfigError as exc:
                result = f"not run: {exc.message}"
        row.last_run_at, row.last_result = now, result
        row.next_run_at = schedule.next_run(row.cron, row.timezone, now)
        audit.record(
            session,
            actor=audit.CONTROLLER_ACTOR,
            action="schedule.run" if started else "schedule.skip",
            target=f"{row.app.name}/schedule {row.id}",
            result=result,
        )
    return queued
