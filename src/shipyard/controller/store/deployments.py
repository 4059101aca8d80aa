"""Deployments: creation with lock and conflict checks, queueing, transitions and rollback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from shipyard.controller.engine import rollout
from shipyard.controller.engine.rollout import ACTIVE, QUEUED, RUNNING, SUCCEEDED, Policy, RolloutState
from shipyard.controller.store import audit, catalog, locks, notify_store, release_secrets
from shipyard.controller.store.models import App, Deployment, DeploymentHost, Environment, Host, Release
from shipyard.controller.store.releases import find_release
from shipyard.controller.store.rollout_store import PROGRESS_COLUMNS, state_of, store_state
from shipyard.domain.spec import RolloutSpec
from shipyard.errors import LockedError, NotFoundError

# What a deployment's API view reads, loaded up front: a handful of queries instead of one per host.
VIEW_OPTIONS = (
    joinedload(Deployment.app),
    joinedload(Deployment.environment),
    joinedload(Deployment.release),
    selectinload(Deployment.hosts).joinedload(DeploymentHost.host),
)


def find_deployment(session: Session, deployment_id: int, *, for_view: bool = False) -> Deployment:
    deployment = session.get(Deployment, deployment_id, options=VIEW_OPTIONS if for_view else ())
    if deployment is None:
        raise NotFoundError(
            f"deployment {deployment_id} does not exist; list them with GET /api/v1/deployments."
        )
    return deployment


# One deployment's view as GET /deployments/{id} answers it: the deployment with what it names, and its
# per-host rows as plain values (a thousand ORM rows, each with its Host, cost several times more).
HEAD_OPTIONS = (
    joinedload(Deployment.app),
    joinedload(Deployment.environment),
    joinedload(Deployment.release),
)
# The rollout's progress columns with the host's name in place of its id.
PROGRESS_VIEW_COLUMNS = (Host.name, *PROGRESS_COLUMNS[1:])


def find_deployment_view(
    session: Session, deployment_id: int
) -> tuple[Deployment, Sequence[Row[*tuple[Any, ...]]]]:
    """The deployment (as find_deployment) and its per-host rows, each with PROGRESS_VIEW_COLUMNS."""
    deployment = session.get(Deployment, deployment_id, options=HEAD_OPTIONS)
    if deployment is None:
        return find_deployment(session, deployment_id), []  # raises NotFoundError
    rows = session.execute(
        select(*PROGRESS_VIEW_COLUMNS)
        .join(Host, Host.id == DeploymentHost.host_id)
        .where(DeploymentHost.deployment_id == deployment_id)
    ).all()
    return deployment, rows


def list_deployments(
    session: Session,
    *,
    app: str | None = None,
    environment: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> Sequence[Deployment]:
    query = select(Deployment).options(*VIEW_OPTIONS).order_by(Deployment.id.desc()).limit(limit)
    if app is not None:
        query = query.where(Deployment.app.has(App.name == app))
    if environment is not None:
        query = query.where(Deployment.environment.has(Environment.name == environment))
    if status is not None:
        query = query.where(Deployment.status == status)
    return session.scalars(query).all()


def _in_place(app_id: int, environment_id: int) -> ColumnElement[bool]:
    return and_(Deployment.app_id == app_id, Deployment.environment_id == environment_id)


def active_deployment(session: Session, app_id: int, environment_id: int) -> Deployment | None:
    query = select(Deployment).where(_in_place(app_id, environment_id), Deployment.status.in_(ACTIVE))
    return session.scalar(query.limit(1))


def succeeded_deployments(session: Session, app_id: int, environment_id: int) -> Sequence[Deployment]:
    query = select(Deployment).where(_in_place(app_id, environment_id), Deployment.status == SUCCEEDED)
    return session.scalars(query.order_by(Deployment.finished_at.desc(), Deployment.id.desc())).all()


def current_release_id(session: Session, app_id: int, environment_id: int) -> int | None:
    done = succeeded_deployments(session, app_id, environment_id)
    return done[0].release_id if done else None


def _busy_reason(session: Session, app_id: int, environment: Environment) -> str | None:
    active = active_deployment(session, app_id, environment.id)
    if active is not None:
        started = f"{active.started_at:%Y-%m-%d %H:%M:%S} UTC" if active.started_at else "?"
        return (
            f"deployment {active.id} (r{active.release_id}) is {active.status} in {environment.name}, "
            f"started by {active.created_by} at {started}"
        )
    lock = locks.lock_for(session, app_id, environment.id)
    if lock is not None:
        return f"{environment.name} is {locks.describe(lock)}"
    queued = select(Deployment.id).where(_in_place(app_id, environment.id), Deployment.status == QUEUED)
    if session.scalar(queued.limit(1)) is not None:
        return f"deployments are already queued for {environment.name}"
    return None


def policy_from_release(release: Release) -> Policy:
    rollout = RolloutSpec.model_validate(release.spec.get("rollout", {}))
    return Policy(rollout.max_parallel, rollout.max_failed, rollout.monitor, rollout.auto_rollback)


def create_deployment(
    session: Session,
    *,
    release_id: int,
    environment: str,
    queue: bool,
    actor: str,
    source_ip: str | None,
    now: datetime,
    rollback_of: int | None = None,
    check_app: Callable[[str], None] | None = None,
    sealed_secrets: str | None = None,
) -> Deployment:
    """`sealed_secrets`: the release's env.secret values sealed for `environment`, stored with it first."""
    release = find_release(session, release_id)
    if check_app is not None:  # a ci token's scope, checked before anything is stored
        check_app(release.app.name)
    env = catalog.find_environment(session, environment)
    if sealed_secrets is not None:
        release_secrets.set_sealed(
            session, release, env, sealed_secrets, actor=actor, source_ip=source_ip, now=now
        )
    # Serialises concurrent creations for one app on PostgreSQL; SQLite writers are serial anyway.
    session.execute(select(App.id).where(App.id == release.app_id).with_for_update())
    busy = _busy_reason(session, release.app_id, env)
    if busy is not None and not queue:
        raise LockedError(f"{busy}; pass queue=true to wait for it, or try again later.")
    policy = policy_from_release(release)
    deployment = Deployment(
        release_id=release.id,
        app_id=release.app_id,
        environment_id=env.id,
        status=QUEUED,
        max_parallel=policy.max_parallel,
        max_failed=policy.max_failed,
        monitor=policy.monitor,
        auto_rollback=policy.auto_rollback,
        rollback_of=rollback_of,
        created_by=actor,
        created_at=now,
        message="queued" if busy else "",
    )
    session.add(deployment)
    session.flush()
    if busy is None:
        start(session, deployment, now)
    action = "rollback" if rollback_of else "deployment.create"
    audit.record(
        session,
        actor=actor,
        action=action,
        target=f"{release.app.name}/{environment}/deployment {deployment.id}",
        source_ip=source_ip,
        release=release.id,
        queued=busy is not None,
    )
    return deployment


