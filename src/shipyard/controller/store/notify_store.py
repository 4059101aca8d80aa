"""Notification targets and the outbox: events queued in the transaction that causes them.

emit() adds one row per matching target in the caller's transaction, so a notification exists exactly
when its event was committed. The sender (notify_sender.py) claims due rows, posts them, and stores
the outcome; failures are retried with backoff and never reach the job or deployment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from shipyard.controller.engine import notify
from shipyard.controller.store import audit
from shipyard.controller.store.models import App, Deployment, Environment, Release
from shipyard.controller.store.pipeline_models import Notification, NotifyTarget
from shipyard.errors import NotFoundError

PENDING, SENT, FAILED = "pending", "sent", "failed"
ERROR_LIMIT = 500


def add_target(
    session: Session, *, url: str, format_: str, app: str | None, actor: str, source_ip: str | None
) -> NotifyTarget:
    target = NotifyTarget(url=notify.check_url(url), format=format_, app=app, created_by=actor)
    session.add(target)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="notify.add",
        target=f"notify {target.id}",
        source_ip=source_ip,
        url=notify.shown_url(url),
        format=format_,
        app=app,
    )
    return target


def list_targets(session: Session) -> Sequence[NotifyTarget]:
    return session.scalars(select(NotifyTarget).order_by(NotifyTarget.id)).all()


def remove_target(session: Session, target_id: int, *, actor: str, source_ip: str | None) -> None:
    target = session.get(NotifyTarget, target_id)
    if target is None:
        raise NotFoundError(
            f"notification target {target_id} does not exist; list them with 'shipyard notify list'."
        )
    # What is still queued for the target goes with it (as the foreign key cascades), in one statement.
    session.execute(delete(Notification).where(Notification.target_id == target_id))
    session.delete(target)
    audit.record(
        session, actor=actor, action="notify.remove", target=f"notify {target_id}", source_ip=source_ip
    )


def emit(session: Session, event: str, *, app: str, fields: Mapping[str, Any]) -> int:
    """Queue `event` of `app` for every target of that app or of all apps; how many were queued."""
    targets = session.scalars(
        select(NotifyTarget).where(or_(NotifyTarget.app.is_(None), NotifyTarget.app == app))
    ).all()
    payload = notify.event_payload(event, {"app": app, **fields})
    for target in targets:
        session.add(
            Notification(
                target_id=target.id, event=event, payload=payload, status=PENDING, attempts=0, last_error=""
            )
        )
    return len(targets)


def notify_deployment(session: Session, deployment: Deployment, event: str) -> None:
    release = session.get(Release, deployment.release_id)
    environment = session.get(Environment, deployment.environment_id)
    app = session.get(App, deployment.app_id)
    fields = {
        "deployment_id": deployment.id,
        "environment": environment.name if environment else str(deployment.environment_id),
        "release": f"r{deployment.release_id}",
        "image": f"{release.image}@{release.digest}" if release else "",
        "sha": release.git_sha if release else None,
        "message": deployment.message,
    }
    app_name = app.name if app else str(deployment.app_id)
    emit(session, event, app=app_name, fields=fields)


def recent(session: Session, *, limit: int = 50) -> Sequence[Notification]:
    return session.scalars(select(Notification).order_by(Notification.id.desc()).limit(limit)).all()


@dataclass(frozen=True)
class Outgoing:
    id: int
    url: str
    format: str
    payload: dict[str, Any]
    attempts: int


def has_due(session: Session, *, now: datetime) -> bool:
    query = select(Notification.id).where(Notification.status == PENDING, Notification.next_attempt_at <= now)
    return session.scalar(query.limit(1)) is not None


def claim_due(session: Session, *, now: datetime, hold: float, limit: int = 20) -> list[Outgoing]:
    """Due notifications, held for `hold` seconds so another sender does not post them meanwhile."""
    rows = session.scalars(
        select(Notification)
        .where(Notification.status == PENDING, Notification.next_attempt_at <= now)
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed: list[Outgoing] = []
    for row in rows:
        target = session.get(NotifyTarget, row.target_id)
        if target is None:
            continue
        row.next_attempt_at = now + timedelta(seconds=hold)
        claimed.append(Outgoing(row.id, target.url, target.format, dict(row.payload), row.attempts))
    return claimed


def record_attempt(
    session: Session, notification_id: int, *, error: str | None, now: datetime, backoff_base: float
) -> None:
    row = session.get(Notification, notification_id)
    if row is None:  # its target was removed meanwhile
        return
    row.attempts += 1
    if error is None:
        row.status, row.sent_at, row.last_error = SENT, now, ""
        return
    row.last_error = error[:ERROR_LIMIT]
    if row.attempts >= notify.MAX_ATTEMPTS:
        row.status = FAILED
    else:
        row.next_attempt_at = now + timedelta(seconds=notify.backoff(row.attempts, backoff_base))
