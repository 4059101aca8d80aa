"""Drives the rollout engine from the database: on a timer and right after each agent report.

Every tick is one transaction that loads the state, asks the pure engine what happens now and stores
the answer. Nothing lives only in memory, so a restarted controller simply carries on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.controller import deployments, hosts
from shipyard.controller.db import Database
from shipyard.controller.models import Deployment, Host, HostApp
from shipyard.controller.rollout import ACTIVE, HostView, advance
from shipyard.controller.rollout_store import report_of, state_of, store_state

Clock = Callable[[], datetime]


class RolloutDriver:
    def __init__(
        self, db: Database, *, lost_after: float, clock: Clock, on_change: Callable[[], None]
    ) -> None:
        self._db, self._lost_after, self._clock, self._on_change = db, lost_after, clock, on_change
        # One tick at a time in this process; across processes the row locks of PostgreSQL (and the
        # single writer of SQLite) keep ticks apart.
        self._lock = threading.Lock()

    def tick(self, *, app_id: int | None = None) -> bool:
        """Advance every active deployment (or only `app_id`'s); True when anything changed."""
        with self._lock:
            now = self._clock()
            with self._db.transaction() as session:
                changed = bool(hosts.mark_lost(session, now=now, lost_after=self._lost_after))
                changed |= self._advance_all(session, now, app_id)
                if deployments.start_queued(session, now):
                    changed = True
                    self._advance_all(session, now, app_id)
        if changed:
            self._on_change()
        return changed

    def _advance_all(self, session: Session, now: datetime, app_id: int | None) -> bool:
        query = select(Deployment).where(Deployment.status.in_(ACTIVE)).order_by(Deployment.id)
        if app_id is not None:
            query = query.where(Deployment.app_id == app_id)
        changed = False
        for deployment in session.scalars(query.with_for_update()).all():
            changed |= advance_deployment(session, deployment, now)
        return changed


def advance_deployment(session: Session, deployment: Deployment, now: datetime) -> bool:
    members = session.scalars(select(Host).where(Host.group == deployment.environment.name)).all()
    views = [HostView(host.id, host.name, lost=host.status == hosts.LOST) for host in members]
    rows = session.scalars(
        select(HostApp).where(
            HostApp.app_id == deployment.app_id, HostApp.host_id.in_([h.id for h in members])
        )
    ).all()
    reports = {row.host_id: report_of(row) for row in rows}
    before = state_of(deployment)
    after = advance(before, views, reports, now)
    if after == before:
        return False
    store_state(session, deployment, after, now)
    return True
