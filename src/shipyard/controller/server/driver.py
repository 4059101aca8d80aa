"""Drives the rollout engine from the database: on a timer, and soon after agent reports ask for it.

Every tick is one transaction that loads the state, asks the pure engine what happens now and stores
the answer; it also notes when the engine will next act on its own (a monitor period ending), so the
loop wakes then rather than polling. Rollout state never lives only in memory, so a restarted
controller simply carries on. Agent reports do not tick inline: they store the report and call
request_tick(), which wakes the background loop; many reports arriving together are thus handled by
one tick. Each deployment advances in its own savepoint: one that cannot be advanced (a row no engine
rule can read) is logged and skipped, and the others, lost-host detection and the queue go on. The
tick also stores the agents' in-memory last_seen times (Presence) in one batch every
`flush_interval` seconds.

With several controller replicas (PostgreSQL), only the leader runs the background loop, but any replica
ticks inline after a change made through its API; each tick's transaction takes an advisory lock
first, so ticks of different replicas run one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shipyard.controller.engine.rollout import (
    ACTIVE,
    RELEASE_NEEDED,
    HostView,
    advance,
    moves_desired,
    needs_release_task,
    next_due,
    release_host,
)
from shipyard.controller.server.presence import Presence
from shipyard.controller.store import deployments, hosts, tasks
from shipyard.controller.store.db import Database
from shipyard.controller.store.leadership import TICK_LOCK_KEY
from shipyard.controller.store.models import Deployment, Host, HostApp
from shipyard.controller.store.rollout_store import (
    REPORT_COLUMNS,
    progress_rows,
    report_of,
    state_of,
    store_advanced,
)

Clock = Callable[[], datetime]
log = structlog.get_logger("shipyard.controller")


class RolloutDriver:
    def __init__(
        self,
        db: Database,
        *,
        lost_after: float,
        clock: Clock,
        on_change: Callable[[], None],
        presence: Presence | None = None,
        flush_interval: float | None = None,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        """`on_change` after a tick that may have moved a desired state; `on_progress` (default: on_change)
        after one that changed only progress rows or host statuses."""
        self._db, self._lost_after, self._clock, self._on_change = db, lost_after, clock, on_change
        self._on_progress = on_progress or on_change
        self.presence = presence or Presence()
        # Stored last_seen may lag by this much: lost detection reads the in-memory times, and storing a
        # thousand hosts' times is a thousand-row UPDATE, so not more often than needed.
        self._flush_interval = flush_interval if flush_interval is not None else min(10.0, lost_after / 6)
        self._flushed_at = time.monotonic()
        # One tick at a time in this process; across processes the tick's advisory lock on PostgreSQL
        # (and the single writer of SQLite) keep ticks apart.
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self.next_due: datetime | None = None  # when the last tick's deployments next need a tick

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._wakeup = loop, asyncio.Event()

    def request_tick(self) -> None:
        """Ask the background loop for a tick soon; safe from any thread, cheap to call per report."""
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wakeup.set)

    @property
    def flush_interval(self) -> float:
        return self._flush_interval

    async def wait_for_request(self, timeout: float) -> bool:
        """Returns after `timeout` seconds, or earlier when request_tick() was called; True then."""
        if self._wakeup is None:
            await asyncio.sleep(timeout)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        requested = self._wakeup.is_set()
        self._wakeup.clear()
        return requested

    def tick(self, *, flush: bool = False) -> bool:
        """Advance every active deployment; True when anything changed."""
        with self._lock:
            now = self._clock()
            flush_due = flush or time.monotonic() - self._flushed_at >= self._flush_interval
            pending = self.presence.take_pending() if flush_due else {}
            try:
                with self._db.transaction() as session:
                    self._one_at_a_time(session)
                    hosts.store_last_seen(session, pending)
                    lost = hosts.mark_lost(
                        session, now=now, lost_after=self._lost_after, seen=self.presence.latest()
                    )
                    changed = bool(lost)
                    # A lost host's tasks end here; a release phase's deployment then fails on this tick.
                    ended = tasks.fail_on_lost_hosts(session, [host.id for host in lost], now) > 0
                    advanced, moved, due = self._advance_all(session, now)
                    changed |= advanced or ended
                    moved |= ended
                    if deployments.start_queued(session, now):
                        changed = moved = True
                        _, _, due = self._advance_all(session, now)
            except BaseException:
                self.presence.restore(pending)
                raise
            if flush_due:
                self._flushed_at = time.monotonic()
            self.next_due = due
        if moved:
            self._on_change()
        elif changed:
            self._on_progress()
        return changed

    def tick_after_commit(self) -> None:
        """A tick now, so an answer shows its effect; called after the request's own change is committed.

        The caller must still answer with what it committed, so a failing tick is logged and left to
        the background loop rather than turned into an error for a change that did happen."""
        try:
            self.tick()
        except Exception:
            log.exception("rollout tick after a committed change failed; the background loop retries")
            self.request_tick()

    def flush_presence(self) -> None:
        """Store the pending last_seen times now (at shutdown, and every flush interval on a replica
        that does not lead)."""
        pending = self.presence.take_pending()
        try:
            with self._db.transaction() as session:
                self._one_at_a_time(session)
                hosts.store_last_seen(session, pending)
        except BaseException:
            self.presence.restore(pending)
            raise

    def _one_at_a_time(self, session: Session) -> None:
        """On PostgreSQL, wait for any other replica's tick or last_seen flush to end first."""
        if not self._db.is_sqlite:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TICK_LOCK_KEY})

    def _advance_all(self, session: Session, now: datetime) -> tuple[bool, bool, datetime | None]:
        """Whether anything changed, whether a desired state may have moved, and the earliest moment a
        deployment needs a tick on its own."""
        query = select(Deployment).where(Deployment.status.in_(ACTIVE)).order_by(Deployment.id)
        changed, moved, dues = False, False, []
        for deployment in session.scalars(query.with_for_update()).all():
            deployment_id = deployment.id
            try:
                with session.begin_nested():
                    advanced, moves, due = advance_deployment(session, deployment, now)
            except Exception:  # this row alone is rolled back; it is retried on the next tick
                log.exception("deployment could not be advanced; the others go on", deployment=deployment_id)
                continue
            changed |= advanced
            moved |= moves
            dues.extend([due] if due is not None else [])
        return changed, moved, min(dues, default=None)


