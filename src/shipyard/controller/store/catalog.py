"""Apps and environments: looked up by name, created on first use where that is natural."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.controller.errors import ConflictError
from shipyard.controller.store.models import App, Deployment, Environment, Host
from shipyard.errors import NotFoundError

Named = TypeVar("Named", App, Environment)


def _get_or_create(session: Session, model: type[Named], name: str) -> Named:
    """The row named `name`, inserted when absent; safe when another transaction inserts it concurrently.

    The insert runs in a savepoint: on PostgreSQL a concurrent insert of the same name makes ours wait
    and then fail the unique constraint, so the savepoint is rolled back and the winner's row is read.
    """
    query = select(model).where(model.name == name)
    row = session.scalar(query)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = model(name=name)
            session.add(row)
            session.flush()
        return row
    except IntegrityError:
        winner = session.scalar(query)
        if winner is None:
            raise
        return winner


def find_app(session: Session, name: str) -> App:
    app = session.scalar(select(App).where(App.name == name))
    if app is None:
        raise NotFoundError(f"app {name!r} is unknown; create a release for it first.")
    return app


def ensure_app(session: Session, name: str) -> App:
    return _get_or_create(session, App, name)


def find_environment(session: Session, name: str) -> Environment:
    environment = session.scalar(select(Environment).where(Environment.name == name))
    if environment is None:
        raise NotFoundError(
            f"environment {name!r} is unknown; create it, or register a host with a join token for it."
        )
    return environment


def ensure_environment(session: Session, name: str) -> Environment:
    """Race-safe: concurrent first registrations of a group all get the one environment row."""
    return _get_or_create(session, Environment, name)


def list_apps(session: Session) -> Sequence[App]:
    return session.scalars(select(App).order_by(App.name)).all()


def list_environments(session: Session) -> Sequence[Environment]:
    return session.scalars(select(Environment).order_by(Environment.name)).all()


def host_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Host.group, func.count(Host.id)).group_by(Host.group)).all()
    return {group: count for group, count in rows}


def deployed_place(session: Session, app: str, environment: str, refusal: str) -> tuple[App, Environment]:
    """The app and environment rows, or ConflictError "{app} has never been deployed to {environment},
    so {refusal}." when no deployment of the app ever went there."""
    app_row = find_app(session, app)
    environment_row = find_environment(session, environment)
    deployed = session.scalar(
        select(Deployment.id)
        .where(Deployment.app_id == app_row.id, Deployment.environment_id == environment_row.id)
        .limit(1)
    )
    if deployed is None:
        raise ConflictError(f"{app} has never been deployed to {environment}, so {refusal}.")
    return app_row, environment_row
