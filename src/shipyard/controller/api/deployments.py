"""Deployments: create (or queue), list, get with per-host progress, pause/resume/abort, rollback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shipyard.controller import deployments
from shipyard.controller.api.deps import Caller, Context, Deployer, Viewer
from shipyard.controller.api.views import deployment_out
from shipyard.controller.context import ControllerContext
from shipyard.controller.schemas.common import NameQuery
from shipyard.controller.schemas.deployments import DeploymentCreate, DeploymentOut, RollbackCreate

router = APIRouter(tags=["deployments"])


def _started(context: ControllerContext, deployment_id: int) -> DeploymentOut:
    """Run one engine tick so the answer already shows the first wave, then read the result."""
    context.driver.tick()
    context.notifier.notify()
    with context.db.read() as session:
        return deployment_out(deployments.find_deployment(session, deployment_id, for_view=True))


@router.post("/deployments", status_code=201, summary="Deploy a release to an environment (deployer)")
def create_deployment(body: DeploymentCreate, caller: Deployer, context: Context) -> DeploymentOut:
    with context.db.transaction() as session:
        deployment = deployments.create_deployment(
            session,
            release_id=body.release_id,
            environment=body.environment,
            queue=body.queue,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
        )
        deployment_id = deployment.id
    return _started(context, deployment_id)


@router.get("/deployments", summary="List deployments, newest first (viewer)")
def list_deployments(
    _caller: Viewer,
    context: Context,
    app: NameQuery = None,
    environment: NameQuery = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeploymentOut]:
    with context.db.read() as session:
        found = deployments.list_deployments(
            session, app=app, environment=environment, status=status, limit=limit
        )
        return [deployment_out(d, with_hosts=False) for d in found]


@router.get("/deployments/{deployment_id}", summary="One deployment with per-host progress (viewer)")
def get_deployment(deployment_id: int, _caller: Viewer, context: Context) -> DeploymentOut:
    with context.db.read() as session:
        return deployment_out(deployments.find_deployment(session, deployment_id, for_view=True))


def _transition(context: ControllerContext, caller: Caller, deployment_id: int, change: str) -> DeploymentOut:
    with context.db.transaction() as session:
        deployments.transition(
            session, deployment_id, change, actor=caller.name, source_ip=caller.source_ip, now=context.now()
        )
    return _started(context, deployment_id)


@router.post("/deployments/{deployment_id}/pause", summary="Start no further wave (deployer)")
def pause(deployment_id: int, caller: Deployer, context: Context) -> DeploymentOut:
    return _transition(context, caller, deployment_id, "pause")


@router.post("/deployments/{deployment_id}/resume", summary="Continue a paused deployment (deployer)")
def resume(deployment_id: int, caller: Deployer, context: Context) -> DeploymentOut:
    return _transition(context, caller, deployment_id, "resume")


@router.post("/deployments/{deployment_id}/abort", summary="Stop; every host returns to the current release")
def abort(deployment_id: int, caller: Deployer, context: Context) -> DeploymentOut:
    return _transition(context, caller, deployment_id, "abort")


@router.post("/rollback", status_code=201, summary="Deploy the previous (or a named) release (deployer)")
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
