"""Apps and environments: looked up by name, created on first use where that is natural."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shipyard.controller.models import App, Environment, Host
from shipyard.errors import NotFoundError


def find_app(session: Session, name: str) -> App:
    app = session.scalar(select(App).where(App.name == name))
    if app is None:
        raise NotFoundError(f"app {name!r} is unknown; create a release for it first.")
    return app


def ensure_app(session: Session, name: str) -> App:
    app = session.scalar(select(App).where(App.name == name))
    if app is None:
        app = App(name=name)
        session.add(app)
        session.flush()
    return app


def find_environment(session: Session, name: str) -> Environment:
    environment = session.scalar(select(Environment).where(Environment.name == name))
    if environment is None:
        raise NotFoundError(
            f"environment {name!r} is unknown; create it, or register a host with a join token for it."
        )
    return environment


def ensure_environment(session: Session, name: str) -> Environment:
    environment = session.scalar(select(Environment).where(Environment.name == name))
    if environment is None:
        environment = Environment(name=name)
        session.add(environment)
        session.flush()
    return environment


def list_apps(session: Session) -> Sequence[App]:
    return session.scalars(select(App).order_by(App.name)).all()


def list_environments(session: Session) -> Sequence[Environment]:
    return session.scalars(select(Environment).order_by(Environment.name)).all()


def host_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Host.group, func.count(Host.id)).group_by(Host.group)).all()
    return {group: count for group, count in rows}
