"""Moves rollout state between database rows and the pure engine's dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from shipyard.controller import audit
from shipyard.controller.models import Deployment, DeploymentHost, HostApp
from shipyard.controller.pipeline import notify_store
from shipyard.controller.rollout import FINISHED, Policy, Progress, Report, RolloutState


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


def state_of(deployment: Deployment) -> RolloutState:
    return RolloutState(
        status=deployment.status,
        target_release=deployment.release_id,
        policy=policy_of(deployment),
        current_wave=deployment.current_wave,
        total_waves=deployment.total_waves,
        progress=tuple(progress_of(row) for row in deployment.hosts),
        message=deployment.message,
    )


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
    finishing = state.status in FINISHED and deployment.status not in FINISHED
    deployment.status, deployment.message = state.status, state.message
    deployment.current_wave, deployment.total_waves = state.current_wave, state.total_waves
    rows = {row.host_id: row for row in deployment.hosts}
    for progress in state.progress:
        row = rows.get(progress.host_id)
        if row is None:
            row = DeploymentHost(host_id=progress.host_id, wave=progress.wave)
            deployment.hosts.append(row)
        elif progress_of(row) == progress:
            continue  # unchanged: most rows of a large deployment on most ticks; spares the ORM's bookkeeping
        _copy_progress(row, progress)
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
