"""Maintenance of an app in an environment: recorded here, carried out by each host's agent.

While a row exists, the app's desired state on every host of the environment carries its message;
each agent puts its haproxy on the maintenance page (the containers keep running) and reports it
(host_apps.maintenance). Deleting the row lifts it: the agents serve the app again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from shipyard.controller.store import audit, catalog
from shipyard.controller.store.models import MaintenanceWindow
from shipyard.errors import NotFoundError


def _window(session: Session, app_id: int, environment_id: int) -> MaintenanceWindow | None:
    return session.scalar(
        select(MaintenanceWindow).where(
            MaintenanceWindow.app_id == app_id, MaintenanceWindow.environment_id == environment_id
        )
    )


def enter(
    session: Session,
    *,
    app: str,
    environment: str,
    message: str,
    actor: str,
    source_ip: str | None,
    now: datetime,
) -> MaintenanceWindow:
    """Put the app in maintenance in the environment (a second call changes the message)."""
    app_row, environment_row = catalog.deployed_place(session, app, environment, "no host there serves it")
    window = _window(session, app_row.id, environment_row.id)
    if window is None:
        window = MaintenanceWindow(app=app_row, environment=environment_row, started_by=actor, started_at=now)
        session.add(window)
    window.message = message
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="maintenance.on",
        target=f"{app}/{environment}",
        source_ip=source_ip,
        message=message,
    )
    return window


def leave(session: Session, *, app: str, environment: str, actor: str, source_ip: str | None) -> None:
    app_row, environment_row = catalog.find_app(session, app), catalog.find_environment(session, environment)
    window = _window(session, app_row.id, environment_row.id)
    if window is None:
        raise NotFoundError(
            f"{app} is not in maintenance in {environment}; 'shipyard status --env' shows it."
        )
    session.delete(window)
    audit.record(
        session, actor=actor, action="maintenance.off", target=f"{app}/{environment}", source_ip=source_ip
    )


def list_windows(session: Session, *, environment: str | None = None) -> Sequence[MaintenanceWindow]:
    query = select(MaintenanceWindow).options(
        joinedload(MaintenanceWindow.app), joinedload(MaintenanceWindow.environment)
    )
    if environment is not None:
        environment_id = catalog.find_environment(session, environment).id
        query = query.where(MaintenanceWindow.environment_id == environment_id)
    return session.scalars(query.order_by(MaintenanceWindow.id)).all()


def messages_by_app(session: Session, environment_id: int) -> dict[int, str]:
    """The apps in maintenance in the environment, with their messages: what the desired state carries."""
    rows = session.execute(
        select(MaintenanceWindow.app_id, MaintenanceWindow.message).where(
            MaintenanceWindow.environment_id == environment_id
        )
    )
    return {app_id: message for app_id, message in rows}
