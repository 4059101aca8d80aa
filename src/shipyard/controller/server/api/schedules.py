"""Schedules (jobs started by the clock) and notification targets (where events are posted)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from shipyard.controller.engine import notify, schedule
from shipyard.controller.server.api.deps import Admin, Context, Deployer, ResourceId, Viewer
from shipyard.controller.server.api.params import NameQuery
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.store import notify_store, prunes, schedule_store
from shipyard.controller.store.pipeline_models import Notification, NotifyTarget, Schedule
from shipyard.fleet_api.schemas.pipeline import (
    NotificationOut,
    NotifyCreate,
    NotifyOut,
    ScheduleCreate,
    ScheduleOut,
)

router = APIRouter(tags=["pipeline"], responses=API_TOKEN)


def schedule_out(row: Schedule, session: Session | None = None) -> ScheduleOut:
    """With a session, a prune schedule's last result says per host what its last prune removed."""
    local = row.next_run_at.astimezone(schedule.zone(row.timezone))
    last_result = row.last_result
    if session is not None and row.action == schedule.PRUNE and last_result.startswith("prune "):
        latest = prunes.list_prunes(session, schedule_id=row.id, limit=1)
        if latest:
            last_result = prunes.summary(latest[0], prunes.waiting_hosts(session, latest[0]))
    return ScheduleOut(
        id=row.id,
        app=row.app.name,
        cron=row.cron,
        timezone=row.timezone,
        action=row.action,
        environment=row.environment,
        ref=row.ref,
        overlap=row.overlap,
        missed=row.missed,
        next_run_at=row.next_run_at,
        next_run_local=local.strftime("%Y-%m-%d %H:%M %Z"),
        last_run_at=row.last_run_at,
        last_job_id=row.last_job_id,
        last_result=last_result,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def target_out(target: NotifyTarget) -> NotifyOut:
    return NotifyOut(
        id=target.id,
        url=notify.shown_url(target.url),
        format=target.format,
        app=target.app,
        created_by=target.created_by,
        created_at=target.created_at,
    )


def notification_out(row: Notification) -> NotificationOut:
    return NotificationOut.model_validate(row, from_attributes=True)


@router.get("/schedules", summary="Schedules with their next run (viewer)", responses=PARAMS)
def list_schedules(_caller: Viewer, context: Context, app: NameQuery = None) -> list[ScheduleOut]:
    with context.db.read() as session:
        return [schedule_out(row, session) for row in schedule_store.list_schedules(session, app=app)]


@router.post(
    "/schedules",
    status_code=201,
    summary="Schedule a deploy or a rebuild (deployer)",
    responses=BODY,
)
def add_schedule(body: ScheduleCreate, caller: Deployer, context: Context) -> ScheduleOut:
    job = schedule.check_job(body.action, body.environment, body.ref)
    with context.db.transaction() as session:
        row = schedule_store.add_schedule(
            session,
            app=body.app,
            cron=body.cron,
            timezone=body.timezone,
            job=job,
            overlap=body.overlap,
            missed=body.missed,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
        )
        return schedule_out(row)


@router.delete(
    "/schedules/{schedule_id}",
    status_code=204,
    summary="Remove a schedule (deployer)",
    responses={**PARAMS, **errors(404)},
)
def remove_schedule(schedule_id: ResourceId, caller: Deployer, context: Context) -> None:
    with context.db.transaction() as session:
        schedule_store.remove_schedule(session, schedule_id, actor=caller.name, source_ip=caller.source_ip)


@router.get("/notify", summary="Notification targets, URLs shortened (admin)")
def list_targets(_caller: Admin, context: Context) -> list[NotifyOut]:
    with context.db.read() as session:
        return [target_out(target) for target in notify_store.list_targets(session)]


@router.post(
    "/notify", status_code=201, summary="Post job and deployment events to a URL (admin)", responses=BODY
)
def add_target(body: NotifyCreate, caller: Admin, context: Context) -> NotifyOut:
    with context.db.transaction() as session:
        target = notify_store.add_target(
            session,
            url=body.url,
            format_=body.format,
            app=body.app,
            actor=caller.name,
            source_ip=caller.source_ip,
        )
        return target_out(target)


@router.delete(
    "/notify/{target_id}",
    status_code=204,
    summary="Remove a notification target (admin)",
    responses={**PARAMS, **errors(404)},
)
def remove_target(target_id: ResourceId, caller: Admin, context: Context) -> None:
    with context.db.transaction() as session:
        notify_store.remove_target(session, target_id, actor=caller.name, source_ip=caller.source_ip)


@router.get(
    "/notifications",
    summary="Notifications queued, newest first, with their outcome (admin)",
    responses=PARAMS,
)
def list_notifications(
    _caller: Admin, context: Context, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[NotificationOut]:
    with context.db.read() as session:
        return [notification_out(row) for row in notify_store.recent(session, limit=limit)]
