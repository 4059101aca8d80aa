"""Moves rollout state between database rows and the pure engine's dataclasses.

Two ways for the per-host rows: through the ORM (state_of, store_state: pause, resume, abort), and as
plain rows (progress_rows, store_advanced: the rollout tick). At a thousand hosts a tick that loads and
compares a thousand ORM objects costs several times what the same work on tuples does, and the tick
runs several times a second while a large wave reports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from shipyard.controller.engine.rollout import FINISHED, Policy, Progress, Report, RolloutState
from shipyard.controller.store import audit, notify_store
from shipyard.controller.store.models import Deployment, DeploymentHost, HostApp, UtcDateTime


def policy_of(deployment: Deployment) -> Policy:
    return Policy(
        max_parallel=deployment.max_parallel,
        max_failed=deployment.max_failed,
        monitor=deployment.monitor,
        auto_rollback=deployment.auto_rollback,
    )


def progress_of(row: DeploymentHost) -> Progress:
    return Progress(
        host_id=row.host_id,
        wave=row.wave,
        outcome=row.outcome,
        step=row.step,
        message=row.message,
        started_at=row.started_at,
        healthy_since=row.healthy_since,
        finished_at=row.finished_at,
    )


def state_of(deployment: Deployment, progress: tuple[Progress, ...] | None = None) -> RolloutState:
    """The deployment's state; its per-host rows from `progress` when given (see progress_rows)."""
    return RolloutState(
        status=deployment.status,
        target_release=deployment.release_id,
        policy=policy_of(deployment),
        current_wave=deployment.current_wave,
        total_waves=deployment.total_waves,
        progress=progress if progress is not None else tuple(progress_of(row) for row in deployment.hosts),
        message=deployment.message,
    )


# The deployment_hosts columns a Progress is made of, in its field order.
PROGRESS_COLUMNS = (
    DeploymentHost.host_id,
    DeploymentHost.wave,
    DeploymentHost.outcome,
    DeploymentHost.step,
    DeploymentHost.message,
    DeploymentHost.started_at,
    DeploymentHost.healthy_since,
    DeploymentHost.finished_at,
)


def progress_rows(session: Session, deployment_id: int) -> tuple[Progress, ...]:
    """The deployment's per-host rows as plain values, in the order of Deployment.hosts."""
    query = (
        select(*PROGRESS_COLUMNS)
        .where(DeploymentHost.deployment_id == deployment_id)
        .order_by(DeploymentHost.id)
    )
    return tuple(Progress(*row) for row in session.execute(query))


# The host_apps columns a Report is made of, selected as plain rows by the tick.
REPORT_COLUMNS = (
    HostApp.host_id,
    HostApp.active_release_id,
    HostApp.health,
    HostApp.outcome,
    HostApp.release_id,
    HostApp.step,
    HostApp.message,
    HostApp.reported_at,
)


def report_of(row: Row[*tuple[Any, ...]]) -> Report:
    """A Report from a row of REPORT_COLUMNS."""
    return Report(
        active_release=row.active_release_id,
        health=row.health,
        outcome=row.outcome,
        release=row.release_id,
        step=row.step,
        message=row.message,
        at=row.reported_at,
    )


def store_state(session: Session, deployment: Deployment, state: RolloutState, now: datetime) -> None:
    """Write `state` onto the deployment and its host rows; audits the moment it finishes."""
    rows = {row.host_id: row for row in deployment.hosts}
    for progress in state.progress:
        row = rows.get(progress.host_id)
        if row is None:
            row = DeploymentHost(host_id=progress.host_id, wave=progress.wave)
            deployment.hosts.append(row)
        elif progress_of(row) == progress:
            continue  # unchanged: most rows of a large deployment on most ticks; spares the ORM's bookkeeping
        _copy_progress(row, progress)
    _store_deployment(session, deployment, state, now)


def store_advanced(
    session: Session, deployment: Deployment, before: RolloutState, after: RolloutState, now: datetime
) -> None:
    """Write `after` over `before` (read with progress_rows): only the host rows that changed, as plain
    statements (one executemany per kind), then the deployment itself as store_state does.

    Deployment.hosts must not have been loaded in this session (it would not see these writes)."""
    stored = {row.host_id: row for row in before.progress}
    changed = [row for row in after.progress if row.host_id in stored and stored[row.host_id] != row]
    added = [row for row in after.progress if row.host_id not in stored]
    table = DeploymentHost.metadata.tables[DeploymentHost.__tablename__]
    values: dict[str, BindParameter[Any]] = {
        "wave": bindparam("b_wave"),
        "outcome": bindparam("b_outcome"),
        "step": bindparam("b_step"),
        "message": bindparam("b_message"),
        "started_at": bindparam("b_started", type_=UtcDateTime()),
        "healthy_since": bindparam("b_healthy", type_=UtcDateTime()),
        "finished_at": bindparam("b_finished", type_=UtcDateTime()),
    }
    if changed:
        statement = update(table).where(
            table.c.deployment_id == bindparam("b_deployment"), table.c.host_id == bindparam("b_host")
        )
        session.execute(statement.values(values), [_progress_params(deployment.id, row) for row in changed])
    if added:
        keys: dict[str, BindParameter[Any]] = {
            "deployment_id": bindparam("b_deployment"),
            "host_id": bindparam("b_host"),
        }
        session.execute(
            insert(table).values({**keys, **values}), [_progress_params(deployment.id, row) for row in added]
        )
    _store_deployment(session, deployment, after, now)


def _progress_params(deployment_id: int, row: Progress) -> dict[str, object]:
    return {
        "b_deployment": deployment_id,
        "b_host": row.host_id,
        "b_wave": row.wave,
        "b_outcome": row.outcome,
        "b_step": row.step,
        "b_message": row.message,
        "b_started": row.started_at,
        "b_healthy": row.healthy_since,
        "b_finished": row.finished_at,
    }


def _store_deployment(session: Session, deployment: Deployment, state: RolloutState, now: datetime) -> None:
    finishing = state.status in FINISHED and deployment.status not in FINISHED
    deployment.status, deployment.message = state.status, state.message
    deployment.current_wave, deployment.total_waves = state.current_wave, state.total_waves
    if finishing:
        deployment.finished_at = now
        notify_store.notify_deployment(session, deployment, f"deployment.{state.status}")
        target = f"{deployment.app.name}/{deployment.environment.name}/deployment {deployment.id}"
        audit.record(
            session,
            actor=audit.CONTROLLER_ACTOR,
            action=f"deployment.{state.status}",
            target=target,
            message=state.message,
        )


def _copy_progress(row: DeploymentHost, progress: Progress) -> None:
    row.wave, row.outcome, row.step, row.message = (
        progress.wave,
        progress.outcome,
        progress.step,
        progress.message,
    )
    row.started_at, row.healthy_since, row.finished_at = (
        progress.started_at,
        progress.healthy_since,
        progress.finished_at,
    )
