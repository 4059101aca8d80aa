"""What each dashboard page shows, read from the database as plain data (no HTML here).

Each page costs a handful of queries whatever the size of the fleet: counts and latest rows are asked
of the database grouped, never one query per host or per deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, func, select
from sqlalchemy.orm import Session, joinedload

from shipyard.controller.engine.rollout import ACTIVE, SUCCEEDED
from shipyard.controller.store import catalog, locks
from shipyard.controller.store.deployments import find_deployment
from shipyard.controller.store.models import (
    App,
    AuditEntry,
    Deployment,
    Environment,
    Host,
    HostApp,
    Lock,
    Release,
)
from shipyard.errors import NotFoundError

LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_MESSAGE = "org.opencontainers.image.description"
# The latest succeeded deployments of an app in an environment, without sorting them all (migration 0006).
PLACE_INDEX = Index(
    "ix_deployments_place_status_finished",
    Deployment.app_id,
    Deployment.environment_id,
    Deployment.status,
    Deployment.finished_at,
)
HISTORY_SHOWN = 30
RELEASES_OFFERED = 20


@dataclass(frozen=True)
class ReleaseSummary:
    id: int
    image: str
    digest: str
    commit: str
    message: str
    by: str
    at: datetime | None

    @property
    def name(self) -> str:
        return f"r{self.id}"


def summarize(release: Release, *, by: str | None = None, at: datetime | None = None) -> ReleaseSummary:
    """A release with the commit its image was built from (the image's OCI labels kept in its spec)."""
    labels: dict[str, Any] = release.spec.get("labels") or {}
    return ReleaseSummary(
        id=release.id,
        image=release.image,
        digest=release.digest,
        commit=str(labels.get(LABEL_REVISION, ""))[:40],
        message=str(labels.get(LABEL_MESSAGE, "")),
        by=by or release.created_by,
        at=at or release.created_at,
    )


@dataclass(frozen=True)
class Cell:
    """One app in one environment on the overview."""

    app: str
    environment: str
    live: ReleaseSummary | None
    previous: ReleaseSummary | None
    standby_until: datetime | None
    converged: int
    hosts: int
    unhealthy: int
    lock: Lock | None
    active: Deployment | None


@dataclass(frozen=True)
class Overview:
    apps: list[str]
    environments: list[str]
    cells: dict[tuple[str, str], Cell]
    lost_hosts: int
    total_hosts: int


@dataclass(frozen=True)
class Done:
    """A succeeded deployment, as much as the pages need of it (columns only: no ORM objects)."""

    release_id: int
    created_by: str
    finished_at: datetime | None


def _succeeded(session: Session, app_id: int, env_id: int, limit: int) -> list[Done]:
    query = (
        select(Deployment.release_id, Deployment.created_by, Deployment.finished_at)
        .where(
            Deployment.app_id == app_id, Deployment.environment_id == env_id, Deployment.status == SUCCEEDED
        )
        .order_by(Deployment.finished_at.desc(), Deployment.id.desc())
        .limit(limit)
    )
    return [Done(*row) for row in session.execute(query).all()]


def live_and_previous(session: Session, app_id: int, env_id: int) -> tuple[Done | None, Done | None]:
    done = _succeeded(session, app_id, env_id, 20)
    if not done:
        return None, None
    previous = next((d for d in done[1:] if d.release_id != done[0].release_id), None)
    return done[0], previous


def summary_of(session: Session, done: Done | None) -> ReleaseSummary | None:
    if done is None:
        return None
    release = session.get(Release, done.release_id)
    assert release is not None  # deployments reference their release by foreign key
    return summarize(release, by=done.created_by, at=done.finished_at)


def overview(session: Session, now: datetime) -> Overview:
    apps, environments = catalog.list_apps(session), catalog.list_environments(session)
    hosts_by_group = dict(session.execute(select(Host.group, func.count(Host.id)).group_by(Host.group)).all())
    # Per app and group: hosts serving each release, and hosts reporting unhealthy.
    serving = session.execute(
        select(HostApp.app_id, Host.group, HostApp.active_release_id, func.count())
        .join(Host, Host.id == HostApp.host_id)
        .group_by(HostApp.app_id, Host.group, HostApp.active_release_id)
    ).all()
    unhealthy = dict(
        ((app_id, group), count)
        for app_id, group, count in session.execute(
            select(HostApp.app_id, Host.group, func.count())
            .join(Host, Host.id == HostApp.host_id)
            .where(HostApp.health == "unhealthy")
            .group_by(HostApp.app_id, Host.group)
        ).all()
    )
    held = {(lock.app_id, lock.environment_id): lock for lock in session.scalars(select(Lock)).all()}
    running = {
        (d.app_id, d.environment_id): d
        for d in session.scalars(select(Deployment).where(Deployment.status.in_(ACTIVE))).all()
    }
    cells: dict[tuple[str, str], Cell] = {}
    for app in apps:
        for env in environments:
            live, previous = live_and_previous(session, app.id, env.id)
            live_release = session.get(Release, live.release_id) if live else None
            standby_until = None
            if live_release is not None and previous is not None and live and live.finished_at is not None:
                standby = float(live_release.spec.get("deploy", {}).get("standby", 0) or 0)
                until = live.finished_at + timedelta(seconds=standby)
                standby_until = until if standby > 0 and until > now else None
            converged = sum(
                count
                for app_id, group, release_id, count in serving
                if app_id == app.id
                and group == env.name
                and live is not None
                and release_id == live.release_id
            )
            cells[(app.name, env.name)] = Cell(
                app=app.name,
                environment=env.name,
                live=summary_of(session, live),
                previous=summary_of(session, previous),
                standby_until=standby_until,
                converged=converged,
                hosts=hosts_by_group.get(env.name, 0),
                unhealthy=unhealthy.get((app.id, env.name), 0),
                lock=held.get((app.id, env.id)),
                active=running.get((app.id, env.id)),
            )
    lost = session.scalar(select(func.count(Host.id)).where(Host.status == "lost")) or 0
    return Overview(
        apps=[app.name for app in apps],
        environments=[env.name for env in environments],
        cells=cells,
        lost_hosts=lost,
        total_hosts=sum(hosts_by_group.values()),
    )


@dataclass(frozen=True)
class EnvironmentPage:
    app: str
    environment: str
    live: ReleaseSummary | None
    history: list[Deployment]
    # The app's recent releases but the live one, newest first, each with: has it succeeded here before?
    releases: list[tuple[ReleaseSummary, bool]]
    lock: Lock | None
    active: Deployment | None
    timeline: list[Deployment] = field(default_factory=list)


def environment_page(session: Session, app_name: str, env_name: str) -> EnvironmentPage:
    app, env = catalog.find_app(session, app_name), catalog.find_environment(session, env_name)
    history = list(
        session.scalars(
            select(Deployment)
            .options(joinedload(Deployment.release))
            .where(Deployment.app_id == app.id, Deployment.environment_id == env.id)
            .order_by(Deployment.id.desc())
            .limit(HISTORY_SHOWN)
        ).all()
    )
    live, _previous = live_and_previous(session, app.id, env.id)
    recent = session.scalars(
        select(Release).where(Release.app_id == app.id).order_by(Release.id.desc()).limit(RELEASES_OFFERED)
    ).all()
    succeeded_here = set(
        session.scalars(
            select(Deployment.release_id).where(
                Deployment.app_id == app.id,
                Deployment.environment_id == env.id,
                Deployment.status == SUCCEEDED,
                Deployment.release_id.in_([release.id for release in recent]),
            )
        )
    )
    releases = [
        (summarize(release), release.id in succeeded_here)
        for release in recent
        if live is None or release.id != live.release_id
    ]
    active = session.scalar(
        select(Deployment).where(
            Deployment.app_id == app.id, Deployment.environment_id == env.id, Deployment.status.in_(ACTIVE)
        )
    )
    return EnvironmentPage(
        app=app.name,
        environment=env.name,
        live=summary_of(session, live),
        history=history,
        releases=releases,
        lock=locks.lock_for(session, app.id, env.id),
        active=active,
        timeline=list(reversed(history)),
    )


def deployment_page(session: Session, deployment_id: int) -> Deployment:
    return find_deployment(session, deployment_id, for_view=True)


@dataclass(frozen=True)
class HostRow:
    name: str
    group: str
    status: str
    agent_version: str
    last_seen: datetime
    labels: dict[str, str]
    apps: list[tuple[str, int | None, str]]  # (app, serving release, health), by app name


def hosts_page(session: Session) -> list[HostRow]:
    """Columns only: a thousand hosts cost two queries and no ORM objects."""
    app_names = dict(session.execute(select(App.id, App.name)).all())
    per_host: dict[int, list[tuple[str, int | None, str]]] = {}
    states = select(HostApp.host_id, HostApp.app_id, HostApp.active_release_id, HostApp.health)
    for host_id, app_id, release_id, health in session.execute(states):
        per_host.setdefault(host_id, []).append((app_names[app_id], release_id, health))
    hosts = select(
        Host.id, Host.name, Host.group, Host.status, Host.agent_version, Host.last_seen, Host.labels
    ).order_by(Host.group, Host.name)
    return [
        HostRow(name, group, status, version, seen, labels or {}, sorted(per_host.get(host_id, [])))
        for host_id, name, group, status, version, seen, labels in session.execute(hosts)
    ]


def audit_page(
    session: Session, *, action: str | None, actor: str | None, target: str | None, limit: int
) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if target:
        query = query.where(AuditEntry.target.contains(target, autoescape=True))
    return list(session.scalars(query).all())


def audit_actions(session: Session) -> list[str]:
    return [row for row in session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))]


def app_names(session: Session) -> list[str]:
    return [row for row in session.scalars(select(App.name).order_by(App.name))]


def environment_names(session: Session) -> list[str]:
    return [row for row in session.scalars(select(Environment.name).order_by(Environment.name))]


def release_of(session: Session, app_name: str, release_id: int) -> int:
    """The release's id when it belongs to the app; NotFoundError otherwise."""
    app = catalog.find_app(session, app_name)
    release = session.get(Release, release_id)
    if release is None or release.app_id != app.id:
        raise NotFoundError(f"release r{release_id} is not a release of {app_name}.")
    return release.id
