"""Locks per app and environment: while one is held, new deployments there are refused (or queued)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.controller.store import audit, catalog
from shipyard.controller.store.models import Lock, utcnow
from shipyard.errors import LockedError, NotFoundError


def lock_for(session: Session, app_id: int, environment_id: int) -> Lock | None:
    return session.scalar(select(Lock).where(Lock.app_id == app_id, Lock.environment_id == environment_id))


def describe(lock: Lock) -> str:
    return f"locked by {lock.holder} since {lock.since:%Y-%m-%d %H:%M:%S} UTC ({lock.reason})"


def acquire(
    session: Session, *, app: str, environment: str, reason: str, actor: str, source_ip: str | None
) -> Lock:
    app_row, env_row = catalog.find_app(session, app), catalog.find_environment(session, environment)
    held = lock_for(session, app_row.id, env_row.id)
    if held is not None:
        raise LockedError(f"{app} in {environment} is already {describe(held)}.")
    lock = Lock(app_id=app_row.id, environment_id=env_row.id, holder=actor, reason=reason, since=utcnow())
    session.add(lock)
    session.flush()
    audit.record(
        session, actor=actor, action="lock", target=f"{app}/{environment}", source_ip=source_ip, reason=reason
    )
    return lock


def release(session: Session, *, app: str, environment: str, actor: str, source_ip: str | None) -> None:
    app_row, env_row = catalog.find_app(session, app), catalog.find_environment(session, environment)
    held = lock_for(session, app_row.id, env_row.id)
    if held is None:
        raise NotFoundError(f"{app} in {environment} is not locked.")
    session.delete(held)
    audit.record(session, actor=actor, action="unlock", target=f"{app}/{environment}", source_ip=source_ip)


def list_locks(session: Session) -> Sequence[Lock]:
    return session.scalars(select(Lock).order_by(Lock.since)).all()