def start(session: Session, deployment: Deployment, now: datetime) -> None:
    deployment.status, deployment.started_at, deployment.message = RUNNING, now, "starting"
    deployment.previous_release_id = current_release_id(session, deployment.app_id, deployment.environment_id)
    notify_store.notify_deployment(session, deployment, "deployment.started")


def start_queued(session: Session, now: datetime) -> list[Deployment]:
    """Start the oldest queued deployment of each app+environment that is neither busy nor locked."""
    started: list[Deployment] = []
    queued = session.scalars(
        select(Deployment).where(Deployment.status == QUEUED).order_by(Deployment.id)
    ).all()
    seen: set[tuple[int, int]] = set()
    for deployment in queued:
        place = (deployment.app_id, deployment.environment_id)
        if place in seen:
            continue
        seen.add(place)
        blocked = active_deployment(session, *place) or locks.lock_for(session, *place)
        if blocked is None:
            start(session, deployment, now)
            started.append(deployment)
    return started


def transition(
    session: Session, deployment_id: int, change: str, *, actor: str, source_ip: str | None, now: datetime
) -> Deployment:
    """Pause, resume or abort, through the engine's rules so the API and the engine agree."""
    deployment = find_deployment(session, deployment_id)
    moves = {"pause": rollout.pause, "resume": rollout.resume, "abort": rollout.abort}
    state: RolloutState = moves[change](state_of(deployment))
    store_state(session, deployment, state, now)
    target = f"{deployment.app.name}/{deployment.environment.name}/deployment {deployment.id}"
    audit.record(session, actor=actor, action=f"deployment.{change}", target=target, source_ip=source_ip)
    return deployment


def rollback_target(session: Session, app_id: int, environment_id: int) -> tuple[int, int]:
    """(release to return to, deployment being rolled back): the succeeded release before the current one."""
    done = succeeded_deployments(session, app_id, environment_id)
    if not done:
        raise NotFoundError("nothing to roll back: no deployment has succeeded there yet.")
    current = done[0]
    for earlier in done[1:]:
        if earlier.release_id != current.release_id:
            return earlier.release_id, current.id
    raise NotFoundError(f"no earlier succeeded release than r{current.release_id} to roll back to; name one.")


def rollback(
    session: Session,
    *,
    app: str,
    environment: str,
    release_id: int | None,
    actor: str,
    source_ip: str | None,
    now: datetime,
) -> Deployment:
    app_row, env_row = catalog.find_app(session, app), catalog.find_environment(session, environment)
    rolled_back: int | None
    if release_id is None:
        release_id, rolled_back = rollback_target(session, app_row.id, env_row.id)
    else:
        if find_release(session, release_id).app_id != app_row.id:
            raise NotFoundError(f"release r{release_id} is not a release of {app}.")
        done = succeeded_deployments(session, app_row.id, env_row.id)
        rolled_back = done[0].id if done else None
    return create_deployment(
        session,
        release_id=release_id,
        environment=environment,
        queue=False,
        actor=actor,
        source_ip=source_ip,
        now=now,
        rollback_of=rolled_back,
    )
