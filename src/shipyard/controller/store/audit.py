"""The append-only audit log: who did what to which target, when and from where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.controller.store.models import AuditEntry, utcnow

CONTROLLER_ACTOR = "controller"


def record(
    session: Session, *, actor: str, action: str, target: str, source_ip: str | None = None, **detail: Any
) -> None:
    session.add(
        AuditEntry(at=utcnow(), actor=actor, action=action, target=target, source_ip=source_ip, detail=detail)
    )


def entries(
    session: Session, *, limit: int = 100, action: str | None = None, actor: str | None = None
) -> Sequence[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    return session.scalars(query).all()