def advance_deployment(
    session: Session, deployment: Deployment, now: datetime
) -> tuple[bool, bool, datetime | None]:
    """Whether the deployment changed, whether that may move a desired state, and its next due time."""
    # Plain column rows, not ORM objects: at a thousand hosts per tick the difference is most of the tick.
    members = session.execute(
        select(Host.id, Host.name, Host.status).where(Host.group == deployment.environment.name)
    ).all()
    views = [HostView(row.id, row.name, lost=row.status == hosts.LOST) for row in members]
    # Joined on the group, not an IN list of every member: a thousand bound ids cost more than the read.
    rows = session.execute(
        select(*REPORT_COLUMNS)
        .join(Host, Host.id == HostApp.host_id)
        .where(HostApp.app_id == deployment.app_id, Host.group == deployment.environment.name)
    ).all()
    reports = {row.host_id: report_of(row) for row in rows}
    phase, detail = _release_phase(session, deployment)
    before = replace(
        state_of(deployment, progress_rows(session, deployment.id)),
        release_phase=phase,
        release_detail=detail,
    )
    after = advance(before, views, reports, now)
    created = False
    if needs_release_task(after):
        chosen = release_host(views)
        assert chosen is not None  # advance() starts the waves when no host could run it
        tasks.create_release_task(session, deployment, chosen.host_id, now)
        created = True  # the host's desired state now carries it
    if after == before:
        return created, created, next_due(after)
    store_advanced(session, deployment, before, after, now)
    return True, created or moves_desired(before, after), next_due(after)


def _release_phase(session: Session, deployment: Deployment) -> tuple[str, str]:
    """The release phase as the engine reads it, and its task's message: only before wave 1, never
    for a rollback (a rollback returns to a release whose release phase ran when it was deployed)."""
    if deployment.current_wave != 0 or deployment.rollback_of is not None:
        return "", ""
    if not deployment.release.spec.get("release"):
        return "", ""
    task = tasks.release_task_of(session, deployment.id)
    if task is None:
        return RELEASE_NEEDED, ""
    return task.status, task.message
