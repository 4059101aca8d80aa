"""Deployments: create (or queue), plan without storing, list, get with per-host progress,
pause/resume/abort, rollback."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.controller.engine.rollout import HostView, plan_waves
from shipyard.controller.server.api.deps import (
    Caller,
    Context,
    Deployer,
    ResourceId,
    Shipper,
    ShipperViewer,
    Viewer,
)
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.server.api.views import deployment_out
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store import catalog, deployments, hosts, tasks
from shipyard.controller.store.models import App, Deployment, Host, HostApp, Release
from shipyard.controller.store.releases import find_release
from shipyard.domain.spec import RolloutSpec, spec_from_snapshot
from shipyard.errors import ConfigError, NotFoundError
from shipyard.fleet_api.schemas.common import NAME_PATTERN
from shipyard.fleet_api.schemas.deployments import (
    DeploymentCreate,
    DeploymentOut,
    DeploymentPlanCreate,
    DeploymentPlanOut,
    PlannedHostOut,
    RollbackCreate,
)

router = APIRouter(tags=["deployments"], responses=API_TOKEN)
NameFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Status = Literal["queued", "running", "paused", "succeeded", "failed", "aborted", "rolled_back"]
# Creating or changing a deployment: the release, environment or deployment may not exist (404), the
# place may be busy or locked, or the change not allowed in the deployment's state (409).
CHANGE = errors(404, 409)


def _started(context: ControllerContext, deployment_id: int) -> DeploymentOut:
    """Run one engine tick so the answer already shows the first wave, then read the result."""
    context.driver.tick_after_commit()
    context.notifier.notify()
    with context.db.read() as session:
        deployment = deployments.find_deployment(session, deployment_id, for_view=True)
        return with_release_phase(session, deployment, deployment_out(deployment))


@router.post(
    "/deployments",
    status_code=201,
    summary="Deploy a release to an environment (deployer, or ci for its apps)",
    responses={**BODY, **CHANGE},
)
def create_deployment(body: DeploymentCreate, caller: Shipper, context: Context) -> DeploymentOut:
    with context.db.transaction() as session:
        deployment = deployments.create_deployment(
            session,
            release_id=body.release_id,
            environment=body.environment,
            queue=body.queue,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
            check_app=caller.check_app,
            sealed_secrets=body.sealed_secrets,
        )
        deployment_id = deployment.id
    return _started(context, deployment_id)


@router.post(
    "/deployments/plan",
    summary="The waves and per-host changes a deployment of a new release would make; stores nothing "
    "(deployer, or ci for its apps)",
    responses={**BODY, **errors(404)},
)
def plan_deployment(body: DeploymentPlanCreate, caller: Shipper, context: Context) -> DeploymentPlanOut:
    spec = spec_from_snapshot(body.spec)  # the checks a release gets, every problem with its key path
    caller.check_app(spec.app)
    if spec.image != body.image:
        raise ConfigError(f"image {body.image!r} does not match the spec's image {spec.image!r}.")
    with context.db.read() as session:
        return _plan(session, spec.app, body.environment, "new", body.image, body.digest, body.spec)


@router.post(
    "/rollback/plan",
    summary="The waves and per-host changes a rollback would make; stores nothing (deployer)",
    responses={**BODY, **errors(404)},
)
def plan_rollback(body: RollbackCreate, _caller: Deployer, context: Context) -> DeploymentPlanOut:
    with context.db.read() as session:
        app, environment = (
            catalog.find_app(session, body.app),
            catalog.find_environment(session, body.environment),
        )
        if body.release_id is None:
            release_id, _ = deployments.rollback_target(session, app.id, environment.id)
        else:
            release_id = body.release_id
        release = find_release(session, release_id)
        if release.app_id != app.id:
            raise NotFoundError(f"release r{release.id} is not a release of {body.app}.")
        return _plan(
            session, app.name, environment.name, f"r{release.id}", release.image, release.digest, release.spec
        )


def _plan(
    session: Session,
    app_name: str,
    environment: str,
    release: str,
    image: str,
    digest: str,
    spec: dict[str, Any],
) -> DeploymentPlanOut:
    """The rollout's own wave rule over the environment's hosts as they are now, read-only."""
    group = catalog.find_environment(session, environment).name
    max_parallel = RolloutSpec.model_validate(spec.get("rollout", {})).max_parallel
    members = session.execute(select(Host.id, Host.name, Host.status).where(Host.group == group)).all()
    running: dict[int, tuple[int, str]] = {}
    app_id = session.scalar(select(App.id).where(App.name == app_name))
    if app_id is not None:
        rows = session.execute(
            select(HostApp.host_id, Release.id, Release.digest)
            .join(Host, Host.id == HostApp.host_id)
            .join(Release, Release.id == HostApp.active_release_id)
            .where(HostApp.app_id == app_id, Host.group == group)
        ).all()
        running = {row.host_id: (row.id, row.digest) for row in rows}
    views = [HostView(row.id, row.name, lost=row.status == hosts.LOST) for row in members]
    waves = plan_waves([view for view in views if not view.lost], max_parallel)
    wave_of = {view.host_id: number for number, wave in enumerate(waves, 1) for view in wave}
    planned = []
    for view in sorted(views, key=lambda view: (wave_of.get(view.host_id, len(waves) + 1), view.name)):
        now = running.get(view.host_id)
        if view.lost:
            change = "skip (lost)"
        elif now is None:
            change = "install"
        elif now[1] == digest:
            change = "none"
        else:
            change = "replace"
        planned.append(
            PlannedHostOut(
                host=view.name,
                wave=wave_of.get(view.host_id, 0),
                running=f"r{now[0]}" if now else "",
                change=change,
            )
        )
    return DeploymentPlanOut(
        app=app_name,
        environment=group,
        release=release,
        image=image,
        digest=digest,
        max_parallel=max_parallel,
        total_waves=len(waves),
        hosts=planned,
    )


@router.get("/deployments", summary="List deployments, newest first (viewer)", responses=PARAMS)
def list_deployments(
    _caller: Viewer,
    context: Context,
    app: NameFilter = None,
    environment: NameFilter = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeploymentOut]:
    with context.db.read() as session:
        found = deployments.list_deployments(
            session, app=app, environment=environment, status=status, limit=limit
        )
        return [deployment_out(d, with_hosts=False) for d in found]


@router.get(
    "/deployments/{deployment_id}",
    response_model=DeploymentOut,
    summary="One deployment with per-host progress (viewer, or ci for its apps)",
    responses={**PARAMS, **errors(404)},
)
def get_deployment(deployment_id: ResourceId, caller: ShipperViewer, context: Context) -> Response:
    # Followers poll this while a deployment runs: plain rows, and the body serialized once (returning the
    # model would have the framework validate a thousand host rows again before serializing them).
    with context.db.read() as session:
        deployment, rows = deployments.find_deployment_view(session, deployment_id)
        caller.check_app(deployment.app.name)
        body = with_release_phase(
            session, deployment, deployment_out(deployment, rows=rows)
        ).model_dump_json()
    return Response(body, media_type="application/json")


ROLLBACK_NOTE = "not run for a rollback"


def with_release_phase(session: Session, deployment: Deployment, view: DeploymentOut) -> DeploymentOut:
    """The view with its release phase: the task and its output, or why none ran."""
    if not deployment.release.spec.get("release"):
        return view
    if deployment.rollback_of is not None:
        return view.model_copy(update={"release_phase": ROLLBACK_NOTE})
    task = tasks.release_task_of(session, deployment.id)
    if task is None:
        return view.model_copy(update={"release_phase": "pending"})
    out = tasks.task_out(session, task)
    return view.model_copy(update={"release_phase": out.status, "release_task": out})


def _transition(context: ControllerContext, caller: Caller, deployment_id: int, change: str) -> DeploymentOut:
    with context.db.transaction() as session:
        deployments.transition(
            session, deployment_id, change, actor=caller.name, source_ip=caller.source_ip, now=context.now()
        )
    return _started(context, deployment_id)


@router.post(
    "/deployments/{deployment_id}/pause",
    summary="Start no further wave (deployer)",
    responses={**PARAMS, **CHANGE},
)
def pause(deployment_id: ResourceId, caller: Deployer, context: Context) -> DeploymentOut:
    return _transition(context, caller, deployment_id, "pause")


@router.post(
    "/deployments/{deployment_id}/resume",
    summary="Continue a paused deployment (deployer)",
    responses={**PARAMS, **CHANGE},
)
def resume(deployment_id: ResourceId, caller: Deployer, context: Context) -> DeploymentOut:
    return _transition(context, caller, deployment_id, "resume")


@router.post(
    "/deployments/{deployment_id}/abort",
    summary="Stop; every host returns to the current release",
    responses={**PARAMS, **CHANGE},
)
def abort(deployment_id: ResourceId, caller: Deployer, context: Context) -> DeploymentOut:
    return _transition(context, caller, deployment_id, "abort")


@router.post(
    "/rollback",
    status_code=201,
    summary="Deploy the previous (or a named) release (deployer)",
    responses={**BODY, **CHANGE},
)
def rollback(body: RollbackCreate, caller: Deployer, context: Context) -> DeploymentOut:
    with context.db.transaction() as session:
        deployment = deployments.rollback(
            session,
            app=body.app,
            environment=body.environment,
            release_id=body.release_id,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
        )
        deployment_id = deployment.id
    return _started(context, deployment_id)
